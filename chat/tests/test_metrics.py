"""The metrics: who may read /metrics, and what each instrumented place counts, in process."""
import asyncio
import json
import logging

import pytest
from channels.db import database_sync_to_async
from prometheus_client import REGISTRY

from chat.domain import services
from chat.platform import metrics
from chat.platform.limits import Limit, LimitExceeded
from chat.platform.outages import Outage
from chat.platform.scrape import MetricsEndpoint, address_allowed, scrape_allowed, token_matches
from chat.realtime import frames, handshakes, protocol
from chat.realtime.batches import get_send_queue
from chat.realtime.hub import RoomHub
from chat.tests.conftest import room_ensure
from chat.tests.test_settings import production_env, settings_of
from harness.servers import PROJECT_DIR

TOKEN = "a-token-for-tests-0123456789"


def value(name, **labels):
    """Return the current value of one sample of the process's registry (0 when it was never set)."""
    return REGISTRY.get_sample_value(name, labels) or 0.0


@pytest.mark.parametrize("address, networks, allowed", [
    ("127.0.0.1", ["127.0.0.1/32"], True),
    ("127.0.0.2", ["127.0.0.1/32"], False),
    ("127.0.0.2", ["127.0.0.0/8"], True),
    ("::1", ["127.0.0.1/32", "::1/128"], True),
    ("::ffff:127.0.0.1", ["127.0.0.1/32"], True),
    ("::1", ["127.0.0.1/32"], False),
    ("127.0.0.1", [], False),
    ("not an address", ["0.0.0.0/0"], False),
])
def test_addresses_are_allowed_only_inside_the_listed_networks(address, networks, allowed):
    assert address_allowed(address, networks) is allowed


@pytest.mark.parametrize("header, token, matches", [
    (f"Bearer {TOKEN}".encode(), TOKEN, True),
    (f"bearer {TOKEN}".encode(), TOKEN, True),
    (f"Bearer {TOKEN}x".encode(), TOKEN, False),
    (f"Basic {TOKEN}".encode(), TOKEN, False),
    (TOKEN.encode(), TOKEN, False),
    (None, TOKEN, False),
    # No token set: nothing matches, not even an empty bearer.
    (b"Bearer ", "", False),
    (b"Bearer", "", False),
])
def test_only_the_configured_bearer_token_matches(header, token, matches):
    assert token_matches(header, token) is matches


def test_a_scrape_needs_an_allowed_address_or_the_token(settings):
    settings.CHAT_METRICS_ALLOWED_ADDRESSES = ["127.0.0.1/32"]
    settings.CHAT_METRICS_TOKEN = TOKEN
    assert scrape_allowed("127.0.0.1", None)
    assert not scrape_allowed("127.0.0.2", None)
    assert not scrape_allowed("127.0.0.2", b"Bearer wrong-token-0123456789")
    assert scrape_allowed("127.0.0.2", f"Bearer {TOKEN}".encode())
    # A Unix socket without proxy headers has no address: the token alone lets it in.
    assert not scrape_allowed(None, None)
    assert scrape_allowed(None, f"Bearer {TOKEN}".encode())
    settings.CHAT_METRICS_ALLOWED_ADDRESSES = []
    assert not scrape_allowed("127.0.0.1", None)


async def request(app, path="/metrics", *, method="GET", client=("127.0.0.1", 40000), headers=()):
    """Send one HTTP request to an ASGI app; return (status, headers, body)."""
    sent = []

    async def receive():
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message):
        sent.append(message)

    scope = {"type": "http", "path": path, "method": method, "client": client, "headers": list(headers)}
    await app(scope, receive, send)
    start, body = sent
    return start["status"], dict(start["headers"]), body["body"]


async def django_app(scope, receive, send):
    """Stand in for Django: answer every request with 204."""
    await send({"type": "http.response.start", "status": 204, "headers": []})
    await send({"type": "http.response.body", "body": b""})


async def test_the_endpoint_serves_allowed_scrapers_and_refuses_others_with_403(settings):
    settings.CHAT_METRICS_ALLOWED_ADDRESSES = ["127.0.0.1/32"]
    settings.CHAT_METRICS_TOKEN = TOKEN
    app = MetricsEndpoint(django_app)
    status, headers, body = await request(app)
    assert status == 200 and headers[b"content-type"].startswith(b"text/plain; version=")
    assert b"\nchat_sockets_open " in body and b"chat_handshakes_total" in body
    status, _, body = await request(app, client=("127.0.0.2", 40000))
    assert (status, body) == (403, b"Forbidden\n")
    status, _, body = await request(app, client=("127.0.0.2", 40000), headers=[(b"authorization", f"Bearer {TOKEN}".encode())])
    assert status == 200 and b"chat_sockets_open" in body
    # The address is checked before the method: an outsider learns nothing.
    assert (await request(app, method="POST", client=("127.0.0.2", 40000)))[0] == 403
    assert (await request(app, method="POST"))[0] == 405
    assert (await request(app, method="HEAD"))[2] == b""
    assert (await request(app, "/metrics/"))[0] == 204
    assert (await request(app, "/healthz", client=("127.0.0.2", 40000)))[0] == 204


async def test_the_project_application_answers_metrics_before_django(settings):
    from myproject.asgi import application

    # No Host header, no ALLOWED_HOSTS entry: Django would answer 400.
    status, _, body = await request(application)
    assert status == 200 and b"chat_frames_sent_total" in body


def test_metrics_settings_default_to_loopback_and_refuse_bad_values():
    env = production_env(SECRET_KEY="k")
    assert settings_of(env, "CHAT_METRICS_TOKEN", "CHAT_METRICS_ALLOWED_ADDRESSES") == ["", ["127.0.0.1/32", "::1/128"]]
    with pytest.raises(RuntimeError, match="CHAT_METRICS_ALLOWED_ADDRESSES"):
        settings_of(env | {"CHAT_METRICS_ALLOWED_ADDRESSES": "127.0.0.1/33"}, "CHAT_METRICS_TOKEN")
    with pytest.raises(RuntimeError, match="at least 16"):
        settings_of(env | {"CHAT_METRICS_TOKEN": "short"}, "CHAT_METRICS_TOKEN")


def chat_metric_names():
    """Return the names of the chat's own metrics as a scrape shows them (a counter's with _total)."""
    return sorted(
        family.name + ("_total" if family.type == "counter" else "")
        for family in REGISTRY.collect() if family.name.startswith("chat_")
    )


def test_the_readme_and_the_dashboard_show_every_metric():
    readme = (PROJECT_DIR / "README.md").read_text()
    section = readme[readme.index("\n## Metrics\n"):readme.index("\n## Layout\n")]
    dashboard = json.loads((PROJECT_DIR / "deploy" / "grafana-dashboard.json").read_text())
    expressions = " ".join(
        target["expr"] for panel in dashboard["panels"] for target in panel.get("targets", [])
    )
    names = chat_metric_names()
    assert "chat_sockets_open" in names and "chat_send_ack_seconds" in names
    assert [name for name in names if f"`{name}`" not in section] == []
    assert [name for name in names if name not in expressions] == []
    # Every query goes to the data source the dashboard's variable picks.
    assert {panel["datasource"]["uid"] for panel in dashboard["panels"] if "datasource" in panel} == {"${datasource}"}


@pytest.mark.parametrize("text, kind", [
    (frames.encode(frames.Pong()), "pong"),
    (frames.encode(frames.Ack(request_id="r")), "ack"),
    (frames.encode_event("typing", "lobby", {"user": "ann"}), "typing"),
    (protocol.error_frame(protocol.INVALID, "no"), "error"),
    (protocol.pong_frame(), "pong"),
    ('{"type":"' + "x" * 80 + '"}', "other"),
    ("[]", "other"),
    (None, "other"),
])
def test_the_type_of_a_server_frame_is_read_from_its_first_member(text, kind):
    assert protocol.frame_type(text) == kind


@pytest.mark.django_db(transaction=True)
async def test_a_socket_counts_its_handshake_frames_database_calls_and_acks(connect, make_user):
    ann = await database_sync_to_async(make_user)("ann")
    await database_sync_to_async(room_ensure)("lobby", ann)
    # A member already: joining would also send her a room_added.
    await database_sync_to_async(services.room_join)(slug="lobby", user=ann)
    before = {
        "open": value("chat_sockets_open"),
        "accepted": value("chat_handshakes_total", outcome="accepted", reason=""),
        "sends": value("chat_frames_received_total", type="send"),
        "invalid": value("chat_frames_received_total", type="invalid"),
        "hello": value("chat_frames_sent_total", type="hello"),
        "acks": value("chat_frames_sent_total", type="ack"),
        "errors": value("chat_frames_sent_total", type="error"),
        "acked": value("chat_send_ack_seconds_count"),
        "stored": value("chat_database_call_seconds_count", call="store_batch"),
        "joined": value("chat_database_call_seconds_count", call="room_join"),
        "delivered": value("chat_deliveries_total", path="asgi"),
    }
    socket = await connect(ann, path="/ws/", create=False, expect_welcome=False)
    assert (await socket.receive_json_from(timeout=5))["type"] == "hello"
    await socket.send_json_to({"type": "subscribe", "room": "lobby", "request_id": "s"})
    assert (await socket.receive_json_from(timeout=5))["type"] == "subscribed"
    await socket.send_json_to({"type": "send", "room": "lobby", "body": "hi", "client_id": "c1", "request_id": "1"})
    kinds = {(await socket.receive_json_from(timeout=5))["type"] for _ in range(2)}
    await socket.send_to(text_data="not json")
    assert (await socket.receive_json_from(timeout=5))["type"] == "error"
    assert kinds == {"ack", "message"}
    assert value("chat_sockets_open") == before["open"] + 1
    assert value("chat_handshakes_total", outcome="accepted", reason="") == before["accepted"] + 1
    assert value("chat_frames_received_total", type="send") == before["sends"] + 1
    assert value("chat_frames_received_total", type="invalid") == before["invalid"] + 1
    assert value("chat_frames_sent_total", type="hello") == before["hello"] + 1
    assert value("chat_frames_sent_total", type="ack") == before["acks"] + 1
    assert value("chat_frames_sent_total", type="error") == before["errors"] + 1
    assert value("chat_send_ack_seconds_count") == before["acked"] + 1
    assert value("chat_database_call_seconds_count", call="store_batch") == before["stored"] + 1
    assert value("chat_database_call_seconds_count", call="room_join") == before["joined"] + 1
    # No daphne here: the hub's message frame went through ASGI.
    assert value("chat_deliveries_total", path="asgi") == before["delivered"] + 1
    await socket.disconnect()
    socket.connected = False
    assert value("chat_sockets_open") == before["open"]


@pytest.mark.django_db(transaction=True)
async def test_refused_and_failed_handshakes_are_counted_by_reason(connect, make_user, settings):
    ann = await database_sync_to_async(make_user)("ann")
    anonymous = value("chat_handshakes_total", outcome="refused", reason="anonymous")
    origin = value("chat_handshakes_total", outcome="refused", reason="origin")
    sockets = value("chat_limit_refusals_total", limit="sockets")
    refused = value("chat_handshakes_total", outcome="refused", reason=protocol.TOO_MANY_SOCKETS)
    await connect(None, path="/ws/", expect_welcome=False)
    await connect(ann, path="/ws/", create=False, origin="http://elsewhere.example", expect_welcome=False)
    settings.CHAT_MAX_SOCKETS_PER_USER = 0
    await connect(ann, path="/ws/", create=False, expect_welcome=False)
    assert value("chat_handshakes_total", outcome="refused", reason="anonymous") == anonymous + 1
    assert value("chat_handshakes_total", outcome="refused", reason="origin") == origin + 1
    assert value("chat_handshakes_total", outcome="refused", reason=protocol.TOO_MANY_SOCKETS) == refused + 1
    assert value("chat_limit_refusals_total", limit="sockets") == sockets + 1


async def test_busy_handshakes_are_counted_by_reason(settings):
    from channels.testing import WebsocketCommunicator

    settings.CHAT_HANDSHAKE_RATE = (0, 10)
    handshakes._per_address.clear()
    busy = value("chat_handshakes_total", outcome="busy", reason="address")
    limited = value("chat_limit_refusals_total", limit="handshake")
    communicator = WebsocketCommunicator(handshakes.HandshakesPerAddress(django_app), "/ws/")
    communicator.scope["client"] = ("127.0.0.1", 40000)
    assert (await communicator.connect())[0]
    assert (await communicator.receive_output())["code"] == protocol.CLOSE_BUSY
    assert value("chat_handshakes_total", outcome="busy", reason="address") == busy + 1
    assert value("chat_limit_refusals_total", limit="handshake") == limited + 1


def test_limit_refusals_are_counted_by_limit():
    limit = Limit("metrics_test", 1, 10)
    before = value("chat_limit_refusals_total", limit="metrics_test")
    limit.check("user:1", "once")
    assert value("chat_limit_refusals_total", limit="metrics_test") == before
    with pytest.raises(LimitExceeded):
        limit.check("user:1", "twice")
    with pytest.raises(LimitExceeded):
        limit.check_peek("user:1", "still")
    assert value("chat_limit_refusals_total", limit="metrics_test") == before + 2


def test_every_failed_call_of_an_outage_counts_as_an_error():
    before = value("chat_redis_errors_total", client="metrics_test")
    outage = Outage("a test dependency", logging.getLogger(__name__), errors=metrics.REDIS_ERRORS["metrics_test"])
    for _ in range(3):
        outage.failed(ConnectionError("refused"))
    outage.worked()
    assert value("chat_redis_errors_total", client="metrics_test") == before + 3


async def test_hub_resets_are_counted_by_close_code():
    before = value("chat_hub_resets_total", code=str(protocol.CLOSE_LINK_LOST))
    await RoomHub().reset(protocol.CLOSE_LINK_LOST)
    assert value("chat_hub_resets_total", code=str(protocol.CLOSE_LINK_LOST)) == before + 1


async def test_the_send_queue_depth_is_read_at_scrape_time():
    queue = get_send_queue(None)
    base = value("chat_send_queue_waiting")
    queue.waiting.extend([object()] * 3)
    try:
        assert value("chat_send_queue_waiting") == base + 3
    finally:
        del queue.waiting[-3:]
    assert value("chat_send_queue_waiting") == base


async def test_a_database_call_is_timed_when_it_fails_too():
    histogram = metrics.DATABASE_SECONDS["metrics_test"]
    before = value("chat_database_call_seconds_count", call="metrics_test")

    async def failing():
        await asyncio.sleep(0)
        raise RuntimeError("no database")

    with pytest.raises(RuntimeError):
        await metrics.timed(histogram, failing)()
    assert value("chat_database_call_seconds_count", call="metrics_test") == before + 1
