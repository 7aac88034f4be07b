"""Let Django find the app's models where it looks (<app>.models); they live in chat/domain/models.py."""
from chat.domain.models import (  # noqa: F401
    Attachment, AuditLog, Ban, LinkPreview, Membership, Message, Mute, Reaction, Report, Room,
)
