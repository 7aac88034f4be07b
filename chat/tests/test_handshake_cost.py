"""What a returning user's handshake costs: database queries and presence round trips to a real Redis, counted exactly.

A reconnect storm pays these once per socket, so a query or round trip added
to the path must show up here as a failure, not months later as a slower ramp.
"""
import asyncio
import threading

import pytest
from channels.db import database_sync_to_async
from django.db import connection
from django.db.backends.utils import CursorWrapper
from redis.asyncio.connection import AbstractConnection

from chat.domain import services
from chat.tests.conftest import logged_in_client

pytestmark = [pytest.mark.django_db(transaction=True)]

# v2: the session and its user, the hello's room ids and summaries, then the
# subscribe: its room and membership, the view's snapshot (SET TRANSACTION on PostgreSQL, or on SQLite
# BEGIN DEFERRED and its ROLLBACK, which take no write lock; then the room row, the page).
V2_QUERIES = 8
# v1: the session and its user, then the same subscribe.
V1_QUERIES = 6
# The statement SQLite's snapshot ends with (PostgreSQL's commit is no statement of Django's cursor).
SQLITE_SNAPSHOT_END = 1
# The user's presence entry, and who is online in the room.
PRESENCE_ROUND_TRIPS = 2


@pytest.fixture
def counted(monkeypatch):
    """Record every SQL statement (any thread) and every Redis round trip of the block, as lists."""
    queries, round_trips, lock = [], [], threading.Lock()
    execute, send = CursorWrapper.execute, AbstractConnection.send_packed_command

    def counting_execute(cursor, sql, params=None):
        with lock:
            queries.append(sql)
        return execute(cursor, sql, params)

    async def counting_send(connection, command, check_health=True):
        round_trips.append(command)
        return await send(connection, command, check_health)

    monkeypatch.setattr(CursorWrapper, "execute", counting_execute)
    monkeypatch.setattr(AbstractConnection, "send_packed_command", counting_send)
    return queries, round_trips


async def returning_user(make_user, connect, presence_backend):
    """Return (user, logged-in client) of a member of `lobby` who connected once (scripts loaded, membership stored)."""
    assert presence_backend == "redis"
    alice = await database_sync_to_async(make_user)("alice")
    await database_sync_to_async(services.room_create)(slug="lobby", user=alice)
    first = await connect(alice, "lobby")
    assert first.welcome["type"] == "welcome"
    await first.disconnect()
    first.connected = False
    await asyncio.sleep(0.05)  # its presence entry leaves
    return alice, await database_sync_to_async(logged_in_client)(alice)


async def page_load_v2(connect, user, client):
    socket = await connect(user, path="/ws/", create=False, expect_welcome=False, client=client)
    assert (await socket.receive_json_from(timeout=5))["type"] == "hello"
    await socket.send_json_to({"type": "subscribe", "room": "lobby"})
    assert (await socket.receive_json_from(timeout=5))["type"] == "subscribed"


async def handshake_v1(connect, user, client):
    socket = await connect(user, "lobby", create=False, client=client)
    assert socket.welcome["type"] == "welcome"


@pytest.mark.parametrize(("handshake", "expected"), [(page_load_v2, V2_QUERIES), (handshake_v1, V1_QUERIES)],
                         ids=["v2-page-load", "v1"])
@pytest.mark.parametrize("presence_backend", ["redis"], indirect=True)
async def test_a_returning_users_handshake_costs_its_queries_and_presence_round_trips_no_more(
    make_user, connect, presence_backend, counted, handshake, expected
):
    alice, client = await returning_user(make_user, connect, presence_backend)
    queries, round_trips = counted
    queries.clear(), round_trips.clear()
    await handshake(connect, alice, client)
    await asyncio.sleep(0.1)  # anything the handshake left running (a session check) is counted too
    expected += SQLITE_SNAPSHOT_END if connection.vendor == "sqlite" else 0
    assert len(queries) == expected, "\n".join(queries)
    assert len(round_trips) == PRESENCE_ROUND_TRIPS, round_trips
