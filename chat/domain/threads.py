"""Threads: replies to a message, numbered in its room like any message, and the users told of each new one."""
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.utils import timezone

from chat.domain import events, sequences, services
from chat.domain.models import Message, ThreadFollow


def reply_create(*, room, author, parent_id, body, client_id=None, also_in_room=False, attachments=None):
    """Store a reply in the thread of message `parent_id` and tell the thread's followers; return (reply, created).

    A repeated `client_id` stores nothing and returns the original reply, as message_create does.
    """
    try:
        with transaction.atomic():
            return _reply_store(room, author, parent_id, body, client_id, also_in_room, attachments), True
    except IntegrityError:
        existing = client_id and services.message_by_client_id(room, author, client_id)
        if not existing:
            raise
        return existing, False


def _reply_store(room, author, parent_id, body, client_id, also_in_room, attachments):
    parent = Message.objects.select_for_update().select_related("author", "room").get(
        room=room, pk=parent_id, is_deleted=False
    )
    if parent.parent_id is not None:
        raise ValidationError("Reply to the thread's first message: a reply has no thread of its own.", code="nested")
    now = timezone.now()
    reply = Message(
        room=room, author=author, body=body, client_id=client_id, parent=parent, also_in_room=also_in_room,
        created_at=now, attachments=attachments,
    )
    reply.seq, reply.cseq = sequences.next_seq(room, now, author.pk)
    reply.save(force_insert=True)
    # The parent's summary is a change of its own, so that a resume replays the new count.
    parent.reply_count += 1
    parent.last_reply_at = reply.created_at
    parent.cseq = sequences.next_cseq(room.pk)
    parent.save(update_fields=["reply_count", "last_reply_at", "cseq"])
    # Who took part follows: the parent's author from the first reply on, and each reply's author.
    participants = {author.pk} | ({parent.author_id} if parent.reply_count == 1 else set())
    for user_id in participants:
        ThreadFollow.objects.get_or_create(message=parent, user_id=user_id)
    events.message_created(reply)
    events.message_edited(parent)
    for user_id in ThreadFollow.objects.filter(message=parent).exclude(user=author).values_list("user_id", flat=True):
        events.thread_replied(user_id, reply)
    services.message_mentions_notify(reply)
    return reply


def thread_follow(*, room, user, message_id, follow=True):
    """Start or stop telling `user` of new replies to a message of `room` (a thread's parent, not deleted)."""
    parent = Message.objects.get(room=room, pk=message_id, is_deleted=False, parent__isnull=True)
    if follow:
        ThreadFollow.objects.get_or_create(message=parent, user=user)
    else:
        ThreadFollow.objects.filter(message=parent, user=user).delete()


def thread_following(*, message_id, user):
    """Return whether `user` is told of new replies in the thread of message `message_id`."""
    return ThreadFollow.objects.filter(message_id=message_id, user=user).exists()
