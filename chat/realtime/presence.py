"""Who is online in each room: connections counted per user, kept alive by heartbeats.

The shared store (CHAT_PRESENCE_BACKEND) holds one entry per user, room and
server process, with an expiry. Each process counts its own sockets
(ProcessPresence) and refreshes its entries every heartbeat, so a process that
died without closing its sockets drops out once its entries expire and a live
process sweeps the room.
"""
import asyncio
import functools
import logging
import os
import socket
import time
import uuid
import weakref
from collections import Counter
from functools import cache

from django.conf import settings
from django.utils.module_loading import import_string

from chat.domain import events
from chat.platform import metrics
from chat.platform.outages import Outage
from chat.platform.redisclients import RedisTarget, async_client
from chat.realtime.broadcast import room_send

logger = logging.getLogger(__name__)
redis_outage = Outage("Redis (presence)", logger, errors=metrics.REDIS_ERRORS["presence"])
# A Redis that does not answer must not hold a socket's connect or close for long.
REDIS_TIMEOUT_SECONDS = 5
# Heartbeats of hundreds of sockets overlap: past this many connections they
# wait for a free one (BlockingConnectionPool) instead of failing with "Too many connections".
REDIS_MAX_CONNECTIONS = 50
# A batch of presence news goes out at once when it names this many users, keeping its frame small.
PRESENCE_BATCH_USERS = 100


def _unless_redis_fails(default):
    """Return `default` (and log) instead of raising when Redis is unreachable: presence is advisory."""

    def decorate(method):
        @functools.wraps(method)
        async def tolerant(*args, **kwargs):
            import redis.exceptions

            try:
                result = await method(*args, **kwargs)
            except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError, OSError) as error:
                redis_outage.failed(error)
                return default
            redis_outage.worked()
            return result

        return tolerant

    return decorate


class BasePresence:
    """The presence store interface; each method is atomic for one room."""

    def __init__(self, ttl):
        self.ttl = ttl

    async def connect(self, room_id, username, conn):
        """Add or refresh a live connection; return True when the user was not online before."""
        raise NotImplementedError("subclasses of BasePresence must provide a connect() method")

    async def disconnect(self, room_id, username, conn):
        """Remove a connection; return True when it was the user's last one."""
        raise NotImplementedError("subclasses of BasePresence must provide a disconnect() method")

    async def sweep(self, room_id):
        """Drop expired connections; return the users who have none left."""
        raise NotImplementedError("subclasses of BasePresence must provide a sweep() method")

    async def online(self, room_id):
        """Return the sorted usernames online in a room."""
        raise NotImplementedError("subclasses of BasePresence must provide an online() method")

    async def online_counts(self, room_ids):
        """Return {room_id: number of users online} for the given rooms."""
        raise NotImplementedError("subclasses of BasePresence must provide an online_counts() method")

    async def online_among(self, room_id, usernames):
        """Return the set of `usernames` online in a room, or None when the store does not answer."""
        raise NotImplementedError("subclasses of BasePresence must provide an online_among() method")


class MemoryPresence(BasePresence):
    """Presence for a single process (the in-memory channel layer)."""

    def __init__(self, ttl):
        super().__init__(ttl)
        self.rooms = {}  # room_id -> {username: {conn: expires_at}}

    def _prune(self, users, username, now):
        """Drop a user's expired connections; return True when some remain."""
        conns = {conn: expires for conn, expires in users.get(username, {}).items() if expires > now}
        if conns:
            users[username] = conns
        else:
            users.pop(username, None)
        return bool(conns)

    async def connect(self, room_id, username, conn):
        now = time.monotonic()
        users = self.rooms.setdefault(room_id, {})
        was_online = self._prune(users, username, now)
        users.setdefault(username, {})[conn] = now + self.ttl
        return not was_online

    async def disconnect(self, room_id, username, conn):
        users = self.rooms.get(room_id, {})
        users.get(username, {}).pop(conn, None)
        return not self._prune(users, username, time.monotonic())

    async def sweep(self, room_id):
        now, users = time.monotonic(), self.rooms.get(room_id, {})
        return sorted(username for username in list(users) if not self._prune(users, username, now))

    async def online(self, room_id):
        now = time.monotonic()
        users = self.rooms.get(room_id, {})
        return sorted(username for username, conns in users.items() if max(conns.values()) > now)

    async def online_counts(self, room_ids):
        return {room_id: len(await self.online(room_id)) for room_id in room_ids}

    async def online_among(self, room_id, usernames):
        now, users = time.monotonic(), self.rooms.get(room_id, {})
        return {name for name in usernames if max(users.get(name, {}).values(), default=now) > now}


# KEYS[1]: the room's users (score: latest expiry); KEYS[2]: the user's connections
# (score: expiry). Times come from the Redis server, the one clock all processes share.
_NOW = "local t = redis.call('TIME') local now = tonumber(t[1]) + tonumber(t[2]) / 1e6 "
_CONNECT = _NOW + """
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now)
local was_online = redis.call('ZCARD', KEYS[2]) > 0
local expires = now + tonumber(ARGV[2])
redis.call('ZADD', KEYS[2], expires, ARGV[3])
redis.call('ZADD', KEYS[1], 'GT', expires, ARGV[1])
redis.call('EXPIRE', KEYS[2], math.ceil(tonumber(ARGV[2]) * 2))
redis.call('EXPIRE', KEYS[1], math.ceil(tonumber(ARGV[2]) * 2))
if was_online then return 0 end
return 1
"""
_DISCONNECT = _NOW + """
redis.call('ZREM', KEYS[2], ARGV[3])
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now)
if redis.call('ZCARD', KEYS[2]) > 0 then return 0 end
redis.call('DEL', KEYS[2])
redis.call('ZREM', KEYS[1], ARGV[1])
return 1
"""
# KEYS[1]: the room's users; ARGV[1]: the prefix of per-user keys.
_SWEEP = _NOW + """
local gone = {}
for _, user in ipairs(redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now)) do
  local key = ARGV[1] .. user
  redis.call('ZREMRANGEBYSCORE', key, '-inf', now)
  local latest = redis.call('ZRANGE', key, -1, -1, 'WITHSCORES')
  if latest[2] then
    redis.call('ZADD', KEYS[1], latest[2], user)
  else
    redis.call('ZREM', KEYS[1], user)
    table.insert(gone, user)
  end
end
return gone
"""
# KEYS: rooms' users. In one round trip with the clock it reads, not two.
_ONLINE = _NOW + "return redis.call('ZRANGEBYSCORE', KEYS[1], '(' .. now, '+inf')"
# ARGV: usernames; returns those whose latest entry has not expired.
_ONLINE_AMONG = _NOW + """
local online = {}
for i, score in ipairs(redis.call('ZMSCORE', KEYS[1], unpack(ARGV))) do
  if score and tonumber(score) > now then table.insert(online, ARGV[i]) end
end
return online
"""
_ONLINE_COUNTS = _NOW + """
local counts = {}
for i, key in ipairs(KEYS) do counts[i] = redis.call('ZCOUNT', key, '(' .. now, '+inf') end
return counts
"""


class RedisPresence(BasePresence):
    """Presence shared by every server process through Redis."""

    def __init__(self, ttl, target=None, prefix="chat:presence"):
        super().__init__(ttl)
        self.target = target or RedisTarget.from_settings()
        self.prefix = prefix
        # redis.asyncio clients belong to the event loop that made them.
        self._clients = weakref.WeakKeyDictionary()

    def _scripts(self):
        """Return the presence scripts of the running event loop, each on that loop's client."""
        loop = asyncio.get_running_loop()
        if loop not in self._clients:
            client = async_client(
                self.target, decode_responses=True, max_connections=REDIS_MAX_CONNECTIONS,
                timeout=REDIS_TIMEOUT_SECONDS, socket_timeout=REDIS_TIMEOUT_SECONDS,
                socket_connect_timeout=REDIS_TIMEOUT_SECONDS,
            )
            # Each script holds its client.
            self._clients[loop] = {
                name: client.register_script(script) for name, script in (
                    ("connect", _CONNECT), ("disconnect", _DISCONNECT), ("sweep", _SWEEP),
                    ("online", _ONLINE), ("online_counts", _ONLINE_COUNTS), ("online_among", _ONLINE_AMONG),
                )
            }
        return self._clients[loop]

    def _keys(self, room_id, username=None):
        room_key = f"{self.prefix}:{room_id}"
        return [room_key, f"{room_key}:u:{username}"] if username is not None else [room_key]

    @_unless_redis_fails(False)
    async def connect(self, room_id, username, conn):
        connect = self._scripts()["connect"]
        return bool(await connect(keys=self._keys(room_id, username), args=[username, self.ttl, conn]))

    @_unless_redis_fails(False)
    async def disconnect(self, room_id, username, conn):
        disconnect = self._scripts()["disconnect"]
        return bool(await disconnect(keys=self._keys(room_id, username), args=[username, self.ttl, conn]))

    @_unless_redis_fails([])
    async def sweep(self, room_id):
        return sorted(await self._scripts()["sweep"](keys=self._keys(room_id), args=[f"{self.prefix}:{room_id}:u:"]))

    @_unless_redis_fails([])
    async def online(self, room_id):
        return sorted(await self._scripts()["online"](keys=self._keys(room_id)))

    @_unless_redis_fails({})
    async def online_counts(self, room_ids):
        room_ids = list(room_ids)
        if not room_ids:
            return {}
        counts = await self._scripts()["online_counts"](keys=[self._keys(room_id)[0] for room_id in room_ids])
        return dict(zip(room_ids, counts))

    @_unless_redis_fails(None)
    async def online_among(self, room_id, usernames):
        return set(await self._scripts()["online_among"](keys=self._keys(room_id), args=list(usernames)))


@cache
def _presence(backend, ttl, redis_target):
    return import_string(backend)(ttl=ttl)


def get_presence():
    """Return the presence store the settings choose."""
    return _presence(settings.CHAT_PRESENCE_BACKEND, settings.CHAT_PRESENCE_TTL, RedisTarget.from_settings())


class ProcessPresence:
    """This process's sockets, counted per room and user, kept in the shared store as one entry each.

    Only a user's first socket in a room (here) touches the store on the way in,
    and their last on the way out; one heartbeat task refreshes every entry of
    the process and sweeps its rooms, instead of a task per socket. The room
    hears of users who came or went in batches (announce()).
    """

    def __init__(self, store):
        self.store = store
        # Tells this process's entries from other processes' in the shared store.
        self.conn = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self.rooms = {}  # room_id -> Counter of usernames
        self.sockets = Counter()  # username -> sockets in any room
        self.heartbeat = None
        self.news = {}  # room_id -> usernames whose presence changed, not announced yet
        self.announcing = set()  # the tasks that announce them (held: the loop keeps weak references)

    def socket_count(self, username):
        """Return how many sockets a user has open on this process."""
        return self.sockets[username]

    def socket_opened(self, username):
        """Count a user's new socket, whatever rooms it shows."""
        self.sockets[username] += 1

    def socket_closed(self, username):
        """Uncount a user's closed socket."""
        self.sockets[username] -= 1
        if self.sockets[username] <= 0:
            del self.sockets[username]

    async def add(self, room_id, username):
        """Count a socket's view of a room; return True when the user just came online in the room."""
        users = self.rooms.setdefault(room_id, Counter())
        users[username] += 1
        if self.heartbeat is None:
            self.heartbeat = asyncio.create_task(self._beat())
        return users[username] == 1 and await self.store.connect(room_id, username, self.conn)

    async def remove(self, room_id, username):
        """Uncount a socket's view of a room; return True when it was the user's last one in the room, anywhere."""
        users = self.rooms.get(room_id, Counter())
        users[username] -= 1
        if users[username] > 0:
            return False
        users.pop(username, None)
        if not users:
            self.rooms.pop(room_id, None)
        return await self.store.disconnect(room_id, username, self.conn)

    def announce(self, room_id, username):
        """Tell the room, within CHAT_PRESENCE_BATCH_SECONDS and in one event with others, that a user came or went."""
        users = self.news.setdefault(room_id, set())
        users.add(username)
        if len(users) >= PRESENCE_BATCH_USERS:
            del self.news[room_id]
            self._start(self._announce(room_id, users))
        elif len(users) == 1:
            self._start(self._announce_later(room_id, users))

    def _start(self, coroutine):
        task = asyncio.create_task(coroutine)
        self.announcing.add(task)
        task.add_done_callback(self.announcing.discard)

    async def _announce_later(self, room_id, users):
        await asyncio.sleep(settings.CHAT_PRESENCE_BATCH_SECONDS)
        if self.news.get(room_id) is users:  # else it went out when it filled up
            del self.news[room_id]
            await self._announce(room_id, users)

    async def _announce(self, room_id, users):
        # Each user's state as it is now, not as the batch heard it: a user with a socket here is online; of
        # the others the store knows (a reload may close the socket here and open one on another process,
        # whose batch goes out first).
        here = self.rooms.get(room_id, {})
        online = {username for username in users if here.get(username)}
        if online != users:
            elsewhere = await self.store.online_among(room_id, users - online)
            if elsewhere is None:
                return  # the store does not answer; views read presence again when their sockets reconnect
            online |= elsewhere
        await room_send(room_id, events.PRESENCE, {"online": sorted(online), "offline": sorted(users - online)})

    async def _beat(self):
        while True:
            await asyncio.sleep(settings.CHAT_PRESENCE_HEARTBEAT)
            for room_id, users in list(self.rooms.items()):
                try:
                    await self._beat_room(room_id, list(users))
                except Exception:
                    # A failed beat is retried on the next one; entries outlive several beats.
                    logger.exception("presence heartbeat failed in room %s", room_id)

    async def _beat_room(self, room_id, usernames):
        for username in usernames:
            # An entry that expired meanwhile (a long stall) comes back as a new presence.
            if await self.store.connect(room_id, username, self.conn):
                self.announce(room_id, username)
        for username in await self.store.sweep(room_id):
            self.announce(room_id, username)


_process_presences = weakref.WeakKeyDictionary()


def get_process_presence():
    """Return the running event loop's (this server process's) presence, on the store the settings choose."""
    loop = asyncio.get_running_loop()
    current = _process_presences.get(loop)
    if current is None or current.store is not get_presence():
        current = _process_presences[loop] = ProcessPresence(get_presence())
    return current
