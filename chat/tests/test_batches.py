"""The send queue: messages that wait go together, each sender gets its own answer, nothing is lost."""
import asyncio
import time

import pytest
from channels.db import database_sync_to_async
from django.db import DataError, OperationalError, connection

from chat.domain import services
from chat.domain.models import Message
from chat.platform.dbhealth import DatabaseUnavailable
from chat.platform.limits import LimitExceeded
from chat.realtime import batches

pytestmark = [pytest.mark.django_db(transaction=True)]


class RecordingDatabase:
    """Run batches through the real database call, recording each batch's size.

    It fails the next `failures` calls, and when given a `gate`, holds each
    call's answer until the gate opens.
    """

    def __init__(self, failures=0, gate=None):
        self.sizes = []
        self.failures = failures
        self.gate = gate
        self.held = 0  # answers held at the gate

    def __call__(self, func):
        async def call(batch):
            self.sizes.append(len(batch))
            if self.failures:
                self.failures -= 1
                raise OperationalError("the database went away")
            result = await database_sync_to_async(func)(batch)
            if self.gate is not None:
                self.held += 1
                await self.gate.wait()
            return result
        return call


@pytest.fixture
async def room_and_users(make_user):
    def make():
        users = [make_user() for _ in range(3)]
        room, _ = services.room_open(slug="lobby", user=users[0])
        return room, users
    return await database_sync_to_async(make)()


def allowed():
    """Let a message through the limit."""


def refused():
    """Refuse a message as over its limit."""
    raise LimitExceeded("too fast", 1.0, 99)


def stored_bodies():
    return list(Message.objects.order_by("seq").values_list("body", flat=True))


async def test_messages_waiting_together_are_stored_in_one_call_in_order(room_and_users):
    room, users = room_and_users
    database = RecordingDatabase()
    queue = batches.SendQueue(database)

    results = await asyncio.gather(*(
        queue.put(allowed, room=room, author=users[i % 3], body=f"m{i}", client_id=f"c{i}") for i in range(10)
    ))

    assert database.sizes == [10]
    assert [(m.seq, m.body, created) for m, created in results] == [(i + 1, f"m{i}", True) for i in range(10)]
    assert await database_sync_to_async(stored_bodies)() == [f"m{i}" for i in range(10)]


async def test_a_message_alone_goes_at_once_and_a_later_one_in_its_own_call(room_and_users):
    room, users = room_and_users
    database = RecordingDatabase()
    queue = batches.SendQueue(database)

    first, _ = await queue.put(allowed, room=room, author=users[0], body="one", client_id=None)
    second, _ = await queue.put(allowed, room=room, author=users[0], body="two", client_id=None)

    assert database.sizes == [1, 1]
    assert (first.seq, second.seq) == (1, 2)


@pytest.mark.parametrize("bad", ["over its limit", "refused by the database"])
async def test_a_bad_message_fails_alone(room_and_users, bad):
    if bad == "refused by the database" and connection.vendor != "postgresql":
        pytest.skip("SQLite stores NUL characters: set DATABASE_URL=postgres://... (.ci/run does)")
    check, body, error = {
        "over its limit": (refused, "b", LimitExceeded),
        # The protocol refuses NUL characters before they get here; the queue must not rely on it.
        "refused by the database": (allowed, "b\x00", DataError),
    }[bad]
    room, users = room_and_users
    queue = batches.SendQueue(RecordingDatabase())

    results = await asyncio.gather(*(
        queue.put(count, room=room, author=users[0], body=text, client_id=None)
        for count, text in [(allowed, "a"), (check, body), (allowed, "c")]
    ), return_exceptions=True)

    assert isinstance(results[1], error)
    assert [(m.seq, m.body) for m, _ in (results[0], results[2])] == [(1, "a"), (2, "c")]
    assert await database_sync_to_async(stored_bodies)() == ["a", "c"]


async def test_a_retry_in_the_same_batch_gets_the_original(room_and_users):
    room, users = room_and_users
    queue = batches.SendQueue(RecordingDatabase())

    results = await asyncio.gather(*(
        queue.put(allowed, room=room, author=users[0], body=body, client_id=client_id)
        for body, client_id in [("first", "c1"), ("other", "c2"), ("retry", "c1")]
    ))

    assert [(m.body, m.seq, created) for m, created in results] == [
        ("first", 1, True), ("other", 2, True), ("first", 1, False),
    ]
    assert await database_sync_to_async(stored_bodies)() == ["first", "other"]


async def test_a_failed_call_fails_each_of_its_messages_and_the_next_call_works(room_and_users):
    room, users = room_and_users
    database = RecordingDatabase(failures=1)
    queue = batches.SendQueue(database)

    failed = await asyncio.gather(*(
        queue.put(allowed, room=room, author=users[0], body=f"lost{i}", client_id=None) for i in range(3)
    ), return_exceptions=True)
    message, created = await queue.put(allowed, room=room, author=users[0], body="kept", client_id=None)

    assert all(isinstance(result, OperationalError) for result in failed)
    assert (message.seq, created) == (1, True)
    assert await database_sync_to_async(stored_bodies)() == ["kept"]


async def test_a_sender_that_stops_waiting_still_has_its_message_stored(room_and_users):
    room, users = room_and_users
    queue = batches.SendQueue(RecordingDatabase())

    sender = asyncio.create_task(queue.put(allowed, room=room, author=users[0], body="sent", client_id=None))
    await asyncio.sleep(0)
    sender.cancel()
    later, _ = await queue.put(allowed, room=room, author=users[0], body="later", client_id=None)

    assert sender.cancelled()
    assert later.seq == 2
    assert await database_sync_to_async(stored_bodies)() == ["sent", "later"]


async def test_a_message_put_just_as_every_call_ends_is_stored(room_and_users):
    room, users = room_and_users
    gate = asyncio.Event()
    database = RecordingDatabase(gate=gate)
    queue = batches.SendQueue(database)

    async def send_twice():
        await queue.put(allowed, room=room, author=users[0], body="a", client_id=None)
        # Put while both calls are ending: their tasks are done, but may not yet have left.
        return await queue.put(allowed, room=room, author=users[0], body="c", client_id=None)

    async def until(condition):
        while not condition():
            await asyncio.sleep(0.001)

    first = asyncio.create_task(send_twice())
    await until(lambda: database.sizes)
    second = asyncio.create_task(queue.put(allowed, room=room, author=users[1], body="b", client_id=None))
    await until(lambda: database.held == 2)
    gate.set()
    (last, _), _ = await asyncio.wait_for(asyncio.gather(first, second), timeout=5)

    assert database.sizes == [1, 1, 1]
    assert last.body == "c" and last.seq == 3


class DatabaseDown:
    """A breaker that knows the database is down."""

    def available(self):
        return False


async def test_a_message_is_refused_at_once_while_the_database_is_known_down(room_and_users):
    room, users = room_and_users
    database = RecordingDatabase()
    queue = batches.SendQueue(database, health=DatabaseDown())

    with pytest.raises(DatabaseUnavailable):
        await asyncio.wait_for(queue.put(allowed, room=room, author=users[0], body="no", client_id=None), 0.1)

    assert database.sizes == [] and queue.waiting == []


async def test_past_max_waiting_a_message_is_refused_at_once(room_and_users, monkeypatch):
    monkeypatch.setattr(batches, "MAX_WAITING", 3)
    room, users = room_and_users
    gate = asyncio.Event()
    database = RecordingDatabase(gate=gate)
    queue = batches.SendQueue(database)

    senders = []
    for i in range(5):
        senders.append(asyncio.create_task(
            queue.put(allowed, room=room, author=users[0], body=f"m{i}", client_id=None)
        ))
        # The first two go alone, in the two calls; the next three wait for one.
        while database.held < min(i + 1, 2) or len(queue.waiting) < i - 1:
            await asyncio.sleep(0.001)
    with pytest.raises(DatabaseUnavailable):
        await queue.put(allowed, room=room, author=users[0], body="one too many", client_id=None)
    gate.set()
    await asyncio.wait_for(asyncio.gather(*senders), 5)

    assert await database_sync_to_async(stored_bodies)() == [f"m{i}" for i in range(5)]


async def test_a_sender_waits_at_most_the_timeout_and_a_message_no_call_took_is_not_stored(room_and_users):
    room, users = room_and_users
    gate = asyncio.Event()
    database = RecordingDatabase(gate=gate)
    queue = batches.SendQueue(database, timeout=0.2)

    started = time.monotonic()
    senders = []
    for i in range(3):
        senders.append(asyncio.create_task(
            queue.put(allowed, room=room, author=users[0], body=f"m{i}", client_id=None)
        ))
        while database.held < min(i + 1, 2):  # m0 and m1 in the two calls, m2 waiting
            await asyncio.sleep(0.001)
    results = await asyncio.gather(*senders, return_exceptions=True)
    waited = time.monotonic() - started
    gate.set()
    while queue.calls:
        await asyncio.sleep(0.001)

    assert all(isinstance(result, DatabaseUnavailable) for result in results) and waited < 1
    # The two calls under way when their senders gave up still stored their messages; the third never went.
    assert database.sizes == [1, 1] and queue.waiting == []
    assert await database_sync_to_async(stored_bodies)() == ["m0", "m1"]


async def test_a_call_that_reaches_the_database_after_its_senders_gave_up_stores_nothing(room_and_users):
    room, users = room_and_users
    late = asyncio.Event()

    def database(func):
        async def call(batch):
            await late.wait()  # the connection comes only after the sender was answered
            return await database_sync_to_async(func)(batch)
        return call

    queue = batches.SendQueue(database, timeout=0.2)
    with pytest.raises(DatabaseUnavailable):
        await queue.put(allowed, room=room, author=users[0], body="told unavailable", client_id=None)
    late.set()
    while queue.calls:
        await asyncio.sleep(0.001)
    sent = await queue.put(allowed, room=room, author=users[0], body="in time", client_id=None)

    assert sent[1] and await database_sync_to_async(stored_bodies)() == ["in time"]
