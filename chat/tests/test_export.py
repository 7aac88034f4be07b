"""Export and import: a round trip keeps every field, bad input and a database in use change nothing, both stream."""
import io
import json
import os
import stat
import subprocess
import sys

import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection
from django.test.utils import CaptureQueriesContext

from chat.domain import attachments, export, invites, services, threads
from chat.domain.models import Attachment, Membership, Message, Reaction, Room, ThreadFollow
from harness.servers import PROJECT_DIR, database_migrated, manage, project_env

User = get_user_model()
PASSWORD = "pw-for-tests-42"  # conftest's make_user


@pytest.fixture(autouse=True)
def fast_passwords(settings):
    """Hash the tests' passwords quickly: an export carries each hash as it is, whatever its hasher."""
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture
def chat(make_user, settings, tmp_path_factory):
    """Build a varied chat through the services; return its invite token, made before any export."""
    alice = make_user("alice", email="alice@example.com", first_name="Alice", last_name="Liddell")
    bob, carol = make_user("bob"), make_user("carol", is_staff=True)
    make_user("dave", is_active=False)
    User.objects.filter(pk=alice.pk).update(last_login="2026-12-01T10:00:00.123456+00:00")
    settings.MEDIA_ROOT = tmp_path_factory.mktemp("media")
    general, _ = services.room_create(slug="general", user=alice, name="General")
    services.room_join(slug="general", user=bob)
    secret, _ = services.room_create(slug="secret", user=alice, private=True)
    services.membership_add(room=secret, actor=alice, username="carol")
    token = invites.invite_create(room=secret, actor=alice)
    direct = services.room_open_direct(user=alice, username="bob")
    old, _ = services.room_create(slug="old", user=bob)
    hello, _ = services.message_create(room=general, author=alice, body="Hello **all**", client_id="c-1")
    hi, _ = services.message_create(room=general, author=bob, body="Hi \U0001f44b <b>")
    services.message_edit(room=general, actor=alice, message_id=hello.pk, body="Hello everyone")
    for actor, message, emoji in ((bob, hello, "\U0001f44d"), (alice, hello, "\U0001f44d"), (alice, hi, "\U0001f389"),
                                  (bob, hi, "\U0001f389"), (bob, hello, "\u2764\ufe0f")):
        services.reaction_add(room=general, actor=actor, message_id=message.pk, emoji=emoji)
    services.reaction_remove(room=general, actor=bob, message_id=hi.pk, emoji="\U0001f389")
    oops, _ = services.message_create(room=general, author=bob, body="oops")
    services.message_delete(room=general, actor=bob, message_id=oops.pk)
    services.message_create(room=general, author=alice, body="line one\nline two \u2028 \"quoted\"")
    threads.reply_create(room=general, author=bob, parent_id=hello.pk, body="in the thread")
    threads.reply_create(room=general, author=alice, parent_id=hello.pk, body="and the room", also_in_room=True)
    threads.thread_follow(room=general, user=carol, message_id=hello.pk)
    services.message_create(room=secret, author=carol, body="just us")
    services.message_create(room=direct, author=bob, body="psst")
    services.membership_read(room=general, user=bob, seq=2)
    services.room_update(room=general, actor=alice, topic="Anything goes")
    services.message_create(room=old, author=bob, body="last words")
    services.room_archive(room=old, actor=bob)
    notes = attachments.attachment_prepare(name="notes.txt", data=b"the notes")
    attachments.message_send(room=general, author=bob, body="", attachment_ids=[
        attachments.attachment_create(room=general, uploader=bob, prepared=notes).pk,
    ])
    return token


def rows(queryset, *, keep_id, names):
    """Return every concrete field of every row, each foreign key as the name(s) in `names` (its lookups)."""
    columns = []
    for field in queryset.model._meta.concrete_fields:
        if field.primary_key and not keep_id:
            continue
        # A new foreign key left out of `names` shows as its id, which a round trip need not keep: the test fails.
        columns.extend(names.get(field.name, (field.name,)) if field.is_relation else (field.name,))
    return list(queryset.values(*columns))


def database_state():
    """Return the exported tables field by field, with the ids the import keeps (users, rooms, messages)."""
    return {
        "users": rows(User.objects.order_by("username"), keep_id=True, names={}),
        "rooms": rows(Room.objects.order_by("slug"), keep_id=True, names={"created_by": ("created_by__username",)}),
        "memberships": rows(
            Membership.objects.order_by("room__slug", "user__username"), keep_id=False,
            names={"room": ("room__slug",), "user": ("user__username",)},
        ),
        "messages": rows(
            Message.objects.order_by("room__slug", "seq"), keep_id=True,
            names={"room": ("room__slug",), "author": ("author__username",)},
        ),
        "reactions": rows(
            Reaction.objects.order_by("message__room__slug", "message__seq", "created_at"), keep_id=False,
            names={"message": ("message__room__slug", "message__seq"), "user": ("user__username",)},
        ),
        "follows": rows(
            ThreadFollow.objects.order_by("message__room__slug", "message__seq", "user__username"), keep_id=False,
            names={"message": ("message__room__slug", "message__seq"), "user": ("user__username",)},
        ),
        "attachments": rows(
            Attachment.objects.order_by("id"), keep_id=True,
            names={"room": ("room__slug",), "message": ("message__room__slug", "message__seq"),
                   "uploader": ("uploader__username",)},
        ),
    }


def flush():
    """Empty the database as `manage.py flush` does, inside the test's transaction."""
    # PostgreSQL refuses to TRUNCATE tables with deferred foreign key checks pending: run them first.
    connection.check_constraints()
    call_command("flush", interactive=False, verbosity=0)
    assert not User.objects.exists() and not Room.objects.exists()


def as_file(lines):
    """Return export lines (str, or bytes as they are) as the binary file chat_import reads."""
    return io.BytesIO(b"".join(line if isinstance(line, bytes) else line.encode() for line in lines))


@pytest.mark.parametrize("chunk_size, batch_size", [(2, 3), (export.CHUNK_SIZE, export.BATCH_SIZE)])
def test_a_round_trip_keeps_every_field_and_exports_the_same_lines_again(chat, chunk_size, batch_size):
    before = database_state()
    # The chat holds what the round trip must keep, so that an export that drops it cannot pass.
    messages = before["messages"]
    assert {m["is_deleted"] for m in messages} == {True, False} and any(m["edited_at"] for m in messages)
    assert any(m["reactions"] for m in messages) and len(before["reactions"]) == 4
    assert {r["slug"] for r in before["rooms"] if r["topic"] or r["archived_at"] or r["invite_key"]} == {
        "general", "old", "secret"
    }
    assert any(m["last_read_seq"] for m in before["memberships"]) and any(r["is_direct"] for r in before["rooms"])
    first = list(export.export_lines(chunk_size=chunk_size))
    flush()

    counts = export.import_lines(as_file(first), batch_size=batch_size)

    assert counts == {"user": 4, "room": 4, "membership": 7, "message": 10, "reaction": 4, "follow": 3, "attachment": 1}
    assert database_state() == before
    assert list(export.export_lines(chunk_size=chunk_size)) == first


def test_after_a_round_trip_people_log_in_and_rooms_carry_on(chat, client):
    exported = list(export.export_lines())
    flush()
    export.import_lines(as_file(exported))
    alice, bob = User.objects.get(username="alice"), User.objects.get(username="bob")

    assert client.login(username="alice", password=PASSWORD)
    general = Room.objects.get(slug="general")
    assert services.message_create(room=general, author=bob, body="still here")[0].seq == general.last_seq + 1
    # Kept user ids keep direct rooms' slugs, and kept room ids the invite links made before the export.
    assert services.room_open_direct(user=bob, username="alice").messages.get().body == "psst"
    assert invites.invite_room(chat) == Room.objects.get(slug="secret")
    # The id sequences moved past the kept ids.
    kept = {
        kind: max(line["id"] for line in map(json.loads, exported) if line["type"] == kind)
        for kind in ("user", "room", "message")
    }
    assert User.objects.create_user("erin").pk > kept["user"]
    room, _ = services.room_create(slug="after", user=alice)
    assert room.pk > kept["room"]
    assert services.message_create(room=room, author=alice, body="new")[0].pk > kept["message"]


def test_the_commands_write_a_private_file_or_stdout_and_read_it_or_stdin(chat, tmp_path, monkeypatch):
    path = tmp_path / "chat.jsonl"
    stderr = io.StringIO()
    call_command("chat_export", output=str(path), stderr=stderr)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600  # it holds password hashes
    assert stderr.getvalue() == "Exported users: 4, rooms: 4, memberships: 7, messages: 10, reactions: 4, follows: 3, attachments: 1.\n"
    assert list(tmp_path.iterdir()) == [path]
    stdout = io.StringIO()
    call_command("chat_export", stdout=stdout, stderr=io.StringIO())
    assert stdout.getvalue() == path.read_text()
    flush()

    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(path.read_bytes())))
    out = io.StringIO()
    call_command("chat_import", stdout=out)
    assert out.getvalue() == "Imported users: 4, rooms: 4, memberships: 7, messages: 10, reactions: 4, follows: 3, attachments: 1.\n"
    with pytest.raises(CommandError, match="rooms or messages already"):
        call_command("chat_import", source=str(path))


def test_an_import_into_a_database_with_rooms_is_refused_and_changes_nothing(chat, tmp_path):
    path = tmp_path / "chat.jsonl"
    path.write_text("".join(export.export_lines()))
    Room.objects.exclude(slug="general").delete()  # one room is enough to refuse
    before = database_state()

    with pytest.raises(CommandError, match="^Nothing imported: The database has rooms or messages already"):
        call_command("chat_import", source=str(path))
    assert database_state() == before


def test_an_import_names_a_user_the_database_has_already_and_changes_nothing(chat):
    exported = list(export.export_lines())
    flush()
    User.objects.create_user("carol", id=10_000)  # an id no user of the file has

    with pytest.raises(export.InvalidLine, match="^line 4: user 'carol' .* clashes with the database's user 'carol'"):
        export.import_lines(as_file(exported))
    assert list(User.objects.values_list("username", flat=True)) == ["carol"] and not Room.objects.exists()


DROP = object()


def position(lines, kind, index):
    """Return the position in `lines` of the `index`-th line of `kind`."""
    return [n for n, line in enumerate(lines) if json.loads(line)["type"] == kind][index]


def edit(kind, index=0, **changes):
    """Return a change to the export's `index`-th line of `kind`: DROP drops a field, other values set theirs."""
    def change(lines):
        number = position(lines, kind, index)
        line = {key: value for key, value in {**json.loads(lines[number]), **changes}.items() if value is not DROP}
        return lines[:number] + [json.dumps(line) + "\n"] + lines[number + 1:], number + 1
    return change


def insert_before(kind, line, index=0):
    """Return a change that puts `line` (str or bytes, its newline included) before the `index`-th line of `kind`."""
    def change(lines):
        number = position(lines, kind, index)
        return lines[:number] + [line] + lines[number:], number + 1
    return change


def move_first_reaction_before_its_message(lines):
    number = position(lines, "reaction", 0)
    message = max(n for n in range(number) if json.loads(lines[n])["type"] == "message")
    moved = lines[:message] + [lines[number]] + lines[message:number] + lines[number + 1:]
    return moved, message + 1


BAD_INPUT = {
    "not JSON": (insert_before("message", '{"type": "message",\n'), "not JSON"),
    "not UTF-8": (insert_before("message", b'"\xff"\n'), "not JSON"),
    "not an object": (insert_before("message", "[1, 2]\n"), "not a JSON object"),
    "unknown type": (insert_before("message", '{"type": "thread", "room": "general"}\n'), "unknown type 'thread'"),
    "unknown field": (edit("message", thread=1), "unknown field 'thread' in a message line"),
    "missing field": (edit("message", seq=DROP), "a message line needs 'seq'"),
    "ill-typed field": (edit("message", seq="1"), "'seq' must be a whole number, 0 or more, not \"1\""),
    "a boolean for a number": (edit("membership", last_read_seq=True), "'last_read_seq' must be a whole number"),
    "a date without its offset": (edit("message", created_at="2026-12-01T10:00:00"), "with its UTC offset"),
    "unknown room": (edit("membership", room="nowhere"), "unknown room 'nowhere'"),
    "unknown user": (edit("message", 3, author="zed"), "unknown user 'zed'"),
    "unknown creator": (edit("room", 2, created_by="zed"), "unknown user 'zed'"),
    "reaction to no message": (edit("reaction", seq=99), "a reaction to general#99, which no message line"),
    "reaction before its message": (move_first_reaction_before_its_message, "which no message line before it"),
    "seq past last_seq": (edit("message", seq=50), "seq 50 is not between"),
    "seq repeated": (edit("message", 1, seq=1), "seq 1 is not between the room's previous message \\(1\\)"),
    "cseq past last_cseq": (edit("message", cseq=500), "cseq 500 is not between"),
    "read past last_seq": (edit("membership", last_read_seq=9), "last_read_seq 9 is past"),
    "user twice": (edit("user", 1, username="alice"), "user 'alice' or id .* comes twice"),
    "room twice": (edit("room", 1, slug="general"), "room 'general' or id .* comes twice"),
    "no format line": (lambda lines: (lines[1:], 1), "not a chat export"),
    "newer version": (edit("format", version=4), "format version 4: this chat_import reads version 3"),
    "second format line": (insert_before("room", '{"type": "format", "format": "chat-export", "version": 1}\n'),
                           "a second format line"),
    "cut short": (lambda lines: (lines[:-1], len(lines)), "ends before its end line"),
    "a line lost": (lambda lines: (lines[:-2] + lines[-1:], len(lines) - 1), "the end line counts"),
    "after the end": (lambda lines: (lines + lines[-1:], len(lines) + 1), "a line after the end line"),
    "empty file": (lambda lines: ([], 1), "the file is empty"),
}


@pytest.mark.parametrize("case", BAD_INPUT)
def test_bad_input_names_its_line_and_imports_nothing(chat, case):
    exported = list(export.export_lines())
    flush()
    change, problem = BAD_INPUT[case]
    lines, number = change(exported)

    with pytest.raises(export.InvalidLine, match=f"^line {number}: .*{problem}") as raised:
        export.import_lines(as_file(lines), batch_size=3)
    assert raised.value.number == number
    assert not User.objects.exists() and not Room.objects.exists()
    assert Message._meta.get_field("created_at").auto_now_add  # the import gave back the field's default
    # Nothing was left behind that the good file would clash with.
    assert export.import_lines(as_file(exported))["message"] == 10


def test_a_row_the_database_refuses_names_the_lines_of_its_batch_and_imports_nothing(chat):
    exported = list(export.export_lines())
    flush()
    memberships = [n for n, line in enumerate(exported) if json.loads(line)["type"] == "membership"]
    twice = exported[: memberships[0] + 1] + exported[memberships[0]:]
    twice[-1] = twice[-1].replace('"membership":7', '"membership":8')

    with pytest.raises(export.InvalidLine, match="^lines 2 to .*: the database refused a row of these") as raised:
        export.import_lines(as_file(twice))
    assert raised.value.number == 2
    assert not User.objects.exists() and not Room.objects.exists()


def test_the_export_yields_lines_as_it_reads_them_a_chunk_at_a_time(make_user):
    alice = make_user("alice")
    room, _ = services.room_create(slug="general", user=alice)
    for number in range(10):
        message, _ = services.message_create(room=room, author=alice, body=f"message {number}")
        services.reaction_add(room=room, actor=alice, message_id=message.pk, emoji="\U0001f44d")

    with CaptureQueriesContext(connection) as queries:
        lines = export.export_lines(chunk_size=3)
        assert iter(lines) is lines and len(queries) == 0  # a generator: it reads nothing before the first line
        for line in lines:
            if json.loads(line)["type"] == "message":
                break
        reactions_read_by_the_first_message = sum("chat_reaction" in q["sql"] for q in queries.captured_queries)
        rest = [json.loads(line)["type"] for line in lines]
    # The reactions (and follows and files) of the 10 messages are read per chunk of 3, each chunk's once its messages are reached.
    assert reactions_read_by_the_first_message == 1
    assert sum("chat_reaction" in q["sql"] for q in queries.captured_queries) == 4
    assert sum("chat_threadfollow" in q["sql"] for q in queries.captured_queries) == 4
    assert sum("chat_attachment" in q["sql"] for q in queries.captured_queries) == 4
    hanging = ("chat_reaction", "chat_threadfollow", "chat_attachment")
    assert sum("chat_message" in q["sql"] and not any(t in q["sql"] for t in hanging)
               for q in queries.captured_queries) == 1
    assert rest[:2] == ["reaction", "message"] and rest.count("message") == 9 and rest[-1] == "end"


def test_the_import_stores_each_batch_before_it_reads_on(chat):
    exported = list(export.export_lines())
    flush()
    stored_when_read = []

    def lines():
        for line in exported:
            stored_when_read.append(Message.objects.count())
            yield line.encode()

    export.import_lines(lines(), batch_size=3)
    # Messages were in the database before the last lines were read: the file is never held whole.
    assert 0 < stored_when_read[-2] < 9


SEED = """
from django.contrib.auth import get_user_model
from django.contrib.auth.hashers import make_password
from chat.domain import services
from chat.domain.models import Membership, Room
User = get_user_model()
password = make_password("pw")
User.objects.bulk_create([User(username=f"user{n:04}", password=password) for n in range(1500)])
room, _ = services.room_create(slug="big", user=User.objects.get(username="user0000"))
Membership.objects.bulk_create([Membership(room=room, user=user) for user in User.objects.exclude(pk=room.created_by_id)])
services.message_create_many([{"room": room, "author": room.created_by, "body": f"message {n}"} for n in range(20)])
"""
WRITE = """
from chat.domain import services
from chat.domain.models import Message, Room
room = Room.objects.get(slug="big")
last = Message.objects.get(room=room, seq=room.last_seq)
services.reaction_add(room=room, actor=room.created_by, message_id=last.pk, emoji="\U0001f440")
services.message_create(room=room, author=room.created_by, body="after the snapshot")
services.room_create(slug="later", user=room.created_by)
"""


@pytest.mark.timeout(180)
@pytest.mark.django_db
def test_an_export_is_one_snapshot_and_lets_the_chat_write_meanwhile(tmp_path):
    with database_migrated(tmp_path, f"chat_export_{os.getpid()}") as url:
        env = project_env(DATABASE_URL=url)
        manage("shell", "-c", SEED, env=env)
        errors = tmp_path / "export.err"
        with errors.open("wb") as stderr:
            exporting = subprocess.Popen(
                [sys.executable, "manage.py", "chat_export"], cwd=PROJECT_DIR, env=env, stdout=subprocess.PIPE,
                stderr=stderr,
            )
        try:
            # The export has begun and waits on the full pipe, among its 1,500 user lines (about 300 KiB).
            head = [exporting.stdout.readline()]
            assert json.loads(head[0])["type"] == "format"
            # On SQLite this would wait for the write lock, and fail, if the export held it.
            manage("shell", "-c", WRITE, env=env)
            # Read through the pipe's buffer, which already holds more than the line read.
            exported = exporting.stdout.read()
            exporting.wait(timeout=120)
        finally:
            exporting.kill()
            exporting.wait()
        assert exporting.returncode == 0, errors.read_text()
    lines = [line.decode() for line in head + exported.splitlines(keepends=True)]

    kinds = [json.loads(line)["type"] for line in lines]
    assert kinds.count("user") == 1500 and kinds.count("room") == 1 and kinds.count("message") == 20
    assert "reaction" not in kinds
    assert export.import_lines(as_file(lines))["membership"] == 1500
    assert Room.objects.get().last_seq == 20
