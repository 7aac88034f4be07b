"""Build every Redis client the app uses (the channel layer, presence, the limits) from one target.

A target is REDIS_URL, and the Sentinels that name its master when REDIS_SENTINELS is set; so TLS
(rediss://), authentication and Sentinel apply to each client alike. Nothing of Django or redis-py
is imported at import time: settings.py builds the channel layer's host entry here.
"""
from dataclasses import dataclass
from functools import cache


def sentinel_addresses(value):
    """Return the (host, port) pairs of a comma-separated "host:port" list such as REDIS_SENTINELS."""
    pairs = []
    for item in value.split(","):
        if item.strip():
            host, _, port = item.strip().rpartition(":")
            # "[::1]:26379": the brackets only delimit the address in the list.
            pairs.append((host.strip("[]"), int(port)))
    return pairs


@dataclass(frozen=True)
class RedisTarget:
    """Name the Redis the app talks to: a URL, or Sentinels that name its master (the URL gives all but its address)."""

    url: str
    sentinels: tuple = ()  # ((host, port), ...)
    master_name: str = "mymaster"

    @classmethod
    def from_settings(cls):
        """Return the target that REDIS_URL, REDIS_SENTINELS and REDIS_SENTINEL_MASTER name."""
        from django.conf import settings

        sentinels = tuple((host, int(port)) for host, port in settings.REDIS_SENTINELS)
        return cls(settings.REDIS_URL, sentinels, settings.REDIS_SENTINEL_MASTER)

    def master_options(self):
        """Return the URL's connection options (database, user, password, TLS and query options) without its address."""
        from redis.connection import parse_url

        options = parse_url(self.url)
        for key in ("host", "port", "path", "connection_class"):
            options.pop(key, None)
        return {"db": 0, "username": None, "password": None, **options, "ssl": self.url.startswith("rediss://")}


def layer_host(target, max_connections):
    """Return the channels-redis host entry for `target`, with a pool of `max_connections`."""
    if not target.sentinels:
        return {"address": target.url, "max_connections": max_connections}
    return {
        "max_connections": max_connections,
        "master_name": target.master_name,
        "sentinels": list(target.sentinels),
        **target.master_options(),
    }


def layer_hosts(target, shard_urls, max_connections):
    """Return the channels-redis host entries: `target` alone, or one per URL of `shard_urls`, the layer's shards."""
    if not shard_urls:
        return [layer_host(target, max_connections)]
    return [layer_host(RedisTarget(url), max_connections) for url in shard_urls]


def shard_urls(value):
    """Return the Redis URLs of a comma-separated list such as CHANNEL_LAYER_REDIS_URLS; raise ValueError on a bad one."""
    urls = [item.strip() for item in value.split(",") if item.strip()]
    for url in urls:
        if not url.startswith(("redis://", "rediss://")):
            raise ValueError(f"{url!r} is not a redis:// or rediss:// URL.")
    if len(set(urls)) != len(urls):
        # The same server twice would carry two shares of the groups under two pools.
        raise ValueError("a Redis URL is listed twice.")
    return urls


def sync_client(target, **options):
    """Return a redis.Redis on `target`'s master; the socket_* `options` bound the calls to the Sentinels too."""
    import redis
    import redis.sentinel

    if not target.sentinels:
        return redis.Redis.from_url(target.url, **options)
    # Options given to Sentinel() reach the master's connections, and its socket_* ones the Sentinels'.
    sentinel = redis.sentinel.Sentinel(target.sentinels, **options)
    return sentinel.master_for(target.master_name, **target.master_options())


def async_client(target, *, max_connections, timeout, **options):
    """Return a redis.asyncio.Redis on `target`'s master, waiting up to `timeout` s for one of `max_connections`."""
    import redis.asyncio
    import redis.asyncio.sentinel

    if not target.sentinels:
        pool = redis.asyncio.BlockingConnectionPool.from_url(
            target.url, max_connections=max_connections, timeout=timeout, **options
        )
        return redis.asyncio.Redis(connection_pool=pool)
    sentinel = redis.asyncio.sentinel.Sentinel(target.sentinels, **options)
    return sentinel.master_for(
        target.master_name, connection_pool_class=blocking_sentinel_pool_class(),
        max_connections=max_connections, timeout=timeout, **target.master_options(),
    )


@cache
def blocking_sentinel_pool_class():
    """Return the asyncio pool class that finds the master through Sentinel and waits, when full, for a connection."""
    import redis.asyncio
    import redis.asyncio.sentinel

    # redis-py's Sentinel pool raises "Too many connections" when full; the Sentinel part only
    # chooses where connections go, so the blocking pool's get_connection and release apply unchanged.
    class BlockingSentinelConnectionPool(
        redis.asyncio.sentinel.SentinelConnectionPool, redis.asyncio.BlockingConnectionPool
    ):
        """Find the master through Sentinel; wait for a free connection when all are in use."""

    return BlockingSentinelConnectionPool
