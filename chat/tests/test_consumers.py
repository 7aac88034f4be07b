"""The chat socket through WebsocketCommunicator: handshake, send, history, resume, bad input."""
import json

import pytest
from channels.db import database_sync_to_async

from chat import services
from chat.models import Message, Room

pytestmark = [pytest.mark.django_db(transaction=True)]


@database_sync_to_async
def post(slug, author, count, prefix="m"):
    room = services.room_open(slug=slug, user=author)
    return [services.message_create(room=room, author=author, body=f"{prefix}{i}")[0] for i in range(1, count + 1)]


@database_sync_to_async
def stored_count():
    return Message.objects.count()


async def test_anonymous_handshake_is_refused(connect):
    socket = await connect(None)
    assert not socket.connected
    assert not await database_sync_to_async(Room.objects.exists)()


@pytest.mark.parametrize("origin", ["http://evil.example", ""])
async def test_foreign_or_missing_origin_is_refused(connect, make_user, origin):
    user = await database_sync_to_async(make_user)()
    socket = await connect(user, origin=origin)
    assert not socket.connected


@pytest.mark.parametrize("slug", ["Upper", "a" * 51, "sp%20ace", "d.ot", ""])
async def test_invalid_slug_is_refused(connect, make_user, slug):
    user = await database_sync_to_async(make_user)()
    socket = await connect(user, slug=slug)
    assert not socket.connected


@pytest.mark.parametrize("query", ["after=-1", "after=x", "after=1e3"])
async def test_malformed_after_is_refused(connect, make_user, query):
    user = await database_sync_to_async(make_user)()
    socket = await connect(user, query=query)
    assert not socket.connected


async def test_welcome_describes_room_user_and_latest_messages(connect, make_user):
    alice = await database_sync_to_async(make_user)("alice")
    await post("lobby", alice, 55)
    socket = await connect(alice)
    welcome = socket.welcome
    assert welcome["type"] == "welcome"
    assert welcome["room"] == {"slug": "lobby", "name": "lobby"}
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

    from chat.broadcast import ROOM_FRAME, room_group

    alice = await database_sync_to_async(make_user)("alice")
    [*_, last] = await post("lobby", alice, 3)
    socket = await connect(alice)
    layer = get_channel_layer()
    group = room_group(last.room_id)
    # A broadcast of seq 3 that arrives after the welcome (which carried it) is a duplicate.
    await layer.group_send(group, {"type": ROOM_FRAME, "text": '{"type":"message"}', "seq": 3})
    assert await socket.receive_nothing(timeout=0.2)
    await layer.group_send(group, {"type": ROOM_FRAME, "text": '{"type":"message"}', "seq": 4})
    assert await socket.receive_from(timeout=5) == '{"type":"message"}'
