"""Who receives what: channel-layer group names, and sends after commit.

Room groups carry encoded frames to each process's hub (chat.hub), which
hands them to its sockets; the users group carries events for every socket of
one user, whatever room it is in, to every hub.
"""
import asyncio
import contextvars
import functools
import logging

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.db import transaction

from chat.outages import Outage

ROOM_FRAME = "room.frame"
USERS_GROUP = "chat.users"

logger = logging.getLogger(__name__)
layer_outage = Outage("the channel layer (broadcasts)", logger)


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
    transaction.on_commit(lambda: _send(group, event), robust=True)


def _send(group, event):
    outbox = _outbox.get()
    if outbox is None:
        async_to_sync(get_channel_layer().group_send)(group, event)
    else:
        loop, sends = outbox
        loop.call_soon_threadsafe(_start_send, group, event, sends)


# The event loop of a call made through sending_on_loop(), and the sends it
# started. A database thread hands its after-commit sends to the loop rather
# than waiting for the loop to make them (a thread hop and a blocked thread for
# every message); the loop makes them even when the caller was cancelled
# meanwhile, as the write stands.
_outbox = contextvars.ContextVar("chat_outbox", default=None)
_sending = set()  # sends in flight, kept from the garbage collector


def _start_send(group, event, sends):
    task = asyncio.create_task(_send_logged(group, event))
    _sending.add(task)
    task.add_done_callback(_sending.discard)
    sends.append(task)


async def _send_logged(group, event):
    try:
        await get_channel_layer().group_send(group, event)
    except Exception as error:  # noqa: BLE001 - as robust on_commit does: logged, the write stands
        # Members heal the gap from history; one line per outage, not per message.
        layer_outage.failed(error)
    else:
        layer_outage.worked()


def sending_on_loop(func):
    """Wrap an async call to a sync ORM function so that the event loop makes its after-commit sends."""
    @functools.wraps(func)
    async def call(*args, **kwargs):
        sends = []
        token = _outbox.set((asyncio.get_running_loop(), sends))
        try:
            result = await func(*args, **kwargs)
        finally:
            _outbox.reset(token)
        # The thread's hand-over runs on the loop before its result does, so
        # `sends` is complete here. Waiting for them keeps each socket from
        # storing faster than the layer takes its broadcasts (unbounded sends
        # would queue the hub's probe behind them, past its timeout).
        if sends:
            await asyncio.wait(sends)
        return result
    return call


async def room_send(room_id, text, *, skip_user=None):
    """Send an ephemeral encoded frame (typing, presence) to a room's sockets now, if the layer takes it."""
    try:
        await get_channel_layer().group_send(room_group(room_id), room_event(room_id, text, skip_user=skip_user))
    except Exception as error:  # noqa: BLE001 - ephemeral: a lost typing or presence frame is only late news
        layer_outage.failed(error)
    else:
        layer_outage.worked()
