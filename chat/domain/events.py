"""Domain events: what changed, as plain data, handed to the realtime layer once the transaction commits.

Services call these after each write and hand them to the module settings.CHAT_EVENT_SENDER
names (chat.realtime.broadcast), so that the domain never imports the realtime layer; each
protocol version encodes them (chat.realtime.protocol for v1, chat.realtime.frames for v2).
Room events go to the sockets that show the room, user events to every
socket of one user, activity to every socket whose sidebar lists the room.
"""
from chat.domain import markup
from importlib import import_module

from django.conf import settings

MESSAGE = "message"
MESSAGE_EDITED = "message_edited"
MESSAGE_DELETED = "message_deleted"
MESSAGE_REACTIONS = "message_reactions"
MESSAGE_PREVIEWS = "message_previews"
ROOM_CHANGED = "room_changed"
TYPING = "typing"
JOIN = "join"
LEAVE = "leave"
# Users of a room who came online or went offline, several in one event (v2 sends it as one frame).
PRESENCE = "presence"
NOTIFICATION = "notification"
ROOM_READ = "room_read"
ROOM_ADDED = "room_added"
ROOM_REMOVED = "room_removed"
ROOM_MUTED = "room_muted"


def _sender():
    """Return the module that carries events to sockets after commit (settings.CHAT_EVENT_SENDER)."""
    return import_module(settings.CHAT_EVENT_SENDER)


def timestamp(value):
    """Return a datetime as the wire writes it (ISO 8601, UTC as Z), or None."""
    return value.isoformat().replace("+00:00", "Z") if value else None


def message_data(message):
    """Return a stored message as plain data (docs/protocol.md, Message object)."""
    return {
        "id": message.id,
        "seq": message.seq,
        "cseq": message.cseq,
        "room": message.room.slug,
        "author": message.author.username,
        "body": message.body,
        "html": markup.render(message.body),
        "created_at": timestamp(message.created_at),
        "edited_at": timestamp(message.edited_at),
        "client_id": message.client_id,
        "reactions": message.reactions or [],
        "previews": message.previews or [],
        "parent": message.parent_id,
        "also_in_room": message.also_in_room,
        "reply_count": message.reply_count,
        "last_reply_at": timestamp(message.last_reply_at),
        "attachments": message.attachments or [],
    }


def room_summary(room, user, *, unread=0):
    """Return one of `user`'s rooms as the sidebar shows it."""
    return {
        "room": room.slug, "title": room.title_for(user), "private": room.is_private, "direct": room.is_direct,
        "unread": unread, "last_seq": room.last_seq, "last_message_at": timestamp(room.last_message_at),
    }


def message_created(message):
    """Announce a new message to its room, its room's sidebars, and the other member of a direct room."""
    data = message_data(message)
    _sender().room_send_on_commit(message.room_id, MESSAGE, {"message": data}, seq=message.seq, cseq=message.cseq)
    previews_fetch_on_commit(message)
    if message.parent_id is not None and not message.also_in_room:
        return  # a reply in its thread only: the room's followers hear of it (thread_replied), not its sidebars
    _sender().activity_on_commit(message.room_id, {
        "room": data["room"], "seq": message.seq, "author": data["author"], "last_message_at": data["created_at"],
    })
    if message.room.is_direct:
        for user_id in direct_member_ids(message.room.slug) - {message.author_id}:
            _sender().user_event_on_commit(
                user_id, NOTIFICATION, {"room": data["room"], "reason": "direct", "message": data},
            )


def direct_member_ids(slug):
    """Return the two user ids a direct room's slug (dm-<id>-<id>) names."""
    return {int(part) for part in slug.split("-")[1:]}


def message_edited(message):
    """Announce an edited message to its room."""
    _sender().room_send_on_commit(
        message.room_id, MESSAGE_EDITED, {"message": message_data(message)}, cseq=message.cseq,
    )


def previews_fetch_on_commit(message):
    """Have the previews of a new or edited message's links fetched after commit, or the ones it no longer links dropped."""
    if settings.CHAT_PREVIEWS_ENABLED and (markup.links(message.body) or message.previews):
        _sender().previews_fetch_on_commit(message.id, message.body)


def message_reactions(message):
    """Announce a message's new reaction summary to its room."""
    data = {"id": message.id, "seq": message.seq, "cseq": message.cseq, "reactions": message.reactions or []}
    _sender().room_send_on_commit(message.room_id, MESSAGE_REACTIONS, data, cseq=message.cseq)


def message_previews(message):
    """Announce a message's new link previews to its room."""
    data = {"id": message.id, "seq": message.seq, "cseq": message.cseq, "previews": message.previews or []}
    _sender().room_send_on_commit(message.room_id, MESSAGE_PREVIEWS, data, cseq=message.cseq)


def message_deleted(message):
    """Announce a deleted message to its room."""
    _sender().room_send_on_commit(
        message.room_id, MESSAGE_DELETED, {"id": message.id, "seq": message.seq, "cseq": message.cseq},
        cseq=message.cseq,
    )


def user_mentioned(user_id, message):
    """Tell a user, wherever they are, that a message mentions them."""
    _sender().user_event_on_commit(user_id, NOTIFICATION, {"room": message.room.slug, "reason": "mention",
                                                           "message": message_data(message)})


def thread_replied(user_id, reply):
    """Tell a user who follows a thread, wherever they are, of a new reply in it."""
    _sender().user_event_on_commit(user_id, NOTIFICATION, {"room": reply.room.slug, "reason": "thread",
                                                           "message": message_data(reply)})


def room_read(user_id, room, *, last_read_seq, unread):
    """Tell a user's sockets that their read marker in a room moved (another tab clears its badge)."""
    _sender().user_event_on_commit(
        user_id, ROOM_READ, {"room": room.slug, "last_read_seq": last_read_seq, "unread": unread},
    )


def room_added(user, room, *, unread=0, added_by=None):
    """Tell a user's sockets that a room joined their sidebar (`added_by` names who added them, if someone did)."""
    data = {"room": room_summary(room, user, unread=unread), "room_id": room.pk}
    if added_by is not None:
        data["added_by"] = added_by.username
    _sender().user_event_on_commit(user.pk, ROOM_ADDED, data)


def room_change(room):
    """Return a room's name, topic and archived state as the change feed and its event carry them."""
    return {"name": room.name, "topic": room.topic, "archived": room.is_archived, "cseq": room.changed_cseq}


def room_changed(room):
    """Announce a room's new name, topic or archived state to its room and to the sidebars that list it."""
    data = room_change(room)
    _sender().room_send_on_commit(room.pk, ROOM_CHANGED, data, cseq=room.changed_cseq)
    _sender().activity_on_commit(room.pk, {"room": room.slug, **data}, kind=ROOM_CHANGED)


def room_removed(user_id, room):
    """Tell a user's sockets that they left a room or were removed from it."""
    _sender().user_event_on_commit(user_id, ROOM_REMOVED, {"room": room.slug, "room_id": room.pk})


def room_muted(user_id, room, until):
    """Tell a user's sockets that they are muted in a room until `until`, or no longer (None)."""
    _sender().user_event_on_commit(user_id, ROOM_MUTED, {"room": room.slug, "until": timestamp(until)})


def user_banned(user_id):
    """End every socket of a banned user (closed with 4401, as for an ended session)."""
    _sender().user_sessions_end_on_commit(user_id)
