"""Measure room fan-out through both Redis channel layers, side by side in one run.

One room (group) of N member channels spread over two layer instances (two
server processes' worth of subscribers), one sender instance calling
group_send M times back to back. Reports deliveries per second and the
latency of each delivery from its send stamp, with losses and duplicates.

    .venv/bin/python bench/layer_fanout.py --members 1000 --messages 50

Uses REDIS_URL when set, otherwise starts a private redis-server.
"""
import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from channels_redis.core import RedisChannelLayer  # noqa: E402
from channels_redis.pubsub import RedisPubSubChannelLayer  # noqa: E402

LAYERS = {"core": RedisChannelLayer, "pubsub": RedisPubSubChannelLayer}
GROUP = "chat.room.bench"


def make_layer(kind, url, prefix):
    """Return a layer of `kind` configured the way the settings configure it."""
    return LAYERS[kind](hosts=[{"address": url, "max_connections": 1000}], prefix=prefix)


async def member(layer, channel, count, latencies, seen):
    """Receive `count` messages on `channel`, recording each one's latency and seq."""
    for _ in range(count):
        message = await layer.receive(channel)
        latencies.append((time.monotonic_ns() - message["sent_ns"]) / 1e6)
        seen.append(message["seq"])


async def measure(kind, url, members, messages):
    """Return the figures of one fan-out run through layer `kind`."""
    prefix = f"bench{time.monotonic_ns()}"
    receivers = [make_layer(kind, url, prefix), make_layer(kind, url, prefix)]
    sender = make_layer(kind, url, prefix)
    channels = []
    for i in range(members):
        layer = receivers[i % 2]
        channel = await layer.new_channel()
        await layer.group_add(GROUP, channel)
        channels.append((layer, channel))
    latencies, seen = [], [[] for _ in channels]
    tasks = [
        asyncio.create_task(member(layer, ch, messages, latencies, seen[i])) for i, (layer, ch) in enumerate(channels)
    ]
    # Let every receive loop start listening before the clock runs.
    await asyncio.sleep(0.5)
    started = time.monotonic()
    for seq in range(messages):
        await sender.group_send(GROUP, {"type": "room.frame", "seq": seq, "sent_ns": time.monotonic_ns()})
    try:
        await asyncio.wait_for(asyncio.gather(*tasks), timeout=120)
    except asyncio.TimeoutError:
        for task in tasks:
            task.cancel()
    elapsed = time.monotonic() - started
    for layer, channel in channels:
        await layer.group_discard(GROUP, channel)
    for layer in [*receivers, sender]:
        await layer.flush()
    delivered = sum(len(got) for got in seen)
    latencies.sort()
    return {
        "layer": kind,
        "deliveries": delivered,
        "lost": members * messages - sum(len(set(got)) for got in seen),
        "out_of_order_or_duplicate": sum(got != sorted(set(got)) for got in seen),
        "per_second": round(delivered / elapsed),
        "p50_ms": round(statistics.median(latencies), 1) if latencies else None,
        "p99_ms": round(latencies[int(len(latencies) * 0.99) - 1], 1) if latencies else None,
        "seconds": round(elapsed, 2),
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--members", type=int, default=1000)
    parser.add_argument("--messages", type=int, default=50)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    url, server = os.environ.get("REDIS_URL"), None
    if not url:
        from harness.servers import start_redis

        server = start_redis(Path(tempfile.mkdtemp(prefix="bench-redis-")))
        url = f"redis://127.0.0.1:{server.port}/0"
    try:
        print(f"{args.members} members, {args.messages} messages per run, {os.cpu_count()} cores, {url}")
        for _ in range(args.rounds):
            for kind in LAYERS:
                print(asyncio.run(measure(kind, url, args.members, args.messages)))
    finally:
        if server is not None:
            server.stop()


if __name__ == "__main__":
    main()
