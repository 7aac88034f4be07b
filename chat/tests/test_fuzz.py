"""Property tests: arbitrary frames and form input never crash a socket or a page, and store only what is valid."""
import json
import logging
import uuid

import pytest
from asgiref.sync import async_to_sync
from channels.db import database_sync_to_async
from channels.testing import WebsocketCommunicator
from hypothesis import HealthCheck, given, settings as hypothesis_settings, strategies as st

from chat.domain.models import Message
from chat.tests.conftest import ORIGIN, logged_in_client, room_ensure, session_cookie
from myproject.asgi import application

FUZZ = hypothesis_settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow]
)

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=20,
)
odd_text = st.text(st.characters(codec=None), max_size=50) | st.sampled_from(
    ["\x00", "a\x00b", "\ud800", "\u202e", "\ufeff", "🧪" * 10, "e\u0301", "\u200b"]
)
# What travels in HTTP is bytes: text without lone surrogates, which cannot be encoded.
http_text = st.text(st.characters(codec="utf-8"), max_size=50) | st.sampled_from(
    ["\x00", "a\x00b", "\u202e", "\ufeff", "🧪" * 10, "-1", "1e3", "9" * 30, "0x10", " 5"]
)
invalid_bodies = (
    st.none() | st.integers() | st.floats() | st.booleans() | st.lists(st.text(), max_size=2)
    | st.sampled_from(["", " ", "\n\t", "x" * 4001, "nul\x00", "lone\ud800"])
)
# Frames that must not store anything: each strategy is invalid or storage-free by construction.
harmless_frames = st.one_of(
    odd_text,
    st.binary(max_size=64),
    json_values.map(json.dumps),
    st.integers(min_value=1, max_value=5000).map(lambda depth: "[" * depth + "]" * depth),
    st.builds(lambda body, cid: json.dumps({"type": "send", "body": body, "client_id": cid}), invalid_bodies,
              st.none() | st.text(max_size=3)),
    st.builds(
        lambda kind, fields: json.dumps({"type": kind, **fields}),
        st.sampled_from(["history", "edit", "delete", "typing", "read", "bogus", "", "SEND"]),
        st.dictionaries(st.sampled_from(["id", "body", "before", "after", "limit", "seq", "room"]),
                        json_values | st.integers(min_value=-(2**70), max_value=2**70), max_size=4),
    ),
)
valid_bodies = st.text(st.characters(codec="utf-8", exclude_characters="\x00"), min_size=1, max_size=200).filter(
    str.strip
)


async def run_frames(user, frames, sends):
    """Send `frames` (text or bytes) and the valid `sends` on one socket; return every frame received."""
    client = await database_sync_to_async(logged_in_client)(user)
    await database_sync_to_async(room_ensure)("fuzz", user)
    headers = [(b"host", b"localhost"), (b"origin", ORIGIN.encode()), (b"cookie", session_cookie(client))]
    socket = WebsocketCommunicator(application, "/ws/chat/fuzz/", headers=headers)
    connected, _ = await socket.connect(timeout=5)
    assert connected
    await socket.receive_json_from(timeout=5)  # welcome
    for frame in frames:
        # send_input, not send_to: send_to refuses empty frames, which a client can send.
        await socket.send_input({"type": "websocket.receive", "bytes" if isinstance(frame, bytes) else "text": frame})
    for body, client_id in sends:
        await socket.send_json_to({"type": "send", "body": body, "client_id": client_id})
    # Frames are answered in order, so the refusal of this marker comes after every other answer;
    # the echoes of stored messages may come later still (they go through the room hub).
    await socket.send_json_to({"type": "send", "body": "", "client_id": "end-marker"})
    received, echoes, marked = [], 0, False
    while echoes < len(sends) or not marked:
        output = await socket.receive_output(timeout=10)
        assert output["type"] == "websocket.send", f"the socket closed: {output}"
        frame = json.loads(output["text"])
        received.append(frame)
        echoes += frame["type"] == "message"
        marked = marked or frame.get("client_id") == "end-marker"
    await socket.disconnect()
    return received


@pytest.mark.django_db(transaction=True)
@pytest.mark.timeout(300)
@FUZZ
@given(frames=st.lists(harmless_frames, max_size=12), bodies=st.lists(valid_bodies, max_size=3))
def test_arbitrary_frames_never_crash_and_only_valid_sends_are_stored(make_user, settings, caplog, frames, bodies):
    settings.CHAT_MESSAGE_RATE = settings.CHAT_TYPING_RATE = settings.CHAT_CHANGE_RATE = (10**6, 1)
    user = make_user()
    before = Message.objects.count()
    sends = [(body, uuid.uuid4().hex) for body in bodies]
    with caplog.at_level(logging.ERROR):
        received = async_to_sync(run_frames)(user, frames, sends)
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert Message.objects.count() == before + len(sends)
    for body, client_id in sends:
        assert list(Message.objects.filter(client_id=client_id).values_list("body", flat=True)) == [body]
    assert {frame["type"] for frame in received} <= {"message", "error", "history", "typing", "join", "leave",
                                                       "message_edited", "message_deleted"}


@pytest.mark.django_db
@pytest.mark.timeout(300)
@FUZZ
@given(
    path=st.sampled_from(["/", "/accounts/signup/", "/accounts/login/", "/chat/lobby/members/"]),
    data=st.dictionaries(
        st.sampled_from(["name", "private", "username", "password", "password1", "password2", "action"]),
        http_text, max_size=5,
    ),
)
def test_arbitrary_form_input_is_never_a_server_error(client, make_user, path, data):
    client.force_login(make_user())
    assert client.post(path, data).status_code < 500


@pytest.mark.django_db
@pytest.mark.timeout(300)
@FUZZ
@given(query=st.dictionaries(st.sampled_from(["before", "after", "limit", "x"]), http_text, max_size=3))
def test_arbitrary_history_query_is_never_a_server_error(client, make_user, query):
    user = make_user()
    room_ensure("lobby", user)
    client.force_login(user)
    response = client.get("/chat/lobby/messages/", query)
    assert response.status_code in (200, 400), response.content
