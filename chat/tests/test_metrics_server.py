"""/metrics of two real daphne processes on one private Redis: each process's counters move with its own sockets."""
import json
import time
import urllib.error
import urllib.request

import pytest
from prometheus_client.parser import text_string_to_metric_families

from harness.cluster import Cluster, sqlite_database
from harness.servers import WebClient, frame_of

pytestmark = [pytest.mark.timeout(120)]
TOKEN = "scrape-token-for-tests-0123456789"
MESSAGES = 5


def scrape(url, token=TOKEN):
    """Return (status, {(sample name, sorted labels): value}) of one GET of `url`/metrics."""
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    request = urllib.request.Request(f"{url}/metrics", headers=headers)
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(request, timeout=10) as response:
            text = response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, {}
    samples = {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text) for sample in family.samples
    }
    return 200, samples


def moved(before, after, name, **labels):
    """Return how much one sample grew between two scrapes."""
    key = (name, tuple(sorted(labels.items())))
    return after.get(key, 0.0) - before.get(key, 0.0)


def delivered(before, after):
    """Return the frames the hub wrote to local sockets between two scrapes, by either path."""
    return sum(moved(before, after, "chat_deliveries_total", path=path) for path in ("direct", "asgi"))


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    """Start Redis and two daphnes whose /metrics only the token opens (no address is allowed)."""
    directory = tmp_path_factory.mktemp("metrics")
    print(f"daphne logs in {directory}")
    env = {"CHAT_METRICS_TOKEN": TOKEN, "CHAT_METRICS_ALLOWED_ADDRESSES": ""}
    with Cluster(directory, sqlite_database(directory), env=env) as cluster:
        cluster.users(["ann", "ben"])
        cluster.rooms(["metrics"])
        yield cluster


def test_a_scrape_without_the_token_is_refused_on_every_process(cluster):
    for url in cluster.urls:
        assert scrape(url, token=None)[0] == 403
        assert scrape(url, token="wrong-token-for-tests-0123456789")[0] == 403
        assert scrape(url)[0] == 200


async def test_counters_move_on_the_process_that_holds_each_socket(cluster):
    url_a, url_b = cluster.urls
    ann, ben = WebClient(url_a).login("ann"), WebClient(url_b).login("ben")
    before_a, before_b = scrape(url_a)[1], scrape(url_b)[1]
    async with ann.socket() as on_a, ben.socket() as on_b:
        for socket in (on_a, on_b):
            await frame_of(socket, "hello")
            await socket.send(json.dumps({"type": "subscribe", "room": "metrics", "request_id": "view"}))
            await frame_of(socket, "subscribed")
        for i in range(MESSAGES):
            await on_a.send(json.dumps({
                "type": "send", "room": "metrics", "body": f"hello {i}", "client_id": f"m{i}", "request_id": f"r{i}",
            }))
            assert (await frame_of(on_a, "ack", "error"))["type"] == "ack"
        received = [await frame_of(on_b, "message") for _ in range(MESSAGES)]
        open_a, open_b = scrape(url_a)[1], scrape(url_b)[1]
    assert [frame["message"]["body"] for frame in received] == [f"hello {i}" for i in range(MESSAGES)]

    for before, during in ((before_a, open_a), (before_b, open_b)):
        assert moved(before, during, "chat_sockets_open") == 1
        assert moved(before, during, "chat_handshakes_total", outcome="accepted", reason="") == 1
        assert moved(before, during, "chat_frames_received_total", type="subscribe") == 1
        assert moved(before, during, "chat_frames_sent_total", type="hello") == 1
        assert moved(before, during, "chat_frames_sent_total", type="subscribed") == 1
        # Each process's hub wrote every message to its one socket in the room (ann's own are her echoes).
        assert moved(before, during, "chat_frames_sent_total", type="message") == MESSAGES
        assert moved(before, during, "chat_hub_events_total", type="room.event") >= MESSAGES
        assert delivered(before, during) >= MESSAGES
    # Only ann's process read the sends, stored them and acknowledged them.
    assert moved(before_a, open_a, "chat_frames_received_total", type="send") == MESSAGES
    assert moved(before_b, open_b, "chat_frames_received_total", type="send") == 0
    assert moved(before_a, open_a, "chat_frames_sent_total", type="ack") == MESSAGES
    assert moved(before_a, open_a, "chat_send_ack_seconds_count") == MESSAGES
    assert moved(before_b, open_b, "chat_send_ack_seconds_count") == 0
    assert moved(before_a, open_a, "chat_send_ack_seconds_sum") > 0
    assert 1 <= moved(before_a, open_a, "chat_database_call_seconds_count", call="store_batch") <= MESSAGES
    assert moved(before_b, open_b, "chat_database_call_seconds_count", call="room_join") == 1

    # Each process uncounts its socket once daphne has told it of the close.
    for url, before in ((url_a, before_a), (url_b, before_b)):
        for _ in range(100):
            after = scrape(url)[1]
            if moved(before, after, "chat_sockets_open") == 0:
                break
            time.sleep(0.05)
        assert moved(before, after, "chat_sockets_open") == 0
        assert moved(before, after, "chat_handshakes_total", outcome="failed", reason="gone") == 0
