"""Who is online in each room: connections counted per user, kept alive by heartbeats.

A connection is an entry with an expiry that its socket refreshes every
heartbeat, so users of a process that died without disconnecting drop out by
themselves once their entries expire and any live socket sweeps the room.
The backend is chosen by the CHAT_PRESENCE_BACKEND setting.
"""
import asyncio
import functools
import logging
import time
import weakref
from functools import cache

from django.conf import settings
from django.utils.module_loading import import_string


logger = logging.getLogger(__name__)
# A Redis that does not answer must not hold a socket's connect or close for long.
REDIS_TIMEOUT_SECONDS = 5
# Heartbeats of hundreds of sockets overlap: past this many connections they
# wait for a free one (BlockingConnectionPool) instead of failing with "Too many connections".
REDIS_MAX_CONNECTIONS = 50


def _unless_redis_fails(default):
    """Return `default` (and log) instead of raising when Redis is unreachable: presence is advisory."""

    def decorate(method):
        @functools.wraps(method)
        async def tolerant(*args, **kwargs):
            import redis.exceptions

            try:
                return await method(*args, **kwargs)
            except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError, OSError):
                logger.warning("presence: Redis unreachable in %s", method.__name__, exc_info=True)
                return default

        return tolerant

    return decorate


# The pseudo-room in which every socket of a user is counted, whatever its room.
ANYWHERE = "anywhere"


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

    async def connection_count(self, room_id, username):
        """Return how many live connections a user has in a room."""
        raise NotImplementedError("subclasses of BasePresence must provide a connection_count() method")


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

    async def connection_count(self, room_id, username):
        now = time.monotonic()
        return sum(expires > now for expires in self.rooms.get(room_id, {}).get(username, {}).values())


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


class RedisPresence(BasePresence):
    """Presence shared by every server process through Redis."""

    def __init__(self, ttl, url=None, prefix="chat:presence"):
        super().__init__(ttl)
        self.url = url or settings.REDIS_URL
        self.prefix = prefix
        # redis.asyncio clients belong to the event loop that made them.
        self._clients = weakref.WeakKeyDictionary()

    def _client(self):
        import redis.asyncio

        loop = asyncio.get_running_loop()
        if loop not in self._clients:
            pool = redis.asyncio.BlockingConnectionPool.from_url(
                self.url, decode_responses=True, max_connections=REDIS_MAX_CONNECTIONS,
                timeout=REDIS_TIMEOUT_SECONDS, socket_timeout=REDIS_TIMEOUT_SECONDS,
                socket_connect_timeout=REDIS_TIMEOUT_SECONDS,
            )
            client = redis.asyncio.Redis(connection_pool=pool)
            self._clients[loop] = (
                client,
                client.register_script(_CONNECT),
                client.register_script(_DISCONNECT),
                client.register_script(_SWEEP),
            )
        return self._clients[loop]

    def _keys(self, room_id, username=None):
        room_key = f"{self.prefix}:{room_id}"
        return [room_key, f"{room_key}:u:{username}"] if username is not None else [room_key]

    @_unless_redis_fails(False)
    async def connect(self, room_id, username, conn):
        _, connect, _, _ = self._client()
        return bool(await connect(keys=self._keys(room_id, username), args=[username, self.ttl, conn]))

    @_unless_redis_fails(False)
    async def disconnect(self, room_id, username, conn):
        _, _, disconnect, _ = self._client()
        return bool(await disconnect(keys=self._keys(room_id, username), args=[username, self.ttl, conn]))

    @_unless_redis_fails([])
    async def sweep(self, room_id):
        *_, sweep = self._client()
        return sorted(await sweep(keys=self._keys(room_id), args=[f"{self.prefix}:{room_id}:u:"]))

    @_unless_redis_fails([])
    async def online(self, room_id):
        client, *_ = self._client()
        now = await self._now(client)
        return sorted(await client.zrangebyscore(self._keys(room_id)[0], f"({now}", "+inf"))

    async def online_counts(self, room_ids):
        client, *_ = self._client()
        now = await self._now(client)
        async with client.pipeline(transaction=False) as pipe:
            for room_id in room_ids:
                pipe.zcount(self._keys(room_id)[0], f"({now}", "+inf")
            counts = await pipe.execute()
        return dict(zip(room_ids, counts))

    async def connection_count(self, room_id, username):
        client, *_ = self._client()
        now = await self._now(client)
        return await client.zcount(self._keys(room_id, username)[1], f"({now}", "+inf")

    @staticmethod
    async def _now(client):
        seconds, micros = await client.time()
        return seconds + micros / 1e6


@cache
def _presence(backend, ttl, redis_url):
    return import_string(backend)(ttl=ttl)


def get_presence():
    """Return the presence store the settings choose."""
    return _presence(settings.CHAT_PRESENCE_BACKEND, settings.CHAT_PRESENCE_TTL, settings.REDIS_URL)
