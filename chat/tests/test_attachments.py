"""chat/domain/attachments.py: what an upload may be, which files a message may take, and what deleting removes."""
import datetime
from io import StringIO

import pytest
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.files.storage import default_storage
from django.core.management import call_command
from django.test import TestCase
from django.utils import timezone

from chat.domain import attachments, services
from chat.domain.models import Attachment, Message
from chat.tests import hostile_files


@pytest.fixture(autouse=True)
def media(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path
    return tmp_path


@pytest.fixture
def alice(make_user):
    return make_user("alice")


@pytest.fixture
def room(alice):
    room, _ = services.room_create(slug="files", user=alice)
    return room


def upload(room, user, data=b"hello", name="notes.txt"):
    return attachments.attachment_create(
        room=room, uploader=user, prepared=attachments.attachment_prepare(name=name, data=data)
    )


@pytest.mark.parametrize("name, clean", [
    ("../../etc/passwd", "passwd"),
    ("..\\..\\windows\\win.ini", "win.ini"),
    ("/absolute/x.png", "x.png"),
    ("..", "file"),
    (".htaccess", "htaccess"),
    ("bad\x00name\r\n\x1b[31m.txt", "badname31m.txt"),
    ("my report\u202egnp.exe", "my_reportgnp.exe"),
    ("résumé 2026.pdf", "résumé_2026.pdf"),
    ("", "file"),
])
def test_file_names_lose_directories_and_control_characters(name, clean):
    assert attachments.file_name_clean(name) == clean


def test_a_long_name_keeps_its_extension():
    clean = attachments.file_name_clean("a" * 300 + ".pdf")
    assert len(clean) <= 100 and clean.endswith(".pdf")


@pytest.mark.parametrize("data, kind", [
    (hostile_files.png(), "image/png"),
    (b"%PDF-1.7\n%...", "application/pdf"),
    (hostile_files.HTML, "text/plain"),
    (hostile_files.SVG, "text/plain"),
    (b"\x00\x01\x02binary", "application/octet-stream"),
    ("naïve text".encode(), "text/plain"),
])
def test_the_type_comes_from_the_content(data, kind):
    assert attachments.content_sniff(data) == kind


def test_a_name_or_browser_type_never_changes_the_sniffed_type(room, alice):
    attachment = upload(room, alice, hostile_files.HTML, name="page.png")
    assert attachment.content_type == "text/plain" and attachment.width is None and not attachment.thumbnail_path


def test_the_stored_name_is_random_whatever_the_upload_is_called(room, alice, media):
    attachment = upload(room, alice, name="../../../../tmp/evil.txt")
    assert attachment.name == "evil.txt"
    assert attachment.path.startswith("attachments/") and ".." not in attachment.path
    assert (media / attachment.path).read_bytes() == b"hello"
    assert not (media.parent / "evil.txt").exists()


def test_an_image_is_stored_re_encoded_with_a_thumbnail(room, alice, settings, media):
    settings.CHAT_THUMBNAIL_SIDE = 32
    attachment = upload(room, alice, hostile_files.polyglot(), name="cat.png")
    assert (attachment.width, attachment.height, attachment.content_type) == (64, 48, "image/png")
    stored = (media / attachment.path).read_bytes()
    assert hostile_files.SCRIPT not in stored and stored != hostile_files.polyglot()
    assert (media / attachment.thumbnail_path).exists()
    data = attachments.attachment_data(attachment)
    assert data["url"] == f"/files/{attachment.pk}/cat.png"
    assert data["thumbnail_url"] == f"/files/{attachment.pk}/thumb/"


@pytest.mark.parametrize("data, message", [
    (hostile_files.png_bomb(), "larger than 40 megapixels"),
    (hostile_files.cut_off(hostile_files.jpeg(400, 400)), "broken or cut off"),
    (b"\x00binary", r"type \(application/octet-stream\) are not allowed"),
    (b"", "empty"),
])
def test_refused_uploads_store_nothing(room, alice, media, data, message):
    with pytest.raises(ValidationError, match=message):
        upload(room, alice, data)
    assert not Attachment.objects.exists() and not (media / "attachments").exists()


def test_the_size_and_daily_limits(room, alice, settings):
    settings.CHAT_UPLOAD_MAX_BYTES = 10
    with pytest.raises(ValidationError, match="larger than"):
        upload(room, alice, b"x" * 11)
    settings.CHAT_UPLOAD_DAILY_BYTES = 15
    upload(room, alice, b"y" * 10)
    with pytest.raises(ValidationError, match="in the last 24 hours"):
        upload(room, alice, b"z" * 6)
    Attachment.objects.update(created_at=timezone.now() - datetime.timedelta(days=1, seconds=1))
    upload(room, alice, b"z" * 6)


def test_only_members_upload(room, make_user):
    with pytest.raises(PermissionDenied):
        upload(room, make_user("outsider"))


def test_a_message_takes_its_authors_uploads_and_frames_show_them(room, alice, sent):
    first, second = upload(room, alice), upload(room, alice, hostile_files.png(), "p.png")
    message, created = attachments.message_send(
        room=room, author=alice, body="", attachment_ids=[second.pk, first.pk], client_id="c1"
    )
    assert created
    stored = Message.objects.get(pk=message.pk)
    assert [item["id"] for item in stored.attachments] == [second.pk, first.pk]
    assert set(Attachment.objects.values_list("message", flat=True)) == {message.pk}
    [data] = [data for kind, data in sent if kind == "message"]
    assert data["message"]["attachments"] == stored.attachments
    again, created = attachments.message_send(
        room=room, author=alice, body="", attachment_ids=[second.pk, first.pk], client_id="c1"
    )
    assert again.pk == message.pk and not created


def test_a_reply_takes_uploads_too(room, alice):
    parent, _ = services.message_create(room=room, author=alice, body="parent")
    reply, _ = attachments.message_send(
        room=room, author=alice, body="see file", attachment_ids=[upload(room, alice).pk], parent_id=parent.pk
    )
    assert reply.parent_id == parent.pk and Message.objects.get(pk=reply.pk).attachments[0]["name"] == "notes.txt"


def test_a_message_refuses_files_that_are_not_its_authors_to_take(room, alice, make_user):
    bob = make_user("bob")
    services.room_join(slug=room.slug, user=bob)
    other_room, _ = services.room_create(slug="elsewhere", user=alice)
    taken = upload(room, alice)
    attachments.message_send(room=room, author=alice, body="x", attachment_ids=[taken.pk])
    cases = {
        "not_yours": [upload(room, bob).pk],
        "elsewhere": [upload(other_room, alice).pk],
        "taken": [taken.pk],
        "missing": [10**9],
        "twice": [upload(room, alice).pk] * 2,
    }
    before = Message.objects.count()
    for case, ids in cases.items():
        with pytest.raises(ValidationError):
            attachments.message_send(room=room, author=alice, body="x", attachment_ids=ids)
    assert Message.objects.count() == before
    assert Attachment.objects.filter(message=None).count() == 3


def test_deleting_a_message_deletes_its_files(room, alice, media):
    attachment = upload(room, alice, hostile_files.png(), "p.png")
    message, _ = attachments.message_send(room=room, author=alice, body="x", attachment_ids=[attachment.pk])
    paths = [media / attachment.path, media / attachment.thumbnail_path]
    assert all(path.exists() for path in paths)
    with TestCase.captureOnCommitCallbacks(execute=True):
        services.message_delete(room=room, actor=alice, message_id=message.pk)
    assert not Attachment.objects.exists() and Message.objects.get(pk=message.pk).attachments is None
    assert not any(path.exists() for path in paths)


def test_stale_uploads_are_cleaned_after_a_day(room, alice, media):
    old, fresh = upload(room, alice), upload(room, alice)
    Attachment.objects.filter(pk=old.pk).update(created_at=timezone.now() - datetime.timedelta(days=2))
    with TestCase.captureOnCommitCallbacks(execute=True):
        assert attachments.attachments_stale_delete() == 1
    assert list(Attachment.objects.all()) == [fresh] and not default_storage.exists(old.path)
    assert default_storage.exists(fresh.path)


def test_deleting_a_room_or_a_user_deletes_their_files(room, alice, make_user, media):
    bob = make_user("bob")
    services.room_join(slug=room.slug, user=bob)
    sent = upload(room, alice, hostile_files.png(), "p.png")
    attachments.message_send(room=room, author=alice, body="x", attachment_ids=[sent.pk])
    unsent = upload(room, bob)
    with TestCase.captureOnCommitCallbacks(execute=True):
        bob.delete()
    assert not (media / unsent.path).exists() and (media / sent.path).exists()
    with TestCase.captureOnCommitCallbacks(execute=True):
        room.delete()
    assert not Attachment.objects.exists() and not any(path.is_file() for path in media.rglob("*"))


def test_who_may_read_a_file(room, alice, make_user):
    bob, outsider = make_user("bob"), make_user("outsider")
    private, _ = services.room_create(slug="secret", user=alice, private=True)
    services.membership_add(room=private, actor=alice, username="bob")
    unsent = upload(private, alice)
    with pytest.raises(Attachment.DoesNotExist):
        attachments.attachment_get_for_user(attachment_id=unsent.pk, user=bob)
    attachments.message_send(room=private, author=alice, body="x", attachment_ids=[unsent.pk])
    assert attachments.attachment_get_for_user(attachment_id=unsent.pk, user=bob) == unsent
    with pytest.raises(PermissionDenied):
        attachments.attachment_get_for_user(attachment_id=unsent.pk, user=outsider)


def test_the_clean_command_deletes_stale_uploads(room, alice):
    stale = upload(room, alice)
    Attachment.objects.filter(pk=stale.pk).update(created_at=timezone.now() - datetime.timedelta(days=1, minutes=1))
    output = StringIO()
    with TestCase.captureOnCommitCallbacks(execute=True):
        call_command("chat_uploads_clean", stdout=output)
    assert output.getvalue() == "Deleted 1 unsent upload.\n" and not Attachment.objects.exists()
    assert not default_storage.exists(stale.path)
