"""Querysets compiled once: the same rows as the ORM gives, for each call's values, on the caller's connection."""
import gc
import threading

import pytest
from django.db import connection
from django.db.models import Count
from django.test.utils import CaptureQueriesContext

from chat.domain import services
from chat.domain.models import Membership, Message
from chat.platform.prepared import ID, NUMBER, TEXT, Prepared


@pytest.fixture
def rooms(make_user):
    ada, bob = make_user("ada"), make_user("bob")
    first, _ = services.room_create(slug="first", user=ada)
    second, _ = services.room_create(slug="second", user=bob)
    services.room_join(slug="first", user=bob)
    for n in range(3):
        services.message_create(room=first, author=ada, body=f"first {n}")
    services.message_create(room=second, author=bob, body="second 0")
    return ada, bob, first, second


def test_each_call_gets_the_rows_of_its_own_values(rooms):
    ada, bob, first, second = rooms
    room_ids = Prepared(lambda user_id: Membership.objects.filter(user_id=user_id).values_list("room_id", flat=True),
                        user_id=ID)
    assert sorted(room_ids(user_id=bob.pk)) == sorted([first.pk, second.pk])
    assert room_ids(user_id=ada.pk) == [first.pk]
    assert room_ids(user_id=0) == []


def test_models_come_with_their_related_rows_and_annotations_in_one_query(rooms):
    ada, _, first, _ = rooms
    messages = Prepared(
        lambda slug, limit: Message.objects.filter(room__slug=slug).select_related("author", "room")
        .annotate(reactions_count=Count("reaction_set")).order_by("-seq")[:limit],
        slug=TEXT,
    )
    messages(slug="second", limit=1)  # compiled
    with CaptureQueriesContext(connection) as queries:
        page = messages(slug="first", limit=2)
        assert [(m.seq, m.body, m.author.username, m.room.slug, m.reactions_count) for m in page] == [
            (3, "first 2", "ada", "first", 0), (2, "first 1", "ada", "first", 0),
        ]
    assert len(queries) == 1
    assert page == list(Message.objects.filter(room=first).order_by("-seq")[:2])


def test_a_number_on_a_big_positive_field_takes_each_calls_value(rooms):
    _, _, first, _ = rooms
    after = Prepared(lambda cseq: Message.objects.filter(cseq__gt=cseq).values_list("body", flat=True).order_by("cseq"),
                     cseq=NUMBER)
    assert after(cseq=2) == ["first 2"]  # cseqs count per room: second's message is its 1
    assert sorted(after(cseq=0)) == ["first 0", "first 1", "first 2", "second 0"]


def test_a_shape_is_compiled_once_and_each_shape_apart(rooms):
    _, _, first, _ = rooms
    built = []

    def build(room_id, limit):
        built.append(limit)
        return Message.objects.filter(room_id=room_id).order_by("seq").values_list("seq", flat=True)[:limit]

    latest = Prepared(build, room_id=ID)
    assert latest(room_id=first.pk, limit=2) == [1, 2]
    assert latest(room_id=first.pk, limit=2) == [1, 2]
    assert latest(room_id=first.pk, limit=3) == [1, 2, 3]
    assert built == [2, 3]


def test_a_marker_not_found_exactly_once_among_the_parameters_is_refused(rooms):
    twice = Prepared(lambda user_id: Membership.objects.filter(user_id=user_id, room_id=user_id), user_id=ID)
    with pytest.raises(ValueError, match="'user_id' is 2 times"):
        twice(user_id=1)
    absent = Prepared(lambda user_id: Membership.objects.all(), user_id=ID)
    with pytest.raises(ValueError, match="'user_id' is 0 times"):
        absent(user_id=1)
    # Django leaves out a condition that always holds: cseq is a positive field.
    dropped = Prepared(lambda after: Message.objects.filter(cseq__gt=after), after=-2)
    with pytest.raises(ValueError, match="'after' is 0 times"):
        dropped(after=5)


@pytest.mark.django_db(transaction=True)
def test_a_call_from_another_thread_runs_on_that_threads_connection(make_user):
    ada = make_user("ada")
    services.room_create(slug="elsewhere", user=ada)
    slugs = Prepared(lambda user_id: Membership.objects.filter(user_id=user_id).values_list("room__slug", flat=True),
                     user_id=ID)
    assert slugs(user_id=ada.pk) == ["elsewhere"]  # compiled on this thread's connection
    seen = {}

    def other():
        seen["rows"] = slugs(user_id=ada.pk)
        seen["connection"] = connection.connection
        connection.close()

    thread = threading.Thread(target=other)
    thread.start()
    thread.join()
    assert seen["rows"] == ["elsewhere"]
    assert seen["connection"] is not connection.connection


def test_a_call_leaves_nothing_for_the_garbage_collector(rooms):
    ada, _, _, _ = rooms
    memberships = Prepared(lambda user_id: Membership.objects.filter(user_id=user_id).select_related("room"), user_id=ID)
    memberships(user_id=ada.pk)  # compiled
    gc.collect()
    gc.disable()
    try:
        for _ in range(10):
            memberships(user_id=ada.pk)
        # A socket's reads must go with their last reference: cycles wait for a full collection, and piled up.
        assert gc.collect() == 0
    finally:
        gc.enable()
