"""Abuse limits: fixed-window counters kept in Django's cache.

With REDIS_URL set the cache is Redis, so a limit counts a user's events on
every socket and every server process; otherwise it counts within one process.
Windows are aligned to the clock, so a client can reach twice a limit across
a window boundary, never more.
"""
import time
from dataclasses import dataclass

from django.conf import settings
from django.core.cache import cache


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

    def _key(self, key, now):
        return f"chat:limit:{self.name}:{key}:{int(now // self.seconds)}"

    def retry_after(self, now=None):
        """Return the seconds until the current window ends."""
        now = time.time() if now is None else now
        return round(self.seconds - now % self.seconds, 3)

    def hit(self, key):
        """Count one event for `key`; return the count in the current window."""
        cache_key = self._key(key, time.time())
        cache.add(cache_key, 0, timeout=int(self.seconds) + 1)
        try:
            return cache.incr(cache_key)
        except ValueError:
            # The window's key expired between add and incr.
            cache.set(cache_key, 1, timeout=int(self.seconds) + 1)
            return 1

    def peek(self, key):
        """Return the count for `key` in the current window without counting."""
        return cache.get(self._key(key, time.time()), 0)

    def check(self, key, detail):
        """Count one event and raise LimitExceeded when it is over the limit."""
        count = self.hit(key)
        if count > self.count:
            raise LimitExceeded(detail, self.retry_after(), count)
        return count

    def check_peek(self, key, detail):
        """Raise LimitExceeded when `key` is already at the limit, without counting."""
        count = self.peek(key)
        if count >= self.count:
            raise LimitExceeded(detail, self.retry_after(), count)
