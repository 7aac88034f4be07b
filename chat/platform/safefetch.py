"""Fetch a URL on a user's behalf without reaching this server's own networks (server-side request forgery).

Each hop resolves its host once, refuses it unless every address is public
(or in CHAT_PREVIEW_ALLOWED_NETWORKS), and connects to that checked address
itself, sending the original Host header and TLS server name, so that a
second DNS answer cannot point elsewhere (rebinding). Redirects are followed
by hand and checked the same way. The whole fetch is bounded in time
(CHAT_PREVIEW_TIMEOUT) and its body in size.

urllib3 connects to the address given while verifying the certificate for the
host name (server_hostname); the address checks use the stdlib ipaddress,
which needs a few ranges added: see address_refusal.
"""
import ipaddress
import socket
import time
from dataclasses import dataclass
from urllib.parse import urljoin

import urllib3
from django.conf import settings
from urllib3.exceptions import LocationParseError
from urllib3.util import parse_url

from chat.platform.scrape import address_allowed

MAX_REDIRECTS = 3
DEFAULT_PORTS = {"http": 80, "https": 443}
REDIRECTS = {301, 302, 303, 307, 308}
USER_AGENT = "ChatLinkPreview/1.0"
CHUNK_BYTES = 64 * 1024
# is_global calls these global although they reach no single public host, or wrap an IPv4 address of any kind.
NAT64 = ipaddress.ip_network("64:ff9b::/96")


class FetchRefused(Exception):
    """The URL was not fetched, or its answer not taken; the message says why."""


@dataclass(frozen=True)
class Fetched:
    url: str  # after redirects
    content_type: str
    charset: str | None
    body: bytes


def address_refusal(ip):
    """Return why the address `ip` may not be fetched from, or None when it may."""
    if address_allowed(str(ip), settings.CHAT_PREVIEW_ALLOWED_NETWORKS):
        return None
    if ip.version == 6:
        embedded = ip.ipv4_mapped or ip.sixtofour or (ip.teredo and ip.teredo[1])
        if embedded is None and ip in NAT64:
            embedded = ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
        if embedded is not None:
            return address_refusal(embedded)
    if not ip.is_global or ip.is_multicast or ip.is_reserved or ip.is_unspecified:
        return f"{ip} is not a public address."
    return None


def fetch(url, *, types, max_bytes=None):
    """Return the answer to GET `url` if its Content-Type is one of `types`; FetchRefused for anything unsafe or odd."""
    max_bytes = max_bytes or settings.CHAT_PREVIEW_MAX_BYTES
    deadline = time.monotonic() + settings.CHAT_PREVIEW_TIMEOUT
    for _ in range(MAX_REDIRECTS + 1):
        pool, response = _get(url, deadline)
        try:
            if response.status in REDIRECTS:
                location = response.headers.get("Location")
                if not location:
                    raise FetchRefused("A redirect without a Location.")
                url = urljoin(url, location)
                continue
            if response.status != 200:
                raise FetchRefused(f"The server answered {response.status}.")
            content_type, charset = _content_type(response.headers.get("Content-Type", ""))
            if content_type not in types:
                raise FetchRefused(f"Content-Type {content_type or 'none'} is not one of {', '.join(types)}.")
            return Fetched(url, content_type, charset, _read(response, max_bytes, deadline))
        except urllib3.exceptions.HTTPError as error:
            raise FetchRefused(f"The answer could not be read: {error}") from None
        finally:
            response.release_conn()
            pool.close()
    raise FetchRefused(f"More than {MAX_REDIRECTS} redirects.")


def _get(url, deadline):
    """Send GET `url` to its host's checked address; return (pool, response) with the body still to read."""
    # urllib3's own parser: the URL is read as the library that sends it reads it (the host in IDNA, the path
    # percent-encoded), never one way by the check and another by the request.
    try:
        parts = parse_url(url)
    except LocationParseError:
        raise FetchRefused("The URL cannot be parsed.") from None
    scheme = (parts.scheme or "").lower()
    if scheme not in DEFAULT_PORTS:
        raise FetchRefused("Only http and https links are fetched.")
    if not parts.host or parts.auth is not None:
        raise FetchRefused("The URL names no host, or carries credentials.")
    host, port = parts.host.strip("[]"), parts.port or DEFAULT_PORTS[scheme]
    address = _resolve(host, port)
    remaining = _remaining(deadline)
    options = {}
    if scheme == "https":
        # The certificate is checked for the host name, though the socket goes to the checked address.
        options = {"server_hostname": host, "assert_hostname": host, "cert_reqs": "CERT_REQUIRED"}
    pool_class = urllib3.HTTPSConnectionPool if scheme == "https" else urllib3.HTTPConnectionPool
    pool = pool_class(
        str(address), port, timeout=urllib3.Timeout(connect=remaining, read=remaining), maxsize=1, retries=False,
        **options,
    )
    try:
        response = pool.urlopen(
            "GET", parts.request_uri, headers={"Host": parts.netloc, "User-Agent": USER_AGENT, "Accept": "*/*"},
            redirect=False, retries=False, preload_content=False, assert_same_host=False,
        )
    except urllib3.exceptions.HTTPError as error:
        pool.close()
        raise FetchRefused(f"{host} could not be reached: {error}") from None
    return pool, response


def _resolve(host, port):
    """Return the one address to connect to for `host`, once every address it resolves to is checked."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError):
        raise FetchRefused(f"{host} does not resolve.") from None
    addresses = [ipaddress.ip_address(info[4][0].partition("%")[0]) for info in infos]
    for address in addresses:
        refusal = address_refusal(address)
        if refusal:
            raise FetchRefused(refusal)
    return addresses[0]


def _remaining(deadline):
    remaining = deadline - time.monotonic()
    if remaining <= 0:
        raise FetchRefused(f"The fetch took longer than {settings.CHAT_PREVIEW_TIMEOUT} s.")
    return remaining


def _content_type(header):
    media, _, parameters = header.partition(";")
    charset = None
    for parameter in parameters.split(";"):
        name, _, value = parameter.partition("=")
        if name.strip().lower() == "charset":
            charset = value.strip().strip('"') or None
    return media.strip().lower(), charset


def _read(response, max_bytes, deadline):
    """Return the body, refused past `max_bytes` (decoded) or past the deadline however slowly it trickles."""
    length = response.headers.get("Content-Length", "")
    if length.isdigit() and int(length) > max_bytes:
        raise FetchRefused(f"The answer is larger than {max_bytes} bytes.")
    body = bytearray()
    # read1 returns what one read of the socket gives, so that the deadline is checked between reads.
    while chunk := response.read1(CHUNK_BYTES):
        body += chunk
        if len(body) > max_bytes:
            raise FetchRefused(f"The answer is larger than {max_bytes} bytes.")
        _remaining(deadline)
    return bytes(body)
