"""Pages: signup, login, the index and room pages."""
import json
import re

import pytest
from django.contrib.auth import get_user_model
from django.urls import reverse

from chat.domain import services
from chat.domain.models import Membership, Room


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


@pytest.mark.parametrize("next_url, goes_to", [
    ("/invite/abc/", "/invite/abc/"),
    ("https://elsewhere.example/", "/"),
    ("//elsewhere.example/", "/"),
])
def test_signup_from_a_page_behind_the_login_goes_back_to_it_on_this_site_only(client, db, next_url, goes_to):
    login_page = client.get(reverse("login"), {"next": next_url}).content.decode()
    # The login page passes on only a next of this site (Django's own check), as the sign-up does.
    assert (f'{reverse("signup")}?next=' in login_page) == (goes_to == next_url)
    form = client.get(reverse("signup"), {"next": next_url}).content.decode()
    assert 'name="next"' in form
    response = client.post(reverse("signup"), {
        "username": "carol", "password1": "a-long-pass-phrase", "password2": "a-long-pass-phrase", "next": next_url,
    })
    assert response.status_code == 302 and response["Location"] == goes_to


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
    services.room_create(slug="quiet", user=make_user("bob"))
    alice_client.post("/chat/lobby/")
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


def config_of(response):
    """Return the room page's JSON configuration."""
    html = response.content.decode()
    start = html.index('<script id="room-config" type="application/json">') + len(
        '<script id="room-config" type="application/json">'
    )
    return json.loads(html[start : html.index("</script>", start)])


def test_room_page_carries_its_config(alice_client):
    alice_client.post("/chat/lobby/")
    response = alice_client.get("/chat/lobby/")
    assert response.status_code == 200
    config = config_of(response)
    assert config["slug"] == "lobby" and config["username"] == "alice" and config["wsPath"] == "/ws/"


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
    first = alice_client.post("/dm/bob/")
    second = alice_client.post("/dm/bob/")
    assert first.status_code == 302 and first["Location"] == second["Location"]
    assert Room.objects.filter(is_direct=True).count() == 1
    page = alice_client.get(first["Location"])
    assert page.status_code == 200 and page.context["title"] == "bob"


def test_dm_to_an_unknown_user_is_404(alice_client):
    assert alice_client.get("/dm/nobody/").status_code == 404
    assert alice_client.post("/dm/nobody/").status_code == 404
    assert alice_client.post("/dm/", {"username": "nobody"}).status_code == 404
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


# Reading never writes: rooms and conversations open by POST (issue 17).


def test_an_unknown_room_offers_a_create_form_and_creates_nothing(alice_client):
    response = alice_client.get("/chat/new-room/")
    assert response.status_code == 404
    html = response.content.decode()
    assert "Create #new-room?" in html and 'method="post" action="/chat/new-room/"' in html
    assert "csrfmiddlewaretoken" in html
    assert not Room.objects.exists() and not Membership.objects.exists()


def test_posting_the_create_form_creates_a_public_room_and_joins_it(alice_client):
    response = alice_client.post("/chat/new-room/")
    assert response.status_code == 302 and response["Location"] == "/chat/new-room/"
    room = Room.objects.get(slug="new-room")
    assert not room.is_private and room.created_by.username == "alice"
    assert Membership.objects.filter(room=room, user__username="alice").exists()


def test_the_create_form_needs_its_csrf_token(make_user):
    from django.test import Client

    client = Client(enforce_csrf_checks=True)
    client.force_login(make_user("alice"))
    assert client.post("/chat/new-room/").status_code == 403
    assert client.post("/dm/", {"username": "alice"}).status_code == 403
    assert not Room.objects.exists()


def test_a_reserved_direct_slug_offers_no_create_form(alice_client):
    response = alice_client.get("/chat/dm-1-2/")
    assert response.status_code == 404 and "Create" not in response.content.decode()


def test_reading_a_public_room_does_not_join_it(alice_client, make_user):
    room, _ = services.room_create(slug="lobby", user=make_user("bob"))
    response = alice_client.get("/chat/lobby/")
    assert response.status_code == 200 and config_of(response)["lastReadSeq"] == 0
    assert [m.room.slug for m in response.context["memberships"]] == []
    assert [r.slug for r in response.context["public_rooms"]] == ["lobby"]
    assert alice_client.get("/chat/lobby/messages/").status_code == 200
    assert not Membership.objects.filter(user__username="alice").exists()


def test_the_history_of_an_unknown_room_is_404_and_creates_nothing(alice_client):
    response = alice_client.get("/chat/new-room/messages/")
    assert response.status_code == 404 and response.json()["error"] == "not_found"
    assert not Room.objects.exists()


def test_a_dm_link_offers_a_post_form_and_creates_nothing(alice_client, make_user):
    make_user("bob")
    response = alice_client.get("/dm/bob/")
    assert response.status_code == 200
    assert 'method="post" action="/dm/bob/"' in response.content.decode()
    assert not Room.objects.exists()


def test_a_dm_link_goes_to_an_existing_conversation(alice_client, make_user):
    room = services.room_open_direct(user=make_user("bob"), username="alice")
    response = alice_client.get("/dm/bob/")
    assert response.status_code == 302 and response["Location"] == f"/chat/{room.slug}/"


def test_the_index_dm_form_posts(alice_client, make_user):
    make_user("bob")
    html = alice_client.get("/").content.decode()
    assert re.search(r'<form method="post" action="/dm/"', html) and 'name="username"' in html
    response = alice_client.post("/dm/", {"username": " bob "})
    room = Room.objects.get(is_direct=True)
    assert response.status_code == 302 and response["Location"] == f"/chat/{room.slug}/"
    assert alice_client.post("/dm/", {"username": ""}).status_code == 400


def test_room_member_links_open_dms_by_post(alice_client, make_user):
    make_user("bob")
    alice_client.post("/", {"name": "secret", "private": "on"})
    alice_client.post("/chat/secret/members/", {"username": "bob", "action": "add"})
    html = alice_client.get("/chat/secret/").content.decode()
    assert 'href="/dm/bob/"' not in html and '<form method="post" action="/dm/bob/">' in html


def test_members_of_an_unknown_room_is_404(alice_client):
    assert alice_client.post("/chat/nowhere/members/", {"username": "bob", "action": "add"}).status_code == 404
    assert not Room.objects.exists()


def test_the_reaction_picker_gets_every_emoji_once_with_its_words(client, db):
    response = client.get("/chat/emoji.json")
    assert response.status_code == 200 and "max-age=86400" in response["Cache-Control"]
    choices = response.json()
    emoji = [character for character, _ in choices]
    assert len(emoji) == len(set(emoji)) > 1000
    assert dict(choices)["👍"].startswith("thumbs up")
    # Skin tones are not separate choices.
    assert "👍🏽" not in emoji


def test_mention_completion_offers_members_of_rooms_the_user_may_read_only(alice_client, make_user):
    alice = get_user_model().objects.get(username="alice")
    for name in ("Bruno", "bruce", "brian", "carol"):
        make_user(name)
    room, _ = services.room_create(slug="lobby", user=alice)
    for name in ("Bruno", "bruce", "carol"):
        services.room_join(slug="lobby", user=get_user_model().objects.get(username=name))
    secret, _ = services.room_create(slug="secret", user=get_user_model().objects.get(username="carol"), private=True)

    # brian is no member; the match ignores case.
    # (In the database's collation order, which differs between SQLite and PostgreSQL.)
    assert set(alice_client.get("/chat/lobby/members.json", {"q": "bru"}).json()["users"]) == {"Bruno", "bruce"}
    assert alice_client.get("/chat/lobby/members.json", {"q": "zz"}).json() == {"users": []}
    assert alice_client.get("/chat/secret/members.json", {"q": "c"}).status_code == 403
    assert alice_client.get("/chat/nowhere/members.json").status_code == 404


def test_a_permalink_serves_the_room_page_opened_at_the_message(alice_client):
    alice = get_user_model().objects.get(username="alice")
    services.room_create(slug="lobby", user=alice)
    response = alice_client.get("/chat/lobby/m/7/")
    assert response.status_code == 200
    config = json.loads(re.search(r'id="room-config"[^>]*>(.*?)</script>', response.content.decode()).group(1))
    assert (config["slug"], config["focusSeq"]) == ("lobby", 7)
    assert json.loads(re.search(r'id="room-config"[^>]*>(.*?)</script>',
                                alice_client.get("/chat/lobby/").content.decode()).group(1))["focusSeq"] is None


def test_the_creator_archives_a_room_from_its_page_and_the_lobby_lists_it_apart(alice_client, client, make_user):
    alice = get_user_model().objects.get(username="alice")
    room, _ = services.room_create(slug="old", user=alice)
    url = reverse("chat:archive", args=["old"])
    page = alice_client.get(reverse("chat:room", args=["old"])).content.decode()
    assert url in page and 'id="room-archived" class="room__archived" role="status" hidden' in page
    response = alice_client.post(url, {"archived": "1"})
    assert response.status_code == 302 and Room.objects.get().is_archived
    page = alice_client.get(reverse("chat:room", args=["old"])).content.decode()
    assert 'id="room-archived" class="room__archived" role="status">' in page
    lobby = alice_client.get("/").content.decode()
    archived = lobby[lobby.index("Archived rooms"):]
    assert 'href="/chat/old/"' in archived and 'data-room="old"' not in lobby[:lobby.index("Archived rooms")]
    alice_client.post(url, {"archived": "0"})
    assert not Room.objects.get().is_archived


def test_only_the_creator_or_staff_may_archive_a_room(client, make_user):
    alice, bob = make_user("alice"), make_user("bob")
    services.room_create(slug="lobby", user=alice)
    client.force_login(bob)
    url = reverse("chat:archive", args=["lobby"])
    assert url not in client.get(reverse("chat:room", args=["lobby"])).content.decode()
    assert client.post(url, {"archived": "1"}).status_code == 403
    assert not Room.objects.get().is_archived
    client.force_login(make_user("root", is_staff=True))
    assert client.post(url, {"archived": "1"}).status_code == 302
    assert Room.objects.get().is_archived
