"""Per-room seq and cseq under many concurrent senders and editors on a real PostgreSQL: unique and gap-free."""
import threading

import pytest
from django.db import connection, connections, transaction

from chat.domain import selectors, services
from chat.domain.models import Message, Room

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.timeout(120)]

SENDERS = 12
MESSAGES_EACH = 25


@pytest.fixture(autouse=True)
def require_postgresql():
    if connection.vendor != "postgresql":
        pytest.skip("seq concurrency is tested on PostgreSQL: set DATABASE_URL=postgres://... (.ci/run does)")


def send_concurrently(rooms, users):
    """Have every user send MESSAGES_EACH messages to every room at once, each in its own thread and connection."""
    def send(user, i):
        for room in rooms:
            services.message_create(room=room, author=user, body=f"{user.username} {i}", client_id=f"{i}")

    return run_concurrently(users, send)


def run_concurrently(users, send):
    """Call send(user, i) for i in range(MESSAGES_EACH), each user in its own thread and connection, all at once."""
    start = threading.Barrier(len(users))
    errors = []

    def sender(user):
        try:
            start.wait()
            for i in range(MESSAGES_EACH):
                send(user, i)
        except Exception as error:  # noqa: BLE001 - reported by the test below
            errors.append(error)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=sender, args=(user,)) for user in users]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return errors


def test_concurrent_senders_get_unique_gap_free_seqs(make_user):
    users = [make_user() for _ in range(SENDERS)]
    rooms = [Room.objects.create(slug=slug, name=slug) for slug in ("busy", "also-busy")]

    assert send_concurrently(rooms, users) == []

    total = SENDERS * MESSAGES_EACH
    for room in rooms:
        seqs = list(Message.objects.filter(room=room).order_by("seq").values_list("seq", flat=True))
        assert seqs == list(range(1, total + 1))
        assert Room.objects.get(pk=room.pk).last_seq == total
        # Each sender's own messages keep the order it sent them in.
        for user in users:
            bodies = list(Message.objects.filter(room=room, author=user).order_by("seq").values_list("body", flat=True))
            assert bodies == [f"{user.username} {i}" for i in range(MESSAGES_EACH)]


def test_concurrent_batches_over_the_same_rooms_in_any_order_get_unique_gap_free_seqs(make_user):
    users = [make_user() for _ in range(SENDERS)]
    rooms = [Room.objects.create(slug=f"batch-{i}", name=f"batch-{i}") for i in range(4)]

    def send(user, i):
        # Each sender lists the rooms in another order, and twice: batches overlap in every way.
        turn = int(user.username.removeprefix("user")) % len(rooms)
        order = rooms[turn:] + rooms[:turn]
        if turn % 2:
            order.reverse()
        services.message_create_many(
            [{"room": room, "author": user, "body": f"{user.username} {i}", "client_id": None} for room in order * 2]
        )

    assert run_concurrently(users, send) == []

    total = SENDERS * MESSAGES_EACH * 2
    for room in rooms:
        seqs = list(Message.objects.filter(room=room).order_by("seq").values_list("seq", flat=True))
        assert seqs == list(range(1, total + 1))
        assert Room.objects.get(pk=room.pk).last_seq == total


def test_a_retry_outside_a_transaction_stores_nothing_and_leaves_no_gap(make_user):
    user = make_user()
    room = Room.objects.create(slug="retry", name="retry")

    first, _ = services.message_create(room=room, author=user, body="first", client_id="c1")
    again, created = services.message_create(room=room, author=user, body="changed", client_id="c1")
    after, _ = services.message_create(room=room, author=user, body="next")

    assert (created, again.pk, again.body) == (False, first.pk, "first")
    assert (first.seq, after.seq) == (1, 2)
    assert Room.objects.get(pk=room.pk).last_seq == 2


def room_snapshot(room):
    """Return (the room's last cseq, {message id: (cseq, body)}) as one consistent read."""
    with transaction.atomic():
        # Under READ COMMITTED each statement would see its own snapshot.
        with connection.cursor() as cursor:
            cursor.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
        last_cseq = selectors.room_last_cseq(room)
        messages, _ = selectors.change_list(room=room, after=0, limit=10**6)
    return last_cseq, {m.pk: (m.cseq, m.body) for m in messages}


def test_concurrent_creates_and_edits_get_gap_free_cseqs_in_commit_order(make_user):
    users = [make_user() for _ in range(SENDERS)]
    room = Room.objects.create(slug="changes", name="changes")
    changes = []  # (cseq, message id, body, user id) of each change, as the service returned it
    sent = {user.pk: [] for user in users}

    def change(user, i):
        message, _ = services.message_create(room=room, author=user, body=f"{user.username} {i}")
        sent[user.pk].append(message.pk)
        changes.append((message.cseq, message.pk, message.body, user.pk))
        # This user's message from half its sends ago, so that edits of old and new messages interleave with creates.
        edited = services.message_edit(room=room, actor=user, message_id=sent[user.pk][i // 2], body=f"edit {i}")
        changes.append((edited.cseq, edited.pk, edited.body, user.pk))

    done, snapshots = threading.Event(), []

    def watch():
        try:
            while not done.is_set():
                snapshots.append(room_snapshot(room))
        finally:
            connections.close_all()

    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        assert run_concurrently(users, change) == []
    finally:
        done.set()
        watcher.join()
    snapshots.append(room_snapshot(room))

    total = SENDERS * MESSAGES_EACH * 2
    assert sorted(cseq for cseq, *_ in changes) == list(range(1, total + 1))
    assert selectors.room_last_cseq(room) == total
    for user in users:
        cseqs = [cseq for cseq, *_, user_id in changes if user_id == user.pk]
        assert cseqs == sorted(cseqs)
    # Commit order is cseq order: whatever a reader sees is exactly the changes up to the last cseq it sees.
    assert len(snapshots) > 2
    for last_cseq, seen in snapshots:
        expected = {}
        for cseq, message_id, body, _ in sorted(changes):
            if cseq <= last_cseq:
                expected[message_id] = (cseq, body)
        assert seen == expected
