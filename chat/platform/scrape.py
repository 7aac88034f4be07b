"""Serve this process's metrics at /metrics, ahead of Django, to the scrapers the settings allow.

The endpoint sits in front of Django (myproject/asgi.py) so that a scrape
never waits for Django's one sync thread, which a stuck database call can
hold: metrics matter most during an outage. It skips ALLOWED_HOSTS and the
HTTPS redirect too, since Prometheus asks each daphne by its own address.
A scrape is let in when it carries `Authorization: Bearer <CHAT_METRICS_TOKEN>`,
or when its client address is in CHAT_METRICS_ALLOWED_ADDRESSES (behind
nginx and daphne's --proxy-headers, the address nginx forwarded); any other
gets 403 and nothing else.
"""
import hmac
import ipaddress

from django.conf import settings
from prometheus_client import REGISTRY
from prometheus_client.exposition import choose_encoder

from chat.platform.logs import log_event

PATH = "/metrics"


def address_allowed(address, networks):
    """Return whether the text IP `address` is in one of `networks` (CIDR texts); IPv4-mapped IPv6 counts as IPv4."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    if ip.version == 6 and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return any(ip in ipaddress.ip_network(network, strict=False) for network in networks)


def token_matches(authorization, token):
    """Return whether an Authorization header value (bytes or None) is `Bearer <token>`; never with no token set."""
    if not token or authorization is None:
        return False
    scheme, _, credentials = authorization.partition(b" ")
    # Compared in constant time, so that its timing does not give the token away a byte at a time.
    return scheme.lower() == b"bearer" and hmac.compare_digest(credentials.strip(), token.encode())


def scrape_allowed(client, authorization):
    """Return whether a scrape from `client` (an address, or None) with this Authorization header may read the metrics."""
    if token_matches(authorization, settings.CHAT_METRICS_TOKEN):
        return True
    return client is not None and address_allowed(client, settings.CHAT_METRICS_ALLOWED_ADDRESSES)


class MetricsEndpoint:
    """Answer HTTP requests for /metrics with this process's metrics, or 403; pass every other request on."""

    def __init__(self, application):
        self.application = application

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or scope["path"] != PATH:
            return await self.application(scope, receive, send)
        headers = dict(scope.get("headers") or ())
        client = (scope.get("client") or [None])[0]
        if not scrape_allowed(client, headers.get(b"authorization")):
            log_event("metrics.refused", address=client)
            return await _respond(send, 403, b"Forbidden\n")
        if scope["method"] not in ("GET", "HEAD"):
            return await _respond(send, 405, b"Method not allowed\n", extra=[(b"allow", b"GET, HEAD")])
        # On the event loop: the hub's and send queue's state is read in the thread that changes it.
        encoder, content_type = choose_encoder(headers.get(b"accept", b"").decode("latin-1"))
        body = encoder(REGISTRY) if scope["method"] == "GET" else b""
        return await _respond(send, 200, body, content_type=content_type.encode())


async def _respond(send, status, body, *, content_type=b"text/plain; charset=utf-8", extra=()):
    headers = [(b"content-type", content_type), (b"cache-control", b"no-store"), *extra]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
