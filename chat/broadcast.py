"""Who receives what: channel-layer group names, and sends after commit.

Room groups carry encoded frames to each process's hub (chat.hub), which
hands them to its sockets; the users group carries events for every socket of
one user, whatever room it is in, to every hub.
"""
from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.db import transaction

ROOM_FRAME = "room.frame"
USERS_GROUP = "chat.users"


def room_group(room_id):
    """Return the channel-layer group of every socket in a room."""
    return f"chat.room.{room_id}"


def room_event(room_id, text, *, seq=None, skip_user=None):
    """Return the layer event that delivers an encoded frame to a room's sockets.

    `seq` lets a socket drop a message its welcome already carried; `skip_user`
    keeps the frame from the sockets of the user who caused it.
    """
    return {"type": ROOM_FRAME, "room": room_id, "text": text, "seq": seq, "skip_user": skip_user}


def room_send_on_commit(room_id, text, *, seq=None):
    """Send an encoded frame to every socket in a room once the transaction commits."""
    _send_on_commit(room_group(room_id), room_event(room_id, text, seq=seq))


def user_event_on_commit(user_id, event):
    """Send a layer event to every socket of a user once the transaction commits."""
    _send_on_commit(USERS_GROUP, {**event, "user": user_id})


def _send_on_commit(group, event):
    # robust: a layer that is down must not fail the sender after the message is stored;
    # members miss the live frame and heal the gap from history (docs/reliability.md).
    transaction.on_commit(lambda: async_to_sync(get_channel_layer().group_send)(group, event), robust=True)


async def room_send(room_id, text, *, skip_user=None):
    """Send an ephemeral encoded frame (typing, presence) to a room's sockets now."""
    await get_channel_layer().group_send(room_group(room_id), room_event(room_id, text, skip_user=skip_user))
