"""Let Django find the app's models where it looks (<app>.models); they live in chat/domain/models.py."""
from chat.domain.models import AuditLog, Ban, Membership, Message, Mute, Reaction, Report, Room  # noqa: F401
