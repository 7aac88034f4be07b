"""Threads: replies take the room's numbers, stay out of the room unless also sent there, and notify followers."""
import pytest
from django.core.exceptions import ValidationError

from chat.domain import events, selectors, services, threads
from chat.domain.models import Message, ThreadFollow


@pytest.fixture
def lobby(make_user):
    alice, bob, carol = (make_user(name) for name in ("alice", "bob", "carol"))
    room, _ = services.room_create(slug="lobby", user=alice)
    for user in (bob, carol):
        services.room_join(slug="lobby", user=user)
    parent, _ = services.message_create(room=room, author=alice, body="lunch?")
    return room, parent, alice, bob, carol


def reply(room, author, parent, body, **fields):
    return threads.reply_create(room=room, author=author, parent_id=parent.pk, body=body, **fields)[0]


def test_replies_take_the_rooms_numbers_and_the_parent_counts_them_under_a_new_cseq(lobby):
    room, parent, alice, bob, _ = lobby
    first = reply(room, bob, parent, "yes")
    second = reply(room, alice, parent, "12:30")
    parent.refresh_from_db()
    room.refresh_from_db()
    assert (first.seq, second.seq) == (2, 3) and first.parent_id == parent.pk
    assert (parent.reply_count, parent.last_reply_at) == (2, second.created_at)
    # Each reply is one change and the parent's new summary another: gap-free, in order.
    assert (first.cseq, second.cseq, parent.cseq, room.last_cseq) == (2, 4, 5, 5)
    changes, _ = selectors.change_list(room=room, after=1)
    assert [(c.pk, c.cseq) for c in changes] == [(first.pk, 2), (second.pk, 4), (parent.pk, 5)]


def test_the_room_shows_and_counts_only_replies_also_sent_to_it(lobby):
    room, parent, alice, bob, carol = lobby
    reply(room, bob, parent, "in the thread only")
    reply(room, bob, parent, "in the room too", also_in_room=True)
    messages, _ = selectors.message_list(room=room)
    assert [m.body for m in messages] == ["lunch?", "in the room too"]
    replies, _ = selectors.message_list(room=room, thread=parent.pk)
    assert [m.body for m in replies] == ["in the thread only", "in the room too"]
    assert selectors.room_unread_count(room=room, user=carol, after=0) == 2
    assert {m.room.slug: m.unread for m in selectors.room_list_for_user(carol)} == {"lobby": 2}


def test_participants_and_followers_are_told_of_each_reply_but_not_its_author(lobby, sent):
    room, parent, alice, bob, carol = lobby
    reply(room, bob, parent, "me")
    told = [(kind, data) for kind, data in sent if kind == events.NOTIFICATION]
    assert [(data["reason"], data["message"]["body"]) for _, data in told] == [("thread", "me")]  # alice only
    threads.thread_follow(room=room, user=carol, message_id=parent.pk)
    sent.clear()
    reply(room, alice, parent, "12:30")
    assert sorted(data["message"]["author"] for kind, data in sent if kind == events.NOTIFICATION) == ["alice"] * 2
    assert {user for user in ThreadFollow.objects.values_list("user__username", flat=True)} == {"alice", "bob", "carol"}
    threads.thread_follow(room=room, user=carol, message_id=parent.pk, follow=False)
    sent.clear()
    reply(room, bob, parent, "see you")
    assert len([kind for kind, _ in sent if kind == events.NOTIFICATION]) == 1  # alice
    # A reply in the thread only is no activity for the sidebars.
    assert events.MESSAGE in [kind for kind, _ in sent] and "room_activity" not in [kind for kind, _ in sent]


def test_a_reply_needs_a_parent_in_the_room_that_is_not_a_reply_itself(lobby, make_user):
    room, parent, alice, bob, _ = lobby
    first = reply(room, bob, parent, "yes")
    with pytest.raises(ValidationError):
        reply(room, alice, first, "nested")
    other, _ = services.room_create(slug="other", user=alice)
    with pytest.raises(Message.DoesNotExist):
        threads.reply_create(room=other, author=alice, parent_id=parent.pk, body="elsewhere")
    services.message_delete(room=room, actor=alice, message_id=parent.pk)
    with pytest.raises(Message.DoesNotExist):
        reply(room, bob, parent, "too late")
    assert Message.objects.filter(parent__isnull=False).count() == 1


def test_a_repeated_client_id_stores_the_reply_once(lobby):
    room, parent, alice, bob, _ = lobby
    first, created = threads.reply_create(room=room, author=bob, parent_id=parent.pk, body="yes", client_id="c1")
    again, created_again = threads.reply_create(room=room, author=bob, parent_id=parent.pk, body="yes", client_id="c1")
    assert created and not created_again and again.pk == first.pk
    parent.refresh_from_db()
    assert parent.reply_count == 1


def test_an_archived_room_takes_no_reply(lobby):
    room, parent, alice, bob, _ = lobby
    services.room_archive(room=room, actor=alice)
    with pytest.raises(services.RoomArchived):
        reply(room, bob, parent, "late")
    parent.refresh_from_db()
    assert parent.reply_count == 0 and not Message.objects.filter(parent=parent).exists()
