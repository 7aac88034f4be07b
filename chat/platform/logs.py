"""Structured logs: one JSON line per event, with the room and user it concerns."""
import json
import logging
from datetime import datetime, timezone

logger = logging.getLogger("chat.events")


def _name(value, attribute):
    """Return the readable name of a room or user, given the object or its name."""
    return getattr(value, attribute, value)


def log_event(event, *, room=None, user=None, level=logging.INFO, exc_info=False, **fields):
    """Log one event as a single line with its room (Room or slug), user (User or username) and fields."""
    # Fields travel in one attribute: names like "process" or "module" would
    # otherwise collide with LogRecord's own attributes.
    extra = {"event": event, "room": _name(room, "slug"), "user": _name(user, "username"), "fields": fields}
    logger.log(level, event, extra=extra, exc_info=exc_info)


class JsonFormatter(logging.Formatter):
    """Format each record as one line of JSON: time, level, logger, event or message, room, user, fields."""

    def format(self, record):
        line = {
            "time": datetime.fromtimestamp(record.created, timezone.utc).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
        }
        if hasattr(record, "event"):
            line["event"] = record.event
        else:
            line["message"] = record.getMessage()
        for key in ("room", "user"):
            if getattr(record, key, None) is not None:
                line[key] = getattr(record, key)
        line.update(getattr(record, "fields", {}))
        if record.exc_info:
            line["error"] = self.formatException(record.exc_info)
        return json.dumps(line, default=str, ensure_ascii=False)
