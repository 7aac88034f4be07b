"""Store the messages a process's sockets send in batches: one database call for all that are waiting.

A call per message costs a thread hand-off, a connection check-out and a
database round trip each, and when messages come faster than calls finish
they queue behind each other anyway. Here a few calls run at once; each takes
every message waiting when it starts, so a lone message goes at once and a
busy process pays per batch instead of per message (group commit).
"""
import asyncio
import weakref

from django.db import DataError, IntegrityError

from chat import services
from chat.limits import LimitExceeded

# Calls in flight at once: enough to overlap round trips, few enough that
# messages wait for one and go together.
CALLS_AT_ONCE = 2
# The most messages one call stores: a bound on the statement and on a failure's reach.
MAX_BATCH = 100


class SendQueue:
    """The messages waiting to be stored by this process, and the calls that store them."""

    def __init__(self, db):
        self.db = db  # wraps a sync ORM function for the event loop (chat.consumers.db)
        self.waiting = []  # (count, send, future)
        self.calls = set()

    async def put(self, count, **send):
        """Count a message with `count()`, which may raise LimitExceeded, and store it; return (message, created)."""
        future = asyncio.get_running_loop().create_future()
        self.waiting.append((count, send, future))
        if len(self.calls) < CALLS_AT_ONCE:
            self.calls.add(asyncio.create_task(self._drain()))
        # A socket that closes meanwhile stops waiting; its message is stored all the same.
        return await future

    async def _drain(self):
        try:
            while self.waiting:
                batch, self.waiting = self.waiting[:MAX_BATCH], self.waiting[MAX_BATCH:]
                try:
                    results = await self.db(store_batch)([(count, send) for count, send, _ in batch])
                except Exception as error:  # noqa: BLE001 - each sender is told, as a lone send's would be
                    results = [error] * len(batch)
                for (_, _, future), result in zip(batch, results):
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
    """Count and store a batch of (count, send) in one thread; return each one's (message, created) or exception."""
    results, counted = [None] * len(batch), []
    for i, (count, _) in enumerate(batch):
        try:
            count()
        except LimitExceeded as error:
            results[i] = error
        else:
            counted.append(i)
    sends = [batch[i][1] for i in counted]
    try:
        stored = [(message, True) for message in services.message_create_many(sends)]
    except (IntegrityError, DataError):
        # One message refuses the whole statement (a repeated client_id, text the database will not take):
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


def get_send_queue(db):
    """Return the send queue of the running event loop (one per server process), calling the database with `db`."""
    loop = asyncio.get_running_loop()
    if loop not in _queues:
        _queues[loop] = SendQueue(db)
    return _queues[loop]
