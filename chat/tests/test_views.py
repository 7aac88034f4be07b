"""Pages: signup, login, the index and room pages."""
import json
import re

import pytest
from django.contrib.auth import get_user_model
from django.urls import reverse

from chat import services
from chat.models import Membership, Room


@pytest.fixture
def alice_client(client, make_user):
    client.force_login(make_user("alice"))
    return client


@pytest.mark.parametrize("url", ["/", "/chat/lobby/"])
def test_anonymous_visitors_are_sent_to_login(client, db, url):
    response = client.get(url)
    assert response.status_code == 302
    assert response["Location"] == f"{reverse('login')}?next={url}"
    assert not Room.objects.exists()


def test_signup_creates_the_user_and_logs_in(client, db):
    response = client.post(
        reverse("signup"), {"username": "carol", "password1": "a-long-pass-phrase", "password2": "a-long-pass-phrase"}
    )
    assert response.status_code == 302 and response["Location"] == reverse("chat:index")
    assert get_user_model().objects.filter(username="carol").exists()
    assert client.get("/").status_code == 200


def test_signup_with_mismatched_passwords_shows_errors(client, db):
    response = client.post(reverse("signup"), {"username": "carol", "password1": "a-long-pass", "password2": "other"})
    assert response.status_code == 400
    assert "password fields didn" in response.content.decode().replace("’", "'")
    assert not get_user_model().objects.exists()


def test_login_then_logout(client, make_user):
    make_user("alice")
    response = client.post(reverse("login"), {"username": "alice", "password": "pw-for-tests-42"})
    assert response.status_code == 302 and response["Location"] == reverse("chat:index")
    assert client.get("/").status_code == 200
    assert client.post(reverse("logout")).status_code == 302
    assert client.get("/").status_code == 302


def test_login_with_a_wrong_password_is_refused(client, make_user):
    make_user("alice")
    response = client.post(reverse("login"), {"username": "alice", "password": "wrong"})
    assert response.status_code == 200 and "_auth_user_id" not in client.session


def test_index_lists_my_rooms_then_other_public_rooms(alice_client, make_user):
    services.room_open(slug="quiet", user=make_user("bob"))
    alice_client.get("/chat/lobby/")
    response = alice_client.get("/")
    assert response.status_code == 200
    assert [m.room.slug for m in response.context["memberships"]] == ["lobby"]
    assert [room.slug for room in response.context["public_rooms"]] == ["quiet"]
    html = response.content.decode()
    assert 'href="/chat/lobby/"' in html and 'href="/chat/quiet/"' in html


def test_index_form_opens_a_room_by_name(alice_client):
    response = alice_client.post("/", {"name": "Design Team"})
    assert response.status_code == 302 and response["Location"] == "/chat/design-team/"


@pytest.mark.parametrize("name", ["", "café", "x" * 51, "<script>"])
def test_index_form_refuses_bad_names(alice_client, name):
    response = alice_client.post("/", {"name": name})
    assert response.status_code == 400
    assert response.context["form"].errors["name"]
    assert not Room.objects.exists()


def test_room_page_creates_the_room_and_carries_its_config(alice_client):
    response = alice_client.get("/chat/lobby/")
    assert response.status_code == 200
    room = Room.objects.get(slug="lobby")
    assert Membership.objects.filter(room=room, user__username="alice").exists()
    html = response.content.decode()
    start = html.index('<script id="room-config" type="application/json">') + len(
        '<script id="room-config" type="application/json">'
    )
    config = json.loads(html[start : html.index("</script>", start)])
    assert config["slug"] == "lobby" and config["username"] == "alice" and config["wsPath"] == "/ws/chat/lobby/"


@pytest.mark.parametrize("slug", ["Lobby", "x" * 51, "a.b", "%3Cscript%3E"])
def test_room_page_with_a_bad_slug_is_a_clear_400(alice_client, slug):
    response = alice_client.get(f"/chat/{slug}/")
    assert response.status_code == 400
    assert "lowercase letters" in response.content.decode()
    assert not Room.objects.exists()


# Room life pages.


def test_private_room_page_is_for_members_only(client, make_user):
    alice, eve = make_user("alice"), make_user("eve")
    services.room_open(slug="secret", user=alice, private=True)
    client.force_login(eve)
    response = client.get("/chat/secret/")
    assert response.status_code == 403 and "private" in response.content.decode()
    assert not Membership.objects.filter(user=eve).exists()
    assert "secret" not in [room.slug for room in client.get("/").context["public_rooms"]]


def test_index_form_creates_a_private_room(alice_client):
    response = alice_client.post("/", {"name": "Secret Plans", "private": "on"})
    assert response.status_code == 302 and response["Location"] == "/chat/secret-plans/"
    room = Room.objects.get(slug="secret-plans")
    assert room.is_private and room.name == "Secret Plans"


def test_dm_opens_the_direct_room_once(alice_client, make_user):
    make_user("bob")
    first = alice_client.get("/dm/bob/")
    second = alice_client.get("/dm/bob/")
    assert first.status_code == 302 and first["Location"] == second["Location"]
    assert Room.objects.filter(is_direct=True).count() == 1
    page = alice_client.get(first["Location"])
    assert page.status_code == 200 and page.context["title"] == "bob"


def test_dm_to_an_unknown_user_is_404(alice_client):
    assert alice_client.get("/dm/nobody/").status_code == 404
    assert not Room.objects.exists()


def test_creator_adds_and_removes_members(alice_client, make_user):
    make_user("bob")
    alice_client.post("/", {"name": "secret", "private": "on"})
    response = alice_client.post("/chat/secret/members/", {"username": "bob", "action": "add"})
    assert response.status_code == 302
    assert Membership.objects.filter(room__slug="secret", user__username="bob").exists()
    alice_client.post("/chat/secret/members/", {"username": "bob", "action": "remove"})
    assert not Membership.objects.filter(room__slug="secret", user__username="bob").exists()


def test_members_cannot_manage_members(client, make_user):
    alice, bob = make_user("alice"), make_user("bob")
    make_user("eve")
    room, _ = services.room_open(slug="secret", user=alice, private=True)
    services.membership_add(room=room, actor=alice, username="bob")
    client.force_login(bob)
    response = client.post("/chat/secret/members/", {"username": "eve", "action": "add"})
    assert response.status_code == 403
    assert not Membership.objects.filter(user__username="eve").exists()


@pytest.mark.parametrize("data", [{}, {"username": "bob", "action": "promote"}, {"action": "add"}])
def test_bad_member_form_is_400(alice_client, data, make_user):
    make_user("bob")
    alice_client.post("/", {"name": "secret", "private": "on"})
    assert alice_client.post("/chat/secret/members/", data).status_code == 400
    assert Membership.objects.filter(room__slug="secret").count() == 1


def test_index_shows_unread_counts(client, make_user):
    alice, bob = make_user("alice"), make_user("bob")
    room, _ = services.room_open(slug="lobby", user=alice)
    services.room_open(slug="lobby", user=bob)
    for _ in range(3):
        services.message_create(room=room, author=bob, body="x")
    services.message_create(room=room, author=alice, body="mine")
    client.force_login(alice)
    [membership] = client.get("/").context["memberships"]
    assert membership.unread == 3
    services.membership_read(room=room, user=alice, seq=2)
    [membership] = client.get("/").context["memberships"]
    assert membership.unread == 1


def test_room_page_has_a_rooms_sidebar_with_unread_counts(client, make_user):
    alice, bob = make_user("alice"), make_user("bob")
    lobby, _ = services.room_open(slug="lobby", user=alice)
    services.room_open(slug="lobby", user=bob)
    services.room_open(slug="other", user=alice)
    services.room_open(slug="elsewhere", user=bob)
    services.message_create(room=lobby, author=bob, body="hi")
    client.force_login(alice)
    response = client.get("/chat/other/")
    assert [m.room.slug for m in response.context["memberships"]] == ["lobby", "other"]
    assert [room.slug for room in response.context["public_rooms"]] == ["elsewhere"]
    html = response.content.decode()
    assert re.search(r'href="/chat/other/"\s+aria-current="page"', html)
    assert '1<span class="visually-hidden"> unread</span>' in html
