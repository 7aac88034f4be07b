"""Time chat_export and chat_import (chat/domain/export.py) on SQLite files, and read their peak memory.

    python -m bench.export [--messages 10000 100000] [--batch-sizes 1 100 2000 10000]

For each count of messages: seeds a fresh SQLite database (bulk inserts, not
the services: 1,000 users, 100 rooms of 20 members, one message in ten with
reactions), runs `manage.py chat_export --output` and `manage.py chat_import
--input` into a fresh database as their own processes, and prints their wall
time and peak RSS; then exports the imported database and checks that both
files are the same. Then, for the largest count, imports once per batch size.
"""
import argparse
import filecmp
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from harness.servers import PROJECT_DIR, manage, project_env

USERS = 1000
ROOMS = 100
MEMBERS = 20


def seed(url, messages):
    """Fill the database at `url` with USERS users, ROOMS rooms and `messages` messages, in bulk."""
    code = f"""
import random
from datetime import timedelta
from django.contrib.auth import get_user_model
from django.contrib.auth.hashers import make_password
from django.utils import timezone
from chat.domain.models import Membership, Message, Reaction, Room
random.seed(7)
User = get_user_model()
password = make_password("pw")
users = User.objects.bulk_create([User(username=f"user{{n:04}}", password=password) for n in range({USERS})])
start = timezone.now() - timedelta(days=30)
per_room = {messages} // {ROOMS}
rooms = Room.objects.bulk_create([
    Room(slug=f"room-{{n:03}}", name=f"Room {{n}}", created_by=users[n], last_seq=per_room, last_cseq=per_room,
         last_message_at=start) for n in range({ROOMS})
])
Membership.objects.bulk_create([
    Membership(room=room, user=user, last_read_seq=per_room // 2)
    for room in rooms for user in random.sample(users, {MEMBERS})
])
body = "A message of ordinary length, with **some** markup and a link: https://example.com/x?y=1 "
for room in rooms:
    batch = Message.objects.bulk_create([
        Message(room=room, author=random.choice(users), seq=seq, cseq=seq, body=body + str(seq),
                edited_at=start if seq % 20 == 0 else None, is_deleted=seq % 97 == 0)
        for seq in range(1, per_room + 1)
    ])
    Reaction.objects.bulk_create([
        Reaction(message=message, user=random.choice(users), emoji="\\U0001f44d")
        for message in batch if message.seq % 10 == 0
    ])
"""
    manage("shell", "-c", code, env=project_env(DATABASE_URL=url), timeout=1800)


def measured(args, url):
    """Run `manage.py args` on the database at `url`; return (seconds, peak RSS in MiB)."""
    started = time.perf_counter()
    process = subprocess.Popen(
        [sys.executable, "manage.py", *args], cwd=PROJECT_DIR, env=project_env(DATABASE_URL=url),
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )
    _, status, usage = os.wait4(process.pid, 0)
    seconds = time.perf_counter() - started
    if status != 0:
        raise RuntimeError(f"manage.py {' '.join(args)} failed:\n{process.stderr.read().decode()}")
    return seconds, usage.ru_maxrss / 1024


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--messages", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[1, 100, 2000, 10_000])
    options = parser.parse_args()
    with tempfile.TemporaryDirectory() as directory:
        directory = Path(directory)
        empty = directory / "empty.sqlite3"
        manage("migrate", "--noinput", env=project_env(DATABASE_URL=f"sqlite:///{empty}"))
        _, baseline = measured(["chat_export", "--output", str(directory / "none.jsonl")], f"sqlite:///{empty}")
        print(f"chat_export of an empty database: peak RSS {baseline:.1f} MiB (Django's start-up)")
        print("| messages | lines | file MiB | export s | lines/s | export RSS MiB | import s | lines/s"
              " | import RSS MiB | same again |")
        print("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
        for count in options.messages:
            source, target = directory / f"source-{count}.sqlite3", directory / f"target-{count}.sqlite3"
            shutil.copy(empty, source)
            shutil.copy(empty, target)
            seed(f"sqlite:///{source}", count)
            first, again = directory / f"first-{count}.jsonl", directory / f"again-{count}.jsonl"
            export_s, export_rss = measured(["chat_export", "--output", str(first)], f"sqlite:///{source}")
            import_s, import_rss = measured(["chat_import", "--input", str(first)], f"sqlite:///{target}")
            measured(["chat_export", "--output", str(again)], f"sqlite:///{target}")
            lines = sum(1 for _ in first.open("rb"))
            print(f"| {count:,} | {lines:,} | {first.stat().st_size / 2**20:.1f} | {export_s:.1f} | {lines / export_s:,.0f}"
                  f" | {export_rss:.1f} | {import_s:.1f} | {lines / import_s:,.0f} | {import_rss:.1f}"
                  f" | {filecmp.cmp(first, again, shallow=False)} |")
        print("\n| batch size | import s (in process) |\n| --- | --- |")
        for batch_size in options.batch_sizes:
            target = directory / f"batch-{batch_size}.sqlite3"
            shutil.copy(empty, target)
            code = (
                "import time\nfrom chat.domain import export\nstarted = time.perf_counter()\n"
                f"export.import_lines(open({str(first)!r}, 'rb'), batch_size={batch_size})\n"
                "print(f'{time.perf_counter() - started:.1f}')"
            )
            output = manage("shell", "-c", code, env=project_env(DATABASE_URL=f"sqlite:///{target}"), timeout=1800)
            print(f"| {batch_size:,} | {output.strip().splitlines()[-1]} |")


if __name__ == "__main__":
    main()
