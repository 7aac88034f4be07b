"""The chat in real Chromium against the real app: daphne, SQLite or PostgreSQL, and once Redis."""
import json
import os
import re
import signal
import time
from pathlib import Path

import pytest
from playwright.sync_api import expect

from chat.tests.browser import (  # noqa: F401 (fixtures)
    app, app_with, browser, browser_context_args, browser_users, enter_room, log_in, message_bodies, open_lobby, open_page,
    playwright, redis_app, room, send, static_root,
)
from chat.tests.pagesite import site
from harness.servers import PASSWORD, PROJECT_DIR

pytestmark = [pytest.mark.timeout(180)]
SCREENSHOTS = PROJECT_DIR / "docs" / "screenshots"
both_layers = pytest.mark.parametrize("layer", ["memory", "redis"])


def served(request, layer):
    """Return the app with the in-memory layer or the one with Redis."""
    return request.getfixturevalue("app" if layer == "memory" else "redis_app")


def shown_seqs(page):
    return [int(seq) for seq in page.locator("#messages > .message").evaluate_all("items => items.map(i => i.dataset.seq)")]


def shown(page):
    """Return the (seq, body) pairs the page lists, top to bottom; unconfirmed ones have seq None."""
    return page.locator("#messages > .message").evaluate_all(
        """items => items.map(item => [
             item.dataset.seq ? Number(item.dataset.seq) : null,
             item.querySelector('.message__body').textContent])"""
    )


def test_sign_up_open_a_direct_message_and_log_in_again(app, open_page):
    erin = open_page(app)
    erin.goto("/")
    erin.get_by_role("link", name="Sign up").click()
    erin.get_by_label("Username").fill("erin")
    erin.get_by_label(re.compile(r"^Password:?$")).fill(PASSWORD)
    erin.get_by_label("Password confirmation").fill(PASSWORD)
    erin.get_by_role("button", name="Create account").click()
    expect(erin.get_by_role("heading", name="Your rooms")).to_be_visible()

    erin.get_by_label("Username").fill("ada")
    erin.get_by_role("button", name="Open conversation").click()
    expect(erin.get_by_role("heading", name="ada")).to_be_visible()
    expect(erin.locator("#connection-status")).to_have_text("Connected")
    send(erin, "hi ada, got a minute?")
    expect(erin.locator("#messages > .message[data-seq='1']")).to_contain_text("hi ada, got a minute?")

    erin.get_by_role("button", name="Log out").click()
    expect(erin.get_by_role("heading", name="Log in")).to_be_visible()
    log_in(erin, "erin")
    expect(erin.locator(".room-list").first).to_contain_text("ada")

    ada = open_page(app, "ada")
    direct = ada.locator(".room-list__item", has_text="erin")
    expect(direct.locator(".badge")).to_have_text("1 unread")
    direct.get_by_role("link", name="erin").click()
    expect(message_bodies(ada)).to_have_text(["hi ada, got a minute?"])


@both_layers
def test_two_users_chat_both_ways_live_and_reload_keeps_the_history(request, layer, open_page, room):
    live = served(request, layer)
    ada, bruno = open_page(live, "ada"), open_page(live, "bruno")
    enter_room(ada, room)
    enter_room(bruno, room)

    send(ada, "hello bruno")
    expect(message_bodies(bruno)).to_have_text(["hello bruno"])
    expect(bruno.locator("#announcer")).to_contain_text("ada: hello bruno")
    composer = bruno.get_by_label("Message", exact=True)
    composer.fill("line one")
    composer.press("Shift+Enter")
    composer.press_sequentially("line two")
    composer.press("Enter")
    expect(message_bodies(ada)).to_have_text(["hello bruno", "line one line two"])
    expect(message_bodies(ada).nth(1)).to_have_js_property("textContent", "line one\nline two")
    send(bruno, "and a third")
    expect(message_bodies(ada)).to_have_text(["hello bruno", "line one line two", "and a third"])
    # Bruno's two messages in a row read as one block under one name.
    expect(ada.locator("#messages > .message").nth(2)).to_have_class(re.compile(r"\bmessage--grouped\b"))
    expect(ada.locator("#messages > .message").nth(1)).not_to_have_class(re.compile(r"\bmessage--grouped\b"))

    # Up arrow in the empty composer edits the last own message; Escape gives the draft back.
    composer = ada.get_by_label("Message", exact=True)
    composer.press("ArrowUp")
    expect(composer).to_have_value("hello bruno")
    composer.press("Escape")
    expect(composer).to_have_value("")
    composer.press("ArrowUp")
    composer.fill("hello bruno, edited")
    composer.press("Enter")
    expect(message_bodies(bruno).first).to_have_text("hello bruno, edited (edited)")

    bruno.reload()
    expect(bruno.locator("#connection-status")).to_have_text("Connected")
    expect(message_bodies(bruno)).to_have_text(["hello bruno, edited (edited)", "line one line two", "and a third"])


def test_scrolling_up_loads_older_messages(app, open_page, room):
    app.seed(room, [("chloe", f"old {i}", f"2025-03-10T12:{i - 1:02}:00Z") for i in range(1, 61)])
    ada = open_page(app, "ada")
    enter_room(ada, room)
    expect(message_bodies(ada)).to_have_count(50)
    expect(message_bodies(ada).first).to_have_text("old 11")
    # 12:59 UTC is 8:59 in New York, the page's time zone, in summer time since the day before.
    expect(ada.locator("#messages > .message").last.locator("time")).to_have_text("8:59 AM")

    ada.locator("#message-scroller").hover()
    ada.mouse.wheel(0, -20_000)
    expect(message_bodies(ada)).to_have_count(60)
    expect(message_bodies(ada).first).to_have_text("old 1")
    expect(ada.get_by_role("button", name="Load older messages")).to_be_hidden()
    expect(ada.locator(".day-divider")).to_have_text(["Monday, March 10, 2025"])
    # One author, a minute apart: one block, one name.
    expect(ada.locator("#messages > .message--grouped")).to_have_count(59)
    assert shown_seqs(ada) == list(range(1, 61))


@both_layers
def test_restarting_the_server_loses_and_repeats_nothing(request, layer, open_page, room):
    live = served(request, layer)
    ada, bruno = open_page(live, "ada"), open_page(live, "bruno")
    enter_room(ada, room)
    enter_room(bruno, room)
    send(ada, "before the restart")
    expect(message_bodies(bruno)).to_have_text(["before the restart"])

    live.stop()
    for page in (ada, bruno):
        expect(page.locator("#connection-status")).to_have_text("Reconnecting…")
    # Written while the server is down: shown as waiting, never dropped.
    send(ada, "written while down")
    expect(ada.locator("#messages > .message--pending")).to_contain_text("written while down")
    live.seed(room, [("chloe", "stored while the pages were away")])
    live.start()

    for page in (ada, bruno):
        expect(page.locator("#connection-status")).to_have_text("Connected")
    expect(ada.locator("#messages > .message--pending")).to_have_count(0)
    send(bruno, "after the restart")
    for page in (ada, bruno):
        expect(message_bodies(page).last).to_have_text("after the restart")
    stored = live.stored(room)
    # The waiting message goes out after the welcome, so after the one stored while the server was down.
    assert [body for _, body in stored] == [
        "before the restart", "stored while the pages were away", "written while down", "after the restart",
    ]
    for page in (ada, bruno):
        assert [tuple(pair) for pair in shown(page)] == stored


def test_the_page_fetches_changes_the_channel_layer_dropped(app, open_page, room):
    ada, bruno = open_page(app, "ada"), open_page(app, "bruno")
    change_requests = []
    ada.on("websocket", lambda socket: socket.on(
        "framesent", lambda payload: change_requests.append(json.loads(payload)) if '"changes"' in payload else None
    ))
    enter_room(ada, room)
    enter_room(bruno, room)
    send(bruno, "one")
    expect(message_bodies(ada)).to_have_text(["one"])
    # Stored by another process: the in-memory layer of daphne never hears of these, as if it dropped them.
    app.seed(room, [("chloe", "two, never delivered live")])
    send(bruno, "three")
    expect(message_bodies(ada)).to_have_text(["one", "two, never delivered live", "three"])
    app.seed(room, [("chloe", "four, deleted unseen")])
    app.shell(
        "from django.contrib.auth import get_user_model\n"
        "from chat.domain import services\n"
        "from chat.domain.models import Room\n"
        f"room = Room.objects.get(slug={room!r})\n"
        "chloe = get_user_model().objects.get(username='chloe')\n"
        "services.message_delete(room=room, actor=chloe, message_id=room.messages.get(seq=4).pk)\n"
    )
    send(bruno, "five")
    send(bruno, "six")
    expect(message_bodies(ada)).to_have_text(["one", "two, never delivered live", "three", "five", "six"])
    assert shown_seqs(ada) == [1, 2, 3, 5, 6]
    # One request per hole in the change numbers (cseq): the creation of 2 (cseq 2), and the creation and the
    # deletion of 4 (cseq 4 and 5); the hole is healed, not asked for again and again.
    assert [(frame["type"], frame["room"], frame["after"]) for frame in change_requests] == [
        ("changes", room, 1), ("changes", room, 3),
    ]
    assert len({frame["request_id"] for frame in change_requests}) == 2


def window_marker(page):
    """Return a value kept on the page's window: it survives a room switch, not a reload."""
    return page.evaluate("window.chatTestMarker ??= Math.random()")


def unread_in_title(title):
    match = re.match(r"\((\d+)\) ", title)
    return int(match.group(1)) if match else 0


def room_link(page, title):
    return page.locator("#rooms-nav").get_by_role("link", name=title, exact=True)


def test_switching_rooms_keeps_one_socket_and_back_and_forward_work(app, open_page, room):
    other = f"{room}-b"
    app.seed(room, [("bruno", "in the first room")])
    app.seed(other, [("bruno", "in the second room")])
    ada = open_page(app, "ada")
    sockets = []
    ada.on("websocket", lambda socket: sockets.append(socket.url))
    enter_room(ada, other)
    enter_room(ada, room)
    marker = window_marker(ada)
    sockets.clear()

    room_link(ada, other).click()
    expect(ada.get_by_role("heading", name=other)).to_be_visible()
    expect(message_bodies(ada)).to_have_text(["in the second room"])
    expect(ada).to_have_url(re.compile(f"/chat/{other}/$"))
    expect(room_link(ada, other)).to_have_attribute("aria-current", "page")
    send(ada, "sent after switching")
    expect(message_bodies(ada)).to_have_text(["in the second room", "sent after switching"])
    # Confirmed, or going back would ask whether to drop it (a dialog Playwright dismisses).
    expect(ada.locator("#messages > .message--pending")).to_have_count(0)

    ada.go_back()
    expect(ada.get_by_role("heading", name=room, exact=True)).to_be_visible()
    expect(message_bodies(ada)).to_have_text(["in the first room"])
    ada.go_forward()
    expect(message_bodies(ada)).to_have_text(["in the second room", "sent after switching"])
    assert window_marker(ada) == marker, "the page reloaded"
    assert sockets == [], "a room switch opened a socket"
    assert [body for _, body in app.stored(other)] == ["in the second room", "sent after switching"]


def test_the_sidebar_and_the_tab_title_count_messages_in_other_rooms_live(app, open_page, room):
    other = f"{room}-b"
    app.seed(other, [("ada", "before")])
    ada, bruno = open_page(app, "ada"), open_page(app, "bruno")
    enter_room(ada, other)
    enter_room(ada, room)
    enter_room(bruno, other)
    before = unread_in_title(ada.title())

    send(bruno, "one")
    expect(room_link(ada, other).locator("xpath=..").locator(".badge")).to_have_text("1 unread")
    expect(ada).to_have_title(f"({before + 1}) {room} · Chat")
    send(bruno, "two")
    expect(ada).to_have_title(f"({before + 2}) {room} · Chat")
    # The most recently active room comes first.
    expect(ada.locator("#rooms-nav > li").first).to_have_attribute("data-room", other)

    room_link(ada, other).click()
    expect(message_bodies(ada)).to_have_text(["before", "one", "two"])
    expect(ada).to_have_title(re.compile(f"{other} · Chat$"))
    expect(room_link(ada, other).locator("xpath=..").locator(".badge")).to_have_count(0)
    assert unread_in_title(ada.title()) == before
    # Read in this tab, so the lobby in another tab of ada's counts nothing either.
    lobby = ada.context.new_page()
    open_lobby(lobby)
    expect(lobby.locator(f"#my-rooms [data-room='{other}'] .badge")).to_have_count(0)


def test_a_direct_message_from_someone_new_appears_and_notifies(app, open_page, room):
    ada, dmitri = open_page(app, "ada"), open_page(app, "dmitri")
    enter_room(ada, room)
    before = unread_in_title(ada.title())
    dmitri.get_by_label("Username").fill("ada")
    dmitri.get_by_role("button", name="Open conversation").click()
    expect(dmitri.locator("#message-scroller")).to_have_attribute("aria-busy", "false")
    send(dmitri, "hello ada, a quick question")

    expect(room_link(ada, "dmitri").locator("xpath=..").locator(".badge")).to_have_text("1 unread")
    toast = ada.locator("#toasts .toast")
    expect(toast.get_by_role("link")).to_have_text("dmitri sent you a direct message")
    expect(toast.locator(".toast__body")).to_have_text("hello ada, a quick question")
    expect(ada).to_have_title(f"({before + 1}) {room} · Chat")
    toast.get_by_role("link").click()
    expect(ada.get_by_role("heading", name="dmitri")).to_be_visible()
    expect(message_bodies(ada)).to_have_text(["hello ada, a quick question"])


def test_the_lobby_counts_unread_messages_and_new_rooms_live(app, open_page, room):
    app.seed(room, [("ada", "mine")])
    ada, bruno = open_page(app, "ada"), open_page(app, "bruno")
    open_lobby(ada)
    item = ada.locator(f"#my-rooms [data-room='{room}']")
    expect(item).to_be_visible()
    # Earlier tests of this module leave ada unread messages in other rooms.
    before = unread_in_title(ada.title())
    enter_room(bruno, room)
    send(bruno, "for ada")
    expect(item.locator(".badge")).to_have_text("1 unread")
    expect(ada).to_have_title(f"({before + 1}) Rooms · Chat")
    # A room ada joins in another tab appears at once.
    app.seed(f"{room}-new", [("bruno", "first")])
    enter_room(ada.context.new_page(), f"{room}-new")
    expect(ada.locator(f"#my-rooms [data-room='{room}-new']")).to_contain_text(f"{room}-new")
    expect(ada.locator(f"#public-room-list [data-room='{room}-new']")).to_have_count(0)


def test_an_edit_and_a_delete_made_while_the_tab_was_offline_show_after_it_reconnects(app, open_page, room):
    app.seed(room, [("bruno", "first"), ("bruno", "second, to be fixed"), ("bruno", "third, to be deleted")])
    ada = open_page(app, "ada")
    enter_room(ada, room)
    expect(message_bodies(ada)).to_have_text(["first", "second, to be fixed", "third, to be deleted"])

    app.stop()
    expect(ada.locator("#connection-status")).to_have_text("Reconnecting…")
    app.shell(
        "from django.contrib.auth import get_user_model\n"
        "from chat.domain import services\n"
        "from chat.domain.models import Room\n"
        f"room = Room.objects.get(slug={room!r})\n"
        "bruno = get_user_model().objects.get(username='bruno')\n"
        "services.message_edit(room=room, actor=bruno, message_id=room.messages.get(seq=2).pk, body='second, fixed')\n"
        "services.message_delete(room=room, actor=bruno, message_id=room.messages.get(seq=3).pk)\n"
        "services.message_create(room=room, author=bruno, body='fourth')\n"
    )
    app.start()
    expect(ada.locator("#connection-status")).to_have_text("Connected")
    expect(message_bodies(ada)).to_have_text(["first", "second, fixed (edited)", "fourth"])
    assert shown_seqs(ada) == [seq for seq, _ in app.stored(room)] == [1, 2, 4]


def test_html_in_a_message_shows_as_text(app, open_page, room):
    ada, bruno = open_page(app, "ada"), open_page(app, "bruno")
    dialogs = []
    for page in (ada, bruno):
        page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
    enter_room(ada, room)
    enter_room(bruno, room)
    bodies = ["<img src=x onerror=alert(1)>", "<script>alert(1)</script>", "docs at https://example.com/a?b=1."]
    for body in bodies:
        send(ada, body)
    expect(message_bodies(bruno)).to_have_text(bodies)
    for page in (ada, bruno):
        expect(page.locator("#messages > .message")).to_have_count(3)
        expect(page.locator("#messages img, #messages script")).to_have_count(0)
    link = message_bodies(bruno).last.get_by_role("link")
    expect(link).to_have_attribute("href", "https://example.com/a?b=1")
    expect(link).to_have_attribute("rel", "noopener noreferrer")
    assert dialogs == []


def test_markdown_shows_formatted_and_an_edit_renders_again(app, open_page, room):
    ada, bruno = open_page(app, "ada"), open_page(app, "bruno")
    enter_room(ada, room)
    enter_room(bruno, room)
    send(ada, "**bold** _soft_ ~~gone~~ `a < b` for @bruno\n> quoted\n\n```\nline 1\n  line 2\n```")
    body = message_bodies(bruno).last
    expect(body.locator("strong")).to_have_text("bold")
    expect(body.locator("em")).to_have_text("soft")
    expect(body.locator("s")).to_have_text("gone")
    expect(body.locator("p > code")).to_have_text("a < b")
    expect(body.locator("blockquote")).to_have_text("quoted")
    expect(body.locator("pre code")).to_have_text("line 1\n  line 2\n")
    # The mention is marked as the reader's own on bruno's page, and only as a mention on ada's.
    expect(body.locator(".mention.mention--me")).to_have_text("@bruno")
    expect(message_bodies(ada).last.locator(".mention")).not_to_have_class(re.compile("mention--me"))

    ada.locator("#messages > .message").last.get_by_role("button", name="Edit").click()
    ada.get_by_label("Message", exact=True).fill("now **louder**")
    ada.get_by_label("Message", exact=True).press("Enter")
    expect(body.locator("strong")).to_have_text("louder")
    expect(body).to_have_text("now louder (edited)")
    expect(body.locator("pre")).to_have_count(0)


def test_reacting_with_the_picker_and_toggling_a_reaction_show_live_and_after_a_reload(app, open_page, room):
    ada, bruno = open_page(app, "ada"), open_page(app, "bruno")
    enter_room(ada, room)
    enter_room(bruno, room)
    send(ada, "lunch?")
    message = bruno.locator("#messages > .message").last
    expect(message.locator(".message__body")).to_have_text("lunch?")
    message.hover()
    message.get_by_role("button", name="React").click()
    picker = bruno.get_by_role("dialog", name="Pick a reaction")
    picker.get_by_label("Search emoji").fill("thumbs up")
    picker.get_by_label("Search emoji").press("Enter")
    expect(picker).to_be_hidden()

    chip = ada.locator("#messages > .message").last.locator(".reaction")
    expect(chip).to_have_text("👍1")
    expect(chip).to_have_attribute("aria-pressed", "false")
    expect(chip).to_have_attribute("title", "bruno reacted with 👍")
    chip.click()
    expect(chip).to_have_text("👍2")
    expect(chip).to_have_attribute("aria-pressed", "true")
    expect(message.locator(".reaction")).to_have_attribute("title", "bruno, ada reacted with 👍")
    message.locator(".reaction").click()  # bruno takes his off
    expect(chip).to_have_text("👍1")
    expect(chip).to_have_attribute("title", "ada reacted with 👍")

    bruno.reload()
    expect(bruno.locator("#message-scroller")).to_have_attribute("aria-busy", "false")
    again = bruno.locator("#messages > .message").last.locator(".reaction")
    expect(again).to_have_text("👍1")
    expect(again).to_have_attribute("aria-pressed", "false")


def test_the_composer_completes_members_and_emoji_and_enter_takes_the_completion(app, open_page, room):
    ada, bruno = open_page(app, "ada"), open_page(app, "bruno")
    enter_room(bruno, room)
    enter_room(ada, room)
    composer = ada.get_by_label("Message", exact=True)
    suggestions = ada.get_by_role("listbox", name="Suggestions")
    composer.press_sequentially("thanks @br")
    expect(suggestions.get_by_role("option")).to_have_text(["bruno"])
    composer.press("Enter")
    expect(composer).to_have_value("thanks @bruno ")
    expect(suggestions).to_be_hidden()
    composer.press_sequentially("great :thumbs_u")
    expect(suggestions.get_by_role("option").first).to_have_text("👍")
    composer.press("Tab")
    expect(composer).to_have_value("thanks @bruno great 👍 ")
    composer.press("Enter")
    expect(message_bodies(bruno)).to_have_text(["thanks @bruno great 👍"])


def test_leaving_a_room_takes_it_off_your_rooms_in_every_tab(app, open_page, room):
    ada = open_page(app, "ada")
    enter_room(ada, room)
    other_tab = ada.context.new_page()
    open_lobby(other_tab)
    expect(other_tab.locator("#my-rooms").get_by_role("link", name=room, exact=True)).to_have_count(1)
    ada.get_by_role("button", name="Leave room").click()
    expect(ada.get_by_role("heading", name="Your rooms")).to_be_visible()
    expect(ada.get_by_text(f"You left #{room}.")).to_be_visible()
    expect(ada.locator("#my-rooms").get_by_role("link", name=room, exact=True)).to_have_count(0)
    # Still a public room anyone may open again.
    expect(ada.locator("#public-room-list").get_by_role("link", name=room, exact=True)).to_have_count(1)
    # The lobby open in another tab hears of it live.
    expect(other_tab.locator("#my-rooms").get_by_role("link", name=room, exact=True)).to_have_count(0)


def test_a_permalink_opens_the_room_at_its_message_loading_older_pages_to_it(app, open_page, room):
    app.seed(room, [("bruno", f"message {n}") for n in range(1, 181)])
    ada = open_page(app, "ada")
    ada.goto(f"/chat/{room}/m/20/")
    target = ada.locator("#messages > .message[data-seq='20']")
    expect(target).to_have_class(re.compile(r"\bmessage--focused\b"))
    expect(target.locator(".message__body")).to_have_text("message 20")
    expect(target).to_be_in_viewport()
    expect(ada.locator("#messages > .message.message--focused")).to_have_count(1)
    # Its time links to it, and so does every other message's.
    expect(target.locator("a.message__permalink")).to_have_attribute("href", f"/chat/{room}/m/20/")
    # A message grouped under the one before shows no time: its actions have the link.
    latest = ada.locator("#messages > .message[data-seq='180']")
    latest.hover()
    latest.get_by_role("link", name="Link to this message").click()
    expect(ada).to_have_url(re.compile(f"/chat/{room}/m/180/$"))
    expect(ada.locator("#messages > .message[data-seq='180']")).to_have_class(re.compile(r"\bmessage--focused\b"))

    ada.goto(f"/chat/{room}/m/999/")
    expect(ada.locator("#room-alert")).to_contain_text("That message is not here")


def test_a_member_renames_a_room_and_sets_its_topic_and_every_page_shows_it(app, open_page, room):
    ada, bruno = open_page(app, "ada"), open_page(app, "bruno")
    enter_room(ada, room)
    enter_room(bruno, room)
    lobby = bruno.context.new_page()
    open_lobby(lobby)
    ada.get_by_role("button", name="Edit name and topic").click()
    ada.get_by_label("Name").fill("Design review")
    ada.get_by_label("Topic").fill("Mock-ups until Friday")
    ada.get_by_role("button", name="Save").click()
    for page in (ada, bruno):
        expect(page.locator("#room-name")).to_have_text("Design review")
        expect(page.locator("#room-topic")).to_have_text("Mock-ups until Friday")
        expect(page).to_have_title(re.compile(r"Design review · Chat$"))
    # A page that does not show the room renames it in its list.
    expect(lobby.locator(f"#my-rooms [data-room='{room}'] a")).to_have_text("Design review")
    bruno.reload()
    expect(bruno.locator("#room-topic")).to_have_text("Mock-ups until Friday")
    # The address stays the same.
    expect(bruno).to_have_url(re.compile(f"/chat/{room}/$"))


def test_archiving_a_room_makes_it_read_only_live_and_takes_it_off_room_lists_until_unarchived(
    app, open_page, room
):
    ada, bruno = open_page(app, "ada"), open_page(app, "bruno")
    enter_room(ada, room)
    enter_room(bruno, room)
    send(bruno, "before the archive")
    expect(bruno.locator(".message--pending")).to_have_count(0)
    lobby = bruno.context.new_page()
    open_lobby(lobby)
    expect(lobby.locator(f"#my-rooms [data-room='{room}']")).to_have_count(1)
    ada.once("dialog", lambda dialog: dialog.accept())
    ada.get_by_role("button", name="Archive room").click()
    expect(ada.get_by_text(f"#{room} was archived.")).to_be_visible()
    for page in (ada, bruno):
        expect(page.locator("#room-archived")).to_be_visible()
        expect(page.locator("#composer")).to_be_hidden()
        expect(message_bodies(page)).to_have_text(["before the archive"])
    expect(lobby.locator(f"#my-rooms [data-room='{room}']")).to_have_count(0)
    expect(bruno.locator(f"#rooms-nav [data-room='{room}']")).to_have_count(0)
    lobby.reload()
    lobby.get_by_text("Archived rooms").click()
    expect(lobby.locator(".lobby__archived").get_by_role("link", name=room, exact=True)).to_have_count(1)

    ada.get_by_role("button", name="Unarchive room").click()
    expect(bruno.locator("#composer")).to_be_visible()
    expect(bruno.locator("#room-archived")).to_be_hidden()
    expect(lobby.locator(f"#my-rooms [data-room='{room}']")).to_have_count(1)
    send(bruno, "after the archive")
    expect(message_bodies(ada).last).to_have_text("after the archive")


def test_a_thread_with_replies_from_two_users_is_live_notifies_and_opens_from_a_permalink(app, open_page, room):
    ada, bruno = open_page(app, "ada"), open_page(app, "bruno")
    enter_room(ada, room)
    enter_room(bruno, room)
    send(ada, "lunch at noon?")
    expect(ada.locator(".message--pending")).to_have_count(0)
    parent = bruno.locator("#messages > .message").filter(has_text="lunch at noon?")
    parent.hover()
    parent.get_by_role("button", name="Reply").click()
    panel = bruno.locator("#thread-panel")
    expect(panel.locator(".message__body")).to_have_text(["lunch at noon?"])
    panel.get_by_label("Reply", exact=True).fill("yes, the usual place")
    panel.get_by_label("Reply", exact=True).press("Enter")
    expect(panel.locator(".message__body")).to_have_text(["lunch at noon?", "yes, the usual place"])
    expect(panel.locator(".message--pending")).to_have_count(0)
    # The room shows the parent with its count, not the reply.
    expect(message_bodies(bruno)).to_have_text(["lunch at noon?"])
    expect(ada.locator("#toasts")).to_contain_text(f"bruno replied in a thread in #{room}")
    ada_parent = ada.locator("#messages > .message").filter(has_text="lunch at noon?")
    ada_parent.get_by_role("button", name=re.compile(r"^1 reply")).click()
    ada_panel = ada.locator("#thread-panel")
    expect(ada_panel.locator(".message__body")).to_have_text(["lunch at noon?", "yes, the usual place"])
    # The parent's author follows the thread from its first reply on, and can stop.
    ada_panel.get_by_role("button", name="Following").click()
    expect(ada_panel.get_by_role("button", name="Follow", exact=True)).to_have_attribute("aria-pressed", "false")
    ada_panel.get_by_role("button", name="Follow", exact=True).click()
    expect(ada_panel.get_by_role("button", name="Following")).to_have_attribute("aria-pressed", "true")
    ada_panel.get_by_label("Also send to the room").check()
    ada_panel.get_by_label("Reply", exact=True).fill("see you there")
    ada_panel.get_by_label("Reply", exact=True).press("Enter")
    expect(panel.locator(".message__body")).to_have_text(["lunch at noon?", "yes, the usual place", "see you there"])
    expect(message_bodies(bruno)).to_have_text(["lunch at noon?", "see you there"])
    expect(parent.get_by_role("button", name=re.compile(r"^2 replies"))).to_be_visible()

    reply_seq = panel.locator(".message").nth(1).get_attribute("data-seq")
    fresh = ada.context.new_page()
    fresh.goto(f"/chat/{room}/m/{reply_seq}/")
    focused = fresh.locator("#thread-panel .message.message--focused")
    expect(focused.locator(".message__body")).to_have_text("yes, the usual place")


def test_typing_and_presence_show(app, open_page, room):
    ada, bruno = open_page(app, "ada"), open_page(app, "bruno")
    enter_room(bruno, room)
    expect(bruno.locator("#online-list > li")).to_have_text(["bruno (you)"])
    enter_room(ada, room)
    expect(bruno.locator("#online-list > li")).to_have_text(["ada", "bruno (you)"])
    ada.get_by_label("Message", exact=True).press_sequentially("hel")
    expect(bruno.locator("#typing")).to_have_text("ada is typing…")
    ada.close()
    expect(bruno.locator("#online-list > li")).to_have_text(["bruno (you)"])


def test_a_mention_in_another_room_shows_a_notice(app, open_page, room):
    other = f"{room}-other"
    ada, chloe = open_page(app, "ada"), open_page(app, "chloe")
    enter_room(chloe, other)  # chloe becomes a member of the room where she is mentioned
    enter_room(chloe, room)
    enter_room(ada, other)
    send(ada, "@chloe can you look at this?")
    toast = chloe.locator("#toasts .toast")
    expect(toast).to_have_count(1)
    expect(toast.get_by_role("link")).to_have_text(f"ada mentioned you in #{other}")
    expect(toast.get_by_role("link")).to_have_attribute("href", f"/chat/{other}/")
    expect(toast.locator(".toast__body")).to_have_text("@chloe can you look at this?")


def test_a_non_member_cannot_open_a_private_room(app, open_page, room):
    ada = open_page(app, "ada")
    ada.get_by_label("Room name").fill(room)
    ada.get_by_label("Private").check()
    ada.get_by_role("button", name="Open room").click()
    expect(ada.get_by_role("heading", name=room)).to_contain_text("Private")
    expect(ada.locator("#connection-status")).to_have_text("Connected")

    dmitri = open_page(app, "dmitri")
    response = dmitri.goto(f"/chat/{room}/")
    assert response.status == 403
    expect(dmitri.get_by_role("heading", name="Sorry")).to_be_visible()
    expect(dmitri.locator("#messages")).to_have_count(0)


def test_an_invite_link_lets_another_user_join_a_private_room_and_an_added_member_is_told_live(
    app, open_page, room
):
    ada = open_page(app, "ada")
    ada.get_by_label("Room name").fill(room)
    ada.get_by_label("Private").check()
    ada.get_by_role("button", name="Open room").click()
    expect(ada.locator("#connection-status")).to_have_text("Connected")
    ada.get_by_role("button", name="Create invite link").click()
    link = ada.get_by_label("Invite link").input_value()
    assert "/invite/" in link

    dmitri = open_page(app, "dmitri")
    dmitri.goto(link)
    dmitri.get_by_role("button", name="Join room").click()
    expect(dmitri).to_have_url(re.compile(f"/chat/{room}/$"))
    expect(dmitri.locator("#message-scroller")).to_have_attribute("aria-busy", "false")
    expect(dmitri.locator("#rooms-nav").get_by_role("link", name=room, exact=True)).to_have_count(1)

    chloe = open_page(app, "chloe")
    open_lobby(chloe)
    ada.get_by_label("Add member").fill("chloe")
    ada.get_by_role("button", name="Add", exact=True).click()
    expect(chloe.locator("#my-rooms").get_by_role("link", name=room, exact=True)).to_have_count(1)
    expect(chloe.locator("#toasts")).to_contain_text(f"ada added you to {room}")

    ada.get_by_role("button", name="Revoke invite links").click()
    expect(ada.get_by_role("button", name="Create invite link")).to_be_visible()
    bruno = open_page(app, "bruno")
    assert bruno.goto(link).status == 400
    expect(bruno.get_by_text("This invite link was revoked")).to_be_visible()
    assert bruno.goto(f"/chat/{room}/").status == 403


def test_search_finds_a_message_and_opens_the_room_at_it_and_ctrl_k_switches_rooms(app, open_page, room):
    other = f"{room}-other"
    app.seed(other, [("bruno", "nothing to see")])
    app.seed(room, [("bruno", f"filler {n}") for n in range(1, 121)] + [("bruno", "the kingfisher came back")])
    app.seed(room, [("bruno", "the kingfisher <b>left</b>")] + [("bruno", f"later {n}") for n in range(1, 121)])
    ada = open_page(app, "ada")
    enter_room(ada, other)
    ada.get_by_label("Search messages").fill(f"kingfisher in:{room}")
    ada.get_by_label("Search messages").press("Enter")
    results = ada.locator(".search__result")
    expect(results).to_have_count(2)
    expect(results.first.locator("mark")).to_have_text("kingfisher")
    # The tag typed in the message is text, never markup (PostgreSQL's headline leaves it out, SQLite's shows it).
    expect(results.first.locator(".search__snippet")).to_contain_text("left")
    expect(results.first.locator(".search__snippet b")).to_have_count(0)
    expect(ada.locator(".search__chips")).to_contain_text(f"in:{room}")
    results.nth(1).get_by_role("link", name=re.compile(r"\d{4}-\d{2}-\d{2}")).click()
    target = ada.locator("#messages > .message.message--focused")
    expect(target.locator(".message__body")).to_have_text("the kingfisher came back")

    # Ctrl+K, a few letters, Enter: the other room, in place.
    ada.keyboard.press("Control+k")
    ada.get_by_role("combobox", name="Room or person").fill(other[-8:])
    expect(ada.get_by_role("option")).to_have_count(1)
    ada.keyboard.press("Enter")
    expect(ada).to_have_url(re.compile(f"/chat/{other}/$"))
    expect(message_bodies(ada)).to_have_text(["nothing to see"])


def test_opening_an_unknown_room_asks_before_creating_it(app, open_page, room):
    ada = open_page(app, "ada")
    response = ada.goto(f"/chat/{room}/")
    assert response.status == 404
    expect(ada.get_by_role("heading", name=f"Create #{room}?")).to_be_visible()
    expect(ada.locator("#messages")).to_have_count(0)
    ada.get_by_role("button", name="Create room").click()
    expect(ada.get_by_role("heading", name=room)).to_be_visible()
    expect(ada.locator("#connection-status")).to_have_text("Connected")
    ada.goto("/")
    expect(ada.locator(".room-list").first).to_contain_text(room)



def wait_until(page, condition, timeout=10.0):
    """Let the page run until condition() holds (Playwright delivers its events meanwhile), or fail."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "the condition did not hold in time"
        page.wait_for_timeout(100)


def test_a_link_shows_its_preview_card_live_with_its_thumbnail_and_its_author_removes_it(app_with, open_page, room):
    live = app_with(CHAT_PREVIEWS_ENABLED=1, CHAT_PREVIEW_ALLOWED_NETWORKS="127.0.0.1/32")
    with site("127.0.0.1") as pages:
        ada, bruno = open_page(live, "ada"), open_page(live, "bruno")
        enter_room(ada, room)
        enter_room(bruno, room)
        send(ada, f"read {pages.base}/page")
        card = bruno.locator("#messages > .message").last.locator(".preview")
        expect(card.locator(".preview__title")).to_have_text("The OG title")
        expect(card.locator(".preview__description")).to_have_text("What the page says")
        expect(card.locator(".preview__link")).to_have_attribute("href", f"{pages.base}/page")
        thumbnail = card.locator(".preview__image")
        wait_until(bruno, lambda: thumbnail.evaluate("image => image.complete && image.naturalWidth") == 400)
        expect(card.get_by_role("button", name="Remove the preview of The OG title")).to_have_count(0)

        ada.locator("#messages > .message").last.get_by_role("button", name="Remove the preview of The OG title").click()
        expect(card).to_have_count(0)
        expect(ada.locator("#messages > .message").last.locator(".preview")).to_have_count(0)
        bruno.reload()
        expect(bruno.locator("#message-scroller")).to_have_attribute("aria-busy", "false")
        expect(bruno.locator("#messages > .message").last.locator(".message__body")).to_contain_text("read http")
        expect(bruno.locator("#messages .preview")).to_have_count(0)


def test_a_page_notices_a_frozen_server_by_its_heartbeat_and_comes_back(app_with, open_page, room):
    live = app_with(CHAT_HEARTBEAT_SECONDS=1)
    ada = open_page(live, "ada")
    sockets, pongs = [], []

    def watch(socket):
        sockets.append(socket)
        socket.on("framereceived", lambda payload: pongs.append(socket) if '"pong"' in str(payload) else None)

    ada.on("websocket", watch)
    enter_room(ada, room)
    # The lobby's own socket may have come and gone before the room page: count from the room page on.
    pongs.clear()
    status = ada.locator("#connection-status")
    # Answered pings keep a quiet connection open: still the same socket after several intervals.
    wait_until(ada, lambda: len(pongs) >= 3)
    expect(status).to_have_text("Connected")
    room_socket = pongs[0]
    assert set(pongs) == {room_socket} and not room_socket.is_closed()
    expect(ada.locator("#room-alert")).to_be_hidden()

    # Frozen, daphne keeps its sockets open (the kernel still acknowledges) but answers nothing: a half-open connection.
    pid = live.server.process.pid
    os.kill(pid, signal.SIGSTOP)
    try:
        frozen_at = time.monotonic()
        expect(status).to_have_text("Reconnecting…", timeout=10_000)
        # Two intervals of silence and a little more, not daphne's close or the browser's.
        assert time.monotonic() - frozen_at < 6
    finally:
        os.kill(pid, signal.SIGCONT)
    expect(status).to_have_text("Connected")
    assert sockets[-1] is not room_socket
    send(ada, "after the freeze")
    expect(ada.locator("#messages > .message[data-seq='1']")).to_contain_text("after the freeze")


def test_a_tab_over_the_socket_limit_says_why_and_does_not_reconnect(app_with, open_page, room):
    live = app_with(CHAT_MAX_SOCKETS_PER_USER=1)
    first = open_page(live, "ada")
    enter_room(first, room)
    # Logged in straight into the room: the lobby would open (and be refused) a socket of its own.
    second = open_page(live)
    sockets = []
    second.on("websocket", lambda socket: sockets.append(socket))
    second.goto(f"/accounts/login/?next=/chat/{room}/")
    second.get_by_label("Username").fill("ada")
    second.get_by_label("Password").fill(PASSWORD)
    second.get_by_role("button", name="Log in").click()

    expect(second.locator("#connection-status")).to_have_text("Disconnected")
    alert = second.locator("#room-alert")
    expect(alert).to_contain_text("You have 1 sockets open already; close a tab")
    expect(alert.get_by_role("link", name="reload this page")).to_be_visible()
    expect(second.get_by_label("Message", exact=True)).to_be_disabled()
    # Longer than any first retry waits (FIRST_RETRY_MS, 500 ms): a retrying page would have opened a second socket.
    second.wait_for_timeout(1500)
    assert len(sockets) == 1
    expect(alert).to_be_visible()
    expect(first.locator("#connection-status")).to_have_text("Connected")


SIZES = {"desktop": {"width": 1280, "height": 800}, "phone": {"width": 390, "height": 844}}


def screenshots_dir(tmp_path):
    """Return docs/screenshots/ under SCREENSHOTS=1, else a temporary directory, so a plain run leaves the tree clean."""
    return SCREENSHOTS if os.environ.get("SCREENSHOTS") == "1" else tmp_path / "screenshots"


def png_size(path):
    """Return the (width, height) in the header of the PNG file at `path`."""
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", f"{path} is not a PNG"
    return int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")


def test_screenshots_of_a_room(app, open_page, tmp_path):
    """Take the room page at desktop and phone width, light and dark; into docs/screenshots/ under SCREENSHOTS=1."""
    shots = screenshots_dir(tmp_path)
    slug = "design-review"
    app.seed(slug, [
        ("chloe", "Morning all! Here are the mock-ups for the new sign-up page: https://example.com/mockups/signup",
         "2025-06-01T13:05:00Z"),
        ("bruno", "Looks good. The button contrast is **much** better now.", "2025-06-01T13:20:00Z"),
        ("bruno", "One nit: the error text wraps oddly on phones. Maybe `overflow-wrap: anywhere`?",
         "2025-06-01T13:21:00Z"),
        ("ada", "Thanks! I'll fix the wrapping. Tomorrow at the latest."),
        ("chloe", "@ada can you also check the dark theme? The links were hard to read before."),
        ("bruno", "Checked on my phone: everything fits, and long words like supercalifragilisticexpialidocious wrap."),
        ("bruno", "Shipping it this afternoon."),
    ])
    app.shell(
        "from django.contrib.auth import get_user_model\n"
        "from chat.domain import services\n"
        "from chat.domain.models import Room\n"
        f"room = Room.objects.get(slug={slug!r})\n"
        "shipping = room.messages.get(seq=7).pk\n"
        "for name, emoji in [('chloe', '🎉'), ('ada', '🎉'), ('chloe', '🚀')]:\n"
        "    user = get_user_model().objects.get(username=name)\n"
        "    services.room_join(slug=room.slug, user=user)\n"
        "    services.reaction_add(room=room, actor=user, message_id=shipping, emoji=emoji)\n"
    )
    bruno = open_page(app, "bruno")
    enter_room(bruno, slug)
    shots.mkdir(parents=True, exist_ok=True)
    for size, viewport in SIZES.items():
        # Each page opens with Ada having read up to her own (edited) message, so the "New messages" divider shows.
        app.shell(
            "from django.utils import timezone\n"
            "from chat.domain.models import Membership, Message\n"
            f"Message.objects.filter(room__slug={slug!r}, seq=4).update(edited_at=timezone.now())\n"
            f"Membership.objects.filter(room__slug={slug!r}, user__username='ada').update(last_read_seq=4)\n"
        )
        ada = open_page(app, "ada", viewport=viewport)
        enter_room(ada, slug)
        expect(ada.locator(".unread-divider")).to_be_visible()
        expect(ada.locator(".day-divider")).to_have_text(["Sunday, June 1, 2025", "Today"])
        expect(ada.locator(".message__edited")).to_have_count(1)
        expect(ada.locator(".reaction")).to_have_text(["🎉2", "🚀1"])
        expect(ada.locator("#online-list > li")).to_have_text(["ada (you)", "bruno"])
        for scheme in ("light", "dark"):
            ada.emulate_media(color_scheme=scheme)
            # The page sends a typing notice at most every 2 s (static/chat/typing.js): wait that long so
            # this keystroke sends one even when the previous round was quick (not a timing assertion).
            bruno.wait_for_timeout(2100)
            bruno.get_by_label("Message", exact=True).press_sequentially("ok")
            expect(ada.locator("#typing")).to_have_text("bruno is typing…")
            bruno.get_by_label("Message", exact=True).fill("")
            shot = shots / f"room-{size}-{scheme}.png"
            ada.screenshot(path=shot)
            assert png_size(shot) == (viewport["width"], viewport["height"])
        ada.context.close()
