"""Abuse limits: fixed-window counters, in Redis when REDIS_URL is set.

In Redis a limit counts a user's events on every socket and every server
process; otherwise it counts within one process. A window opens with a key's
first event and lasts the limit's length, so a client can reach twice a limit
across the end of one window and the start of the next, never more.
"""
import logging
import math
import threading
import time
from dataclasses import dataclass
from functools import cache

from django.conf import settings

from chat.platform import metrics
from chat.platform.outages import Outage
from chat.platform.redisclients import RedisTarget, sync_client

logger = logging.getLogger(__name__)
redis_outage = Outage("Redis (limits)", logger, errors=metrics.REDIS_ERRORS["limits"])
# A Redis that does not answer must not hold a message (or a login) for long.
REDIS_TIMEOUT_SECONDS = 2
PREFIX = "chat:limit"

# One round trip: count the event, open the window with the first, and say when it ends.
_HIT = """
local count = redis.call('INCR', KEYS[1])
if count == 1 then redis.call('PEXPIRE', KEYS[1], ARGV[1]) end
return {count, redis.call('PTTL', KEYS[1])}
"""


class RedisCounter:
    """Windows shared by every server process: one Redis key per window, expiring with it."""

    def __init__(self, target):
        self.client = sync_client(
            target, socket_timeout=REDIS_TIMEOUT_SECONDS, socket_connect_timeout=REDIS_TIMEOUT_SECONDS
        )
        self.script = self.client.register_script(_HIT)

    def hit(self, key, seconds):
        """Count one event; return (the count in the window, seconds until it ends)."""
        count, ttl_ms = self.script(keys=[key], args=[math.ceil(seconds * 1000)])
        return count, max(ttl_ms, 0) / 1000

    def peek(self, key):
        """Return (the count in the window, seconds until it ends) without counting."""
        pipe = self.client.pipeline(transaction=False)
        count, ttl_ms = pipe.get(key).pttl(key).execute()
        return int(count or 0), max(ttl_ms, 0) / 1000

    def clear(self):
        """Forget every window (tests)."""
        for key in self.client.scan_iter(f"{PREFIX}:*"):
            self.client.delete(key)


class MemoryCounter:
    """Windows of this process alone, for a single server without Redis."""

    # Past this many keys, a hit first forgets the windows that ended.
    PRUNE_AT = 10_000

    def __init__(self):
        self.windows = {}  # key -> [count, when the window ends (monotonic)]
        self.lock = threading.Lock()
        self.prune_at = self.PRUNE_AT

    def hit(self, key, seconds):
        """Count one event; return (the count in the window, seconds until it ends)."""
        now = time.monotonic()
        with self.lock:
            if len(self.windows) > self.prune_at:
                self.windows = {k: w for k, w in self.windows.items() if w[1] > now}
                # Many live windows must not make every hit walk them all again.
                self.prune_at = max(self.PRUNE_AT, 2 * len(self.windows))
            window = self.windows.get(key)
            if window is None or window[1] <= now:
                window = self.windows[key] = [0, now + seconds]
            window[0] += 1
            return window[0], window[1] - now

    def peek(self, key):
        """Return (the count in the window, seconds until it ends) without counting."""
        now = time.monotonic()
        window = self.windows.get(key)
        if window is None or window[1] <= now:
            return 0, 0.0
        return window[0], window[1] - now

    def clear(self):
        """Forget every window (tests)."""
        self.windows = {}


@cache
def _counter(target):
    return RedisCounter(target) if target.url else MemoryCounter()


def get_counter():
    """Return the window counter the settings choose."""
    return _counter(RedisTarget.from_settings())


def _unless_redis_fails(count):
    """Call `count`; when Redis is unreachable, log and let the event through (limits are a guard, not a gate)."""
    import redis.exceptions

    try:
        result = count()
    except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError, OSError) as error:
        redis_outage.failed(error)
        return 0, 0.0
    redis_outage.worked()
    return result


class LimitExceeded(Exception):
    """An event over its limit; nothing was done for it."""

    def __init__(self, detail, retry_after, count):
        super().__init__(detail)
        self.detail = detail
        self.retry_after = retry_after
        self.count = count


@dataclass(frozen=True)
class Limit:
    name: str
    count: int
    seconds: float

    @classmethod
    def from_setting(cls, name):
        """Return the limit the setting CHAT_<NAME>_RATE gives as (count, seconds)."""
        count, seconds = getattr(settings, f"CHAT_{name.upper()}_RATE")
        return cls(name, count, seconds)

    def _key(self, key):
        return f"{PREFIX}:{self.name}:{key}"

    def hit(self, key):
        """Count one event for `key`; return (the count in the current window, seconds until it ends)."""
        return _unless_redis_fails(lambda: get_counter().hit(self._key(key), self.seconds))

    def peek(self, key):
        """Return (the count for `key` in the current window, seconds until it ends) without counting."""
        return _unless_redis_fails(lambda: get_counter().peek(self._key(key)))

    def check(self, key, detail):
        """Count one event and raise LimitExceeded when it is over the limit."""
        count, retry_after = self.hit(key)
        if count > self.count:
            metrics.LIMIT_REFUSALS[self.name].inc()
            raise LimitExceeded(detail, round(retry_after, 3), count)
        return count

    def check_peek(self, key, detail):
        """Raise LimitExceeded when `key` is already at the limit, without counting."""
        count, retry_after = self.peek(key)
        if count >= self.count:
            metrics.LIMIT_REFUSALS[self.name].inc()
            raise LimitExceeded(detail, round(retry_after, 3), count)
