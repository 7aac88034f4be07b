"""Let Django find the app's models where it looks (<app>.models); they live in chat/domain/models.py."""
from chat.domain.models import LinkPreview, Membership, Message, Reaction, Room  # noqa: F401
