"""The presence stores, in memory and in a real Redis: per-user counting and expiry."""
import asyncio

import pytest
from django.utils.module_loading import import_string

BACKENDS = {"memory": "chat.realtime.presence.MemoryPresence", "redis": "chat.realtime.presence.RedisPresence"}


@pytest.fixture
def store(presence_backend, settings):
    return import_string(BACKENDS[presence_backend])(ttl=0.3)


async def test_two_connections_of_one_user_are_one_presence(store):
    assert await store.connect(1, "alice", "tab-1") is True
    assert await store.connect(1, "alice", "tab-2") is False
    assert await store.connect(1, "bob", "tab-1") is True
    assert await store.online(1) == ["alice", "bob"]
    assert await store.disconnect(1, "alice", "tab-1") is False
    assert await store.online(1) == ["alice", "bob"]
    assert await store.disconnect(1, "alice", "tab-2") is True
    assert await store.online(1) == ["bob"]


async def test_refreshing_a_connection_is_not_a_new_presence(store):
    assert await store.connect(1, "alice", "tab-1") is True
    assert await store.connect(1, "alice", "tab-1") is False


async def test_rooms_are_separate(store):
    await store.connect(1, "alice", "c1")
    await store.connect(2, "bob", "c2")
    await store.connect(2, "carol", "c3")
    assert await store.online(1) == ["alice"]
    assert await store.online_counts([1, 2, 3]) == {1: 1, 2: 2, 3: 0}


async def test_expired_connections_are_swept_once(store):
    await store.connect(1, "ghost", "dead-process")
    await store.connect(1, "alice", "c1")
    await asyncio.sleep(0.2)
    await store.connect(1, "alice", "c1")  # alice's socket keeps beating; the ghost's does not
    await asyncio.sleep(0.2)
    assert await store.online(1) == ["alice"]
    assert await store.sweep(1) == ["ghost"]
    assert await store.sweep(1) == []
    assert await store.online(1) == ["alice"]


async def test_a_user_with_one_live_connection_is_not_swept(store):
    await store.connect(1, "alice", "dead")
    await asyncio.sleep(0.2)
    await store.connect(1, "alice", "live")
    await asyncio.sleep(0.2)
    assert await store.sweep(1) == []
    assert await store.online(1) == ["alice"]
    assert await store.disconnect(1, "alice", "live") is True


async def test_an_unreachable_redis_counts_nobody_online_instead_of_failing():
    from chat.platform.redisclients import RedisTarget
    from chat.realtime.presence import RedisPresence
    from harness.servers import free_port

    store = RedisPresence(ttl=1, target=RedisTarget(f"redis://127.0.0.1:{free_port()}/0"))  # nothing listens there
    assert await store.online_counts([1, 2]) == {}
    assert await store.online(1) == []
