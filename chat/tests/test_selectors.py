"""Reads: rooms as a user may see them, history pages, the change feed and the public room list."""
import pytest
from django.core.exceptions import ObjectDoesNotExist, PermissionDenied, ValidationError
from django.db import connection
from django.test.utils import CaptureQueriesContext

from chat.domain import selectors, services
from chat.domain.models import Membership, Message, Room
from chat.realtime import protocol


@pytest.fixture
def room_with_messages(make_user):
    alice = make_user("alice")
    room, _ = services.room_create(slug="lobby", user=alice)
    for i in range(1, 8):
        services.message_create(room=room, author=alice, body=f"m{i}")
    return room


def seqs(page):
    messages, has_more = page
    return [m.seq for m in messages], has_more


def test_latest_page_is_oldest_first(room_with_messages):
    assert seqs(selectors.message_list(room=room_with_messages, limit=3)) == ([5, 6, 7], True)
    assert seqs(selectors.message_list(room=room_with_messages, limit=7)) == ([1, 2, 3, 4, 5, 6, 7], False)


def test_before_and_after_pages(room_with_messages):
    assert seqs(selectors.message_list(room=room_with_messages, before=5, limit=2)) == ([3, 4], True)
    assert seqs(selectors.message_list(room=room_with_messages, before=3, limit=2)) == ([1, 2], False)
    assert seqs(selectors.message_list(room=room_with_messages, after=2, limit=2)) == ([3, 4], True)
    assert seqs(selectors.message_list(room=room_with_messages, after=5, limit=2)) == ([6, 7], False)
    assert seqs(selectors.message_list(room=room_with_messages, after=7)) == ([], False)


def test_deleted_messages_are_left_out(room_with_messages):
    Message.objects.filter(seq=6).update(is_deleted=True)
    assert seqs(selectors.message_list(room=room_with_messages, after=4)) == ([5, 7], False)


def cseqs(page):
    messages, has_more = page
    return [m.cseq for m in messages], has_more


def changes(page):
    messages, has_more = page
    return [(m.seq, m.cseq, m.is_deleted) for m in messages], has_more


def test_change_list_gives_edits_and_deletions_in_cseq_order(room_with_messages):
    room, alice = room_with_messages, room_with_messages.created_by
    by_seq = dict(Message.objects.values_list("seq", "pk"))
    services.message_edit(room=room, actor=alice, message_id=by_seq[6], body="six")
    services.message_delete(room=room, actor=alice, message_id=by_seq[2])
    services.message_edit(room=room, actor=alice, message_id=by_seq[4], body="four")
    assert changes(selectors.change_list(room=room, after=7)) == ([(6, 8, False), (2, 9, True), (4, 10, False)], False)
    assert selectors.room_last_cseq(room) == 10


def test_change_list_pages_with_has_more(room_with_messages):
    room, alice = room_with_messages, room_with_messages.created_by
    services.message_delete(room=room, actor=alice, message_id=Message.objects.get(seq=3).pk)
    assert cseqs(selectors.change_list(room=room, after=0, limit=3)) == ([1, 2, 4], True)
    assert cseqs(selectors.change_list(room=room, after=4, limit=3)) == ([5, 6, 7], True)
    assert cseqs(selectors.change_list(room=room, after=7, limit=3)) == ([8], False)
    assert selectors.change_list(room=room, after=8, limit=3) == ([], False)


def test_a_change_page_read_again_before_any_change_comes_from_memory_and_after_one_from_the_database(
    room_with_messages,
):
    room, alice = room_with_messages, room_with_messages.created_by
    first = selectors.change_list(room=room, after=3, limit=3)
    with CaptureQueriesContext(connection) as again:
        assert selectors.change_list(room=room, after=3, limit=3) == first
    assert not any("chat_message" in query["sql"] for query in again.captured_queries)
    # An edit moves the message to the room's next cseq: the same request now reads it where it went.
    services.message_edit(room=room, actor=alice, message_id=Message.objects.get(seq=5).pk, body="five")
    assert cseqs(selectors.change_list(room=room, after=3, limit=3)) == ([4, 6, 7], True)
    page, _ = selectors.change_list(room=room, after=7, limit=3)
    assert [(change.cseq, change.body) for change in page] == [(8, "five")]


def client_state(room):
    """Return what a client that fetches the room now holds: the wire form of each message, by id."""
    messages, has_more = selectors.message_list(room=room, limit=1000)
    assert not has_more
    return {data["id"]: data for data in map(protocol.message_data, messages)}


def apply_changes(state, *, room, after, limit):
    """Apply the room's change feed after cseq `after` to a client's state, page by page; return the last cseq seen."""
    has_more = True
    while has_more:
        messages, has_more = selectors.change_list(room=room, after=after, limit=limit)
        for message in messages:
            if message.is_deleted:
                state.pop(message.id, None)
            else:
                state[message.id] = protocol.message_data(message)
            after = message.cseq
    return after


@pytest.mark.parametrize("limit", [1, 2, 50])
def test_a_stale_state_with_the_change_feed_applied_equals_a_fresh_one(room_with_messages, limit):
    room, alice = room_with_messages, room_with_messages.created_by
    old = dict(Message.objects.values_list("seq", "pk"))
    # The cseq is read before the messages: a change between the two reads is then applied twice, never missed.
    snapshot_cseq = selectors.room_last_cseq(room)
    stale = client_state(room)

    def send(body):
        return services.message_create(room=room, author=alice, body=body)[0].pk

    send("new one")
    send("new two")
    services.message_edit(room=room, actor=alice, message_id=old[2], body="old, edited")
    services.message_delete(room=room, actor=alice, message_id=old[3])
    services.message_edit(room=room, actor=alice, message_id=old[5], body="edited, then deleted")
    services.message_delete(room=room, actor=alice, message_id=old[5])
    services.message_edit(room=room, actor=alice, message_id=send("new"), body="new, edited")
    services.message_delete(room=room, actor=alice, message_id=send("new, deleted"))

    fresh = client_state(room)
    assert stale != fresh
    assert apply_changes(stale, room=room, after=snapshot_cseq, limit=limit) == selectors.room_last_cseq(room)
    assert stale == fresh


def test_public_rooms_carry_message_counts(room_with_messages, make_user):
    services.room_create(slug="quiet", user=make_user())
    rooms = {room.slug: room for room in selectors.room_list_public()}
    assert rooms["lobby"].message_count == 7 and rooms["quiet"].message_count == 0
    assert list(rooms) == ["lobby", "quiet"]


def test_room_get_for_user_reads_without_joining(make_user):
    alice, bob = make_user("alice"), make_user("bob")
    room, membership = services.room_create(slug="lobby", user=alice)
    assert selectors.room_get_for_user(slug="lobby", user=alice) == (room, membership)
    assert selectors.room_get_for_user(slug="lobby", user=bob) == (room, None)
    assert not Membership.objects.filter(user=bob).exists()


def test_room_get_for_user_refuses(make_user):
    alice, bob = make_user("alice"), make_user("bob")
    services.room_create(slug="secret", user=alice, private=True)
    with pytest.raises(PermissionDenied, match="This room is private."):
        selectors.room_get_for_user(slug="secret", user=bob)
    with pytest.raises(Room.DoesNotExist):
        selectors.room_get_for_user(slug="nowhere", user=bob)
    with pytest.raises(ValidationError):
        selectors.room_get_for_user(slug="No Way", user=bob)
    assert not Room.objects.filter(slug="nowhere").exists()


def test_room_get_direct_finds_but_never_opens(make_user):
    alice, bob = make_user("alice"), make_user("bob")
    assert selectors.room_get_direct(user=alice, username="bob") is None
    room = services.room_open_direct(user=bob, username="alice")
    assert selectors.room_get_direct(user=alice, username="bob") == room
    with pytest.raises(ObjectDoesNotExist):
        selectors.room_get_direct(user=alice, username="nobody")


# Its own transaction: on PostgreSQL the view sets the snapshot's isolation, which must come first.
@pytest.mark.django_db(transaction=True)
def test_a_room_view_shows_the_name_and_topic_of_its_snapshot(room_with_messages, make_user):
    loaded = Room.objects.get(pk=room_with_messages.pk)
    services.room_update(room=room_with_messages, actor=room_with_messages.created_by, name="Lobby", topic="hi")
    cseq, _, _ = selectors.room_view(room=loaded)
    assert (loaded.name, loaded.topic, cseq) == ("Lobby", "hi", Room.objects.get(pk=loaded.pk).changed_cseq)
