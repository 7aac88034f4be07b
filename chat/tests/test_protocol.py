"""Parsing client frames and building server frames, without a database."""
import json
from datetime import UTC, datetime
from types import SimpleNamespace

import pytest

from chat.realtime import protocol


def test_send_frame_parses_to_send():
    frame = protocol.parse_client_frame('{"type": "send", "body": " hi ", "client_id": "c1", "room": "other"}')
    # The body is stored as typed, and fields naming another room are ignored.
    assert frame == protocol.Send(body=" hi ", client_id="c1")


def test_history_frame_defaults_its_limit():
    assert protocol.parse_client_frame('{"type": "history", "before": 9}') == protocol.History(before=9, limit=50)
    assert protocol.parse_client_frame('{"type": "history", "after": 0, "limit": 100}') == protocol.History(
        after=0, limit=100
    )


def test_body_of_exactly_the_limit_is_accepted():
    body = "é" * protocol.MAX_BODY_LENGTH
    assert protocol.parse_client_frame(json.dumps({"type": "send", "body": body})).body == body


@pytest.mark.parametrize("text", [None, "", "nope", "null", "1", '{"type": null}'])
def test_non_frames_are_invalid(text):
    with pytest.raises(protocol.ProtocolError) as caught:
        protocol.parse_client_frame(text)
    assert caught.value.code == protocol.INVALID


def test_error_frame_echoes_client_id_only_when_given():
    assert json.loads(protocol.error_frame("empty", "The message is empty.")) == {
        "type": "error", "code": "empty", "detail": "The message is empty."
    }
    assert json.loads(protocol.error_frame("empty", "x", "c1"))["client_id"] == "c1"


def test_message_data_has_the_documented_fields():
    message = SimpleNamespace(
        id=7, seq=3, cseq=5, room=SimpleNamespace(slug="lobby"), author=SimpleNamespace(username="alice"),
        body="<b>hi</b>", created_at=datetime(2026, 1, 2, 3, 4, 5, 600000, tzinfo=UTC), edited_at=None,
        client_id=None, reactions=None, previews=None, parent_id=None, also_in_room=False, reply_count=2,
        last_reply_at=datetime(2026, 1, 2, 4, 0, tzinfo=UTC), attachments=None,
    )
    assert protocol.message_data(message) == {
        "id": 7, "seq": 3, "cseq": 5, "room": "lobby", "author": "alice", "body": "<b>hi</b>",
        "html": "<p>&lt;b&gt;hi&lt;/b&gt;</p>",
        "created_at": "2026-01-02T03:04:05.600000Z", "edited_at": None, "client_id": None, "reactions": [],
        "previews": [], "parent": None, "also_in_room": False, "reply_count": 2, "last_reply_at": "2026-01-02T04:00:00Z",
        "attachments": [],
    }


def test_fit_names_keeps_the_first_names_whose_json_fits():
    from chat.realtime.protocol import fit_names

    names = [f"user{n:04}" for n in range(1000)]  # 11 bytes of JSON each, with the comma
    assert fit_names(names, 20_000) == names
    fitted = fit_names(names, 1000)
    assert fitted == names[:len(fitted)] and len(json.dumps(fitted, separators=(",", ":"))) <= 1000
    assert len(json.dumps(names[:len(fitted) + 1], separators=(",", ":"))) > 1000
    # Bytes of UTF-8, not characters (and the count allows a comma after the last name).
    budget = len('["ünïcode","ünïcode"]'.encode())
    assert fit_names(["ünïcode"] * 3, budget + 1) == ["ünïcode"] * 2
    assert fit_names(["ünïcode"] * 3, len('["ünïcode","ünïcode"]')) == ["ünïcode"]
