"""Invite links to private rooms: made and revoked by the creator, signed, expiring, joining only on a POST."""
import pytest
from django.core import signing
from django.core.exceptions import PermissionDenied, ValidationError
from django.urls import reverse

from chat.domain import events, invites, services
from chat.domain.models import Membership


@pytest.fixture
def secret(make_user):
    room, _ = services.room_create(slug="secret", user=make_user("alice"), private=True)
    return room


def test_a_link_admits_to_its_room_until_revoked_and_a_new_link_works_again(secret, make_user, sent):
    token = invites.invite_create(room=secret, actor=secret.created_by)
    bob = make_user("bob")
    room, created = invites.invite_accept(token=token, user=bob)
    assert room == secret and created
    assert invites.invite_accept(token=token, user=bob) == (secret, False)
    assert [data["room"]["room"] for kind, data in sent if kind == events.ROOM_ADDED] == ["secret"]  # once: bob's
    invites.invite_revoke(room=secret, actor=secret.created_by)
    with pytest.raises(ValidationError, match="revoked"):
        invites.invite_accept(token=token, user=make_user("carol"))
    secret.refresh_from_db()
    again = invites.invite_create(room=secret, actor=secret.created_by)
    with pytest.raises(ValidationError, match="revoked"):
        invites.invite_room(token)  # the old key stays revoked
    assert invites.invite_room(again) == secret


def test_only_the_creator_of_a_private_room_makes_or_revokes_links(secret, make_user):
    bob = make_user("bob")
    services.membership_add(room=secret, actor=secret.created_by, username="bob")
    for change in (invites.invite_create, invites.invite_revoke):
        with pytest.raises(PermissionDenied):
            change(room=secret, actor=bob)
    lobby, _ = services.room_create(slug="lobby", user=bob)
    with pytest.raises(PermissionDenied):
        invites.invite_create(room=lobby, actor=bob)
    secret.refresh_from_db()
    assert secret.invite_key == "" and invites.invite_token(secret) is None


def test_expired_forged_and_foreign_tokens_are_refused_and_add_no_one(secret, make_user, settings):
    token = invites.invite_create(room=secret, actor=secret.created_by)
    carol = make_user("carol")
    settings.CHAT_INVITE_MAX_AGE = -1
    with pytest.raises(ValidationError, match="expired"):
        invites.invite_accept(token=token, user=carol)
    settings.CHAT_INVITE_MAX_AGE = 3600
    secret.refresh_from_db()
    forged = [
        token[:-2] + ("AA" if not token.endswith("AA") else "BB"),
        "garbage",
        "",
        # Signed, but with another salt (another of the site's signed values).
        signing.dumps({"room": secret.pk, "key": secret.invite_key}, compress=True),
        # Signed, with the right salt, for the right room but a guessed key.
        signing.dumps({"room": secret.pk, "key": "0" * 32}, salt=invites.SALT, compress=True),
    ]
    for bad in forged:
        with pytest.raises(ValidationError):
            invites.invite_accept(token=bad, user=carol)
    assert not Membership.objects.filter(user=carol).exists()


def test_the_creator_makes_a_link_on_the_room_page_and_another_user_joins_by_it(client, secret, make_user):
    client.force_login(secret.created_by)
    page = client.get(reverse("chat:room", args=["secret"])).content.decode()
    assert "Create invite link" in page and 'id="invite-url"' not in page
    client.post(reverse("chat:invite_links", args=["secret"]), {"action": "create"})
    page = client.get(reverse("chat:room", args=["secret"])).content.decode()
    url = page.split('id="invite-url" class="invite__url" value="')[1].split('"')[0]
    path = url.removeprefix("http://testserver")
    dave = make_user("dave")
    client.force_login(dave)
    assert client.get(reverse("chat:room", args=["secret"])).status_code == 403
    offer = client.get(path)
    assert offer.status_code == 200 and "Join room" in offer.content.decode()
    assert not Membership.objects.filter(user=dave).exists()  # opening the link only asks
    response = client.post(path)
    assert response.status_code == 302 and response["Location"] == reverse("chat:room", args=["secret"])
    assert client.get(reverse("chat:room", args=["secret"])).status_code == 200
    assert client.get(path).status_code == 302  # a member already: straight to the room
    client.force_login(secret.created_by)
    client.post(reverse("chat:invite_links", args=["secret"]), {"action": "revoke"})
    client.force_login(make_user("erin"))
    refused = client.post(path)
    assert refused.status_code == 400 and "revoked" in refused.content.decode()
    assert client.post(reverse("chat:invite_links", args=["secret"]), {"action": "create"}).status_code == 403
