"""Reads: rooms and messages as the pages and sockets see them."""
from django.db.models import Count, F, Q

from chat.models import Message, Room
from chat.protocol import DEFAULT_PAGE


def room_list_public():
    """Return the public rooms, most recently active first, with their message counts."""
    return (
        Room.objects.filter(is_private=False)
        .annotate(message_count=Count("messages", filter=Q(messages__is_deleted=False)))
        .order_by(F("last_message_at").desc(nulls_last=True), "slug")
    )


def message_list(*, room, before=None, after=None, limit=DEFAULT_PAGE):
    """Return (messages oldest first, has_more) for one page of a room's history.

    With `after`, the page starts just after that seq and `has_more` says newer
    ones follow; otherwise it ends just before `before` (or at the latest) and
    `has_more` says older ones exist.
    """
    messages = Message.objects.filter(room=room, is_deleted=False).select_related("author", "room")
    if after is not None:
        page = list(messages.filter(seq__gt=after).order_by("seq")[: limit + 1])
        return page[:limit], len(page) > limit
    if before is not None:
        messages = messages.filter(seq__lt=before)
    page = list(messages.order_by("-seq")[: limit + 1])
    return page[:limit][::-1], len(page) > limit
