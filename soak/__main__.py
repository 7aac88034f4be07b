"""Run protocol v2 clients that subscribe, chat and leave in a loop against two daphne processes and Redis, then report.

    .venv/bin/python -m soak --duration 600

Exits non-zero when a client missed a message (gap), saw one twice (duplicate),
or when the acknowledged messages differ from the stored ones.
"""
import argparse
import asyncio
import random
import sys
import tempfile
import time

from harness.chatclient import ChatClient
from harness.cluster import Cluster, sqlite_database


class Totals:
    """What the soak counts over all sessions."""

    def __init__(self):
        self.sessions = self.delivered = self.gaps = self.duplicates = self.unacknowledged = 0
        self.acked = set()


async def session(cluster, webs, room, name, resume, totals, rng):
    """Subscribe to a room after the (cseq, seq) `resume`, send a few messages, catch up, leave; return the next resume."""
    after_cseq, after_seq = resume
    client = ChatClient(webs, room, name, after=after_cseq).start()
    try:
        await asyncio.wait_for(client.connected.wait(), 30)
        for i in range(rng.randint(1, 4)):
            await client.send(f"{name} says {i} at {time.time():.3f}")
            await asyncio.sleep(rng.uniform(0.05, 0.4))
        for _ in range(30):
            if not client.pending:
                break
            # A refused send (database busy) is resent, as the page offers to.
            if client.errors:
                client.errors.clear()
                await client.resend()
            await asyncio.sleep(1)
        # The newest change this session heard of, live or acknowledged: the view must become current to it.
        newest = max([client.cseq, *client.above, *(stored.cseq for stored in client.acked.values())])
        await client.catch_up(newest, timeout=20)
    finally:
        await client.stop()
    held = [seq for seq in client.messages if seq > after_seq]
    totals.sessions += 1
    totals.delivered += len(held)
    totals.gaps += len(client.gaps(after_seq))
    totals.duplicates += client.duplicates
    totals.unacknowledged += len(client.pending)
    totals.acked |= {(room, stored.seq) for stored in client.acked.values()}
    current = [m["seq"] for m in client.messages.values() if m["cseq"] <= client.cseq]
    return client.cseq, max(current, default=after_seq)


async def user_loop(cluster, name, rooms, stop_at, totals, seed):
    """Join, chat and leave rooms until `stop_at`, resuming each room after the change this user's view got to."""
    rng = random.Random(seed)
    webs = await asyncio.to_thread(cluster.login, name, seed % 2)
    resumes = {}
    while time.monotonic() < stop_at:
        room = rng.choice(rooms)
        resumes[room] = await session(cluster, webs, room, name, resumes.get(room, (0, 0)), totals, rng)
        await asyncio.sleep(rng.uniform(0, 0.5))


async def sample_memory(cluster, every, samples):
    """Append both daphnes' RSS to `samples` every `every` seconds: a steady slope is a leak, an early rise warm-up."""
    while True:
        await asyncio.sleep(every)
        samples.append([cluster.memory_kib(i) for i in range(2)])


def second_half_slope(tenths, duration):
    """Return each daphne's RSS growth over the run's second half, in KiB a minute (warm-up is over by then)."""
    if len(tenths) < 10:
        return None
    return [round((end - middle) / (duration / 2 / 60), 1) for middle, end in zip(tenths[4], tenths[9])]


async def soak(duration, users, rooms):
    with tempfile.TemporaryDirectory(prefix="chat-soak-") as directory:
        database = await asyncio.to_thread(sqlite_database, directory)
        with Cluster(directory, database) as cluster:
            names = await asyncio.to_thread(cluster.users, [f"soak{i}" for i in range(users)])
            room_names = [f"soak-{i}" for i in range(rooms)]
            await asyncio.to_thread(cluster.rooms, room_names)
            memory_start = [cluster.memory_kib(i) for i in range(2)]
            keys_start = cluster.redis_client().dbsize()
            totals = Totals()
            stop_at = time.monotonic() + duration
            memory = []
            sampler = asyncio.create_task(sample_memory(cluster, duration / 10, memory))
            await asyncio.gather(*(user_loop(cluster, n, room_names, stop_at, totals, i) for i, n in enumerate(names)))
            sampler.cancel()
            stored = sum(len(cluster.stored(room)) for room in room_names)
            report = {
                "duration_s": duration, "users": users, "rooms": rooms, "sessions": totals.sessions,
                "messages_sent": len(totals.acked), "messages_stored": stored, "unacknowledged": totals.unacknowledged,
                "messages_delivered": totals.delivered, "gaps": totals.gaps, "duplicates": totals.duplicates,
                "server_memory_kib_start": memory_start,
                "server_memory_kib_end": [cluster.memory_kib(i) for i in range(2)],
                "server_memory_kib_tenths": memory,
                "server_memory_kib_per_min_second_half": second_half_slope(memory, duration),
                "redis_keys_start": keys_start, "redis_keys_end": cluster.redis_client().dbsize(),
            }
    for key, value in report.items():
        print(f"{key:>24}: {value}")
    return report


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m soak", description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=300, help="seconds of chatting (default 300)")
    parser.add_argument("--users", type=int, default=8)
    parser.add_argument("--rooms", type=int, default=3)
    args = parser.parse_args(argv)
    report = asyncio.run(soak(args.duration, args.users, args.rooms))
    failed = (
        report["gaps"] or report["duplicates"] or report["unacknowledged"]
        or report["messages_sent"] != report["messages_stored"]
    )
    print("soak FAILED" if failed else "soak passed: no gaps, no duplicates, every acknowledged message stored")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
