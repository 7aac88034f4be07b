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



@pytest.fixture
async def room_events(settings):
    """Return an async function that returns the next layer event sent to room 1, within a timeout."""
    from channels.layers import get_channel_layer

    from chat.realtime.broadcast import room_group

    settings.CHAT_PRESENCE_BATCH_SECONDS = 0.2
    layer = get_channel_layer()
    channel = await layer.new_channel("test.")
    await layer.group_add(room_group(1), channel)

    async def next_event(timeout=2.0):
        async with asyncio.timeout(timeout):
            return await layer.receive(channel)

    return next_event


async def came(process, *usernames, room_id=1):
    """Count a socket of each user in a room on `process`, announcing those who came online, as subscribe does."""
    for username in usernames:
        if await process.add(room_id, username):
            process.announce(room_id, username)


async def went(process, *usernames, room_id=1):
    """Uncount a socket of each user, announcing those who went offline, as a socket's end does."""
    for username in usernames:
        if await process.remove(room_id, username):
            process.announce(room_id, username)


async def test_presence_news_within_the_interval_goes_out_as_one_event(store, room_events):
    from chat.realtime.presence import ProcessPresence

    process = ProcessPresence(store)
    await came(process, "carol", "alice", "bob", "alice")  # alice's second tab is no news
    event = await room_events()
    assert (event["kind"], event["data"]) == ("presence", {"online": ["alice", "bob", "carol"], "offline": []})
    with pytest.raises(TimeoutError):
        await room_events(timeout=0.4)
    await went(process, "alice", "bob")
    assert (await room_events())["data"] == {"online": [], "offline": ["bob"]}  # alice has a tab left


async def test_a_full_batch_of_presence_news_goes_out_at_once(store, room_events, settings):
    from chat.realtime.presence import PRESENCE_BATCH_USERS, ProcessPresence

    settings.CHAT_PRESENCE_BATCH_SECONDS = 30
    process = ProcessPresence(store)
    names = [f"u{n:03}" for n in range(PRESENCE_BATCH_USERS + 1)]
    await came(process, *names)
    assert (await room_events())["data"]["online"] == names[:PRESENCE_BATCH_USERS]


async def test_a_user_who_moved_to_another_process_is_announced_online_whatever_batch_goes_out_last(
    store, room_events
):
    from chat.realtime.presence import ProcessPresence

    # Two server processes on one store; b's interval began first, so its batch goes out first.
    a, b = ProcessPresence(store), ProcessPresence(store)
    await came(a, "dan")
    assert (await room_events())["data"] == {"online": ["dan"], "offline": []}
    await came(b, "eve")
    await asyncio.sleep(0.05)
    await went(a, "dan")  # a reload: the old page's socket closes on a...
    await came(b, "dan")  # ...and the new one opens on b
    assert (await room_events())["data"] == {"online": ["dan", "eve"], "offline": []}
    # a's batch heard dan go, but a holds no socket of his: the store says he is online (on b).
    assert (await room_events())["data"] == {"online": ["dan"], "offline": []}
