"""Store the messages a process's sockets send in batches: one database call for all that are waiting.

A call per message costs a thread hand-off, a connection check-out and a
database round trip each, and when messages come faster than calls finish
they queue behind each other anyway. Here a few calls run at once; each takes
every message waiting when it starts, so a lone message goes at once and a
busy process pays per batch instead of per message (group commit).

The queue never holds work for a database that does not answer: while the
database is known down (chat.platform.dbhealth) a message is refused at once, a sender
waits at most the call timeout, and at most MAX_WAITING messages wait.
"""
import asyncio
import time
import weakref

from django.conf import settings
from django.db import DataError, IntegrityError, connection

from chat.domain import services
from chat.platform import metrics
from chat.platform.dbhealth import DatabaseUnavailable, get_breaker
from chat.platform.limits import LimitExceeded

# Calls in flight at once: enough to overlap round trips, few enough that
# messages wait for one and go together.
CALLS_AT_ONCE = 2
# The most messages one call stores: a bound on the statement and on a failure's reach.
MAX_BATCH = 100
# Ten full batches: far more than a healthy database leaves waiting (two calls take 200 at a time).
MAX_WAITING = 10 * MAX_BATCH


class SendQueue:
    """The messages waiting to be stored by this process, and the calls that store them."""

    def __init__(self, db, *, health=None, timeout=None):
        self.db = db  # wraps a sync ORM function for the event loop (chat.realtime.consumers.db)
        self.health = health or get_breaker()
        self.timeout = timeout  # seconds a sender waits for its message to be stored; None: no bound
        self.waiting = []  # (count, send, deadline, future)
        self.calls = set()

    async def put(self, count, **send):
        """Count a message with `count()`, which may raise LimitExceeded, and store it; return (message, created).

        Raise DatabaseUnavailable at once while the database is known down or too many messages wait, and
        after `timeout` seconds without an answer (the message may then still be stored).
        """
        if not self.health.available():
            raise DatabaseUnavailable("The database is down; the message was not stored.")
        if len(self.waiting) >= MAX_WAITING:
            raise DatabaseUnavailable("Too many messages wait for the database; the message was not stored.")
        future = asyncio.get_running_loop().create_future()
        deadline = time.monotonic() + self.timeout if self.timeout else None
        entry = (count, send, deadline, future)
        self.waiting.append(entry)
        if len(self.calls) < CALLS_AT_ONCE:
            self.calls.add(asyncio.create_task(self._drain()))
        # A socket that closes meanwhile stops waiting; its message is stored all the same.
        try:
            return await asyncio.wait_for(future, self.timeout)
        except TimeoutError:
            # A message no call has taken yet is dropped, and a call that took it stores it only if it
            # reached the database in time (store_batch), so that "unavailable" means "not stored"
            # but for a commit under way at the deadline.
            self.waiting = [waiting for waiting in self.waiting if waiting is not entry]
            raise DatabaseUnavailable(
                f"The message was not stored within {self.timeout:g} s; it may still be."
            ) from None

    async def _drain(self):
        try:
            while self.waiting:
                batch, self.waiting = self.waiting[:MAX_BATCH], self.waiting[MAX_BATCH:]
                try:
                    results = await self.db(store_batch)([entry[:3] for entry in batch])
                except Exception as error:  # noqa: BLE001 - each sender is told, as a lone send's would be
                    results = [error] * len(batch)
                for (*_, future), result in zip(batch, results):
                    if future.done():
                        continue
                    if isinstance(result, Exception):
                        future.set_exception(result)
                    else:
                        future.set_result(result)
        finally:
            # Leave in the same step that found nothing waiting: a done callback
            # would leave later, and a message put meanwhile would find no call to take it.
            self.calls.discard(asyncio.current_task())


def store_batch(batch):
    """Count and store a batch of (count, send, deadline) in one thread; return each one's (message, created) or exception."""
    # The wait for a connection (the pool's, up to its timeout) comes first: a database that comes back
    # after a sender was told "unavailable" must not store that sender's message behind its back.
    connection.ensure_connection()
    now = time.monotonic()
    results, counted = [None] * len(batch), []
    for i, (count, _, deadline) in enumerate(batch):
        if deadline is not None and now > deadline:
            results[i] = DatabaseUnavailable("The database answered too late; the message was not stored.")
            continue
        try:
            count()
        except LimitExceeded as error:
            results[i] = error
        else:
            counted.append(i)
    sends = [batch[i][1] for i in counted]
    try:
        stored = [(message, True) for message in services.message_create_many(sends)]
    except (IntegrityError, DataError, services.RoomArchived, services.Muted):
        # One message refuses the whole statement (a repeated client_id, text the database will not take,
        # an archived room, a muted author):
        # store each alone, so that message_create finds repeats and only the bad one fails.
        stored = [_result_of(services.message_create, send) for send in sends]
    for i, result in zip(counted, stored):
        results[i] = result
    return results


def _result_of(func, kwargs):
    try:
        return func(**kwargs)
    except Exception as error:  # noqa: BLE001 - handed to that message's sender
        return error


_queues = weakref.WeakKeyDictionary()
# Read at each scrape (on the event loop, like the queues): nothing is done per message.
metrics.SEND_QUEUE_WAITING.set_function(lambda: sum(len(queue.waiting) for queue in tuple(_queues.values())))


def get_send_queue(db):
    """Return the send queue of the running event loop (one per server process), calling the database with `db`."""
    loop = asyncio.get_running_loop()
    if loop not in _queues:
        _queues[loop] = SendQueue(db, timeout=settings.CHAT_DATABASE_CALL_TIMEOUT or None)
    return _queues[loop]
