"""Structured log lines: one JSON object per event, with room and user."""
import json
import logging

from chat.platform.logs import JsonFormatter, log_event


class Room:
    slug = "lobby"


class User:
    username = "ann"


def formatted(caplog):
    return [json.loads(JsonFormatter().format(record)) for record in caplog.records]


def test_event_line_names_room_user_and_fields(caplog):
    caplog.set_level(logging.INFO, logger="chat.events")
    log_event("ws.connect", room=Room(), user=User(), process=2)
    log_event("ws.refused", room="secret", user="ben", level=logging.WARNING, reason="not a member")
    first, second = formatted(caplog)
    assert first["event"] == "ws.connect" and first["level"] == "INFO" and first["logger"] == "chat.events"
    assert (first["room"], first["user"], first["process"]) == ("lobby", "ann", 2)
    assert first["time"].endswith("+00:00") and "message" not in first
    assert second == second | {"event": "ws.refused", "level": "WARNING", "room": "secret", "user": "ben",
                               "reason": "not a member"}


def test_error_keeps_its_traceback_on_one_line(caplog):
    try:
        raise RuntimeError("boom")
    except RuntimeError:
        log_event("ws.error", room="lobby", level=logging.ERROR, exc_info=True)
    text = JsonFormatter().format(caplog.records[-1])
    assert "\n" not in text
    line = json.loads(text)
    assert "user" not in line and "RuntimeError: boom" in line["error"]


def test_plain_log_records_keep_their_message(caplog):
    logging.getLogger("django.request").warning("Not Found: %s", "/nope")
    assert formatted(caplog)[-1]["message"] == "Not Found: /nope"
