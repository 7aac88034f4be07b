"""Reads: rooms as a user may see them, history pages and the public room list."""
import pytest
from django.core.exceptions import ObjectDoesNotExist, PermissionDenied, ValidationError

from chat import selectors, services
from chat.models import Membership, Message, Room


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
