"""The Prometheus metrics of one server process, each defined here once.

Every daphne process keeps its metrics in its own memory and serves them at
/metrics (chat/platform/scrape.py); Prometheus scrapes each process as a target
of its own and sums across them (README, "Metrics"). Nothing is shared between
processes, so an increment is a lock and an addition, and a process's gauges
die with it. The hot paths count per event or per batch, never per socket
write: a counter call (about 0.5 µs) would add two thirds to what a delivery
costs the process besides the write itself.
"""
import time

from prometheus_client import Counter, Gauge, Histogram, disable_created_metrics

# No `_created` series beside each counter and histogram: they would double the series, and no query needs them.
disable_created_metrics()

# Seconds, from a fast local call to a call timeout (CHAT_DATABASE_CALL_TIMEOUT is 2 s on PostgreSQL).
DATABASE_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
# Seconds; a send waits for one database call, and at most CHAT_DATABASE_CALL_TIMEOUT when it is down.
SEND_ACK_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class Children(dict):
    """The children of a metric with one label, by label value, bound at first use.

    Metric.labels() costs microseconds (a tuple, a lock and a lookup); a dict
    lookup here costs a tenth of that. Label values come from the code, never
    from clients, so their number stays small.
    """

    def __init__(self, metric):
        super().__init__()
        self.metric = metric

    def __missing__(self, value):
        child = self[value] = self.metric.labels(value)
        return child


SOCKETS_OPEN = Gauge("chat_sockets_open", "Websockets whose handshake was accepted and that are not closed yet.")
HANDSHAKES = Counter(
    "chat_handshakes", "Websocket handshakes by outcome (accepted, refused, busy, failed) and reason.",
    ["outcome", "reason"],
)
FRAMES_RECEIVED = Children(Counter(
    "chat_frames_received", "Client frames read, by type (v1 frames by their v2 twin's; invalid: not a valid frame).",
    ["type"],
))
FRAMES_SENT = Children(Counter("chat_frames_sent", "Server frames written to sockets, by type.", ["type"]))
HUB_EVENTS = Children(Counter("chat_hub_events", "Channel-layer events the hub received, by type.", ["type"]))
DELIVERIES = Children(Counter(
    "chat_deliveries", "Frames of layer events the hub wrote to local sockets, by path (direct: prebuilt bytes; asgi).",
    ["path"],
))
SEND_ACK_SECONDS = Histogram(
    "chat_send_ack_seconds", "Seconds from a send frame's arrival to its acknowledgement (v1: its message stored).",
    buckets=SEND_ACK_BUCKETS,
)
DATABASE_SECONDS = Children(Histogram(
    "chat_database_call_seconds", "Seconds a socket's database call took, failures included, by function.",
    ["call"], buckets=DATABASE_BUCKETS,
))
SEND_QUEUE_WAITING = Gauge("chat_send_queue_waiting", "Messages waiting for a database call to store them.")
HUB_RESETS = Children(Counter(
    "chat_hub_resets", "Times the hub closed all its sockets, by close code (4012: layer lost; 4011: hub failed).",
    ["code"],
))
REDIS_ERRORS = Children(Counter(
    "chat_redis_errors", "Failed calls to Redis, by client (channel_layer, presence, limits).", ["client"],
))
LIMIT_REFUSALS = Children(Counter("chat_limit_refusals", "Events refused by an abuse limit, by limit.", ["limit"]))


def handshake(outcome, reason=""):
    """Count one websocket handshake that ended with `outcome` for `reason`."""
    HANDSHAKES.labels(outcome, reason).inc()


def socket_opened():
    """Count a socket whose handshake was accepted, open until socket_released()."""
    handshake("accepted")
    SOCKETS_OPEN.inc()


def socket_released(outcome, close_code):
    """Count a socket that is gone: uncount an open one, or count a handshake that neither opened nor was refused."""
    if outcome == "accepted":
        SOCKETS_OPEN.dec()
    elif outcome is None:
        # Closed by the server with a code (4012: the layer; 4011: a failure), or left by its client.
        handshake("failed", str(close_code) if close_code is not None else "gone")


def delivered(event_type, kind, direct, asgi):
    """Count a layer event the hub handed to its sockets, and the frames of it written `direct` and through `asgi`."""
    HUB_EVENTS[event_type].inc()
    if direct:
        DELIVERIES["direct"].inc(direct)
        # Frames sent through ASGI are counted as they go (FRAMES_SENT); direct writes skip that path.
        FRAMES_SENT[kind].inc(direct)
    if asgi:
        DELIVERIES["asgi"].inc(asgi)


def timed(histogram, call):
    """Return the async function `call` observing into `histogram` the seconds each call takes, failures included."""
    async def timed_call(*args, **kwargs):
        started = time.perf_counter()
        try:
            return await call(*args, **kwargs)
        finally:
            histogram.observe(time.perf_counter() - started)

    return timed_call
