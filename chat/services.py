"""Writes: every change to rooms and messages, each broadcast after it commits."""
from django.db import IntegrityError, transaction
from django.db.models import F
from django.utils import timezone

from chat import protocol
from chat.broadcast import room_send_on_commit
from chat.models import Membership, Message, Room, validate_room_slug


@transaction.atomic
def room_open(*, slug, user, name=None):
    """Return the room named by `slug`, creating a public one if it does not exist, and join `user` to it."""
    validate_room_slug(slug)
    room, _ = Room.objects.get_or_create(slug=slug, defaults={"name": name or slug, "created_by": user})
    Membership.objects.get_or_create(room=room, user=user)
    return room


def room_slug_from_name(name):
    """Return the slug a typed room name opens, or raise ValidationError."""
    slug = "-".join(name.strip().lower().split())
    validate_room_slug(slug)
    return slug


def message_create(*, room, author, body, client_id=None):
    """Store a message with the room's next seq and broadcast it; return (message, created).

    A repeated `client_id` from the same author in the same room stores nothing
    and returns the original message, so that clients can retry safely.
    """
    if client_id is not None:
        existing = _message_by_client_id(room, author, client_id)
        if existing is not None:
            return existing, False
    try:
        with transaction.atomic():
            now = timezone.now()
            # The UPDATE takes the room's row lock until commit, so seqs are
            # gap-free and seq order is commit order.
            Room.objects.filter(pk=room.pk).update(last_seq=F("last_seq") + 1, last_message_at=now)
            seq = Room.objects.values_list("last_seq", flat=True).get(pk=room.pk)
            message = Message.objects.create(
                room=room, author=author, seq=seq, body=body, client_id=client_id
            )
            room_send_on_commit(room.pk, protocol.message_frame(message), seq=seq)
    except IntegrityError:
        # A concurrent retry with the same client_id won the race.
        existing = client_id and _message_by_client_id(room, author, client_id)
        if not existing:
            raise
        return existing, False
    return message, True


def _message_by_client_id(room, author, client_id):
    return Message.objects.select_related("author", "room").filter(room=room, author=author, client_id=client_id).first()

