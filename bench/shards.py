"""Measure what the channel layer costs each Redis, on one shard and on two, in the same run.

Stand-ins for server processes subscribe, as each process's hub does, to every room group and to the
users group; publisher processes send what one chat message sends (an event to its room's group and
one to the users group) as fast as they can for a few seconds. Each configuration reports messages/s,
deliveries/s, what was lost, and each redis-server's CPU: its microseconds per message say where one
Redis core saturates, whatever the clients on the same machine manage.

    .venv/bin/python -m bench shards      # also part of `python -m bench`, so of `make bench`
    .venv/bin/python -m bench.shards --seconds 5 --rooms 200 --processes 2 --publishers 3
"""
import argparse
import asyncio
import multiprocessing
import os
import random
import re
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

from channels_redis.pubsub import RedisPubSubChannelLayer

from bench import report
from harness.servers import start_redis

USERS_GROUP = "chat.users"  # as chat.realtime.broadcast names them
# About the size of a message's room event and activity event as the layer carries them.
BODY = "x" * 300
CONCURRENCY = 32  # sends in flight per publisher process


def layer_of(urls):
    """Return a pubsub layer over `urls`, configured the way the settings configure it."""
    return RedisPubSubChannelLayer(hosts=[{"address": url, "max_connections": 1000} for url in urls])


def room_group(room):
    return f"chat.room.{room}"


def subscriber(urls, rooms, ready, stop, counts, index):
    """Subscribe one channel to every room and the users group; count what arrives until `stop`, then a quiet 0.5 s."""
    async def run():
        layer = layer_of(urls)
        channel = await layer.new_channel("chat.hub.")
        for group in [USERS_GROUP, *map(room_group, range(rooms))]:
            await layer.group_add(group, channel)
        ready.release()
        received = 0
        while True:
            try:
                await asyncio.wait_for(layer.receive(channel), 0.5)
                received += 1
            except TimeoutError:
                if stop.is_set():
                    break
        counts[index] = received
        await layer.flush()

    asyncio.run(run())


def publisher(urls, rooms, start, seconds, counts, index):
    """Send a room event and a users-group event per message, CONCURRENCY at a time, for `seconds`."""
    async def run():
        layer = layer_of(urls)
        sent = 0

        async def sender():
            nonlocal sent
            while time.monotonic() < deadline:
                room = random.randrange(rooms)
                await layer.group_send(room_group(room), {"type": "room.event", "room": room, "body": BODY})
                await layer.group_send(USERS_GROUP, {"type": "room.activity", "room": room, "body": BODY[:100]})
                sent += 1

        start.wait()
        deadline = time.monotonic() + seconds
        await asyncio.gather(*(sender() for _ in range(CONCURRENCY)))
        counts[index] = sent
        await layer.flush()

    asyncio.run(run())


def binary(name):
    """Return the path of the program `name`, or raise naming the package that has it."""
    path = shutil.which(name)
    if path is None:
        raise RuntimeError(f"{name} is not installed (Debian's redis-tools has it).")
    return path


def cpu_seconds(pid):
    """Return the user and system CPU seconds process `pid` has used."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def measure(servers, shards, *, rooms, processes, publishers, seconds):
    """Return the figures of one run with the layer over the first `shards` of `servers`."""
    context = multiprocessing.get_context("fork")
    urls = [f"redis://127.0.0.1:{server.port}/0" for server in servers[:shards]]
    ready, start, stop = context.Semaphore(0), context.Event(), context.Event()
    received, sent = context.Array("q", processes), context.Array("q", publishers)
    children = [context.Process(target=subscriber, args=(urls, rooms, ready, stop, received, i)) for i in range(processes)]
    children += [context.Process(target=publisher, args=(urls, rooms, start, seconds, sent, i)) for i in range(publishers)]
    try:
        for child in children:
            child.start()
        for _ in range(processes):
            if not ready.acquire(timeout=60):
                raise RuntimeError("a subscriber did not subscribe within 60 s")
        before = [cpu_seconds(server.process.pid) for server in servers]
        started = time.monotonic()
        start.set()
        for child in children[processes:]:
            child.join(seconds + 30)
        elapsed = time.monotonic() - started
        cpu = [cpu_seconds(server.process.pid) - was for server, was in zip(servers, before)]
        stop.set()
        for child in children[:processes]:
            child.join(60)
    finally:
        for child in children:
            if child.is_alive():
                child.kill()
    messages = sum(sent)
    busiest = max(cpu[:shards])
    return {
        "shards": shards, "rooms": rooms, "processes": processes, "publishers": publishers,
        "messages": messages, "messages_per_s": round(messages / elapsed),
        "deliveries_per_s": round(sum(received) / elapsed),
        "lost": 2 * messages * processes - sum(received),
        "redis_cpu_percent": ", ".join(f"{100 * used / elapsed:.1f}" for used in cpu[:shards]),
        # Microseconds of redis-server CPU per chat message (its two publishes), over all shards.
        "redis_us_per_message": round(1e6 * sum(cpu) / messages, 1) if messages else None,
        # Where the busiest shard would reach a whole core, at the same cost per message.
        "saturates_at_messages_per_s": round(messages / busiest) if busiest else None,
    }


def ceiling(servers, shards, *, rooms, processes, publishes, directory):
    """Return what redis-server itself sustains: redis-benchmark's PUBLISHes (50 connections, no pipelining,
    as 50 server processes' layers send) to random room channels of `shards` servers, each with `processes`
    redis-cli subscribers of every room."""
    channels = [f"asgi__group__chat.room.{n:012d}" for n in range(rooms)]  # as redis-benchmark's __rand_int__
    subscribers, outputs = [], []
    try:
        for server in servers[:shards]:
            for i in range(processes):
                outputs.append(directory / f"subscriber-{server.port}-{i}.out")
                subscribers.append(subprocess.Popen(
                    [binary("redis-cli"), "-p", str(server.port), "SUBSCRIBE", *channels],
                    stdout=outputs[-1].open("wb"), stderr=subprocess.DEVNULL,
                ))
        time.sleep(0.5)  # let every SUBSCRIBE land before the clock runs
        before = [cpu_seconds(server.process.pid) for server in servers]
        started = time.monotonic()
        benchmarks = [subprocess.Popen(
            [binary("redis-benchmark"), "-p", str(server.port), "-q", "-c", "50", "-P", "1",
             "-n", str(publishes // shards), "-r", str(rooms), "PUBLISH", "asgi__group__chat.room.__rand_int__", BODY],
            stdout=subprocess.PIPE, text=True,
        ) for server in servers[:shards]]
        outs = [benchmark.communicate(timeout=120)[0] for benchmark in benchmarks]
        elapsed = time.monotonic() - started
        cpu = [cpu_seconds(server.process.pid) - was for server, was in zip(servers, before)]
        time.sleep(1)  # the subscribers' last lines
    finally:
        for subscriber_process in subscribers:
            subscriber_process.terminate()
            subscriber_process.wait(10)
    # redis-cli writes three lines per message it gets (kind, channel, data), and three per channel subscribed.
    received = sum(len(path.read_bytes().splitlines()) // 3 - rooms for path in outputs)
    rates = [float(re.findall(r"([0-9.]+) requests per second", out)[-1]) for out in outs]
    return {
        "shards": shards, "rooms": rooms, "processes": processes, "publishes_per_s": round(sum(rates)),
        "deliveries_per_s": round(received / elapsed), "lost": publishes // shards * shards * processes - received,
        "redis_cpu_percent": ", ".join(f"{100 * used / elapsed:.1f}" for used in cpu[:shards]),
        "redis_us_per_publish": round(1e6 * sum(cpu) / (publishes // shards * shards), 2),
    }


CEILING_COLUMNS = [("shards", "shards"), ("processes", "subscribers per Redis"), ("rooms", "rooms"),
                   ("publishes_per_s", "publishes/s"), ("deliveries_per_s", "deliveries/s"), ("lost", "lost"),
                   ("redis_cpu_percent", "redis-server CPU % (each)"),
                   ("redis_us_per_publish", "Redis CPU µs/publish")]
COLUMNS = [("shards", "shards"), ("processes", "server processes"), ("rooms", "rooms"),
           ("messages_per_s", "messages/s"), ("deliveries_per_s", "deliveries/s"), ("lost", "lost"),
           ("redis_cpu_percent", "redis-server CPU % (each)"), ("redis_us_per_message", "Redis CPU µs/message"),
           ("saturates_at_messages_per_s", "busiest Redis at 100 % CPU: messages/s")]


def shards_scenario(*, rooms, processes, publishers, seconds, rounds=1, publishes=300_000):
    """Measure redis-server's ceiling, then the layer, over one private redis-server and over two; return both rows."""
    directory = Path(tempfile.mkdtemp(prefix="bench-shards-"))
    servers = []
    try:
        for name in ("shard-0", "shard-1"):
            servers.append(start_redis(directory, name=name))
        ceilings, rows = [], []
        for _ in range(rounds):
            for shards in (1, 2):
                ceilings.append(ceiling(servers, shards, rooms=rooms, processes=processes, publishes=publishes,
                                        directory=directory))
            for shards in (1, 2):
                rows.append(measure(servers, shards, rooms=rooms, processes=processes, publishers=publishers,
                                    seconds=seconds))
        return ceilings, rows
    finally:
        for server in servers:
            server.stop()


def ratio(rows):
    """Return the line that compares the last two-shard row with the last one-shard row."""
    one = next(row for row in reversed(rows) if row["shards"] == 1)
    two = next(row for row in reversed(rows) if row["shards"] == 2)
    return (f"two shards / one: messages/s {two['messages_per_s'] / one['messages_per_s']:.2f}x; "
            f"messages/s when the busiest Redis saturates "
            f"{two['saturates_at_messages_per_s'] / one['saturates_at_messages_per_s']:.2f}x")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=5)
    parser.add_argument("--rooms", type=int, default=200)
    parser.add_argument("--processes", type=int, default=2, help="server processes' subscribers")
    parser.add_argument("--publishers", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=1)
    args = parser.parse_args()
    print(f"{os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f}", flush=True)
    ceilings, rows = shards_scenario(rooms=args.rooms, processes=args.processes, publishers=args.publishers,
                                     seconds=args.seconds, rounds=args.rounds)
    print(report.table(ceilings, CEILING_COLUMNS))
    print(report.table(rows, COLUMNS))
    print(ratio(rows))


if __name__ == "__main__":
    main()
