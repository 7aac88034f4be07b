"""What a returning user's handshake costs: database queries and presence round trips to a real Redis, counted exactly.

A reconnect storm pays these once per socket, so a query or round trip added
to the path must show up here as a failure, not months later as a slower ramp.
"""
import asyncio
import threading

import pytest
from channels.db import database_sync_to_async
from django.db.backends.utils import CursorWrapper
from redis.asyncio.connection import AbstractConnection

from chat.domain import services
from chat.tests.conftest import logged_in_client

pytestmark = [pytest.mark.django_db(transaction=True)]

# v2: the session and its user, the hello's room ids and summaries, then the
# subscribe: the room, its membership, the view's snapshot (room row and page).
V2_QUERIES = 8
# v1: the session and its user, then the same subscribe.
V1_QUERIES = 6
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
    """Return (user, logged-in client) of a member of the room `lobby` who has connected once (scripts loaded, membership stored)."""
    assert presence_backend == "redis"
    alice = await database_sync_to_async(make_user)("alice")
    await database_sync_to_async(services.room_create)(slug="lobby", user=alice)
    first = await connect(alice, "lobby")
    assert first.welcome["type"] == "welcome"
    await first.disconnect()
    first.connected = False
    await asyncio.sleep(0.05)  # its presence entry leaves
    return alice, await database_sync_to_async(logged_in_client)(alice)


@pytest.mark.parametrize("presence_backend", ["redis"], indirect=True)
async def test_a_v2_page_load_costs_eight_queries_and_two_presence_round_trips(
    make_user, connect, presence_backend, counted
):
    alice, client = await returning_user(make_user, connect, presence_backend)
    queries, round_trips = counted
    queries.clear(), round_trips.clear()
    socket = await connect(alice, path="/ws/", create=False, expect_welcome=False, client=client)
    assert (await socket.receive_json_from(timeout=5))["type"] == "hello"
    await socket.send_json_to({"type": "subscribe", "room": "lobby"})
    assert (await socket.receive_json_from(timeout=5))["type"] == "subscribed"
    await asyncio.sleep(0.1)  # anything the handshake left running (a session check) is counted too
    assert len(queries) == V2_QUERIES, "\n".join(queries)
    assert len(round_trips) == PRESENCE_ROUND_TRIPS, round_trips


@pytest.mark.parametrize("presence_backend", ["redis"], indirect=True)
async def test_a_v1_handshake_costs_six_queries_and_two_presence_round_trips(
    make_user, connect, presence_backend, counted
):
    alice, client = await returning_user(make_user, connect, presence_backend)
    queries, round_trips = counted
    queries.clear(), round_trips.clear()
    socket = await connect(alice, "lobby", create=False, client=client)
    assert socket.welcome["type"] == "welcome"
    await asyncio.sleep(0.1)
    assert len(queries) == V1_QUERIES, "\n".join(queries)
    assert len(round_trips) == PRESENCE_ROUND_TRIPS, round_trips
