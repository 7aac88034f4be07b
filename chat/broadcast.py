"""Who receives what: channel-layer group names and sends after commit."""
from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.db import transaction

ROOM_FRAME = "room.frame"


def room_group(room_id):
    """Return the channel-layer group of every socket in a room."""
    return f"chat.room.{room_id}"


def room_send_on_commit(room_id, text, *, seq=None):
    """Send an encoded frame to every socket in a room once the transaction commits."""
    event = {"type": ROOM_FRAME, "text": text, "seq": seq}
    transaction.on_commit(lambda: async_to_sync(get_channel_layer().group_send)(room_group(room_id), event))
