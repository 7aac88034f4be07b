"""Fixtures for the browser tests: Debian's Chromium driven by Playwright, and the real app in daphne."""
import itertools
import json

import pytest
from playwright.sync_api import expect, sync_playwright

from harness.servers import PASSWORD, manage, project_env, require_binary, start_daphne, users_create

# Playwright cannot download its own browsers here; these keep the system's Chromium quiet and offline.
CHROMIUM_ARGS = [
    "--no-sandbox",  # the tests may run as root, where Chromium's sandbox refuses to start
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
USERS = ["ada", "bruno", "chloe", "dmitri"]
# Two cores run daphne, Chromium and pytest at once: give the pages time.
expect.set_options(timeout=20_000)
_rooms = itertools.count(1)


# pytest-playwright keeps one browser for the whole session, and the sync API marks its event loop as running
# in this thread while it lives, which breaks every asyncio test after this module. So these three overrides
# start Playwright for this module only; pytest-playwright's new_context fixture then builds on them.
@pytest.fixture(scope="module")
def playwright():
    with sync_playwright() as playwright:
        yield playwright


@pytest.fixture(scope="module")
def browser(playwright, pytestconfig):
    """Launch /usr/bin/chromium (skipped without it, failed under CI=true) instead of a downloaded build."""
    executable = require_binary("chromium")
    browser = playwright.chromium.launch(
        executable_path=executable, args=CHROMIUM_ARGS, headless=not pytestconfig.getoption("--headed"),
    )
    yield browser
    browser.close()


@pytest.fixture(scope="module")
def browser_context_args():
    """Give every page the same locale and a time zone other than the server's UTC."""
    return {"locale": "en-US", "timezone_id": "America/New_York"}


class LiveApp:
    """The chat in one daphne process; stop() and start() keep its port and database."""

    def __init__(self, tmp_path, env):
        self.tmp_path, self.env = tmp_path, env
        self.server = start_daphne(tmp_path, env=env)
        self.url = f"http://127.0.0.1:{self.server.port}"

    def stop(self):
        self.server.stop()

    def start(self):
        self.server.start()

    def shell(self, code):
        """Run Python in `manage.py shell` against the app's database; return what it printed."""
        return manage("shell", "-c", code, env=self.env)

    def seed(self, slug, messages):
        """Store (author, body) or (author, body, created_at ISO) messages in a public room, in order."""
        self.shell(
            "from django.contrib.auth import get_user_model\n"
            "from django.utils.dateparse import parse_datetime\n"
            "from chat.domain import services\n"
            "from chat.domain.models import Message\n"
            f"for author, body, *at in {[tuple(message) for message in messages]!r}:\n"
            "    user = get_user_model().objects.get(username=author)\n"
            f"    room, _ = services.room_create(slug={slug!r}, user=user)\n"
            "    message, _ = services.message_create(room=room, author=user, body=body)\n"
            "    if at:\n"
            "        Message.objects.filter(pk=message.pk).update(created_at=parse_datetime(at[0]))\n"
        )

    def stored(self, slug):
        """Return the room's (seq, body) pairs from the database, in seq order."""
        output = self.shell(
            "import json\n"
            "from chat.domain.models import Message\n"
            f"rows = Message.objects.filter(room__slug={slug!r}, is_deleted=False).order_by('seq')\n"
            "print(json.dumps(list(rows.values_list('seq', 'body'))))\n"
        )
        return [tuple(row) for row in json.loads(output.strip().splitlines()[-1])]


@pytest.fixture(scope="module")
def static_root(tmp_path_factory):
    """Collect the static files as production does: hashed names, served by WhiteNoise with DEBUG off."""
    root = tmp_path_factory.mktemp("static")
    manage("collectstatic", "--noinput", env=project_env(STATIC_MANIFEST=1, STATIC_ROOT=root))
    return root


def _serve(tmp_path_factory, live_database, static_root, name, **env):
    tmp_path = tmp_path_factory.mktemp(f"browser-{name}")
    # Uploads go to the app's own directory, never into the checkout.
    env = project_env(
        DATABASE_URL=live_database, ALLOWED_HOSTS="127.0.0.1,localhost", STATIC_MANIFEST=1, STATIC_ROOT=static_root,
        MEDIA_ROOT=tmp_path / "media", **env,
    )
    return LiveApp(tmp_path, env)


@pytest.fixture(scope="module")
def browser_users(live_database):
    """Create the users the browser tests log in as, once for the database each module of them shares."""
    users_create(USERS, env=project_env(DATABASE_URL=live_database), exist_ok=True)
    return USERS


@pytest.fixture(scope="module")
def app(tmp_path_factory, live_database, static_root, browser_users):
    """Yield the app served by daphne with the in-memory channel layer."""
    live = _serve(tmp_path_factory, live_database, static_root, "memory")
    try:
        yield live
    finally:
        live.stop()


@pytest.fixture(scope="module")
def redis_app(tmp_path_factory, live_database, static_root, browser_users, redis_server):
    """Yield the app served by daphne with the Redis channel layer and presence."""
    live = _serve(tmp_path_factory, live_database, static_root, "redis", REDIS_URL=redis_server)
    try:
        yield live
    finally:
        live.stop()


@pytest.fixture
def app_with(tmp_path_factory, live_database, static_root, browser_users):
    """Return a factory of apps, each in its own daphne with the given settings, stopped after the test."""
    started = []

    def app_with(**settings):
        live = _serve(tmp_path_factory, live_database, static_root, "tuned", **{k: str(v) for k, v in settings.items()})
        started.append(live)
        return live

    try:
        yield app_with
    finally:
        for live in started:
            live.stop()


@pytest.fixture
def room():
    """Return a room slug no other test uses."""
    return f"web-{next(_rooms)}"


@pytest.fixture
def open_page(new_context):
    """Return a factory of pages of `app`, each in its own browser context, logged in through the form."""

    def open_page(app, username=None, **context_args):
        page = new_context(base_url=app.url, **context_args).new_page()
        if username:
            log_in(page, username)
        return page

    return open_page


def log_in(page, username, password=PASSWORD):
    """Log in through the login page, as a person would."""
    page.goto("/accounts/login/")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Log in").click()
    expect(page.get_by_role("heading", name="Your rooms")).to_be_visible()


def open_lobby(page):
    """Open the lobby and wait until its socket has had the hello, so what changes next reaches it live."""
    page.goto("/")
    expect(page.locator(".lobby")).to_have_attribute("data-synced", "true")


def enter_room(page, slug):
    """Open a room's page, creating the room with its form when it is new, and wait until its view has come."""
    if page.goto(f"/chat/{slug}/").status == 404:
        page.get_by_role("button", name="Create room").click()
    expect(page.locator("#connection-status")).to_have_text("Connected")
    expect(page.locator("#message-scroller")).to_have_attribute("aria-busy", "false")


def send(page, body):
    """Type a message in the composer and press Enter."""
    page.get_by_label("Message", exact=True).fill(body)
    page.get_by_label("Message", exact=True).press("Enter")


def message_bodies(page):
    return page.locator("#messages > .message .message__body")
