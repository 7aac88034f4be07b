"""The guarded fetch of link previews against real local sockets: every refusal, and what it lets through."""
import ipaddress
import ssl
import subprocess
import time

import pytest

from chat.platform import safefetch
from chat.platform.safefetch import FetchRefused
from chat.tests.pagesite import allowed_site, guarded, site  # noqa: F401 (fixtures)
from harness.servers import require_binary

HTML = ("text/html", "application/xhtml+xml")


pytestmark = [pytest.mark.usefixtures("guarded")]


@pytest.mark.parametrize("address", [
    "127.0.0.1", "10.1.2.3", "172.16.0.1", "192.168.1.1", "169.254.169.254", "100.64.0.1", "0.0.0.0", "224.0.0.1",
    "239.255.255.250", "240.0.0.1", "255.255.255.255", "::1", "::", "::ffff:127.0.0.1", "::ffff:10.0.0.1",
    "fe80::1", "fc00::1", "ff02::1", "64:ff9b::a9fe:a9fe", "2002:7f00:1::1",
])
def test_no_address_of_a_private_loopback_link_local_multicast_or_reserved_range_is_fetched(address):
    assert safefetch.address_refusal(ipaddress.ip_address(address)) is not None


@pytest.mark.parametrize("address", ["93.184.216.34", "2606:4700::1111"])
def test_public_addresses_are_fetched(address):
    assert safefetch.address_refusal(ipaddress.ip_address(address)) is None


def test_an_allowed_network_lets_its_addresses_and_their_mapped_forms_through(settings):
    settings.CHAT_PREVIEW_ALLOWED_NETWORKS = ["10.0.0.0/8"]
    assert safefetch.address_refusal(ipaddress.ip_address("10.9.9.9")) is None
    assert safefetch.address_refusal(ipaddress.ip_address("::ffff:10.9.9.9")) is None
    assert safefetch.address_refusal(ipaddress.ip_address("11.0.0.1")) is None  # public anyway
    assert safefetch.address_refusal(ipaddress.ip_address("192.168.0.1")) is not None


def test_an_allowed_page_is_fetched_with_its_type_and_charset(allowed_site):
    fetched = safefetch.fetch(allowed_site.base + "/to-page", types=HTML)
    assert fetched.url == allowed_site.base + "/page"
    assert (fetched.content_type, fetched.charset) == ("text/html", "utf-8")
    assert b"The OG title" in fetched.body


@pytest.mark.parametrize("url", [
    "ftp://127.0.0.2/page", "file:///etc/passwd", "javascript:alert(1)", "gopher://127.0.0.2:70/", "data:text/html,x",
])
def test_only_http_and_https_are_fetched(url):
    with pytest.raises(FetchRefused, match="Only http and https"):
        safefetch.fetch(url, types=HTML)


def test_loopback_is_refused_before_connecting_whatever_its_spelling():
    with site("127.0.0.1") as loopback:
        port = loopback.server_address[1]
        for url in (f"http://127.0.0.1:{port}/page", f"http://[::ffff:127.0.0.1]:{port}/page",
                    f"http://localhost:{port}/page", f"http://2130706433:{port}/page"):
            with pytest.raises(FetchRefused, match="is not a public address"):
                safefetch.fetch(url, types=HTML)
        assert loopback.hits["/page"] == 0


@pytest.mark.parametrize("path,address", [("/to-loopback", "127.0.0.1"), ("/to-metadata", "169.254.169.254")])
def test_a_redirect_to_loopback_or_the_cloud_metadata_address_is_refused(allowed_site, path, address):
    with pytest.raises(FetchRefused, match=f"{address} is not a public address"):
        safefetch.fetch(allowed_site.base + path, types=HTML)


def test_redirects_are_followed_three_times_at_most(allowed_site):
    before = allowed_site.hits["/loop"]
    with pytest.raises(FetchRefused, match="More than 3 redirects"):
        safefetch.fetch(allowed_site.base + "/loop", types=HTML)
    assert allowed_site.hits["/loop"] - before == 4


@pytest.mark.parametrize("path", ["/slow", "/trickle"])
def test_a_server_that_does_not_answer_or_trickles_its_body_is_given_up_at_the_deadline(allowed_site, path):
    """/slow answers after 3 s; /trickle sends a byte every 0.1 s for 3 s, each read well within the timeout."""
    started = time.monotonic()
    with pytest.raises(FetchRefused, match="could not be read|timed out|longer than"):
        safefetch.fetch(allowed_site.base + path, types=HTML)
    assert time.monotonic() - started < 1.5


def test_a_huge_page_is_refused_once_it_passes_the_size_cap(allowed_site):
    with pytest.raises(FetchRefused, match="larger than 1048576 bytes"):
        safefetch.fetch(allowed_site.base + "/huge", types=HTML)


def test_a_page_that_is_not_html_is_refused(allowed_site):
    with pytest.raises(FetchRefused, match="Content-Type application/json is not one of"):
        safefetch.fetch(allowed_site.base + "/json", types=HTML)


def test_an_error_status_is_refused(allowed_site):
    with pytest.raises(FetchRefused, match="answered 404"):
        safefetch.fetch(allowed_site.base + "/missing", types=HTML)


def test_a_host_that_does_not_resolve_and_credentials_are_refused():
    with pytest.raises(FetchRefused, match="does not resolve"):
        safefetch.fetch("http://no-such-host.invalid/", types=HTML)
    with pytest.raises(FetchRefused, match="credentials"):
        safefetch.fetch("http://user:secret@127.0.0.2/", types=HTML)


def test_https_refuses_a_certificate_it_cannot_verify(tmp_path):
    """The fetch connects to the checked address yet verifies TLS (for the host name), never skipping it."""
    key, cert = tmp_path / "key.pem", tmp_path / "cert.pem"
    subprocess.run([require_binary("openssl"), "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", cert,
                    "-days", "1", "-subj", "/CN=127.0.0.2", "-addext", "subjectAltName=IP:127.0.0.2"],
                   check=True, capture_output=True, timeout=30)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    with site("127.0.0.2") as secure:
        secure.socket = context.wrap_socket(secure.socket, server_side=True)
        with pytest.raises(FetchRefused, match="CERTIFICATE_VERIFY_FAILED"):
            safefetch.fetch(f"https://{secure.server_address[0]}:{secure.server_address[1]}/page", types=HTML)


def test_a_url_is_read_as_the_http_library_reads_it(allowed_site):
    with pytest.raises(FetchRefused, match="cannot be parsed"):
        safefetch.fetch("http://127.0.0.2:99999/page", types=HTML)
    # Non-ASCII in the query goes percent-encoded, as a browser sends it, instead of failing the request.
    assert b"The OG title" in safefetch.fetch(allowed_site.base + "/page?q=\u00fc", types=HTML).body
