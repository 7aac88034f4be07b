"""Moderation: bans, room mutes, reports of messages, and the audit log every action of them writes.

Each service checks who may act, writes its change and its AuditLog row in one
transaction, and announces it after commit (chat.domain.events): a ban ends
every login session of the user and closes their sockets with 4401; a mute or
unmute tells the user's sockets, so that the page's composer says so.
"""
from importlib import import_module

from django.conf import settings
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import IntegrityError, transaction
from django.utils import timezone

from chat.domain import events, sequences
from chat.domain.models import MAX_TOPIC_LENGTH, AuditLog, Ban, Membership, Message, Mute, Report
# Checked where messages are stored (chat.domain.sequences), and named from here.
from chat.domain.sequences import Muted  # noqa: F401

# The actions the audit log names.
BAN = "ban"
UNBAN = "unban"
MUTE = "mute"
UNMUTE = "unmute"
REPORT = "report"
REPORT_RESOLVE = "report_resolve"


def audit_log(*, actor, action, user=None, room=None, message=None, **detail):
    """Write one AuditLog row; names are kept in `detail` so that it still reads once its subjects are gone."""
    if user is not None:
        detail["username"] = user.username
    if room is not None:
        detail["room"] = room.slug
    return AuditLog.objects.create(
        actor=actor, action=action, user=user, room=room, message=message,
        detail={"actor": actor.username if actor else None, **detail},
    )


def _check_staff(actor, what):
    if not actor.is_staff:
        raise PermissionDenied(f"Only staff may {what}.")


def _reason(value, *, required=False):
    """Return a reason trimmed, or raise ValidationError when it is missing (if required) or too long."""
    value = value.strip() if isinstance(value, str) else ""
    if required and not value:
        raise ValidationError("Say why.", code="empty")
    if len(value) > MAX_TOPIC_LENGTH:
        raise ValidationError(f"A reason is at most {MAX_TOPIC_LENGTH} characters.", code="too_long")
    return value


def user_is_banned(user):
    """Return whether a user is banned."""
    return Ban.objects.filter(user=user).exists()


@transaction.atomic
def user_ban(*, actor, user, hide_messages=False, reason=""):
    """Ban a user: end every login session, close every socket (4401), refuse logins; optionally hide their messages."""
    _check_staff(actor, "ban a user")
    if user.pk == actor.pk or user.is_superuser:
        raise PermissionDenied("You cannot ban yourself or a superuser.")
    reason = _reason(reason)
    ban, created = Ban.objects.get_or_create(
        user=user, defaults={"banned_by": actor, "reason": reason, "hide_messages": hide_messages},
    )
    hidden = _messages_hide(user) if hide_messages else 0
    if not created and hide_messages and not ban.hide_messages:
        ban.hide_messages = True
        ban.save(update_fields=["hide_messages"])
    sessions = user_sessions_end(user)
    audit_log(actor=actor, action=BAN, user=user, reason=reason, hidden_messages=hidden, sessions_ended=sessions)
    events.user_banned(user.pk)
    return ban


@transaction.atomic
def user_unban(*, actor, user, reason=""):
    """Lift a user's ban: they may log in again (messages hidden by the ban stay hidden)."""
    _check_staff(actor, "unban a user")
    reason = _reason(reason)
    if Ban.objects.filter(user=user).delete()[0]:
        audit_log(actor=actor, action=UNBAN, user=user, reason=reason)


def _messages_hide(user):
    """Delete every message of the user, each as its room's next change; return how many."""
    hidden = 0
    # Room by room, each room's row locked by its first cseq until commit.
    messages = Message.objects.select_for_update().select_related("room").filter(author=user, is_deleted=False)
    for message in messages.order_by("room_id", "seq"):
        # archived=True: an archived room's history hides them too.
        message.cseq = sequences.next_cseq(message.room_id, archived=True)
        message.is_deleted = True
        message.save(update_fields=["is_deleted", "cseq"])
        events.message_deleted(message)
        hidden += 1
    return hidden


def user_sessions_end(user):
    """Delete every login session of the user from the session store (db or cached_db); return how many."""
    store = import_module(settings.SESSION_ENGINE).SessionStore
    # The store has no index by user: each live session is decoded (moderation is rare; sessions expire).
    ended = [
        session.pk for session in store.get_model_class().objects.filter(expire_date__gt=timezone.now()).iterator()
        if session.get_decoded().get("_auth_user_id") == str(user.pk)
    ]
    for session_key in ended:
        store(session_key).delete()  # the store's own delete, which also clears a cached_db store's cache
    return len(ended)


def _check_may_mute(actor, room, user):
    if actor.is_staff:
        return
    if not room.is_private or room.is_direct or room.created_by_id != actor.pk:
        raise PermissionDenied("Only staff, or the creator of a private room, may mute in a room.")
    if user.is_staff:
        raise PermissionDenied("Only staff may mute staff.")


@transaction.atomic
def room_mute(*, actor, room, user, until, reason=""):
    """Keep a user from sending in a room until `until`; staff may anywhere, a private room's creator there."""
    _check_may_mute(actor, room, user)
    if user.pk == actor.pk:
        raise PermissionDenied("You cannot mute yourself.")
    if until <= timezone.now():
        raise ValidationError("A mute ends in the future.", code="invalid")
    reason = _reason(reason)
    mute, _ = Mute.objects.update_or_create(
        room=room, user=user, defaults={"until": until, "muted_by": actor, "reason": reason},
    )
    audit_log(actor=actor, action=MUTE, user=user, room=room, until=events.timestamp(until), reason=reason)
    events.room_muted(user.pk, room, until)
    return mute


@transaction.atomic
def room_unmute(*, actor, room, user, reason=""):
    """End a user's mute in a room before its time."""
    _check_may_mute(actor, room, user)
    reason = _reason(reason)
    if Mute.objects.filter(room=room, user=user, until__gt=timezone.now()).delete()[0]:
        audit_log(actor=actor, action=UNMUTE, user=user, room=room, reason=reason)
        events.room_muted(user.pk, room, None)


def mute_until(*, room, user):
    """Return when the user's mute in the room ends, or None when they may send."""
    return sequences.mute_until(room_id=room.pk, user_id=user.pk)


def message_report(*, reporter, room, message_id, reason):
    """Report a message of the room to staff, once per member; return (report, created)."""
    reason = _reason(reason, required=True)
    message = Message.objects.select_related("author", "room").get(room=room, pk=message_id, is_deleted=False)
    if message.author_id == reporter.pk:
        raise ValidationError("You cannot report your own message.", code="own")
    if not Membership.objects.filter(room_id=message.room_id, user=reporter).exists():
        raise PermissionDenied("Only members of the room may report its messages.")
    try:
        with transaction.atomic():
            report = Report.objects.create(message=message, reporter=reporter, reason=reason)
            audit_log(actor=reporter, action=REPORT, user=message.author, room=message.room, message=message,
                      reason=reason)
    except IntegrityError:
        return Report.objects.get(message=message, reporter=reporter), False
    return report, True


@transaction.atomic
def report_resolve(*, actor, report):
    """Mark a report handled."""
    _check_staff(actor, "resolve a report")
    if report.resolved_at is None:
        report.resolved_at, report.resolved_by = timezone.now(), actor
        report.save(update_fields=["resolved_at", "resolved_by"])
        audit_log(actor=actor, action=REPORT_RESOLVE, user=report.message.author, room=report.message.room,
                  message=report.message, report=report.pk)
    return report


def report_context(report, *, around=3):
    """Return the messages of the reported message's room around it (deleted ones included), oldest first."""
    message = report.message
    nearby = Message.objects.select_related("author").filter(room_id=message.room_id)
    before = nearby.filter(seq__lt=message.seq).order_by("-seq")[:around]
    after = nearby.filter(seq__gt=message.seq).order_by("seq")[:around]
    return [*reversed(before), message, *after]
