"""Abuse limits: fixed-window counters kept in Django's cache.

With REDIS_URL set the cache is Redis, so a limit counts a user's events on
every socket and every server process; otherwise it counts within one process.
A window opens with a key's first event and lasts the limit's length, so a
client can reach twice a limit across the end of one window and the start of
the next, never more.
"""
import math
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

    def _base(self, key):
        return f"chat:limit:{self.name}:{key}"

    def _window(self, key, now):
        """Return (the cache key counting the current window of `key`, when that window opened)."""
        base = self._base(key)
        cache.add(f"{base}:start", now, timeout=math.ceil(self.seconds))
        start = cache.get(f"{base}:start", now)
        return f"{base}:{start}", start

    def retry_after(self, start, now=None):
        """Return the seconds until the window that opened at `start` ends."""
        now = time.time() if now is None else now
        return round(max(start + self.seconds - now, 0), 3)

    def hit(self, key):
        """Count one event for `key`; return (the count in the current window, when it opened)."""
        count_key, start = self._window(key, time.time())
        cache.add(count_key, 0, timeout=math.ceil(self.seconds) + 1)
        try:
            return cache.incr(count_key), start
        except ValueError:
            # The window's key expired between add and incr.
            cache.set(count_key, 1, timeout=math.ceil(self.seconds) + 1)
            return 1, start

    def peek(self, key):
        """Return (the count for `key` in the current window, when it opened) without counting."""
        now = time.time()
        start = cache.get(f"{self._base(key)}:start")
        if start is None:
            return 0, now
        return cache.get(f"{self._base(key)}:{start}", 0), start

    def check(self, key, detail):
        """Count one event and raise LimitExceeded when it is over the limit."""
        count, start = self.hit(key)
        if count > self.count:
            raise LimitExceeded(detail, self.retry_after(start), count)
        return count

    def check_peek(self, key, detail):
        """Raise LimitExceeded when `key` is already at the limit, without counting."""
        count, start = self.peek(key)
        if count >= self.count:
            raise LimitExceeded(detail, self.retry_after(start), count)
