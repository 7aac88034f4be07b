"""The search scenario: query times over a generated history, and what the index costs the send path.

    python -m bench.search --database postgres://root@127.0.0.1:5432/postgres --messages 1000000
    python -m bench.search --messages 200000        # SQLite, in a temporary file

Builds a scratch database (dropped afterwards: chat_bench_search on PostgreSQL), migrated, without the search
index of migration 0007 at first, with `--rooms` private rooms and `--messages` messages of words drawn from a Zipf-like vocabulary.
Then it times `--sends` message_create calls without the index, builds the index (as migration 0007 does), times the same
sends with it (the ratio is the index's cost to the send path), and times searches of a user who is a member of
`--member-of` rooms: two common words, and one rare word, newest first and by relevance (median and p95).
"""
import argparse
import datetime
import os
import random
import statistics
import tempfile
import time
from importlib import import_module
from urllib.parse import urlsplit, urlunsplit

BENCH_DATABASE = "chat_bench_search"
VOCABULARY = 20_000
WORDS_PER_MESSAGE = (6, 24)


def words():
    """Return the vocabulary: pronounceable made-up words, the most common first."""
    rng = random.Random(7)
    consonants, vowels = "bcdfghjklmnprstvwz", "aeiou"
    vocabulary = set()
    while len(vocabulary) < VOCABULARY:
        syllables = rng.randint(1, 4)
        vocabulary.add("".join(rng.choice(consonants) + rng.choice(vowels) for _ in range(syllables)))
    return sorted(vocabulary, key=lambda w: (len(w), w))


def zipf_cumulative(count):
    """Return the cumulative weights of a Zipf distribution over `count` ranks (the word of rank r: 1/r)."""
    total, cumulative = 0.0, []
    for rank in range(count):
        total += 1 / (rank + 1)
        cumulative.append(total)
    return cumulative


def prepare(database_url):
    """Point Django at a new scratch database and return a function that drops it."""
    if database_url:
        parts = urlsplit(database_url)
        admin = urlunsplit(parts._replace(path="/postgres"))
        os.environ["DATABASE_URL"] = urlunsplit(parts._replace(path=f"/{BENCH_DATABASE}"))
        import psycopg

        with psycopg.connect(admin.replace("postgres://", "postgresql://"), autocommit=True) as admin_connection:
            admin_connection.execute(f"DROP DATABASE IF EXISTS {BENCH_DATABASE} WITH (FORCE)")
            admin_connection.execute(f"CREATE DATABASE {BENCH_DATABASE}")

        def drop():
            from django.db import connections

            connections.close_all()
            with psycopg.connect(admin.replace("postgres://", "postgresql://"), autocommit=True) as again:
                again.execute(f"DROP DATABASE IF EXISTS {BENCH_DATABASE} WITH (FORCE)")
        return drop
    directory = tempfile.TemporaryDirectory()
    os.environ["DATABASE_URL"] = f"sqlite:///{directory.name}/search.sqlite3"
    return directory.cleanup


def generate(args, vocabulary):
    """Store the rooms, users and messages; return (the searching user, the rooms)."""
    from django.contrib.auth import get_user_model
    from django.db import connection, transaction
    from django.utils import timezone

    from chat.domain.models import Membership, Message, Room

    rng = random.Random(11)
    User = get_user_model()
    authors = User.objects.bulk_create([User(username=f"author{n}") for n in range(100)])
    reader = User.objects.create(username="reader")
    rooms = Room.objects.bulk_create([
        Room(slug=f"room-{n}", name=f"room {n}", is_private=True, created_by=authors[n % 100]) for n in range(args.rooms)
    ])
    Membership.objects.bulk_create([Membership(room=room, user=reader) for room in rooms[: args.member_of]])
    cumulative = zipf_cumulative(len(vocabulary))
    seqs = [0] * len(rooms)
    now = timezone.now()
    columns = ", ".join(Message._meta.get_field(f).column for f in (
        "room", "author", "seq", "cseq", "body", "created_at", "is_deleted"))
    statement = f"INSERT INTO {Message._meta.db_table} ({columns}) VALUES (%s, %s, %s, %s, %s, %s, false)"
    started = time.perf_counter()
    batch = 20_000
    for start in range(0, args.messages, batch):
        rows = []
        for n in range(start, min(start + batch, args.messages)):
            room = rng.randrange(len(rooms))
            seqs[room] += 1
            body = " ".join(rng.choices(vocabulary, cum_weights=cumulative, k=rng.randint(*WORDS_PER_MESSAGE)))
            at = connection.ops.adapt_datetimefield_value(now - datetime.timedelta(seconds=args.messages - n))
            rows.append((rooms[room].pk, authors[n % 100].pk, seqs[room], seqs[room], body, at))
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.executemany(statement, rows)
    for room, seq in zip(rooms, seqs):
        room.last_seq = room.last_cseq = seq
    Room.objects.bulk_update(rooms, ["last_seq", "last_cseq"], batch_size=500)
    print(f"generated {args.messages:,} messages in {len(rooms):,} rooms in {time.perf_counter() - started:.0f} s")
    return reader, rooms


def sends_per_second(room, author, count):
    """Return the stored/s of `count` message_create calls (each its own transaction, as a socket's send)."""
    from chat.domain import services

    bodies = [f"send path probe {n} with some ordinary words in it" for n in range(count)]
    started = time.perf_counter()
    for body in bodies:
        services.message_create(room=room, author=author, body=body)
    return count / (time.perf_counter() - started)


def time_query(reader, text, order, rounds):
    from chat.domain import search

    times = []
    for _ in range(rounds):
        started = time.perf_counter()
        search.message_search(user=reader, query=search.search_parse(text), order=order)
        times.append((time.perf_counter() - started) * 1000)
    times.sort()
    return statistics.median(times), times[min(len(times) - 1, int(len(times) * 0.95))]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database", default="", help="a PostgreSQL server URL (a scratch database is made on it)")
    parser.add_argument("--messages", type=int, default=200_000)
    parser.add_argument("--rooms", type=int, default=1000)
    parser.add_argument("--member-of", type=int, default=50)
    parser.add_argument("--sends", type=int, default=1000)
    parser.add_argument("--queries", type=int, default=40, help="different queries of each kind")
    args = parser.parse_args()
    drop = prepare(args.database)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "myproject.settings")
    os.environ.setdefault("DEBUG", "1")
    import django

    django.setup()
    from django.core.management import call_command
    from django.db import connection

    try:
        call_command("migrate", verbosity=0)
        index = import_module("chat.migrations.0007_message_search")
        with connection.schema_editor() as editor:
            index.backward(None, editor)
        vocabulary = words()
        reader, rooms = generate(args, vocabulary)
        probe_room, author = rooms[0], reader
        without = statistics.median(sends_per_second(probe_room, author, args.sends) for _ in range(3))
        started = time.perf_counter()
        with connection.schema_editor() as editor:
            index.forward(None, editor)
        print(f"built the index in {time.perf_counter() - started:.0f} s ({connection.vendor})")
        with_index = statistics.median(sends_per_second(probe_room, author, args.sends) for _ in range(3))
        print(f"send path: {without:,.0f} stored/s without the index, {with_index:,.0f} with it:"
              f" {with_index / without:.2f}x ({(1 - with_index / without) * 100:+.1f}% slower)")
        rng = random.Random(5)
        common, rare = vocabulary[5:40], vocabulary[5000:15000]
        kinds = {
            "two common words": [f"{a} {b}" for a, b in (rng.sample(common, 2) for _ in range(args.queries))],
            "one rare word": rng.sample(rare, args.queries),
        }
        print(f"searches of a member of {args.member_of} of {args.rooms} private rooms, {args.messages:,} messages:")
        for kind, texts in kinds.items():
            for order in ("newest", "relevance"):
                times = [time_query(reader, text, order, 3)[0] for text in texts]
                times.sort()
                p95 = times[min(len(times) - 1, int(len(times) * 0.95))]
                print(f"  {kind:17} {order:9}  median {statistics.median(times):7.1f} ms   p95 {p95:7.1f} ms")
    finally:
        drop()


if __name__ == "__main__":
    main()
