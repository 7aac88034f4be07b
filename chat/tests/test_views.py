"""Pages: signup, login, the index and room pages."""
import json

import pytest
from django.contrib.auth import get_user_model
from django.urls import reverse

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


def test_index_lists_public_rooms(alice_client):
    alice_client.get("/chat/lobby/")
    response = alice_client.get("/")
    assert response.status_code == 200
    assert [room.slug for room in response.context["public_rooms"]] == ["lobby"]
    assert 'href="/chat/lobby/"' in response.content.decode()


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
