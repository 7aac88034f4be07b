"""Files in real Chromium: attach by button, paste and drop, see thumbnails and a card, download as a member only."""
import base64
import re

import pytest
from playwright.sync_api import expect

from chat.tests import hostile_files
from chat.tests.browser import (  # noqa: F401 (fixtures)
    app, browser, browser_context_args, browser_users, enter_room, open_page, playwright, send, static_root,
)

pytestmark = [pytest.mark.timeout(180)]
ROOM = "files-browser"
PDF = b"%PDF-1.4\n% a file card\n"


@pytest.fixture(scope="module")
def uploads_app(app):
    """Return the app (its own MEDIA_ROOT) with a private room of ada and bruno."""
    app.shell(
        "from django.contrib.auth import get_user_model\n"
        "from chat.domain import services\n"
        "users = get_user_model().objects\n"
        f"room, _ = services.room_create(slug={ROOM!r}, user=users.get(username='ada'), private=True)\n"
        "services.membership_add(room=room, actor=users.get(username='ada'), username='bruno')\n"
    )
    return app


def data_transfer(page, files):
    """Return a page-side DataTransfer holding `files` ((name, type, bytes)), as a paste or a drop carries them."""
    encoded = [[name, kind, base64.b64encode(data).decode()] for name, kind, data in files]
    return page.evaluate_handle(
        """files => {
             const transfer = new DataTransfer();
             for (const [name, type, data] of files) {
               const bytes = Uint8Array.from(atob(data), (c) => c.charCodeAt(0));
               transfer.items.add(new File([bytes], name, { type }));
             }
             return transfer;
           }""",
        encoded,
    )


def test_attach_by_button_paste_and_drop_then_a_member_downloads_and_others_cannot(uploads_app, open_page):
    ada = open_page(uploads_app, "ada")
    enter_room(ada, ROOM)
    with ada.expect_file_chooser() as chooser:
        ada.get_by_role("button", name="Attach files", exact=True).click()
    chooser.value.set_files(files=[{"name": "wide.png", "mimeType": "image/png", "buffer": hostile_files.png(800, 200)}])
    # A screenshot pasted from the clipboard has no name of its own.
    pasted = data_transfer(ada, [("", "image/png", hostile_files.png(120, 90, color=(10, 200, 10)))])
    ada.locator("#composer-body").evaluate(
        "(box, transfer) => box.dispatchEvent(new ClipboardEvent('paste', { clipboardData: transfer, bubbles: true }))",
        pasted,
    )
    ada.dispatch_event("#composer", "drop", {"dataTransfer": data_transfer(ada, [("notes.pdf", "", PDF)])})
    expect(ada.locator("#composer-uploads .upload--done")).to_have_count(3)
    send(ada, "three files")

    message = ada.locator("#messages > .message[data-seq]", has_text="three files")
    expect(message.locator(".attachment--image img")).to_have_count(2)
    expect(ada.locator("#composer-uploads .upload")).to_have_count(0)
    for page in (ada, bruno := open_page(uploads_app, "bruno")):
        if page is bruno:
            enter_room(bruno, ROOM)
            message = bruno.locator("#messages > .message[data-seq]", has_text="three files")
        images = message.locator(".attachment--image img")
        expect(images).to_have_count(2)
        # The sides are known before the thumbnail loads (320 wide at most), so the list does not jump.
        assert [images.nth(n).evaluate("i => [i.width, i.height]") for n in (0, 1)] == [[320, 80], [120, 90]]
        expect(images.first).to_have_js_property("complete", True)
        assert images.first.evaluate("i => i.naturalWidth") == 400  # the server's thumbnail of 800 x 200
        card = message.locator(".attachment--file")
        expect(card).to_contain_text("notes.pdf")
        expect(card).to_contain_text("application/pdf")

    with bruno.expect_download() as download:
        card.click()
    assert download.value.suggested_filename == "notes.pdf"
    with open(download.value.path(), "rb") as downloaded:
        assert downloaded.read() == PDF
    full = images.first.evaluate("i => i.closest('a').href")
    assert bruno.request.get(full).headers["content-type"] == "image/png"

    chloe = open_page(uploads_app, "chloe")
    href = card.get_attribute("href")
    for url in (href, full, images.first.get_attribute("src")):
        assert chloe.request.get(url).status == 404


def test_an_upload_shows_progress_can_be_cancelled_and_a_refusal_says_why(uploads_app, open_page):
    ada = open_page(uploads_app, "ada")
    enter_room(ada, ROOM)
    held = []
    # The first upload never reaches the server: it stays in progress until cancelled.
    ada.route("**/uploads/", lambda route: held.append(route) if not held else route.continue_())
    chooser_files = ada.locator("#composer-files")
    chooser_files.set_input_files(files=[{"name": "slow.pdf", "mimeType": "application/pdf", "buffer": PDF}])
    upload = ada.locator("#composer-uploads .upload", has_text="slow.pdf")
    expect(upload.locator("progress")).to_be_visible()
    upload.get_by_role("button", name="Cancel").click()
    expect(ada.locator("#composer-uploads .upload")).to_have_count(0)

    chooser_files.set_input_files(files=[{"name": "bomb.png", "mimeType": "image/png", "buffer": hostile_files.png_bomb()}])
    refused = ada.locator("#composer-uploads .upload--failed", has_text="bomb.png")
    expect(refused).to_contain_text("The image is refused: image is larger than 40 megapixels.")
    send(ada, "no files made it")
    expect(ada.locator("#messages > .message[data-seq]", has_text="no files made it")).to_be_visible()
    expect(ada.locator("#messages > .message[data-seq]", has_text="no files made it").locator(".attachments")).to_have_count(0)
    refused.get_by_role("button", name="Remove").click()
    expect(ada.locator("#composer-uploads")).to_be_hidden()
    for route in held:
        route.abort()


def test_a_reply_in_a_thread_takes_a_file_with_no_text(uploads_app, open_page):
    ada, bruno = open_page(uploads_app, "ada"), open_page(uploads_app, "bruno")
    enter_room(ada, ROOM)
    enter_room(bruno, ROOM)
    send(ada, "the plan, please?")
    parent = bruno.locator("#messages > .message[data-seq]", has_text="the plan, please?")
    parent.hover()
    parent.get_by_role("button", name="Reply").click()
    panel = bruno.locator("#thread-panel")
    with bruno.expect_file_chooser() as chooser:
        panel.get_by_role("button", name="Attach files to the reply").click()
    chooser.value.set_files(files=[{"name": "plan.pdf", "mimeType": "application/pdf", "buffer": PDF}])
    expect(panel.locator(".upload--done")).to_have_count(1)
    panel.get_by_label("Reply", exact=True).press("Enter")
    expect(panel.locator(".message[data-seq] .attachment--file")).to_contain_text("plan.pdf")
    ada_parent = ada.locator("#messages > .message", has_text="the plan, please?")
    ada_parent.get_by_role("button", name=re.compile(r"^1 reply")).click()
    card = ada.locator("#thread-panel .attachment--file")
    expect(card).to_contain_text("plan.pdf")
    assert ada.request.get(card.get_attribute("href")).body() == PDF
