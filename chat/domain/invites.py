"""Invite links to private rooms: signed, expiring, and revoked all at once by the room's creator."""
import hmac
import secrets

from django.conf import settings
from django.core import signing
from django.core.exceptions import ValidationError
from django.db import transaction

from chat.domain import services
from chat.domain.models import Membership, Room

SALT = "chat.invite"


@transaction.atomic
def invite_create(*, room, actor):
    """Return a new invite token to a private room (valid for CHAT_INVITE_MAX_AGE seconds); only its creator may."""
    services.room_creator_check(room, actor, "invite links")
    room = Room.objects.select_for_update().get(pk=room.pk)
    if not room.invite_key:
        room.invite_key = secrets.token_hex(16)
        room.save(update_fields=["invite_key"])
    return invite_token(room)


def invite_token(room):
    """Return a new invite token to a room whose links are on, or None when they are off (none made or revoked)."""
    if not room.invite_key:
        return None
    # Signed with the time: a link expires without anything stored per link.
    return signing.dumps({"room": room.pk, "key": room.invite_key}, salt=SALT, compress=True)


def invite_revoke(*, room, actor):
    """Make every invite link to a room invalid at once; only its creator may."""
    services.room_creator_check(room, actor, "invite links")
    Room.objects.filter(pk=room.pk).update(invite_key="")


def invite_room(token):
    """Return the room an invite token admits to; ValidationError when it is malformed, expired or revoked."""
    try:
        data = signing.loads(token, salt=SALT, max_age=settings.CHAT_INVITE_MAX_AGE)
    except signing.SignatureExpired:
        raise ValidationError(
            "This invite link has expired: ask the room's creator for a new one.", code="expired"
        ) from None
    except signing.BadSignature:
        raise ValidationError("This invite link is not valid.", code="invalid") from None
    room = Room.objects.filter(pk=data.get("room"), is_private=True, is_direct=False).first()
    key = data.get("key")
    if room is None or not room.invite_key or not isinstance(key, str) or not hmac.compare_digest(room.invite_key, key):
        raise ValidationError("This invite link was revoked: ask the room's creator for a new one.", code="revoked")
    return room


@transaction.atomic
def invite_accept(*, token, user):
    """Make `user` a member of the room an invite token admits to; return (room, created)."""
    room = invite_room(token)
    _, created = Membership.objects.get_or_create(room=room, user=user)
    if created:
        services.membership_announce(user, room)
    return room, created
