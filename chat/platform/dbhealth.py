"""Know when the database is down: refuse its calls at once meanwhile, try it one call at a time, log once each way.

A database that stops answering (a partition drops its packets) holds every
call's thread and its sender until TCP gives up, and the calls behind them
queue. Here a call answers DatabaseUnavailable when the database gives no
answer within the call timeout; after a call fails to reach the database the
breaker opens, and calls fail at once for a short while; then one call at a
time goes through as a probe, and the first answer closes the breaker.
"""
import asyncio
import functools
import logging
import time

from channels.db import database_sync_to_async
from django.conf import settings
from django.db import DatabaseError, InterfaceError, OperationalError

from chat.platform.outages import Outage

logger = logging.getLogger(__name__)


class DatabaseUnavailable(DatabaseError):
    """Refuse a call while the database is known down, or give up on one it did not answer in time."""


def unreachable(error):
    """Return whether `error` says the database could not be reached, rather than that it refused a statement."""
    if isinstance(error, (DatabaseUnavailable, InterfaceError)):
        return True
    if not isinstance(error, OperationalError):
        return False
    # Serialization failures and deadlocks (SQLSTATE class 40) come from a database that answers.
    sqlstate = getattr(error.__cause__, "sqlstate", None) or ""
    return not sqlstate.startswith("40")


class Breaker:
    """The database's state as this process's calls last saw it: up, down, or down with one probe under way."""

    def __init__(self, *, retry_seconds, capacity, clock=time.monotonic):
        self.retry_seconds = retry_seconds
        # While the database is down, no probe starts once this many calls are unfinished:
        # each may hold a thread until TCP gives up, and no more work should queue behind them.
        self.capacity = capacity
        self.clock = clock
        self.outage = Outage("the database", logger)
        self.retry_at = 0.0
        self.probing = False
        self.unfinished = 0
        # When a call last got an answer: a slow call while others are answered is load, not an outage.
        self.answered_at = float("-inf")

    @property
    def down(self):
        return self.outage.down

    def available(self):
        """Return whether a call would be let through now."""
        if not self.down:
            return True
        return not self.probing and self.clock() >= self.retry_at and self.unfinished < self.capacity

    def admit(self):
        """Let a call through, returning whether it is the probe; raise DatabaseUnavailable while the database is down."""
        if not self.down:
            return False
        if not self.available():
            raise DatabaseUnavailable("the database is down; nothing was done")
        self.probing = True
        return True

    def succeeded(self, probe=False):
        """Note that a call got an answer from the database: the breaker closes."""
        if probe:
            self.probing = False
        self.answered_at = self.clock()
        self.outage.worked()

    def failed(self, error, probe=False):
        """Note that a call could not reach the database: calls fail at once for retry_seconds."""
        if probe:
            self.probing = False
        self.retry_at = self.clock() + self.retry_seconds
        self.outage.failed(error)

    def guard(self, func, *, executor, timeout):
        """Return an async call of the ORM function `func` in `executor`: refused while down, given up after `timeout` s."""
        async def call(*args, **kwargs):
            probe = self.admit()
            started = []

            def run():
                started.append(True)
                return func(*args, **kwargs)

            self.unfinished += 1
            task = asyncio.ensure_future(database_sync_to_async(run, thread_sensitive=False, executor=executor)())
            late = []
            task.add_done_callback(functools.partial(self._finished, probe=probe, late=late))
            # Not wait_for: cancelling asgiref's call would wait for the thread all the same.
            await asyncio.wait((task,), timeout=timeout or None)
            if task.done():
                return task.result()
            error = DatabaseUnavailable(f"no answer within {timeout:g} s; the call may still complete")
            # A call still queued for a thread says the threads are busy, not that the database is down.
            counted = (bool(started) or probe) and self.clock() - self.answered_at > timeout
            late.append(counted)
            if counted:
                self.failed(error, probe)
            raise error

        return call

    def _finished(self, task, *, probe, late):
        self.unfinished -= 1
        error = None if task.cancelled() else task.exception()
        if late:
            # Its caller gave up (and counted the failure, if the call had started); a late answer still
            # says the database is back.
            if error is None or not unreachable(error):
                self.succeeded()
            elif not late[0]:
                self.failed(error)
            return
        if error is not None and unreachable(error):
            self.failed(error, probe)
        else:
            self.succeeded(probe)


@functools.cache
def get_breaker():
    """Return this process's breaker of the default database."""
    return Breaker(retry_seconds=settings.CHAT_DATABASE_RETRY_SECONDS, capacity=settings.CHAT_DATABASE_THREADS)
