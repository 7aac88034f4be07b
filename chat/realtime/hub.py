"""Deliver each room's frames, and each user's events, to the sockets this process holds, from one place.

The Channels tutorial gives every socket its own group membership, so a room
of N members costs N layer deliveries, N consumer wake-ups and N handler calls
per message. Here each process subscribes once per room (one hub channel in
the room's group), and the hub hands each frame, already encoded, straight to
its local sockets: the cost per member is one socket write.

Sockets have no layer channel of their own: a Redis SUBSCRIBE and UNSUBSCRIBE
per socket queue behind each other on the layer's connection, and 500 clients
reconnecting at once then time out their handshakes and retry for minutes.
User events (rare: mentions, removals, logouts) go to one group that every
hub subscribes to, and each hub picks out its own users' sockets.
"""
import asyncio
import collections
import contextlib
import logging
import time
import weakref

from channels.layers import get_channel_layer

from chat.platform import metrics
from chat.platform.outages import Outage
from chat.realtime import protocol
from chat.realtime.broadcast import ROOM_ACTIVITY, ROOM_EVENT, SESSION_REVOKED, USER_EVENT, USERS_GROUP, room_group

logger = logging.getLogger(__name__)
# One WARNING when the layer goes, one INFO when it is back, for every hub of the process.
layer_outage = Outage("the channel layer", logger, errors=metrics.REDIS_ERRORS["channel_layer"])

# Layers expire group memberships (channels' default group_expiry is a day);
# renewing well inside that keeps a long-lived room subscribed.
RENEW_SECONDS = 3600
# The hub sends itself a probe through the layer this often; one that does not
# come back in time means the subscription is lost (Redis gone or restarted).
# Detection within PROBE_SECONDS + PROBE_TIMEOUT keeps a restart under 10 s.
PROBE_SECONDS = 2.0
PROBE_TIMEOUT = 6.0
PROBE = "hub.probe"
# The user events, and the socket method that takes each.
USER_HANDLERS = {USER_EVENT: "user_event", SESSION_REVOKED: "session_revoked"}
# Ended sessions the hub remembers: far longer than a handshake lasts between its session lookup and attach().
REVOKED_SECONDS = 60.0
# What a socket's handler returns: the path its frame took, or None when it sent none (the hub counts them).
DIRECT, ASGI = "direct", "asgi"


class LinkLost(Exception):
    """The channel layer could not subscribe a socket: the client should reconnect later (4012)."""


class RoomHub:
    """One process's subscriptions to room groups and the users group, and the local sockets of each.

    Sockets must have a user_id and offer room_event(event), room_activity(event),
    close(code=...), drop_if_peer_closed() and a method for each of USER_HANDLERS;
    each handler returns DIRECT or ASGI when it sent a frame, else None.
    A socket is attached once (its user's events) and joins any number of rooms
    (their events), and may watch rooms for their activity. When the layer
    stops delivering, every local socket is closed (4012, or 4011 when the hub
    itself failed) so that clients reconnect and resume with ?after=; none is
    left open but deaf.
    """

    def __init__(self):
        self.layer = get_channel_layer()
        self.rooms = {}  # room_id -> set of sockets
        self.users = {}  # user_id -> set of sockets
        self.watchers = {}  # room_id -> sockets shown the room's activity
        self.watched = {}  # socket -> the room ids it watches
        self.channel = None
        # When the hub began to hear user events (monotonic), and the ended sessions it heard since.
        self.listening_since = None
        self.revoked = collections.deque()  # (monotonic time, user id, session key or None for all)
        self.lock = asyncio.Lock()
        self.tasks = []
        self.probe = None

    async def attach(self, socket):
        """Give a socket its user's events; raise LinkLost when the layer cannot subscribe (it is down)."""
        async with self._subscribing():
            self.users.setdefault(socket.user_id, set()).add(socket)

    async def join(self, room_id, socket):
        """Add an attached socket to a room; once this returns, every event sent to the room reaches it.

        Raise LinkLost when the layer cannot subscribe (it is down).
        """
        async with self._subscribing():
            if room_id not in self.rooms:
                await self.layer.group_add(room_group(room_id), self.channel)
                self.rooms[room_id] = set()
            self.rooms[room_id].add(socket)

    @contextlib.asynccontextmanager
    async def _subscribing(self):
        try:
            async with self.lock:
                if self.channel is None:
                    channel = await self.layer.new_channel("chat.hub.")
                    await self.layer.group_add(USERS_GROUP, channel)
                    self.channel = channel
                    self.listening_since = time.monotonic()
                    self.tasks = [
                        asyncio.create_task(self._read()), asyncio.create_task(self._renew()),
                        asyncio.create_task(self._watch()),
                    ]
                yield
        except Exception as error:
            layer_outage.failed(error)
            raise LinkLost(str(error)) from error

    async def leave(self, room_id, socket):
        """Remove a socket from a room, unsubscribing when it was the room's last here."""
        async with self.lock:
            sockets = self.rooms.get(room_id)
            if sockets is None or socket not in sockets:
                return
            sockets.discard(socket)
            if not sockets:
                del self.rooms[room_id]
                await self.layer.group_discard(room_group(room_id), self.channel)

    async def detach(self, socket, room_ids=()):
        """Take a socket out of its rooms `room_ids`, its watched rooms and its user's events."""
        self.unwatch(socket, tuple(self.watched.get(socket, ())))
        for room_id in room_ids:
            await self.leave(room_id, socket)
        mine = self.users.get(socket.user_id, set())
        mine.discard(socket)
        if not mine:
            self.users.pop(socket.user_id, None)

    def watch(self, socket, room_ids):
        """Show a socket the activity of rooms (new messages, for a sidebar) without their events."""
        for room_id in room_ids:
            self.watchers.setdefault(room_id, set()).add(socket)
        self.watched.setdefault(socket, set()).update(room_ids)

    def unwatch(self, socket, room_ids):
        """Stop showing a socket the activity of rooms."""
        mine = self.watched.get(socket, set())
        mine.difference_update(room_ids)
        if not mine:
            self.watched.pop(socket, None)
        for room_id in room_ids:
            sockets = self.watchers.get(room_id)
            if sockets is not None:
                sockets.discard(socket)
                if not sockets:
                    del self.watchers[room_id]

    def local_count(self, room_id):
        """Return how many of a room's sockets this process holds."""
        return len(self.rooms.get(room_id, ()))

    async def _read(self):
        try:
            await self._deliver(self.channel)
        except (OSError, ConnectionError, *redis_errors()) as error:
            layer_outage.failed(error)
            await self.reset(protocol.CLOSE_LINK_LOST)
        except Exception:
            logger.exception("the room hub's reader failed; closing its sockets")
            await self.reset(protocol.CLOSE_SERVER_FAILED)

    async def _deliver(self, channel):
        while True:
            event = await self.layer.receive(channel)
            # Any event proves the subscription works: under load the probe may
            # wait behind many room frames, and that must not count as a loss.
            if self.probe is not None and not self.probe.done():
                self.probe.set_result(None)
            kind = event.get("type")
            if kind == ROOM_EVENT:
                sockets, handler = self.rooms.get(event.get("room"), ()), "room_event"
            elif kind == ROOM_ACTIVITY:
                # Sockets that show the room have its message event: skipping them here, in one set
                # difference, saves a call per member and message in a busy room.
                room_id = event.get("room")
                sockets, handler = self.watchers.get(room_id, set()) - self.rooms.get(room_id, set()), "room_activity"
            elif kind in USER_HANDLERS:
                if kind == SESSION_REVOKED:
                    self._remember_revoked(event)
                sockets, handler = self.users.get(event.get("user"), ()), USER_HANDLERS[kind]
            else:
                continue
            # Counted once per event: a counter call per socket adds about 0.5 µs to the 0.75 µs
            # a delivery costs the process besides its write (README, "Metrics").
            direct = asgi = 0
            for socket in tuple(sockets):
                try:
                    path = await getattr(socket, handler)(event)
                except Exception:
                    # One broken socket must not keep the event from the others.
                    # (Sockets drop frames quietly while they close: this is a real error.)
                    logger.exception("could not deliver a %s event", kind)
                    continue
                if path == DIRECT:
                    direct += 1
                elif path == ASGI:
                    asgi += 1
            metrics.delivered(kind, event.get("kind"), direct, asgi)

    def _remember_revoked(self, event):
        now = time.monotonic()
        self.revoked.append((now, event.get("user"), event.get("session_key")))
        while self.revoked and self.revoked[0][0] < now - REVOKED_SECONDS:
            self.revoked.popleft()

    def session_ended_since(self, user_id, session_key, since):
        """Return whether the hub heard a session end since `since` (monotonic); None if it was not listening all along.

        A socket attached after its session lookup at `since` would miss a
        logout in between; this answers for it without a database query.
        """
        if self.listening_since is None or self.listening_since > since or since < time.monotonic() - REVOKED_SECONDS:
            return None
        return any(
            at >= since and user == user_id and key in (None, session_key) for at, user, key in self.revoked
        )

    async def _renew(self):
        while True:
            await asyncio.sleep(RENEW_SECONDS)
            for group in [USERS_GROUP, *map(room_group, tuple(self.rooms))]:
                await self.layer.group_add(group, self.channel)

    async def _watch(self):
        while True:
            await asyncio.sleep(PROBE_SECONDS)
            self.drop_closed_peers()
            self.probe = asyncio.get_running_loop().create_future()
            try:
                async with asyncio.timeout(PROBE_TIMEOUT):
                    await self.layer.send(self.channel, {"type": PROBE})
                    await self.probe
            except Exception as error:
                layer_outage.failed(error if str(error) else TimeoutError("the hub's probe did not come back"))
                await self.reset(protocol.CLOSE_LINK_LOST)
                return
            layer_outage.worked()

    def drop_closed_peers(self):
        """Let go of sockets whose clients closed but that daphne holds until they read what is queued."""
        # A client that stopped reading and then closed is never told apart
        # by daphne: its disconnect waits for a write buffer that never drains.
        for sockets in tuple(self.users.values()):
            for socket in tuple(sockets):
                socket.drop_if_peer_closed()

    async def reset(self, code):
        """Close every local socket with `code` and drop the subscriptions; the next join starts afresh."""
        metrics.HUB_RESETS[str(code)].inc()
        async with self.lock:
            rooms, users, channel, tasks = self.rooms, self.users, self.channel, self.tasks
            self.rooms, self.users, self.channel, self.tasks = {}, {}, None, []
            self.listening_since = None
            self.watchers, self.watched = {}, {}
        for task in tasks:
            if task is not asyncio.current_task():
                task.cancel()
        for socket in {socket for sockets in (*rooms.values(), *users.values()) for socket in sockets}:
            try:
                # Sockets still in their handshake are accepted and closed
                # with the code too: a refused handshake would read as "not allowed".
                await socket.close(code=code)
            except Exception:
                logger.exception("could not close a socket of the room hub")
        if channel is None:
            return
        for group in [USERS_GROUP, *map(room_group, rooms)]:
            try:
                # Redis may still be down: bounded, and the subscription is dropped anyway.
                await asyncio.wait_for(self.layer.group_discard(group, channel), PROBE_TIMEOUT)
            except Exception:
                pass


def redis_errors():
    """Return the exceptions of a Redis that is unreachable (none without redis-py)."""
    try:
        import redis.exceptions
    except ImportError:
        return ()
    return (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError)


_hubs = weakref.WeakKeyDictionary()


def get_hub():
    """Return the hub of the running event loop (one per server process)."""
    loop = asyncio.get_running_loop()
    if loop not in _hubs:
        _hubs[loop] = RoomHub()
    return _hubs[loop]
