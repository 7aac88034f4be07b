"""Moderation in real Chromium: a mute shows in the composer, live and until when; a member reports a message."""
import re

import pytest
from playwright.sync_api import expect

from chat.tests.browser import (  # noqa: F401 (fixtures)
    browser, browser_context_args, browser_users, enter_room, open_page, playwright, redis_app, room, static_root,
)

pytestmark = [pytest.mark.timeout(180)]

MODERATE = (
    "import datetime\nfrom django.contrib.auth import get_user_model\nfrom django.utils import timezone\n"
    "from chat.domain import moderation\nfrom chat.domain.models import Report, Room\n"
    "users = get_user_model().objects\n"
    "mod, _ = users.get_or_create(username='browser-mod', defaults={'is_staff': True})\n"
    "ada = users.get(username='ada')\n"
)


def test_a_mute_shows_in_the_composer_live_until_when_and_a_member_reports_a_message(redis_app, open_page, room):
    redis_app.seed(room, [("bruno", "buy cheap watches")])
    ada = open_page(redis_app, "ada")
    enter_room(ada, room)
    composer = ada.get_by_label("Message", exact=True)
    notice = ada.locator("#composer-muted")
    expect(notice).to_be_hidden()

    # 14:30 UTC tomorrow is 09:30 in the pages' America/New_York (EST in winter, EDT in summer: 10:30).
    redis_app.shell(MODERATE + (
        "until = (timezone.now() + datetime.timedelta(days=1)).replace(hour=14, minute=30, second=0, microsecond=0)\n"
        f"moderation.room_mute(actor=mod, room=Room.objects.get(slug={room!r}), user=ada, until=until)\n"
    ))
    expect(notice).to_have_text(re.compile(r"^You are muted in this room until .*(9|10):30 AM\.$"))
    expect(composer).to_be_disabled()
    ada.reload()
    expect(ada.locator("#message-scroller")).to_have_attribute("aria-busy", "false")
    expect(notice).to_contain_text("You are muted in this room until")
    expect(composer).to_be_disabled()
    redis_app.shell(MODERATE + f"moderation.room_unmute(actor=mod, room=Room.objects.get(slug={room!r}), user=ada)\n")
    expect(notice).to_be_hidden()
    expect(composer).to_be_enabled()

    ada.once("dialog", lambda dialog: dialog.accept("spam"))
    message = ada.locator("#messages > .message", has_text="buy cheap watches")
    message.hover()
    message.get_by_role("button", name="Report").click()
    expect(ada.locator("#room-alert")).to_have_text("Reported: staff will look at it.")
    reports = redis_app.shell(MODERATE + (
        f"print(list(Report.objects.filter(message__room__slug={room!r}).values_list('reporter__username', 'reason')))"
    ))
    assert reports.strip().splitlines()[-1] == "[('ada', 'spam')]"
