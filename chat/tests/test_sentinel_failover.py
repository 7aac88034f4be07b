"""Every Redis client through a real Sentinel: presence, limits and the layer reach the new master after a failover."""
import asyncio
import time

import pytest
import redis
from channels.layers import get_channel_layer

from chat.platform.limits import Limit
from chat.platform.redisclients import RedisTarget, async_client, layer_host
from chat.realtime.presence import get_presence
from harness.sentinel import PASSWORD, SentinelGroup
from harness.servers import free_port

DB = 2


@pytest.fixture
def group(tmp_path, settings):
    """Run a master, a replica and a Sentinel, and point every Redis client of the app at the Sentinel."""
    with SentinelGroup(tmp_path / "sentinel") as group:
        # The URL's own address is one nothing listens on: a client that ignored Sentinel would find no Redis.
        settings.REDIS_URL = f"redis://:{PASSWORD}@127.0.0.1:{free_port()}/{DB}"
        settings.REDIS_SENTINELS = group.sentinels
        settings.CHAT_PRESENCE_BACKEND = "chat.realtime.presence.RedisPresence"
        settings.CHANNEL_LAYERS = {"default": {
            "BACKEND": "channels_redis.pubsub.RedisPubSubChannelLayer",
            "CONFIG": {"hosts": [layer_host(RedisTarget.from_settings(), 10)]},
        }}
        yield group


def on_master(group, key):
    """Return whether `key` is in the app's database on the master Sentinel names now."""
    return bool(group.node(group.master, db=DB).exists(key))


async def published(layer):
    """Return whether a group send went through the layer (it raises when Redis does not answer)."""
    try:
        await layer.group_send("sentinel.probe", {"type": "sentinel.probe"})
    except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError, OSError):
        return False
    return True


@pytest.mark.parametrize("how", ["kill", "command"])
async def test_presence_limits_and_the_layer_reach_the_new_master_after_a_failover(group, how):
    limit, presence, layer = Limit("probe", 1000, 60), get_presence(), get_channel_layer()
    # Both answer as if nothing were counted or online when Redis fails: these values need a live master.
    assert limit.hit("alice")[0] == 1
    assert await presence.connect(1, "alice", "tab-1") is True
    assert await presence.online(1) == ["alice"]
    assert await published(layer)
    assert on_master(group, "chat:limit:probe:alice") and on_master(group, "chat:presence:1")
    # Counts then continue on the new master.
    group.wait_for_replica()

    started = time.monotonic()
    group.fail_over(how)
    if how == "kill":
        # Until Sentinel notices (down-after-milliseconds), it names the dead master: each call is answered at
        # once as an outage, limits letting the event through, presence saying nobody is online.
        assert [limit.hit("alice"), await presence.online(1), await published(layer)] == [(0, 0.0), [], False]
        assert time.monotonic() - started < 1
    # In a thread, as a server's event loop keeps running through a failover: the connections the old master
    # closed are seen closed, and replaced through Sentinel, before the next call.
    await asyncio.to_thread(group.wait_for_new_master, how)
    seconds = time.monotonic() - started
    calls = [limit.hit("alice")[0], await presence.online(1), await published(layer)]
    print(f"failover ({how}) took {seconds:.1f} s; first calls after it: {calls}")
    assert calls == [2, ["alice"], True]
    assert await presence.connect(1, "bob", "tab-2") is True
    assert await presence.online(1) == ["alice", "bob"]
    assert limit.hit("bob")[0] == 1
    assert on_master(group, "chat:limit:probe:bob") and on_master(group, "chat:presence:1:u:bob")
    await layer.flush()


async def test_a_full_async_pool_through_sentinel_waits_for_a_connection(group):
    client = async_client(RedisTarget.from_settings(), max_connections=1, timeout=5)
    # The only connection is held by a blocking call for 0.3 s; the ping waits for it instead of failing.
    popped, pong = await asyncio.gather(client.blpop(["nothing"], timeout=0.3), client.ping())
    assert (popped, pong) == (None, True)
    await client.aclose()
