"""Files attached to messages: checked and stored when uploaded, taken by the message their uploader sends next.

An upload is refused unless its sniffed type is allowed (settings.CHAT_UPLOAD_ALLOWED_TYPES); a raster image is
stored only as Pillow wrote it anew (chat.domain.images), which leaves any payload that rode along behind.
attachment_prepare does the CPU work and runs in a worker thread; the rest are database calls.
"""
import dataclasses
import datetime
import uuid

import filetype
from django.conf import settings
from django.core.exceptions import PermissionDenied, SuspiciousFileOperation, ValidationError
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.db import transaction
from django.db.models import Sum
from django.urls import reverse
from django.utils import timezone
from django.utils.text import get_valid_filename

from chat.domain import images, selectors, services, threads
from chat.domain.models import MAX_FILE_NAME_LENGTH, MAX_MESSAGE_ATTACHMENTS, Attachment, Membership, Message

RASTER_TYPES = images.DECODED_TYPES
# Unattached uploads older than this are deleted by `manage.py chat_uploads_clean`.
STALE_AFTER = datetime.timedelta(days=1)


@dataclasses.dataclass(frozen=True)
class Prepared:
    """An upload checked and ready to store: its safe name, sniffed type, content, and a thumbnail for images."""

    name: str
    content_type: str
    data: bytes
    width: int | None = None
    height: int | None = None
    thumbnail: images.Image | None = None


def file_name_clean(name):
    """Return a file name safe to show and download: no directories, control characters or leading dots."""
    name = (name or "").replace("\\", "/").rsplit("/", 1)[-1]
    try:
        # Keeps letters (any script), digits, '-', '_' and '.'; spaces become '_'.
        name = get_valid_filename(name).lstrip(".")
    except SuspiciousFileOperation:
        name = ""
    if len(name) > MAX_FILE_NAME_LENGTH:
        stem, dot, extension = name.rpartition(".")
        extension = extension[:10] if dot else ""
        name = f"{(stem if dot else name)[:MAX_FILE_NAME_LENGTH - 11]}.{extension}".rstrip(".")
    return name or "file"


def content_sniff(data):
    """Return the type of `data` from its content: a known signature, else text/plain for UTF-8 text."""
    kind = filetype.guess_mime(data[:8192])
    if kind:
        return kind
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return "application/octet-stream"
    return "application/octet-stream" if "\x00" in text else "text/plain"


def upload_size_check(size):
    """Raise ValidationError (code too_large) if one file of `size` bytes is more than an upload may be."""
    if size > settings.CHAT_UPLOAD_MAX_BYTES:
        raise ValidationError(f"The file is larger than {_size(settings.CHAT_UPLOAD_MAX_BYTES)}.", code="too_large")


def attachment_prepare(*, name, data):
    """Return the upload checked, its image re-encoded with a thumbnail; raise ValidationError saying why not."""
    upload_size_check(len(data))
    if not data:
        raise ValidationError("The file is empty.", code="empty")
    content_type = content_sniff(data)
    if content_type not in settings.CHAT_UPLOAD_ALLOWED_TYPES:
        raise ValidationError(f"Files of this type ({content_type}) are not allowed.", code="type")
    name = file_name_clean(name)
    if content_type not in RASTER_TYPES:
        return Prepared(name=name, content_type=content_type, data=data)
    try:
        image = images.image_reencode(data, max_pixels=settings.CHAT_IMAGE_MAX_PIXELS)
        thumbnail = images.image_reencode(
            image.data, max_side=settings.CHAT_THUMBNAIL_SIDE, max_pixels=settings.CHAT_IMAGE_MAX_PIXELS
        )
    except images.ImageRefused as error:
        raise ValidationError(f"The image is refused: {error}.", code="image") from None
    return Prepared(
        name=name, content_type=image.content_type, data=image.data, width=image.width, height=image.height,
        thumbnail=thumbnail,
    )


def _size(count):
    return f"{count / 1024 / 1024:.3g} MB" if count >= 1024 * 1024 else f"{count / 1024:.3g} KB"


def upload_quota_check(*, user, size):
    """Raise ValidationError if `size` more bytes would take the user past their uploads of the last 24 hours."""
    since = timezone.now() - datetime.timedelta(days=1)
    used = Attachment.objects.filter(uploader=user, created_at__gte=since).aggregate(total=Sum("size"))["total"] or 0
    if used + size > settings.CHAT_UPLOAD_DAILY_BYTES:
        raise ValidationError(
            f"You have uploaded {_size(used)} in the last 24 hours; the limit is "
            f"{_size(settings.CHAT_UPLOAD_DAILY_BYTES)}.", code="quota",
        )


def attachment_create(*, room, uploader, prepared):
    """Store a prepared upload under a random name and return its Attachment, not yet in any message."""
    if room.is_archived:
        raise PermissionDenied("This room is archived.")
    if not Membership.objects.filter(room=room, user=uploader).exists():
        raise PermissionDenied("Only members of the room may upload to it.")
    upload_quota_check(user=uploader, size=len(prepared.data))
    stem = f"attachments/{uuid.uuid4().hex}"
    # The storage may change a name it is given (a collision): keep what it says.
    path = default_storage.save(stem, ContentFile(prepared.data))
    thumbnail_path = ""
    try:
        if prepared.thumbnail is not None:
            thumbnail_path = default_storage.save(f"{stem}-thumb", ContentFile(prepared.thumbnail.data))
        return Attachment.objects.create(
            room=room, uploader=uploader, name=prepared.name, content_type=prepared.content_type,
            size=len(prepared.data), path=path, width=prepared.width, height=prepared.height,
            thumbnail_path=thumbnail_path,
        )
    except BaseException:
        _files_delete([path, thumbnail_path])
        raise


def attachment_data(attachment):
    """Return an attachment as every frame and the upload's answer show it (docs/protocol.md, Attachment object)."""
    return {
        "id": attachment.pk,
        "name": attachment.name,
        "size": attachment.size,
        "content_type": attachment.content_type,
        "width": attachment.width,
        "height": attachment.height,
        "url": reverse("chat:file", args=[attachment.pk, attachment.name]),
        "thumbnail_url": reverse("chat:file_thumbnail", args=[attachment.pk]) if attachment.thumbnail_path else None,
    }


def _attachments_take(room, author, ids):
    """Return the author's unattached uploads in the room named by `ids`, locked, in that order; else raise."""
    if len(ids) > MAX_MESSAGE_ATTACHMENTS:
        raise ValidationError(f"A message takes at most {MAX_MESSAGE_ATTACHMENTS} files.", code="too_many")
    if len(set(ids)) != len(ids):
        raise ValidationError("The same file is attached twice.", code="repeated")
    found = {
        attachment.pk: attachment
        for attachment in Attachment.objects.select_for_update().filter(pk__in=ids, room=room, uploader=author)
    }
    if len(found) != len(ids):
        raise ValidationError("Attach only files you uploaded to this room.", code="not_yours")
    if any(attachment.message_id is not None for attachment in found.values()):
        raise ValidationError("A file is attached to another message already.", code="taken")
    return [found[pk] for pk in ids]


def message_send(*, room, author, body, attachment_ids, client_id=None, parent_id=None, also_in_room=False):
    """Store a message (or a reply in `parent_id`'s thread) with the author's uploads; return (message, created).

    Anything wrong with the files stores nothing. A repeated `client_id` returns the stored message, as
    message_create does.
    """
    with transaction.atomic():
        existing = client_id and services.message_by_client_id(room, author, client_id)
        if existing:
            return existing, False
        taken = _attachments_take(room, author, list(attachment_ids))
        data = [attachment_data(attachment) for attachment in taken]
        if parent_id is not None:
            message, _ = threads.reply_create(
                room=room, author=author, parent_id=parent_id, body=body, client_id=client_id,
                also_in_room=also_in_room, attachments=data,
            )
        else:
            [message] = services.message_create_many(
                [{"room": room, "author": author, "body": body, "client_id": client_id, "attachments": data}]
            )
        # PostgreSQL's one-statement insert leaves the column out; the frames already carry it from the object.
        Message.objects.filter(pk=message.pk).update(attachments=data)
        Attachment.objects.filter(pk__in=attachment_ids).update(message=message)
    return message, True


def message_attachments_delete(message):
    """Delete a deleted message's files (the rows now, the stored files once the deletion commits)."""
    Attachment.objects.filter(message=message).delete()
    message.attachments = None
    Message.objects.filter(pk=message.pk).update(attachments=None)


def attachment_files_delete(sender, instance, **kwargs):
    """Delete a deleted Attachment row's stored files once the deletion commits (a post_delete receiver)."""
    transaction.on_commit(lambda: _files_delete([instance.path, instance.thumbnail_path]))


def _files_delete(paths):
    for path in paths:
        if path:
            default_storage.delete(path)


def attachments_stale_delete(*, now=None):
    """Delete uploads never attached to a message within STALE_AFTER; return how many."""
    count, _ = Attachment.objects.filter(message=None, created_at__lt=(now or timezone.now()) - STALE_AFTER).delete()
    return count


def attachment_get_for_user(*, attachment_id, user):
    """Return an attachment the user may read: in a room they may read, or their own not yet sent; else raise."""
    attachment = Attachment.objects.select_related("room").get(pk=attachment_id)
    if attachment.message_id is None:
        if attachment.uploader_id != user.pk:
            raise Attachment.DoesNotExist
        return attachment
    # The same check as the room's page: public rooms for anyone, private rooms and DMs for members.
    selectors.room_get_for_user(slug=attachment.room.slug, user=user)
    return attachment
