"""Who receives what: channel-layer group names, and sends after commit.

Room groups carry domain events (a kind and plain data, never encoded frames)
to each process's hub (chat.realtime.hub), which hands them to its sockets, each
encoded once per protocol version; the users group carries events for every
socket of one user, whatever room it is in, and rooms' activity, to every hub.
"""
import asyncio
import contextvars
import functools
import logging

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.db import transaction

from chat.platform import metrics
from chat.platform.outages import Outage

ROOM_EVENT = "room.event"
USER_EVENT = "user.event"
ROOM_ACTIVITY = "room.activity"
USERS_GROUP = "chat.users"
# Closes the sockets of a login session that ended, or of every session of a user (session_key None).
SESSION_REVOKED = "session.revoked"
# Seconds a write's caller waits at most for its after-commit sends to reach the layer.
SEND_WAIT_SECONDS = 0.5

logger = logging.getLogger(__name__)
layer_outage = Outage("the channel layer (broadcasts)", logger, errors=metrics.REDIS_ERRORS["channel_layer"])


def room_group(room_id):
    """Return the channel-layer group of every socket in a room."""
    return f"chat.room.{room_id}"


def room_event(room_id, kind, data, *, seq=None, cseq=None, skip_user=None):
    """Return the layer event that delivers a domain event (`kind`, plain `data`) to a room's sockets.

    Each hub encodes it once per protocol version. `seq` and `cseq` let a
    socket drop what its welcome already carried; `skip_user` keeps the event
    from the sockets of the user who caused it.
    """
    return {
        "type": ROOM_EVENT, "room": room_id, "kind": kind, "data": data,
        "seq": seq, "cseq": cseq, "skip_user": skip_user,
    }


def room_send_on_commit(room_id, kind, data, *, seq=None, cseq=None):
    """Send a domain event to every socket in a room once the transaction commits."""
    _send_on_commit(room_group(room_id), room_event(room_id, kind, data, seq=seq, cseq=cseq))


def user_event_on_commit(user_id, kind, data):
    """Send a domain event (`data` names its room by slug) to every socket of a user once the transaction commits."""
    user_control_on_commit(user_id, {"type": USER_EVENT, "kind": kind, "data": data})


def user_control_on_commit(user_id, event):
    """Send a layer event that acts on a user's sockets (a removal, a logout) once the transaction commits."""
    _send_on_commit(USERS_GROUP, {**event, "user": user_id})


def user_sessions_end_on_commit(user_id, session_key=None):
    """Close a user's sockets of one login session, or of all (None), with 4401 once the transaction commits."""
    user_control_on_commit(user_id, {"type": SESSION_REVOKED, "session_key": session_key})


def activity_on_commit(room_id, data, *, kind="room_activity"):
    """Tell every socket that lists the room in its sidebar about new activity, once the transaction commits.

    One event for all members, whatever their number: each hub hands it to the
    sockets of members it holds (chat.realtime.hub), and those that show the room get
    the room's own events anyway.
    """
    _send_on_commit(USERS_GROUP, {"type": ROOM_ACTIVITY, "room": room_id, "kind": kind, "data": data})


def previews_fetch_on_commit(message_id, body):
    """Start building a new or edited message's link previews on the event loop once the transaction commits."""
    transaction.on_commit(lambda: _start_previews(message_id, body), robust=True)


def _start_previews(message_id, body):
    outbox = _outbox.get()
    if outbox is None:
        return  # not a socket's call (a script, the shell): no event loop here to build them on
    from chat.realtime.previews import previews_start  # it imports this module
    # A context of its own: the database thread's would mark the task as inside that thread's call (asgiref).
    outbox[0].call_soon_threadsafe(previews_start, message_id, body, context=contextvars.Context())


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
        # would queue the hub's probe behind them, past its timeout); a layer
        # that stopped answering must not hold the caller, though (a handshake
        # that joins a room tells the user's other tabs): the hub notices the outage.
        if sends:
            await asyncio.wait(sends, timeout=SEND_WAIT_SECONDS)
        return result
    return call


async def room_send(room_id, kind, data, *, skip_user=None):
    """Send an ephemeral domain event (typing, presence) to a room's sockets now, if the layer takes it."""
    try:
        await get_channel_layer().group_send(room_group(room_id), room_event(room_id, kind, data, skip_user=skip_user))
    except Exception as error:  # noqa: BLE001 - ephemeral: a lost typing or presence frame is only late news
        layer_outage.failed(error)
    else:
        layer_outage.worked()
