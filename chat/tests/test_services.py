"""Writes: room opening and message storage, seq allocation and idempotency."""
import pytest
from django.core.exceptions import ValidationError
from django.db import IntegrityError

from chat.domain import events, services
from chat.domain.models import Membership, Message, Room


@pytest.fixture
def alice(make_user):
    return make_user("alice")


def kinds(sent, *wanted):
    return [kind for kind, _ in sent if kind in wanted]


def test_room_create_creates_a_public_room_once_and_joins(alice, make_user):
    room, _ = services.room_create(slug="lobby", user=alice)
    again, _ = services.room_create(slug="lobby", user=make_user("bob"))
    assert again.pk == room.pk and not room.is_private and room.name == "lobby"
    assert Room.objects.count() == 1
    assert Membership.objects.filter(room=room).count() == 2


@pytest.mark.parametrize("slug", ["", "Lobby", "a b", "x" * 51, "dé", "a/b", "a.b"])
@pytest.mark.parametrize("change", ["room_create", "room_join"])
def test_room_create_and_join_refuse_invalid_slugs(alice, slug, change):
    with pytest.raises(ValidationError):
        getattr(services, change)(slug=slug, user=alice)
    assert not Room.objects.exists()


def test_room_join_joins_an_existing_public_room_once(alice, bob):
    room, _ = services.room_create(slug="lobby", user=alice)
    joined, membership = services.room_join(slug="lobby", user=bob)
    assert joined == room and membership.user == bob
    assert services.room_join(slug="lobby", user=bob)[1] == membership
    assert Membership.objects.filter(room=room).count() == 2


def test_room_join_never_creates_a_room(alice):
    with pytest.raises(Room.DoesNotExist):
        services.room_join(slug="lobby", user=alice)
    assert not Room.objects.exists() and not Membership.objects.exists()


def test_room_join_admits_only_the_members_of_a_private_room(alice, bob):
    from django.core.exceptions import PermissionDenied

    room, _ = services.room_create(slug="secret", user=alice, private=True)
    with pytest.raises(PermissionDenied):
        services.room_join(slug="secret", user=bob)
    with pytest.raises(PermissionDenied):
        services.room_create(slug="secret", user=bob)
    assert Membership.objects.filter(room=room).count() == 1
    services.membership_add(room=room, actor=alice, username="bob")
    assert services.room_join(slug="secret", user=bob)[0] == room


@pytest.mark.parametrize("name,slug", [("Design Team", "design-team"), ("  ops_2 ", "ops_2"), ("x" * 50, "x" * 50)])
def test_room_slug_from_name(name, slug):
    assert services.room_slug_from_name(name) == slug


@pytest.mark.parametrize("name", ["", "   ", "café", "x" * 51, "a!"])
def test_room_slug_from_name_refuses(name):
    with pytest.raises(ValidationError):
        services.room_slug_from_name(name)


def test_message_create_allocates_gap_free_seq_per_room(alice, sent):
    lobby, _ = services.room_create(slug="lobby", user=alice)
    other, _ = services.room_create(slug="other", user=alice)
    seqs = [services.message_create(room=room, author=alice, body="x")[0].seq for room in (lobby, other, lobby)]
    assert seqs == [1, 1, 2]
    # Each message goes to its room, and its activity to the sidebars.
    assert kinds(sent, "message") == ["message"] * 3 and kinds(sent, "room_activity") == ["room_activity"] * 3
    lobby.refresh_from_db()
    assert lobby.last_seq == 2 and lobby.last_message_at is not None


def test_message_create_with_a_known_client_id_returns_the_original(alice, sent):
    room, _ = services.room_create(slug="lobby", user=alice)
    first, created = services.message_create(room=room, author=alice, body="hello", client_id="c1")
    again, created_again = services.message_create(room=room, author=alice, body="changed", client_id="c1")
    assert created and not created_again
    assert again.pk == first.pk and again.body == "hello"
    assert Message.objects.count() == 1 and kinds(sent, "message") == ["message"]
    room.refresh_from_db()
    assert (room.last_seq, room.last_cseq) == (1, 1)


def test_message_create_many_gives_each_room_its_next_seqs_in_list_order(alice, sent):
    lobby, _ = services.room_create(slug="lobby", user=alice)
    other, _ = services.room_create(slug="other", user=alice)
    services.message_create(room=other, author=alice, body="before")
    rooms = [lobby, other, lobby, lobby, other]
    del sent[:]
    messages = services.message_create_many(
        [{"room": room, "author": alice, "body": f"m{i}", "client_id": f"c{i}"} for i, room in enumerate(rooms)]
    )
    assert [(m.room_id, m.seq, m.body) for m in messages] == [
        (lobby.pk, 1, "m0"), (other.pk, 2, "m1"), (lobby.pk, 2, "m2"), (lobby.pk, 3, "m3"), (other.pk, 3, "m4"),
    ]
    # Each message has the id and seq the database holds, and one broadcast, in list order.
    stored = {m.pk: (m.room_id, m.seq, m.body) for m in Message.objects.filter(body__startswith="m")}
    assert stored == {m.pk: (m.room_id, m.seq, m.body) for m in messages}
    assert [data["message"]["body"] for kind, data in sent if kind == "message"] == [m.body for m in messages]
    assert [r.last_seq for r in Room.objects.order_by("pk")] == [3, 3]


def last_cseq(room):
    return Room.objects.get(pk=room.pk).last_cseq


def test_create_edit_and_delete_each_take_the_rooms_next_cseq(alice):
    room, _ = services.room_create(slug="lobby", user=alice)
    first, _ = services.message_create(room=room, author=alice, body="one")
    assert (first.cseq, last_cseq(room)) == (1, 1)
    second, _ = services.message_create(room=room, author=alice, body="two")
    assert (second.cseq, last_cseq(room)) == (2, 2)
    edited = services.message_edit(room=room, actor=alice, message_id=first.pk, body="one!")
    assert (edited.cseq, last_cseq(room)) == (3, 3)
    deleted = services.message_delete(room=room, actor=alice, message_id=second.pk)
    assert (deleted.cseq, last_cseq(room)) == (4, 4)
    # The stored rows carry their latest change; edits and deletes take no seq.
    assert dict(Message.objects.values_list("pk", "cseq")) == {first.pk: 3, second.pk: 4}
    assert Room.objects.get(pk=room.pk).last_seq == 2


def test_message_create_many_gives_each_room_contiguous_cseqs(alice):
    lobby, _ = services.room_create(slug="lobby", user=alice)
    other, _ = services.room_create(slug="other", user=alice)
    before, _ = services.message_create(room=other, author=alice, body="before")
    services.message_edit(room=other, actor=alice, message_id=before.pk, body="edited")  # other: seq 1, cseq 2
    rooms = [lobby, other, lobby, lobby, other]
    messages = services.message_create_many(
        [{"room": room, "author": alice, "body": f"m{i}", "client_id": None} for i, room in enumerate(rooms)]
    )
    assert [(m.room_id, m.seq, m.cseq) for m in messages] == [
        (lobby.pk, 1, 1), (other.pk, 2, 3), (lobby.pk, 2, 2), (lobby.pk, 3, 3), (other.pk, 3, 4),
    ]
    stored = dict(Message.objects.filter(body__startswith="m").values_list("pk", "cseq"))
    assert stored == {m.pk: m.cseq for m in messages}
    assert [r.last_cseq for r in Room.objects.order_by("pk")] == [3, 4]


def test_refused_edits_and_deletes_allocate_no_cseq(alice, bob):
    from django.core.exceptions import PermissionDenied

    room, _ = services.room_create(slug="lobby", user=alice)
    services.room_join(slug="lobby", user=bob)
    message, _ = services.message_create(room=room, author=alice, body="mine")
    with pytest.raises(PermissionDenied):
        services.message_edit(room=room, actor=bob, message_id=message.pk, body="not yours")
    with pytest.raises(PermissionDenied):
        services.message_delete(room=room, actor=bob, message_id=message.pk)
    with pytest.raises(Message.DoesNotExist):
        services.message_delete(room=room, actor=alice, message_id=message.pk + 1)
    assert last_cseq(room) == 1
    assert Message.objects.get().cseq == 1


def test_reactions_keep_one_per_user_and_emoji_and_refuse_what_they_cannot_take(alice, bob, make_user, sent):
    from django.core.exceptions import PermissionDenied

    room, _ = services.room_create(slug="lobby", user=alice)
    services.room_join(slug="lobby", user=bob)
    message, _ = services.message_create(room=room, author=alice, body="vote")
    for actor in (bob, alice, bob):
        services.reaction_add(room=room, actor=actor, message_id=message.pk, emoji="👍")
    services.reaction_remove(room=room, actor=alice, message_id=message.pk, emoji="🎉")  # not there: no change
    stored = Message.objects.get()
    assert stored.reactions == [{"emoji": "👍", "count": 2, "users": ["bob", "alice"]}]
    assert (stored.cseq, last_cseq(room)) == (3, 3)
    assert kinds(sent, events.MESSAGE_REACTIONS) == [events.MESSAGE_REACTIONS] * 2

    with pytest.raises(PermissionDenied):
        services.reaction_add(room=room, actor=make_user("carol"), message_id=message.pk, emoji="👍")
    with pytest.raises(ValidationError):
        services.reaction_add(room=room, actor=bob, message_id=message.pk, emoji="+1")
    for emoji in ["😀", "😁", "😂", "🤣", "😃", "😄", "😅", "😆", "😉", "😊",
                  "😋", "😎", "😍", "😘", "🥰", "😗", "😙", "🥲", "😚"]:
        services.reaction_add(room=room, actor=bob, message_id=message.pk, emoji=emoji)
    with pytest.raises(ValidationError):
        services.reaction_add(room=room, actor=bob, message_id=message.pk, emoji="🙂")
    services.message_delete(room=room, actor=alice, message_id=message.pk)
    with pytest.raises(Message.DoesNotExist):
        services.reaction_add(room=room, actor=bob, message_id=message.pk, emoji="👍")
    assert len(Message.objects.get().reactions) == services.MAX_REACTION_KINDS


def test_leaving_a_room_ends_the_membership_and_tells_the_user_but_not_for_a_dm_or_a_creator(alice, bob, sent):
    from django.core.exceptions import PermissionDenied

    room, _ = services.room_create(slug="lobby", user=alice)
    services.room_join(slug="lobby", user=bob)
    services.room_leave(room=room, user=bob)
    services.room_leave(room=room, user=bob)  # not a member any more: nothing happens
    assert not Membership.objects.filter(room=room, user=bob).exists()
    assert kinds(sent, events.ROOM_REMOVED) == [events.ROOM_REMOVED]
    secret, _ = services.room_create(slug="secret", user=alice, private=True)
    with pytest.raises(PermissionDenied):
        services.room_leave(room=secret, user=alice)
    direct = services.room_open_direct(user=alice, username="bob")
    with pytest.raises(ValidationError):
        services.room_leave(room=direct, user=alice)
    assert Membership.objects.filter(room__in=[secret, direct], user=alice).count() == 2


def test_message_create_many_with_a_repeated_client_id_stores_none(alice):
    room, _ = services.room_create(slug="lobby", user=alice)
    services.message_create(room=room, author=alice, body="first", client_id="c1")
    sends = [{"room": room, "author": alice, "body": body, "client_id": client_id}
             for body, client_id in [("new", "c2"), ("retry", "c1")]]
    with pytest.raises(IntegrityError):
        services.message_create_many(sends)
    assert list(Message.objects.values_list("body", flat=True)) == ["first"]
    room.refresh_from_db()
    assert room.last_seq == 1


@pytest.mark.django_db(transaction=True)
def test_broadcast_waits_for_commit(make_user):
    from asgiref.sync import async_to_sync
    from channels.layers import get_channel_layer
    from django.db import transaction

    from chat.realtime.broadcast import room_group

    alice = make_user("alice")
    room, _ = services.room_create(slug="lobby", user=alice)
    layer = get_channel_layer()
    channel = async_to_sync(layer.new_channel)()
    async_to_sync(layer.group_add)(room_group(room.pk), channel)
    with pytest.raises(RuntimeError):
        with transaction.atomic():
            services.message_create(room=room, author=alice, body="rolled back")
            raise RuntimeError
    services.message_create(room=room, author=alice, body="kept")
    event = async_to_sync(layer.receive)(channel)
    assert event["seq"] == 1 and event["data"]["message"]["body"] == "kept"
    assert Message.objects.get().body == "kept"


# Room life.


@pytest.fixture
def bob(make_user):
    return make_user("bob")


def test_private_room_admits_members_only(alice, bob, make_user):
    from django.core.exceptions import PermissionDenied

    room, membership = services.room_create(slug="secret", user=alice, private=True)
    assert room.is_private and membership.user == alice
    with pytest.raises(PermissionDenied):
        services.room_create(slug="secret", user=bob)
    services.membership_add(room=room, actor=alice, username="bob")
    assert services.room_create(slug="secret", user=bob)[0] == room


def test_only_the_creator_manages_members(alice, bob, make_user):
    from django.core.exceptions import PermissionDenied

    room, _ = services.room_create(slug="secret", user=alice, private=True)
    services.membership_add(room=room, actor=alice, username="bob")
    for change in (services.membership_add, services.membership_remove):
        with pytest.raises(PermissionDenied):
            change(room=room, actor=bob, username="alice")
    with pytest.raises(PermissionDenied):
        services.membership_remove(room=room, actor=alice, username="alice")
    assert Membership.objects.filter(room=room).count() == 2


def test_public_rooms_have_no_member_management(alice, bob):
    from django.core.exceptions import PermissionDenied

    room, _ = services.room_create(slug="lobby", user=alice)
    with pytest.raises(PermissionDenied):
        services.membership_add(room=room, actor=alice, username="bob")


def test_adding_an_unknown_user_changes_nothing(alice):
    from django.contrib.auth import get_user_model

    room, _ = services.room_create(slug="secret", user=alice, private=True)
    with pytest.raises(get_user_model().DoesNotExist):
        services.membership_add(room=room, actor=alice, username="nobody")
    assert Membership.objects.filter(room=room).count() == 1


def test_removal_tells_the_removed_users_sockets_after_commit(alice, bob, sent):
    room, _ = services.room_create(slug="secret", user=alice, private=True)
    services.membership_add(room=room, actor=alice, username="bob")
    assert sent[-1] == ("room_added", {"room": events.room_summary(room, bob), "room_id": room.pk, "added_by": "alice"})
    services.membership_remove(room=room, actor=alice, username="bob")
    assert sent[-1] == ("room_removed", {"room": "secret", "room_id": room.pk})
    assert not Membership.objects.filter(room=room, user=bob).exists()


def test_direct_room_is_created_once_for_both_orders(alice, bob):
    room = services.room_open_direct(user=alice, username="bob")
    assert services.room_open_direct(user=bob, username="alice") == room
    assert room.is_private and room.is_direct and room.slug == f"dm-{alice.pk}-{bob.pk}"
    assert set(room.memberships.values_list("user__username", flat=True)) == {"alice", "bob"}
    assert room.title_for(alice) == "bob" and room.title_for(bob) == "alice"


def test_direct_slugs_cannot_be_taken_by_public_rooms(alice):
    with pytest.raises(ValidationError):
        services.room_create(slug="dm-1-2", user=alice)
    assert not Room.objects.exists()


def test_read_marker_moves_forward_only_and_not_past_the_end(alice):
    room, membership = services.room_create(slug="lobby", user=alice)
    for _ in range(5):
        services.message_create(room=room, author=alice, body="x")
    for seq, expected in [(3, 3), (1, 3), (50, 5)]:
        services.membership_read(room=room, user=alice, seq=seq)
        membership.refresh_from_db()
        assert membership.last_read_seq == expected


def test_mentions_notify_members_other_than_the_author(alice, bob, make_user, sent):
    make_user("carol")  # not a member of the lobby
    room, _ = services.room_create(slug="lobby", user=alice)
    services.room_create(slug="lobby", user=bob)
    del sent[:]
    services.message_create(room=room, author=alice, body="@bob @carol @alice @nobody hi")
    # One notification (bob).
    assert [data["reason"] for kind, data in sent if kind == "notification"] == ["mention"]


def test_a_direct_message_notifies_the_other_member_only(alice, bob, sent):
    room = services.room_open_direct(user=alice, username="bob")
    assert kinds(sent, "room_added") == ["room_added"] * 2
    services.message_create(room=room, author=alice, body="plain hello")
    [(_, notice)] = [(kind, data) for kind, data in sent if kind == "notification"]
    assert notice["reason"] == "direct" and notice["message"]["body"] == "plain hello"


def test_a_read_marker_that_moves_tells_the_users_sockets_what_is_left_unread(alice, bob, sent):
    room, _ = services.room_create(slug="lobby", user=alice)
    services.room_join(slug="lobby", user=bob)
    for author in (alice, bob, alice, bob):
        services.message_create(room=room, author=author, body="x")
    services.membership_read(room=room, user=alice, seq=1)
    services.membership_read(room=room, user=alice, seq=1)  # no move: nothing sent
    # After seq 1, bob's seqs 2 and 4 are unread for alice; her own 3 is not.
    assert [data for kind, data in sent if kind == "room_read"] == [{"room": "lobby", "last_read_seq": 1, "unread": 2}]


def test_edit_and_delete_leave_other_rooms_messages_alone(alice):
    lobby, _ = services.room_create(slug="lobby", user=alice)
    other, _ = services.room_create(slug="other", user=alice)
    message, _ = services.message_create(room=other, author=alice, body="x")
    with pytest.raises(Message.DoesNotExist):
        services.message_edit(room=lobby, actor=alice, message_id=message.pk, body="y")
    with pytest.raises(Message.DoesNotExist):
        services.message_delete(room=lobby, actor=alice, message_id=message.pk)
    message.refresh_from_db()
    assert message.body == "x" and not message.is_deleted


def test_room_open_still_creates_or_joins(alice, bob):
    room, _ = services.room_open(slug="lobby", user=alice)
    assert services.room_open(slug="lobby", user=bob)[0] == room


@pytest.mark.parametrize(
    "body,expected",
    [
        ("@ocax look", {"OcaX"}),  # one member matches ignoring case
        ("@OCAX. look", {"OcaX"}),
        ("@Bob hi", {"Bob"}),  # an exact match wins over bob
        ("@BOB hi", set()),  # Bob and bob: ambiguous
        ("@alice hi", set()),  # the author
    ],
)
def test_mentions_match_members_ignoring_case_when_unambiguous(
    alice, make_user, monkeypatch, body, expected
):
    room, _ = services.room_create(slug="lobby", user=alice)
    users = {name: make_user(name) for name in ["OcaX", "Bob", "bob"]}
    for user in users.values():
        services.room_join(slug="lobby", user=user)
    mentioned = []
    monkeypatch.setattr(services.events, "user_mentioned", lambda user_id, message: mentioned.append(user_id))
    services.message_create(room=room, author=alice, body=body)
    assert set(mentioned) == {users[name].pk for name in expected}


# Archiving.


def test_only_the_creator_or_staff_archive_a_room_and_never_a_dm(alice, bob, make_user, sent):
    from django.core.exceptions import PermissionDenied

    room, _ = services.room_create(slug="lobby", user=alice)
    services.room_join(slug="lobby", user=bob)
    with pytest.raises(PermissionDenied):
        services.room_archive(room=room, actor=bob)
    assert not Room.objects.get().is_archived
    services.room_archive(room=room, actor=make_user("root", is_staff=True))
    room.refresh_from_db()
    assert room.is_archived and room.changed_cseq == room.last_cseq
    services.room_archive(room=room, actor=alice)  # archived already: nothing changes
    assert kinds(sent, events.ROOM_CHANGED) == [events.ROOM_CHANGED] * 2  # the room's and the sidebars'
    assert {data["archived"] for kind, data in sent if kind == events.ROOM_CHANGED} == {True}
    direct = services.room_open_direct(user=alice, username="bob")
    with pytest.raises(ValidationError):
        services.room_archive(room=direct, actor=alice)


def test_an_archived_room_refuses_every_change_and_keeps_its_history(alice, bob):
    room, _ = services.room_create(slug="lobby", user=alice)
    services.room_join(slug="lobby", user=bob)
    message, _ = services.message_create(room=room, author=alice, body="before")
    services.room_archive(room=room, actor=alice)
    room.refresh_from_db()
    before = (room.last_seq, room.last_cseq)
    changes = [
        lambda: services.message_create(room=room, author=bob, body="after"),
        lambda: services.message_create_many([{"room": room, "author": bob, "body": "after"}]),
        lambda: services.message_edit(room=room, actor=alice, message_id=message.pk, body="changed"),
        lambda: services.message_delete(room=room, actor=alice, message_id=message.pk),
        lambda: services.reaction_add(room=room, actor=bob, message_id=message.pk, emoji="👍"),
        lambda: services.room_update(room=room, actor=alice, topic="new topic"),
    ]
    for change in changes:
        with pytest.raises(services.RoomArchived):
            change()
    room.refresh_from_db()
    assert (room.last_seq, room.last_cseq, room.topic) == (*before, "")
    assert list(Message.objects.values_list("body", "is_deleted")) == [("before", False)]
    assert not Message.objects.get().reactions
    services.room_archive(room=room, actor=alice, archived=False)
    services.message_create(room=room, author=bob, body="after")
    assert Message.objects.count() == 2


def test_a_batch_with_an_archived_room_stores_the_other_rooms_messages(alice):
    from chat.realtime.batches import store_batch

    lobby, _ = services.room_create(slug="lobby", user=alice)
    old, _ = services.room_create(slug="old", user=alice)
    services.room_archive(room=old, actor=alice)
    batch = [(lambda: None, {"room": room, "author": alice, "body": body}, None)
             for room, body in [(lobby, "one"), (old, "refused"), (lobby, "two")]]
    results = store_batch(batch)
    assert isinstance(results[1], services.RoomArchived)
    assert [result[0].seq for result in (results[0], results[2])] == [1, 2]
    assert list(Message.objects.values_list("room__slug", "body")) == [("lobby", "one"), ("lobby", "two")]


def test_archived_rooms_leave_room_lists_and_come_back_to_members_when_unarchived(alice, bob, sent):
    from chat.domain import selectors

    room, _ = services.room_create(slug="lobby", user=alice)
    services.room_create(slug="other", user=bob)
    services.room_join(slug="lobby", user=bob)
    room = services.room_archive(room=room, actor=alice)
    assert [m.room.slug for m in selectors.room_list_for_user(bob)] == ["other"]
    assert selectors.room_summaries_for_user(bob, 10)[1] == 1
    assert [r.slug for r in selectors.room_list_public()] == ["other"]
    assert [r.slug for r in selectors.room_list_archived(bob)] == ["lobby"]
    changes, _ = selectors.change_list(room=room, after=0)
    assert changes[-1] == selectors.RoomChange(room.changed_cseq, "lobby", "", True)
    sent.clear()
    services.room_archive(room=room, actor=alice, archived=False)
    added = [data["room"]["room"] for kind, data in sent if kind == events.ROOM_ADDED]
    assert sorted(added) == ["lobby", "lobby"]
    assert [r.slug for r in selectors.room_list_archived(bob)] == []
