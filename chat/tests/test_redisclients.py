"""The Redis client factory: the client and pool each configuration builds, with the URL's options (no server)."""
import redis
import redis.asyncio
import redis.asyncio.sentinel
import redis.sentinel

from chat.platform.limits import get_counter
from chat.platform.redisclients import (
    RedisTarget, async_client, blocking_sentinel_pool_class, layer_host, sentinel_addresses, sync_client,
)

SENTINELS = (("127.0.0.1", 26379), ("::1", 26380))
TIMEOUTS = {"socket_timeout": 2, "socket_connect_timeout": 2}


def test_sentinel_addresses_are_read_from_a_comma_separated_list():
    assert sentinel_addresses(" s1:26379, [::1]:26380,") == [("s1", 26379), ("::1", 26380)]
    assert sentinel_addresses("") == []


def test_the_target_comes_from_the_settings(settings):
    settings.REDIS_URL = "redis://cache:6379/0"
    settings.REDIS_SENTINELS = [["s1", "26379"]]
    settings.REDIS_SENTINEL_MASTER = "chat"
    assert RedisTarget.from_settings() == RedisTarget("redis://cache:6379/0", (("s1", 26379),), "chat")


def test_a_plain_url_gives_a_direct_sync_client():
    client = sync_client(RedisTarget("redis://app:pw@cache:6380/4"), **TIMEOUTS)
    pool = client.connection_pool
    assert type(pool) is redis.ConnectionPool and pool.connection_class is redis.Connection
    assert {key: pool.connection_kwargs[key] for key in ("host", "port", "db", "username", "password")} == {
        "host": "cache", "port": 6380, "db": 4, "username": "app", "password": "pw",
    }
    assert pool.connection_kwargs["socket_timeout"] == 2


def test_a_rediss_url_gives_tls_with_its_query_options():
    client = sync_client(RedisTarget("rediss://:pw@cache:6380/1?ssl_cert_reqs=required&ssl_ca_certs=/ca.pem"))
    pool = client.connection_pool
    assert pool.connection_class is redis.SSLConnection
    assert pool.connection_kwargs["ssl_ca_certs"] == "/ca.pem" and pool.connection_kwargs["password"] == "pw"


def test_sentinels_give_a_sync_client_of_the_master_they_name():
    target = RedisTarget("rediss://app:pw@ignored:1/3?ssl_ca_certs=/ca.pem", SENTINELS, "chat")
    client = sync_client(target, **TIMEOUTS)
    pool = client.connection_pool
    assert isinstance(pool, redis.sentinel.SentinelConnectionPool) and pool.service_name == "chat"
    assert pool.connection_class is redis.sentinel.SentinelManagedSSLConnection
    kwargs = pool.connection_kwargs
    assert (kwargs["db"], kwargs["username"], kwargs["password"], kwargs["ssl_ca_certs"]) == (3, "app", "pw", "/ca.pem")
    assert "host" not in kwargs and kwargs["socket_timeout"] == 2
    # The Sentinels are asked with the same timeouts (a dead one must not hold a call), and no password.
    sentinels = pool.sentinel_manager.sentinels
    assert [(s.connection_pool.connection_kwargs["host"], s.connection_pool.connection_kwargs["port"])
            for s in sentinels] == list(SENTINELS)
    assert all(s.connection_pool.connection_kwargs["socket_timeout"] == 2 for s in sentinels)
    assert all(s.connection_pool.connection_kwargs.get("password") is None for s in sentinels)


def test_a_plain_url_gives_an_async_client_whose_pool_waits_when_full():
    client = async_client(RedisTarget("redis://:pw@cache:6379/5"), max_connections=50, timeout=5,
                          decode_responses=True, **TIMEOUTS)
    pool = client.connection_pool
    assert type(pool) is redis.asyncio.BlockingConnectionPool
    assert (pool.max_connections, pool.timeout) == (50, 5)
    assert (pool.connection_kwargs["db"], pool.connection_kwargs["password"]) == (5, "pw")
    assert pool.connection_kwargs["decode_responses"] is True


def test_sentinels_give_an_async_client_of_the_master_whose_pool_waits_when_full():
    client = async_client(RedisTarget("redis://:pw@ignored/2", SENTINELS), max_connections=50, timeout=5,
                          decode_responses=True, **TIMEOUTS)
    pool = client.connection_pool
    assert type(pool) is blocking_sentinel_pool_class()
    assert isinstance(pool, redis.asyncio.sentinel.SentinelConnectionPool)
    assert isinstance(pool, redis.asyncio.BlockingConnectionPool)
    # Full, it waits for a connection like presence's pool always did, instead of raising "Too many connections".
    assert type(pool).get_connection is redis.asyncio.BlockingConnectionPool.get_connection
    assert pool.service_name == "mymaster" and pool.connection_class is redis.asyncio.sentinel.SentinelManagedConnection
    assert (pool.max_connections, pool.timeout) == (50, 5)
    kwargs = pool.connection_kwargs
    assert (kwargs["db"], kwargs["password"], kwargs["decode_responses"]) == (2, "pw", True)
    assert kwargs["socket_timeout"] == 2


def test_the_layer_host_is_the_url_or_the_sentinels_with_the_urls_options():
    assert layer_host(RedisTarget("rediss://:pw@cache:6380/2"), 1000) == {
        "address": "rediss://:pw@cache:6380/2", "max_connections": 1000,
    }
    assert layer_host(RedisTarget("rediss://app:pw@ignored/3", SENTINELS, "chat"), 300) == {
        "max_connections": 300, "master_name": "chat", "sentinels": list(SENTINELS),
        "db": 3, "username": "app", "password": "pw", "ssl": True,
    }


def test_the_limits_go_through_sentinel_when_it_is_set(settings):
    settings.REDIS_URL = "redis://:pw@ignored/1"
    settings.REDIS_SENTINELS = list(SENTINELS)
    assert isinstance(get_counter().client.connection_pool, redis.sentinel.SentinelConnectionPool)
