"""Moderation services: who may ban, mute and report, what each changes, and the audit log of every action."""
import datetime

import pytest
from django.contrib.sessions.models import Session
from django.core.exceptions import PermissionDenied, ValidationError
from django.test import Client
from django.utils import timezone

from chat.domain import moderation, services, threads
from chat.domain.models import AuditLog, Ban, Message, Mute, Report
from chat.realtime import batches
from chat.tests.conftest import logged_in_client

PASSWORD = "pw-for-tests-42"


@pytest.fixture
def staff(make_user):
    return make_user("mod", is_staff=True)


@pytest.fixture
def alice(make_user):
    return make_user("alice")


@pytest.fixture
def bob(make_user):
    return make_user("bob")


def in_minutes(minutes):
    return timezone.now() + datetime.timedelta(minutes=minutes)


def actions():
    return list(AuditLog.objects.order_by("id").values_list("action", "actor__username", "user__username"))


def test_a_ban_ends_every_session_of_the_user_only_hides_messages_and_is_logged(staff, alice, bob, sent):
    room, _ = services.room_create(slug="lobby", user=alice)
    services.room_join(slug="lobby", user=bob)
    kept, _ = services.message_create(room=room, author=bob, body="bob stays")
    for body in ("spam 1", "spam 2"):
        services.message_create(room=room, author=alice, body=body)
    clients = [logged_in_client(alice), logged_in_client(alice), logged_in_client(bob)]
    assert Session.objects.count() == 3
    sent.clear()

    moderation.user_ban(actor=staff, user=alice, hide_messages=True, reason="spam")

    assert Session.objects.count() == 1  # bob's
    assert clients[0].get("/").status_code == 302 and clients[2].get("/").status_code == 200
    assert list(room.messages.filter(is_deleted=False)) == [kept]
    # The hidden messages are changes of the room (each its own cseq), so pages and the change feed drop them.
    assert sorted(room.messages.filter(author=alice).values_list("cseq", flat=True)) == [4, 5]
    assert [kind for kind, _ in sent] == ["message_deleted", "message_deleted", "session.revoked"]
    [(_, _, _, log)] = AuditLog.objects.values_list("action", "actor", "user", "detail")
    assert log == {"actor": "mod", "username": "alice", "reason": "spam", "hidden_messages": 2, "sessions_ended": 2}
    assert Ban.objects.get(user=alice).hide_messages


def test_only_staff_ban_never_themselves_and_an_unban_lets_the_user_log_in_again(staff, alice, bob):
    with pytest.raises(PermissionDenied):
        moderation.user_ban(actor=bob, user=alice)
    with pytest.raises(PermissionDenied):
        moderation.user_ban(actor=staff, user=staff)
    moderation.user_ban(actor=staff, user=alice)
    client = Client()
    response = client.post("/accounts/login/", {"username": "alice", "password": PASSWORD})
    assert response.status_code == 200 and "This account has been banned." in response.content.decode()
    assert "_auth_user_id" not in client.session
    # A wrong password says nothing of a ban.
    wrong = client.post("/accounts/login/", {"username": "alice", "password": "wrong"}).content.decode()
    assert "banned" not in wrong
    moderation.user_unban(actor=staff, user=alice)
    assert client.post("/accounts/login/", {"username": "alice", "password": PASSWORD}).status_code == 302
    assert [a for a, *_ in actions()] == ["ban", "unban"]


def test_a_muted_author_stores_nothing_in_that_room_until_the_mute_ends(staff, alice, bob, sent):
    room, _ = services.room_create(slug="lobby", user=bob)
    other, _ = services.room_create(slug="other", user=bob)
    parent, _ = services.message_create(room=room, author=bob, body="parent")
    mute = moderation.room_mute(actor=staff, room=room, user=alice, until=in_minutes(10), reason="heated")
    assert ("room_muted", {"room": "lobby", "until": moderation.events.timestamp(mute.until)}) in sent
    assert moderation.mute_until(room=room, user=alice) == mute.until

    with pytest.raises(moderation.Muted) as refused:
        services.message_create(room=room, author=alice, body="hi")
    assert refused.value.until == mute.until and "muted in #lobby until" in str(refused.value)
    with pytest.raises(moderation.Muted):
        threads.reply_create(room=room, author=alice, parent_id=parent.id, body="a reply")
    # In a batch only the muted author's message is refused; the others are stored.
    results = batches.store_batch([
        (lambda: None, {"room": room, "author": alice, "body": "batched", "client_id": None}, None),
        (lambda: None, {"room": room, "author": bob, "body": "bob's", "client_id": None}, None),
    ])
    assert isinstance(results[0], moderation.Muted) and results[1][0].body == "bob's"
    assert not Message.objects.filter(author=alice).exists()
    services.message_create(room=other, author=alice, body="elsewhere is fine")

    Mute.objects.filter(pk=mute.pk).update(until=timezone.now() - datetime.timedelta(seconds=1))
    assert moderation.mute_until(room=room, user=alice) is None
    services.message_create(room=room, author=alice, body="back")


def test_a_room_creator_mutes_only_in_their_private_room_and_unmute_is_logged(staff, alice, bob, make_user):
    public, _ = services.room_create(slug="lobby", user=alice)
    private, _ = services.room_create(slug="secret", user=alice, private=True)
    with pytest.raises(PermissionDenied):
        moderation.room_mute(actor=alice, room=public, user=bob, until=in_minutes(5))
    with pytest.raises(PermissionDenied):
        moderation.room_mute(actor=bob, room=private, user=alice, until=in_minutes(5))
    with pytest.raises(PermissionDenied):
        moderation.room_mute(actor=alice, room=private, user=staff, until=in_minutes(5))
    with pytest.raises(ValidationError):
        moderation.room_mute(actor=alice, room=private, user=bob, until=in_minutes(-1))
    moderation.room_mute(actor=alice, room=private, user=bob, until=in_minutes(5))
    moderation.room_mute(actor=staff, room=public, user=bob, until=in_minutes(5))
    moderation.room_unmute(actor=alice, room=private, user=bob)
    assert moderation.mute_until(room=private, user=bob) is None
    assert moderation.mute_until(room=public, user=bob) is not None
    assert actions() == [("mute", "alice", "bob"), ("mute", "mod", "bob"), ("unmute", "alice", "bob")]


def test_a_member_reports_a_message_once_and_staff_resolve_it(staff, alice, bob, make_user):
    room, _ = services.room_create(slug="lobby", user=alice)
    services.room_join(slug="lobby", user=bob)
    before, _ = services.message_create(room=room, author=alice, body="before")
    message, _ = services.message_create(room=room, author=alice, body="rude")
    after, _ = services.message_create(room=room, author=bob, body="after")
    with pytest.raises(ValidationError):
        moderation.message_report(reporter=bob, room=room, message_id=message.id, reason="  ")
    with pytest.raises(ValidationError):
        moderation.message_report(reporter=alice, room=room, message_id=message.id, reason="mine")
    with pytest.raises(PermissionDenied):
        moderation.message_report(reporter=make_user("carol"), room=room, message_id=message.id, reason="rude")
    report, created = moderation.message_report(reporter=bob, room=room, message_id=message.id, reason="rude")
    again, created_again = moderation.message_report(reporter=bob, room=room, message_id=message.id, reason="x")
    assert created and not created_again and again.pk == report.pk and Report.objects.count() == 1
    assert moderation.report_context(report) == [before, message, after]
    with pytest.raises(PermissionDenied):
        moderation.report_resolve(actor=bob, report=report)
    moderation.report_resolve(actor=staff, report=report)
    report.refresh_from_db()
    assert report.resolved_by == staff and report.resolved_at is not None
    assert actions() == [("report", "bob", "alice"), ("report_resolve", "mod", "alice")]


def test_the_admin_bans_mutes_and_resolves_through_the_services_and_shows_a_report_in_context(make_user, alice, bob):
    admin_user = make_user("root", is_staff=True, is_superuser=True)
    client = logged_in_client(admin_user)
    room, _ = services.room_create(slug="lobby", user=alice)
    services.room_join(slug="lobby", user=bob)
    services.message_create(room=room, author=alice, body="before it")
    message, _ = services.message_create(room=room, author=alice, body="<b>rude</b>")
    report, _ = moderation.message_report(reporter=bob, room=room, message_id=message.id, reason="rude")

    page = client.get(f"/admin/chat/report/{report.pk}/change/").content.decode()
    assert "before it" in page and "&lt;b&gt;rude&lt;/b&gt;" in page and "<b>rude</b>" not in page
    response = client.post("/admin/chat/report/", {"action": "resolve", "_selected_action": [report.pk]})
    assert response.status_code == 302
    response = client.post("/admin/chat/ban/add/", {"user": alice.pk, "reason": "spam", "hide_messages": "on"})
    assert response.status_code == 302, response.content.decode()[:2000]
    until = (timezone.now() + datetime.timedelta(hours=1)).strftime("%Y-%m-%d %H:%M:%S")
    response = client.post("/admin/chat/mute/add/", {
        "room": room.pk, "user": bob.pk, "until_0": until[:10], "until_1": until[11:], "reason": "",
    })
    assert response.status_code == 302, response.content.decode()[:2000]
    ban = Ban.objects.get(user=alice)
    assert client.post(f"/admin/chat/ban/{ban.pk}/delete/", {"post": "yes"}).status_code == 302
    assert [a for a, *_ in actions()] == ["report", "report_resolve", "ban", "mute", "unban"]
    assert not room.messages.filter(author=alice, is_deleted=False).exists()
    assert client.get("/admin/chat/auditlog/").status_code == 200
    assert client.get("/admin/chat/auditlog/add/").status_code == 403


def test_a_private_rooms_creator_mutes_and_unmutes_a_member_from_the_page(alice, bob, make_user):
    room, _ = services.room_create(slug="secret", user=alice, private=True)
    services.membership_add(room=room, actor=alice, username="bob")
    creator = logged_in_client(alice)
    assert "Unmute<span" in creator.get("/chat/secret/").content.decode()
    response = creator.post("/chat/secret/mute/", {"username": "bob", "action": "mute", "minutes": "60"})
    assert response.status_code == 302
    left = moderation.mute_until(room=room, user=bob) - timezone.now()
    assert datetime.timedelta(minutes=59) < left <= datetime.timedelta(minutes=60)
    assert logged_in_client(bob).post("/chat/secret/mute/", {"username": "alice", "action": "mute"}).status_code == 403
    stranger = make_user("carol")
    assert creator.post("/chat/secret/mute/", {"username": "carol", "action": "mute"}).status_code == 400
    assert creator.post("/chat/secret/mute/", {"username": "bob", "action": "mute", "minutes": "7"}).status_code == 400
    assert creator.post("/chat/secret/mute/", {"username": "bob", "action": "unmute"}).status_code == 302
    assert moderation.mute_until(room=room, user=bob) is None and moderation.mute_until(room=room, user=stranger) is None
    services.room_create(slug="open", user=alice)
    services.room_join(slug="open", user=bob)
    assert creator.post("/chat/open/mute/", {"username": "bob", "action": "mute"}).status_code == 403
