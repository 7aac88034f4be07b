"""Protocol v2 (/ws/): one socket, many rooms, request ids, a change feed that resumes every change, user events."""
import jsonschema
import pytest
from channels.db import database_sync_to_async

from chat.domain import services
from chat.domain.models import Message, Room
from chat.realtime import frames
from chat.tests.conftest import room_ensure

pytestmark = [pytest.mark.django_db(transaction=True)]

SERVER_SCHEMA = {**frames.schema()["server"], "$defs": frames.schema()["$defs"]}


async def receive(socket):
    """Return the next server frame, checked against the published JSON Schema."""
    frame = await socket.receive_json_from(timeout=5)
    jsonschema.validate(frame, SERVER_SCHEMA)
    return frame


async def until_frame(socket, frame_type):
    """Return the next frame of `frame_type`, skipping others (presence, activity)."""
    for _ in range(50):
        frame = await receive(socket)
        if frame["type"] == frame_type:
            return frame
    raise AssertionError(f"no {frame_type} frame")


@pytest.fixture
def open_v2(connect):
    """Return a factory of /ws/ sockets whose hello has been read (as socket.hello)."""
    async def open_socket(user, *rooms):
        for slug in rooms:
            await database_sync_to_async(room_ensure)(slug, user)
        socket = await connect(user, path="/ws/", create=False, expect_welcome=False)
        socket.hello = await receive(socket)
        return socket
    return open_socket


async def subscribe(socket, room, **fields):
    await socket.send_json_to({"type": "subscribe", "room": room, **fields})
    return await until_frame(socket, "subscribed")


@database_sync_to_async
def post(slug, author, count, prefix="m"):
    room = Room.objects.get(slug=slug)
    services.room_join(slug=slug, user=author)
    return [services.message_create(room=room, author=author, body=f"{prefix}{i}")[0] for i in range(count)]


async def test_hello_lists_the_users_rooms_with_unread_counts(open_v2, make_user):
    alice, bob = [await database_sync_to_async(make_user)(name) for name in ("alice", "bob")]
    for slug in ("lobby", "quiet"):
        await database_sync_to_async(room_ensure)(slug, bob)
        await database_sync_to_async(services.room_join)(slug=slug, user=alice)
    await post("lobby", bob, 3)
    socket = await open_v2(alice)
    hello = socket.hello
    assert hello["version"] == 2 and hello["user"]["username"] == "alice" and hello["rooms_count"] == 2
    assert [(r["room"], r["unread"], r["last_seq"]) for r in hello["rooms"]] == [("lobby", 3, 3), ("quiet", 0, 0)]


async def test_one_socket_carries_several_rooms_each_frame_naming_its_room(open_v2, make_user):
    alice = await database_sync_to_async(make_user)("alice")
    socket = await open_v2(alice, "lobby", "dev")
    lobby = await subscribe(socket, "lobby", request_id=1)
    dev = await subscribe(socket, "dev", request_id="two")
    assert (lobby["room"], lobby["request_id"], dev["room"], dev["request_id"]) == ("lobby", 1, "dev", "two")
    for room in ("dev", "lobby"):
        await socket.send_json_to({"type": "send", "room": room, "body": f"in {room}", "client_id": room})
    got = [await until_frame(socket, "message") for _ in range(2)]
    assert {(f["room"], f["message"]["room"], f["message"]["body"]) for f in got} == {
        ("dev", "dev", "in dev"), ("lobby", "lobby", "in lobby"),
    }

    await socket.send_json_to({"type": "unsubscribe", "room": "dev", "request_id": 3})
    assert await until_frame(socket, "unsubscribed") == {
        "type": "unsubscribed", "room": "dev", "reason": "requested", "request_id": 3,
    }
    await database_sync_to_async(services.message_create)(
        room=await database_sync_to_async(Room.objects.get)(slug="dev"), author=alice, body="unseen"
    )
    await socket.send_json_to({"type": "send", "room": "dev", "body": "x", "request_id": 4})
    assert await until_frame(socket, "error") == {
        "type": "error", "code": "not_subscribed", "detail": "Subscribe to #dev first.", "request_id": 4, "room": "dev",
    }


async def test_every_request_id_is_echoed_by_its_answer_or_its_error(open_v2, make_user):
    alice = await database_sync_to_async(make_user)("alice")
    socket = await open_v2(alice, "lobby")
    await subscribe(socket, "lobby")
    await socket.send_json_to({"type": "send", "room": "lobby", "body": "hi", "client_id": "c1", "request_id": "s"})
    ack = await until_frame(socket, "ack")
    stored = await database_sync_to_async(Message.objects.get)()
    assert ack == {"type": "ack", "request_id": "s", "room": "lobby", "id": stored.id, "seq": 1, "cseq": 1}
    for frame in (
        {"type": "edit", "room": "lobby", "id": stored.id, "body": "hi!", "request_id": "e"},
        {"type": "read", "room": "lobby", "seq": 1, "request_id": "r"},
        {"type": "typing", "room": "lobby", "request_id": "t"},
    ):
        await socket.send_json_to(frame)
        assert (await until_frame(socket, "ack"))["request_id"] == frame["request_id"]
    await socket.send_json_to({"type": "ping", "request_id": 9})
    assert await until_frame(socket, "pong") == {"type": "pong", "request_id": 9}
    await socket.send_json_to({"type": "history", "room": "lobby", "after": 0, "request_id": "h"})
    history = await until_frame(socket, "history")
    assert history["request_id"] == "h" and [m["body"] for m in history["messages"]] == ["hi!"]

    for frame, code in (
        ({"type": "send", "room": "lobby", "body": "  ", "client_id": "c2", "request_id": "empty"}, "empty"),
        ({"type": "subscribe", "room": "Nope", "request_id": "bad"}, "invalid"),
        ({"type": "subscribe", "room": "nowhere", "request_id": "gone"}, "not_found"),
        ({"type": "edit", "room": "lobby", "id": 999, "body": "x", "request_id": "missing"}, "not_found"),
        ({"type": "whatever", "request_id": "unknown"}, "invalid"),
    ):
        await socket.send_json_to(frame)
        error = await until_frame(socket, "error")
        assert (error["code"], error["request_id"]) == (code, frame["request_id"]), error
        if "client_id" in frame:
            assert error["client_id"] == frame["client_id"]
    assert await database_sync_to_async(Message.objects.count)() == 1


async def test_a_private_room_is_refused_to_others_and_a_removal_unsubscribes_without_closing(open_v2, make_user):
    alice, bob = [await database_sync_to_async(make_user)(name) for name in ("alice", "bob")]
    room, _ = await database_sync_to_async(services.room_create)(slug="secret", user=alice, private=True)
    socket = await open_v2(bob)
    await socket.send_json_to({"type": "subscribe", "room": "secret", "request_id": 1})
    assert (await until_frame(socket, "error"))["code"] == "forbidden"

    await database_sync_to_async(services.membership_add)(room=room, actor=alice, username="bob")
    added = await until_frame(socket, "room_added")
    assert added["room"]["room"] == "secret" and added["room"]["private"]
    await subscribe(socket, "secret")
    await database_sync_to_async(services.membership_remove)(room=room, actor=alice, username="bob")
    assert await until_frame(socket, "unsubscribed") == {"type": "unsubscribed", "room": "secret", "reason": "removed"}
    assert await until_frame(socket, "room_removed") == {"type": "room_removed", "room": "secret"}
    await socket.send_json_to({"type": "ping"})
    assert await until_frame(socket, "pong") == {"type": "pong"}


async def test_resume_replays_every_change_so_a_stale_view_equals_a_fresh_one(open_v2, make_user):
    alice, bob = [await database_sync_to_async(make_user)(name) for name in ("alice", "bob")]
    await database_sync_to_async(room_ensure)("lobby", alice)
    old = await post("lobby", alice, 4, "old")
    reader = await open_v2(bob)
    view = await subscribe(reader, "lobby")
    stale = {m["id"]: m for m in view["messages"]}
    seen = view["cseq"]
    await reader.disconnect()

    room = await database_sync_to_async(Room.objects.get)(slug="lobby")

    def change_everything():
        services.message_edit(room=room, actor=alice, message_id=old[0].id, body="edited while away")
        services.message_delete(room=room, actor=alice, message_id=old[1].id)
        services.message_edit(room=room, actor=alice, message_id=old[2].id, body="edited, then")
        services.message_delete(room=room, actor=alice, message_id=old[2].id)
        new, _ = services.message_create(room=room, author=alice, body="new")
        services.message_edit(room=room, actor=alice, message_id=new.id, body="new, edited")
        services.message_create(room=room, author=alice, body="newest")
        services.reaction_add(room=room, actor=alice, message_id=old[3].id, emoji="👍")
        services.reaction_add(room=room, actor=alice, message_id=old[3].id, emoji="🎉")
        services.reaction_remove(room=room, actor=alice, message_id=old[3].id, emoji="👍")
        services.reaction_add(room=room, actor=alice, message_id=new.id, emoji="👍")
        services.room_update(room=room, actor=alice, topic="first topic")
        services.room_update(room=room, actor=alice, name="The Lobby", topic="  second topic ")
    await database_sync_to_async(change_everything)()

    socket = await open_v2(bob)
    resumed = await subscribe(socket, "lobby", after=seen)
    assert resumed["resumed"] and resumed["messages"] == [] and not resumed["has_more"]
    stale_room = {"name": view["name"], "topic": view["topic"]}
    for change in resumed["changes"]:
        if change["type"] == "message_deleted":
            stale.pop(change["id"], None)
        elif change["type"] == "room_changed":
            stale_room = {"name": change["name"], "topic": change["topic"]}
        else:
            stale[change["message"]["id"]] = change["message"]
    fresh = await subscribe(socket, "lobby")
    assert resumed["cseq"] == fresh["cseq"]
    assert stale_room == {"name": fresh["name"], "topic": fresh["topic"]} == {"name": "The Lobby", "topic": "second topic"}
    # Compacted: one entry for the two changes of the room.
    assert [c["type"] for c in resumed["changes"]].count("room_changed") == 1
    assert sorted(stale.values(), key=lambda m: m["seq"]) == fresh["messages"]
    assert [m["body"] for m in fresh["messages"]] == ["edited while away", "old3", "new, edited", "newest"]
    assert [[r["emoji"] for r in m["reactions"]] for m in fresh["messages"]] == [[], ["🎉"], ["👍"], []]


async def test_reactions_are_counted_once_per_user_and_emoji_and_reach_the_room_live(open_v2, make_user):
    alice, bob = [await database_sync_to_async(make_user)(name) for name in ("alice", "bob")]
    await database_sync_to_async(room_ensure)("lobby", alice)
    [message] = await post("lobby", alice, 1)
    author, reader, watcher = [await open_v2(user) for user in (alice, bob, bob)]
    for socket in (author, reader, watcher):
        await subscribe(socket, "lobby")
    for socket, emoji, request_id in ((reader, "👍", 1), (reader, "👍", 2), (author, "👍", 3), (author, "🇫🇷", 4)):
        await socket.send_json_to({"type": "react", "room": "lobby", "id": message.id, "emoji": emoji,
                                   "request_id": request_id})
        assert (await until_frame(socket, "ack"))["request_id"] == request_id
    # The repeat changed nothing: three changes, three frames, each with the room's next cseq.
    frames_seen = [await until_frame(watcher, "message_reactions") for _ in range(3)]
    assert [f["cseq"] for f in frames_seen] == [message.cseq + 1, message.cseq + 2, message.cseq + 3]
    assert frames_seen[-1]["reactions"] == [
        {"emoji": "👍", "count": 2, "users": ["bob", "alice"]}, {"emoji": "🇫🇷", "count": 1, "users": ["alice"]},
    ]
    await reader.send_json_to({"type": "unreact", "room": "lobby", "id": message.id, "emoji": "👍"})
    assert (await until_frame(watcher, "message_reactions"))["reactions"][0] == {
        "emoji": "👍", "count": 1, "users": ["alice"],
    }
    history = await subscribe(reader, "lobby")
    assert [r["count"] for r in history["messages"][-1]["reactions"]] == [1, 1]


@pytest.mark.parametrize("emoji", ["a", "👍👍", ":+1:", "<b>", "👍 "])
async def test_a_reaction_that_is_not_one_emoji_is_refused_and_changes_nothing(open_v2, make_user, emoji):
    alice = await database_sync_to_async(make_user)("alice")
    await database_sync_to_async(room_ensure)("lobby", alice)
    [message] = await post("lobby", alice, 1)
    socket = await open_v2(alice, "lobby")
    await subscribe(socket, "lobby")
    await socket.send_json_to({"type": "react", "room": "lobby", "id": message.id, "emoji": emoji, "request_id": 9})
    error = await until_frame(socket, "error")
    assert (error["code"], error["request_id"], error["room"]) == ("invalid", 9, "lobby")
    stored = await database_sync_to_async(Message.objects.get)(pk=message.pk)
    assert (stored.reactions, stored.cseq) == (None, message.cseq)


async def test_a_long_absence_resumes_in_pages_of_the_change_feed(open_v2, make_user):
    alice = await database_sync_to_async(make_user)("alice")
    await database_sync_to_async(room_ensure)("lobby", alice)
    await post("lobby", alice, 150)
    socket = await open_v2(alice)
    first = await subscribe(socket, "lobby", after=0)
    assert first["has_more"] and len(first["changes"]) == 100 and first["cseq"] == 100
    await socket.send_json_to({"type": "changes", "room": "lobby", "after": first["cseq"], "request_id": "more"})
    rest = await until_frame(socket, "changes")
    assert (rest["request_id"], rest["cseq"], rest["has_more"]) == ("more", 150, False)
    seqs = [c["message"]["seq"] for c in first["changes"] + rest["changes"]]
    assert seqs == list(range(1, 151))


async def test_the_sidebar_hears_of_activity_dms_and_reads_in_rooms_it_does_not_show(open_v2, make_user):
    alice, bob = [await database_sync_to_async(make_user)(name) for name in ("alice", "bob")]
    await database_sync_to_async(room_ensure)("lobby", bob)
    await database_sync_to_async(services.room_join)(slug="lobby", user=alice)
    socket = await open_v2(alice)
    other_tab = await open_v2(alice)

    [message] = await post("lobby", bob, 1)
    activity = await until_frame(socket, "room_activity")
    at = activity.pop("last_message_at")
    assert activity == {"type": "room_activity", "room": "lobby", "seq": 1, "author": "bob"}
    assert at.startswith(message.created_at.strftime("%Y-%m-%dT%H:%M:%S"))

    direct = await database_sync_to_async(services.room_open_direct)(user=bob, username="alice")
    added = await until_frame(socket, "room_added")
    assert (added["room"]["room"], added["room"]["title"], added["room"]["direct"]) == (direct.slug, "bob", True)
    await database_sync_to_async(services.message_create)(room=direct, author=bob, body="a plain hello")
    notice = await until_frame(socket, "notification")
    assert (notice["room"], notice["reason"], notice["message"]["body"]) == (direct.slug, "direct", "a plain hello")

    await subscribe(other_tab, "lobby")
    await other_tab.send_json_to({"type": "read", "room": "lobby", "seq": 1, "request_id": "r"})
    assert await until_frame(socket, "room_read") == {"type": "room_read", "room": "lobby", "last_read_seq": 1, "unread": 0}


async def test_a_subscribe_replays_nothing_twice_that_its_view_carried(open_v2, make_user):
    alice = await database_sync_to_async(make_user)("alice")
    socket = await open_v2(alice, "lobby")
    view = await subscribe(socket, "lobby")
    await post("lobby", alice, 2)
    got = [await until_frame(socket, "message") for _ in range(2)]
    assert [f["message"]["cseq"] for f in got] == [view["cseq"] + 1, view["cseq"] + 2]
    assert await socket.receive_nothing(timeout=0.3)


async def test_too_many_subscriptions_are_refused(open_v2, make_user, monkeypatch):
    monkeypatch.setattr(frames, "MAX_SUBSCRIPTIONS", 2)
    alice = await database_sync_to_async(make_user)("alice")
    socket = await open_v2(alice, "a", "b", "c")
    await subscribe(socket, "a")
    await subscribe(socket, "b")
    await socket.send_json_to({"type": "subscribe", "room": "c", "request_id": "c"})
    error = await until_frame(socket, "error")
    assert (error["code"], error["room"]) == ("too_many_subscriptions", "c")
    await socket.send_json_to({"type": "unsubscribe", "room": "a"})
    await until_frame(socket, "unsubscribed")
    assert (await subscribe(socket, "c"))["room"] == "c"


async def test_reactions_are_rate_limited(open_v2, make_user, settings):
    settings.CHAT_REACTION_RATE = (2, 60)
    alice = await database_sync_to_async(make_user)("alice")
    await database_sync_to_async(room_ensure)("lobby", alice)
    [message] = await post("lobby", alice, 1)
    socket = await open_v2(alice, "lobby")
    await subscribe(socket, "lobby")
    for request_id, emoji in enumerate(["👍", "🎉", "👀"]):
        await socket.send_json_to({"type": "react", "room": "lobby", "id": message.id, "emoji": emoji,
                                   "request_id": request_id})
    answers = [await until_frame(socket, "ack"), await until_frame(socket, "ack"), await until_frame(socket, "error")]
    assert [a["request_id"] for a in answers] == [0, 1, 2] and answers[2]["code"] == "rate_limited"
    stored = await database_sync_to_async(Message.objects.get)(pk=message.pk)
    assert [r["emoji"] for r in stored.reactions] == ["👍", "🎉"]


async def test_members_rename_a_public_room_and_set_its_topic_live_but_not_a_private_room_of_another(
    open_v2, make_user
):
    alice, bob = [await database_sync_to_async(make_user)(name) for name in ("alice", "bob")]
    await database_sync_to_async(room_ensure)("lobby", alice)
    await database_sync_to_async(services.room_create)(slug="secret", user=alice, private=True)
    await database_sync_to_async(services.membership_add)(
        room=await database_sync_to_async(Room.objects.get)(slug="secret"), actor=alice, username="bob"
    )
    watcher, changer = await open_v2(alice), await open_v2(bob)
    for socket in (watcher, changer):
        await subscribe(socket, "lobby")
    await subscribe(changer, "secret")
    await changer.send_json_to({"type": "room_update", "room": "lobby", "topic": "Friday: release", "request_id": 1})
    assert (await until_frame(changer, "ack"))["request_id"] == 1
    changed = await until_frame(watcher, "room_changed")
    assert (changed["room"], changed["name"], changed["topic"]) == ("lobby", "lobby", "Friday: release")
    for frame, code in [
        ({"room": "secret", "name": "mine now"}, "forbidden"),
        ({"room": "lobby", "name": "   "}, "invalid"),
        ({"room": "lobby", "topic": "two\nlines"}, "invalid"),
        ({"room": "lobby", "topic": "x" * 251}, "invalid"),
    ]:
        await changer.send_json_to({"type": "room_update", "request_id": code, **frame})
        error = await until_frame(changer, "error")
        assert (error["code"], error["request_id"]) == (code, code)
    rooms = await database_sync_to_async(lambda: {r.slug: (r.name, r.topic) for r in Room.objects.all()})()
    assert rooms == {"lobby": ("lobby", "Friday: release"), "secret": ("secret", "")}


async def test_an_archived_room_is_announced_to_its_room_and_sidebars_and_refuses_messages(open_v2, make_user):
    alice, bob = [await database_sync_to_async(make_user)(name) for name in ("alice", "bob")]
    await database_sync_to_async(room_ensure)("lobby", alice)
    await database_sync_to_async(room_ensure)("other", bob)
    await post("lobby", bob, 1)
    shower, sidebar = await open_v2(bob), await open_v2(bob)
    first = await subscribe(shower, "lobby")
    assert first["archived"] is False
    await subscribe(sidebar, "other")
    room = await database_sync_to_async(Room.objects.get)(slug="lobby")
    await database_sync_to_async(services.room_archive)(room=room, actor=alice)
    shown = await until_frame(shower, "room_changed")
    listed = await until_frame(sidebar, "room_changed")
    for changed in (shown, listed):
        assert (changed["room"], changed["archived"]) == ("lobby", True)
    await shower.send_json_to({"type": "send", "room": "lobby", "body": "too late", "client_id": "c1"})
    error = await until_frame(shower, "error")
    assert (error["code"], error["client_id"]) == ("forbidden", "c1") and "archived" in error["detail"]
    again = await subscribe(shower, "lobby", after=first["cseq"])
    assert again["archived"] is True
    assert [c["archived"] for c in again["changes"] if c["type"] == "room_changed"] == [True]
    assert await database_sync_to_async(Message.objects.count)() == 1


async def test_a_reply_in_a_thread_reaches_the_room_with_its_parents_new_count_and_pages_and_resumes(
    open_v2, make_user
):
    alice, bob = [await database_sync_to_async(make_user)(name) for name in ("alice", "bob")]
    await database_sync_to_async(room_ensure)("lobby", alice)
    [parent] = await post("lobby", alice, 1)
    replier, watcher = await open_v2(bob), await open_v2(alice)
    await subscribe(replier, "lobby")
    first = await subscribe(watcher, "lobby")
    await replier.send_json_to({"type": "send", "room": "lobby", "body": "yes", "client_id": "r1",
                                "thread": parent.id, "request_id": "r"})
    ack = await until_frame(replier, "ack")
    live = await until_frame(watcher, "message")
    assert live["message"]["parent"] == parent.id and live["message"]["id"] == ack["id"]
    counted = await until_frame(watcher, "message_edited")
    assert (counted["message"]["id"], counted["message"]["reply_count"]) == (parent.id, 1)
    notice = await until_frame(watcher, "notification")
    assert (notice["reason"], notice["message"]["body"]) == ("thread", "yes")
    await watcher.send_json_to({"type": "history", "room": "lobby", "thread": parent.id, "after": 0,
                                "request_id": "h"})
    page = await until_frame(watcher, "history")
    assert page["thread"] == parent.id and [m["body"] for m in page["messages"]] == ["yes"]
    resumed = await subscribe(watcher, "lobby", after=first["cseq"])
    assert [c["message"]["body"] for c in resumed["changes"]] == ["yes", "m0"]
    for frame, code in [({"thread": ack["id"]}, "invalid"), ({"thread": 99999}, "not_found")]:
        await replier.send_json_to({"type": "send", "room": "lobby", "body": "x", "request_id": code, **frame})
        error = await until_frame(replier, "error")
        assert (error["code"], error["request_id"]) == (code, code)
