"""The chat socket through WebsocketCommunicator: handshake, send, history, resume, bad input."""
import json

import pytest
from channels.db import database_sync_to_async

from chat.domain import services
from chat.domain.models import Message, Room

pytestmark = [pytest.mark.django_db(transaction=True)]


@database_sync_to_async
def post(slug, author, count, prefix="m"):
    room, _ = services.room_open(slug=slug, user=author)
    return [services.message_create(room=room, author=author, body=f"{prefix}{i}")[0] for i in range(1, count + 1)]


@database_sync_to_async
def stored_count():
    return Message.objects.count()


async def refused(socket, error, code):
    """Assert that a socket was accepted only to say `error` and close with `code` (so the page can stop retrying)."""
    assert socket.connected
    assert (await socket.receive_json_from(timeout=5))["code"] == error
    assert await socket.receive_output(timeout=5) == {"type": "websocket.close", "code": code}
    socket.connected = False


async def test_anonymous_handshake_is_closed_with_4401(connect):
    socket = await connect(None, expect_welcome=False)
    await refused(socket, "forbidden", 4401)
    assert not await database_sync_to_async(Room.objects.exists)()


async def test_an_unknown_room_is_closed_with_4404_and_not_created(connect, make_user):
    user = await database_sync_to_async(make_user)()
    await refused(await connect(user, slug="typo", create=False, expect_welcome=False), "not_found", 4404)
    assert not await database_sync_to_async(Room.objects.filter(slug="typo").exists)()


@pytest.mark.parametrize("origin", ["http://evil.example", ""])
async def test_foreign_or_missing_origin_is_refused(connect, make_user, origin):
    user = await database_sync_to_async(make_user)()
    socket = await connect(user, origin=origin)
    assert not socket.connected


@pytest.mark.parametrize("slug", ["Upper", "a" * 51, "sp%20ace", "d.ot", ""])
async def test_invalid_slug_is_closed_with_4400(connect, make_user, slug):
    user = await database_sync_to_async(make_user)()
    await refused(await connect(user, slug=slug, expect_welcome=False), "invalid", 4400)


@pytest.mark.parametrize("query", ["after=-1", "after=x", "after=1e3"])
async def test_malformed_after_is_closed_with_4400(connect, make_user, query):
    user = await database_sync_to_async(make_user)()
    await refused(await connect(user, query=query, expect_welcome=False), "invalid", 4400)


async def test_welcome_describes_room_user_and_latest_messages(connect, make_user):
    alice = await database_sync_to_async(make_user)("alice")
    await post("lobby", alice, 55)
    socket = await connect(alice)
    welcome = socket.welcome
    assert welcome["type"] == "welcome"
    assert welcome["room"] == {"slug": "lobby", "name": "lobby", "private": False}
    assert welcome["online"] == ["alice"] and welcome["last_read_seq"] == 0
    assert welcome["user"] == {"id": alice.id, "username": "alice"}
    assert [m["seq"] for m in welcome["messages"]] == list(range(6, 56))
    assert welcome["has_more"] is True
    first = welcome["messages"][0]
    assert first["body"] == "m6" and first["author"] == "alice" and first["room"] == "lobby"
    assert first["created_at"].endswith("Z") and first["edited_at"] is None and first["client_id"] is None


async def test_two_users_receive_each_others_messages_in_order(connect, make_user):
    alice = await database_sync_to_async(make_user)("alice")
    bob = await database_sync_to_async(make_user)("bob")
    a = await connect(alice)
    b = await connect(bob)
    assert await a.receive_json_from(timeout=5) == {"type": "join", "user": "bob"}
    received = {a: [], b: []}
    # Each sender waits for its own echo, so the three messages have one true order.
    for sender, frame in [
        (a, {"type": "send", "body": "hi bob", "client_id": "a-1"}),
        (b, {"type": "send", "body": "hi alice"}),
        (a, {"type": "send", "body": "how are you?"}),
    ]:
        await sender.send_json_to(frame)
        for socket in (sender, b if sender is a else a):
            received[socket].append((await socket.receive_json_from(timeout=5))["message"])
    assert received[a] == received[b]
    assert [m["seq"] for m in received[a]] == [1, 2, 3]
    assert [(m["author"], m["body"]) for m in received[a]] == [
        ("alice", "hi bob"), ("bob", "hi alice"), ("alice", "how are you?")
    ]
    assert received[a][0]["client_id"] == "a-1"
    for socket in (a, b):
        assert await socket.receive_nothing(timeout=0.1)


async def test_repeated_client_id_stores_once_and_answers_the_sender_only(connect, make_user):
    alice = await database_sync_to_async(make_user)("alice")
    bob = await database_sync_to_async(make_user)("bob")
    a = await connect(alice)
    b = await connect(bob)
    assert await a.receive_json_from(timeout=5) == {"type": "join", "user": "bob"}
    await a.send_json_to({"type": "send", "body": "once", "client_id": "retry-me"})
    original = (await a.receive_json_from(timeout=5))["message"]
    assert (await b.receive_json_from(timeout=5))["message"] == original
    await a.send_json_to({"type": "send", "body": "once (retried)", "client_id": "retry-me"})
    assert (await a.receive_json_from(timeout=5)) == {"type": "message", "message": original}
    assert await b.receive_nothing(timeout=0.2)
    assert await stored_count() == 1


async def test_the_same_client_id_from_another_user_is_a_new_message(connect, make_user):
    alice = await database_sync_to_async(make_user)("alice")
    bob = await database_sync_to_async(make_user)("bob")
    a = await connect(alice)
    b = await connect(bob)
    assert await a.receive_json_from(timeout=5) == {"type": "join", "user": "bob"}
    await a.send_json_to({"type": "send", "body": "from alice", "client_id": "same"})
    await b.send_json_to({"type": "send", "body": "from bob", "client_id": "same"})
    bodies = {(await a.receive_json_from(timeout=5))["message"]["body"] for _ in range(2)}
    assert bodies == {"from alice", "from bob"}
    assert await stored_count() == 2


async def test_history_pages_backwards_and_forwards(connect, make_user):
    alice = await database_sync_to_async(make_user)("alice")
    await post("lobby", alice, 120)
    socket = await connect(alice)
    await socket.send_json_to({"type": "history", "before": 71})
    older = await socket.receive_json_from(timeout=5)
    assert older["type"] == "history"
    assert [m["seq"] for m in older["messages"]] == list(range(21, 71))
    assert older["has_more"] is True
    await socket.send_json_to({"type": "history", "before": 21, "limit": 100})
    oldest = await socket.receive_json_from(timeout=5)
    assert [m["seq"] for m in oldest["messages"]] == list(range(1, 21))
    assert oldest["has_more"] is False
    await socket.send_json_to({"type": "history", "after": 100, "limit": 15})
    newer = await socket.receive_json_from(timeout=5)
    assert [m["seq"] for m in newer["messages"]] == list(range(101, 116))
    assert newer["has_more"] is True
    await socket.send_json_to({"type": "history", "after": 115})
    newest = await socket.receive_json_from(timeout=5)
    assert [m["seq"] for m in newest["messages"]] == list(range(116, 121))
    assert newest["has_more"] is False


async def test_resume_after_seq_returns_what_was_missed(connect, make_user):
    alice = await database_sync_to_async(make_user)("alice")
    bob = await database_sync_to_async(make_user)("bob")
    await post("lobby", alice, 3)
    first = await connect(bob)
    assert first.welcome["messages"][-1]["seq"] == 3
    await first.disconnect()
    first.connected = False
    await post("lobby", alice, 130, prefix="missed")
    resumed = await connect(bob, query="after=3")
    assert [m["seq"] for m in resumed.welcome["messages"]] == list(range(4, 104))
    assert resumed.welcome["has_more"] is True
    await resumed.send_json_to({"type": "history", "after": 103})
    rest = await resumed.receive_json_from(timeout=5)
    assert [m["seq"] for m in rest["messages"]] == list(range(104, 134))
    assert rest["has_more"] is False


async def test_resume_with_nothing_missed_is_empty_and_then_live(connect, make_user):
    alice = await database_sync_to_async(make_user)("alice")
    await post("lobby", alice, 2)
    socket = await connect(alice, query="after=2")
    assert socket.welcome["messages"] == [] and socket.welcome["has_more"] is False
    await socket.send_json_to({"type": "send", "body": "live"})
    assert (await socket.receive_json_from(timeout=5))["message"]["seq"] == 3


BAD_FRAMES = [
    ("not json", "invalid"),
    ("[1, 2]", "invalid"),
    ('"send"', "invalid"),
    ("{}", "invalid"),
    ('{"type": "shout", "body": "x"}', "invalid"),
    ('{"type": 7}', "invalid"),
    ('{"type": "send"}', "invalid"),
    ('{"type": "send", "body": 42}', "invalid"),
    ('{"type": "send", "body": ["x"]}', "invalid"),
    ('{"type": "send", "body": ""}', "empty"),
    ('{"type": "send", "body": " \\n\\t "}', "empty"),
    (json.dumps({"type": "send", "body": "x" * 4001}), "too_long"),
    ('{"type": "send", "body": "nul \\u0000 byte"}', "invalid"),
    ('{"type": "send", "body": "lone \\ud800 surrogate"}', "invalid"),
    ('{"type": "send", "body": "ok", "client_id": 5}', "invalid"),
    (json.dumps({"type": "send", "body": "ok", "client_id": "c" * 65}), "invalid"),
    ('{"type": "send", "body": "ok", "client_id": ""}', "invalid"),
    ('{"type": "history"}', "invalid"),
    ('{"type": "history", "before": 1, "after": 2}', "invalid"),
    ('{"type": "history", "before": "3"}', "invalid"),
    ('{"type": "history", "before": -1}', "invalid"),
    ('{"type": "history", "before": true}', "invalid"),
    ('{"type": "history", "after": 1.5}', "invalid"),
    ('{"type": "history", "after": 1, "limit": 0}', "invalid"),
    ('{"type": "history", "after": 1, "limit": 101}', "invalid"),
    ('{"type": "history", "after": 99999999999999999999999}', "invalid"),
    ("[" * 100000, "too_long"),
]


@pytest.mark.parametrize("text,code", BAD_FRAMES)
async def test_bad_frame_gets_an_error_stores_nothing_and_keeps_the_socket(connect, make_user, text, code):
    alice = await database_sync_to_async(make_user)("alice")
    socket = await connect(alice)
    await socket.send_to(text_data=text)
    error = await socket.receive_json_from(timeout=5)
    assert error["type"] == "error" and error["code"] == code and error["detail"]
    assert await stored_count() == 0
    await socket.send_json_to({"type": "send", "body": "still here"})
    assert (await socket.receive_json_from(timeout=5))["message"]["body"] == "still here"


async def test_deeply_nested_json_is_invalid_not_a_crash(connect, make_user):
    alice = await database_sync_to_async(make_user)("alice")
    socket = await connect(alice)
    await socket.send_to(text_data="[" * 20000 + "]" * 20000)
    assert (await socket.receive_json_from(timeout=5))["code"] == "invalid"


async def test_binary_frame_is_invalid(connect, make_user):
    alice = await database_sync_to_async(make_user)("alice")
    socket = await connect(alice)
    await socket.send_to(bytes_data=b'{"type": "send", "body": "hi"}')
    assert (await socket.receive_json_from(timeout=5))["code"] == "invalid"
    assert await stored_count() == 0


async def test_refused_body_echoes_the_client_id(connect, make_user):
    alice = await database_sync_to_async(make_user)("alice")
    socket = await connect(alice)
    await socket.send_json_to({"type": "send", "body": "   ", "client_id": "c-9"})
    assert await socket.receive_json_from(timeout=5) == {
        "type": "error", "code": "empty", "detail": "The message is empty.", "client_id": "c-9"
    }


async def test_live_frame_already_in_the_welcome_is_not_sent_twice(connect, make_user):
    from channels.layers import get_channel_layer

    from chat.realtime.broadcast import room_event, room_group

    alice = await database_sync_to_async(make_user)("alice")
    [*_, last] = await post("lobby", alice, 3)
    socket = await connect(alice)
    layer = get_channel_layer()
    group = room_group(last.room_id)
    # A broadcast of seq 3 that arrives after the welcome (which carried it) is a duplicate.
    await layer.group_send(group, room_event(last.room_id, "typing", {"user": "again"}, seq=3))
    assert await socket.receive_nothing(timeout=0.2)
    await layer.group_send(group, room_event(last.room_id, "typing", {"user": "new"}, seq=4))
    assert await socket.receive_json_from(timeout=5) == {"type": "typing", "user": "new"}


# Room life: private rooms, edit and delete, typing, presence, read markers, mentions.


@database_sync_to_async
def private_room(slug, creator, *members):
    room, _ = services.room_open(slug=slug, user=creator, private=True)
    for member in members:
        services.membership_add(room=room, actor=creator, username=member.username)
    return room


async def users(make_user, *names):
    return [await database_sync_to_async(make_user)(name) for name in names]


async def test_non_member_is_refused_on_a_private_room(connect, make_user):
    alice, bob, eve = await users(make_user, "alice", "bob", "eve")
    await private_room("secret", alice, bob)
    assert (await connect(bob, slug="secret")).connected
    await refused(await connect(eve, slug="secret", expect_welcome=False), "forbidden", 4403)


async def test_removing_a_member_closes_their_socket_at_once(connect, make_user):
    alice, bob = await users(make_user, "alice", "bob")
    room = await private_room("secret", alice, bob)
    a = await connect(alice, slug="secret")
    b = await connect(bob, slug="secret")
    elsewhere = await connect(bob, slug="lobby")
    await database_sync_to_async(services.membership_remove)(room=room, actor=alice, username="bob")
    assert await b.receive_output(timeout=5) == {"type": "websocket.close", "code": 4403}
    b.connected = False
    assert await a.receive_json_from(timeout=5) == {"type": "join", "user": "bob"}
    assert await elsewhere.receive_nothing(timeout=0.2)
    await refused(await connect(bob, slug="secret", expect_welcome=False), "forbidden", 4403)


async def test_edit_by_the_author_reaches_every_socket(connect, make_user):
    alice, bob = await users(make_user, "alice", "bob")
    [message] = await post("lobby", alice, 1)
    a = await connect(alice)
    b = await connect(bob)
    await a.receive_json_from(timeout=5)  # bob's join
    await a.send_json_to({"type": "edit", "id": message.id, "body": "fixed"})
    for socket in (a, b):
        frame = await socket.receive_json_from(timeout=5)
        assert frame["type"] == "message_edited"
        assert frame["message"]["body"] == "fixed" and frame["message"]["edited_at"]
        assert frame["message"]["seq"] == 1


async def test_edit_or_delete_by_someone_else_is_forbidden(connect, make_user):
    alice, bob = await users(make_user, "alice", "bob")
    [message] = await post("lobby", alice, 1)
    b = await connect(bob)
    for frame in ({"type": "edit", "id": message.id, "body": "hacked"}, {"type": "delete", "id": message.id}):
        await b.send_json_to(frame)
        error = await b.receive_json_from(timeout=5)
        assert error["type"] == "error" and error["code"] == "forbidden"
    stored = await database_sync_to_async(Message.objects.get)(pk=message.pk)
    assert stored.body == "m1" and stored.edited_at is None and not stored.is_deleted


async def test_edit_with_a_bad_body_changes_nothing(connect, make_user):
    [alice] = await users(make_user, "alice")
    [message] = await post("lobby", alice, 1)
    a = await connect(alice)
    await a.send_json_to({"type": "edit", "id": message.id, "body": "  "})
    assert (await a.receive_json_from(timeout=5))["code"] == "empty"
    assert (await database_sync_to_async(Message.objects.get)(pk=message.pk)).body == "m1"


async def test_unknown_or_foreign_message_ids_are_not_found(connect, make_user):
    [alice] = await users(make_user, "alice")
    [elsewhere] = await post("other", alice, 1)
    a = await connect(alice)
    for frame in (
        {"type": "edit", "id": elsewhere.id, "body": "x"},
        {"type": "delete", "id": elsewhere.id},
        {"type": "delete", "id": 987654},
    ):
        await a.send_json_to(frame)
        assert (await a.receive_json_from(timeout=5))["code"] == "not_found"
    assert not (await database_sync_to_async(Message.objects.get)(pk=elsewhere.pk)).is_deleted


async def test_delete_by_staff_hides_the_message_but_keeps_its_seq(connect, make_user):
    alice = await database_sync_to_async(make_user)("alice")
    mod = await database_sync_to_async(make_user)("mod", is_staff=True)
    messages = await post("lobby", alice, 3)
    m = await connect(mod)
    await m.send_json_to({"type": "delete", "id": messages[1].id})
    # The room's fourth change, after three messages.
    deleted = {"type": "message_deleted", "id": messages[1].id, "seq": 2, "cseq": 4}
    assert await m.receive_json_from(timeout=5) == deleted
    await m.send_json_to({"type": "history", "after": 0})
    assert [msg["seq"] for msg in (await m.receive_json_from(timeout=5))["messages"]] == [1, 3]
    await m.send_json_to({"type": "delete", "id": messages[1].id})
    assert (await m.receive_json_from(timeout=5))["code"] == "not_found"
    resumed = await connect(alice, query="after=1")
    assert [msg["seq"] for msg in resumed.welcome["messages"]] == [3]
    await resumed.send_json_to({"type": "send", "body": "next"})
    assert (await resumed.receive_json_from(timeout=5))["message"]["seq"] == 4


async def test_typing_reaches_others_but_not_the_typer(connect, make_user):
    alice, bob = await users(make_user, "alice", "bob")
    a = await connect(alice)
    a_other_tab = await connect(alice)
    b = await connect(bob)
    await a.receive_json_from(timeout=5)  # bob's join
    await a_other_tab.receive_json_from(timeout=5)
    await a.send_json_to({"type": "typing"})
    assert await b.receive_json_from(timeout=5) == {"type": "typing", "user": "alice"}
    assert await a.receive_nothing(timeout=0.2)
    assert await a_other_tab.receive_nothing(timeout=0.05)
    assert await stored_count() == 0


async def test_two_tabs_give_one_join_and_one_leave(connect, make_user, presence_backend):
    alice, bob = await users(make_user, "alice", "bob")
    b = await connect(bob)
    tab1 = await connect(alice)
    assert tab1.welcome["online"] == ["alice", "bob"]
    tab2 = await connect(alice)
    assert await b.receive_json_from(timeout=5) == {"type": "join", "user": "alice"}
    assert await b.receive_nothing(timeout=0.2)
    await tab1.disconnect()
    tab1.connected = False
    assert await b.receive_nothing(timeout=0.2)
    await tab2.disconnect()
    tab2.connected = False
    assert await b.receive_json_from(timeout=5) == {"type": "leave", "user": "alice"}


async def test_presence_heals_after_a_dead_process(connect, make_user, presence_backend, settings):
    from chat.realtime.presence import get_presence

    settings.CHAT_PRESENCE_HEARTBEAT = 0.1
    settings.CHAT_PRESENCE_TTL = 0.5
    [alice] = await users(make_user, "alice")
    a = await connect(alice)
    room_id = await database_sync_to_async(Room.objects.values_list("pk", flat=True).get)(slug="lobby")
    # A socket of a process killed with -9: it joined, then never beat or disconnected again.
    await get_presence().connect(room_id, "ghost", "specific.dead!channel")
    assert await get_presence().online(room_id) == ["alice", "ghost"]
    assert await a.receive_json_from(timeout=5) == {"type": "leave", "user": "ghost"}
    assert await get_presence().online(room_id) == ["alice"]


async def test_read_marker_only_moves_forward(connect, make_user):
    alice, bob = await users(make_user, "alice", "bob")
    await post("lobby", alice, 10)
    b = await connect(bob)
    assert b.welcome["last_read_seq"] == 0

    @database_sync_to_async
    def marker():
        return bob.memberships.get(room__slug="lobby").last_read_seq

    for seq, expected in [(7, 7), (3, 7), (10, 10), (99, 10)]:
        await b.send_json_to({"type": "read", "seq": seq})
        # The read frame has no answer; a history round trip orders the check after it.
        await b.send_json_to({"type": "history", "after": 10})
        await b.receive_json_from(timeout=5)
        assert await marker() == expected


async def test_mention_reaches_the_user_in_another_room(connect, make_user):
    alice, bob, carol = await users(make_user, "alice", "bob", "carol")
    await post("lobby", bob, 1)  # bob is a member of the lobby
    carol_elsewhere = await connect(carol, slug="kitchen")
    bob_elsewhere = await connect(bob, slug="kitchen")
    assert await carol_elsewhere.receive_json_from(timeout=5) == {"type": "join", "user": "bob"}
    a = await connect(alice)
    await a.send_json_to({"type": "send", "body": "ping @bob and @carol."})
    sent = (await a.receive_json_from(timeout=5))["message"]
    notification = await bob_elsewhere.receive_json_from(timeout=5)
    assert notification == {"type": "notification", "room": "lobby", "message": sent}
    # carol is not a member of the lobby, and alice is not told about her own message.
    assert await carol_elsewhere.receive_nothing(timeout=0.2)
    assert await a.receive_nothing(timeout=0.05)
