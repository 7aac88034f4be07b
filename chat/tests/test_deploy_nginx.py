"""deploy/nginx.conf, run by a real nginx over TLS in front of two real daphne processes with production settings."""
import http.client
import json
import os
import re
import shlex
import ssl
import subprocess

import pytest

from harness.servers import (
    PROJECT_DIR, WebClient, frame_of, free_port, manage, project_env, require_binary, rooms_create, start_daphne,
    start_nginx, users_create,
)

pytestmark = [pytest.mark.timeout(120)]
# Failed logins a username may make in 15 minutes; an address may make four times as many.
LOGIN_FAILURES = 1
SITE_CONFIG = PROJECT_DIR / "deploy" / "nginx.conf"
UNIT = PROJECT_DIR / "deploy" / "chat@.service"
FILES_ROOM = "nginx-files"


def unit_daphne_options():
    """Return the daphne options of deploy/chat@.service's ExecStart, less the address, port and application."""
    exec_start = next(line for line in UNIT.read_text().splitlines() if line.startswith("ExecStart="))
    _, *options, app = shlex.split(exec_start.removeprefix("ExecStart="))
    assert app == "myproject.asgi:application"
    for flag, value in (("-b", "127.0.0.1"), ("-p", "%i")):
        at = options.index(flag)
        assert options[at + 1] == value, exec_start
        del options[at:at + 2]
    return options


def render_site(*, http_port, https_port, daphne_ports, cert, key, media):
    """Return deploy/nginx.conf with its ports and certificate paths replaced; fail if a line to replace moved."""
    text = SITE_CONFIG.read_text()
    replacements = {
        "server 127.0.0.1:8001;": f"server 127.0.0.1:{daphne_ports[0]};",
        "server 127.0.0.1:8002;": f"server 127.0.0.1:{daphne_ports[1]};",
        "listen 80;": f"listen 127.0.0.1:{http_port};",
        "listen 443 ssl;": f"listen 127.0.0.1:{https_port} ssl;",
        "/etc/letsencrypt/live/chat.example.com/fullchain.pem": str(cert),
        "/etc/letsencrypt/live/chat.example.com/privkey.pem": str(key),
        "alias /var/lib/chat/media/;": f"alias {media}/;",
    }
    for old, new in replacements.items():
        assert text.count(old) == 1, f"deploy/nginx.conf no longer has exactly one {old!r}; update this test"
        text = text.replace(old, new)
    return text


def main_config(prefix, site):
    """Return an nginx.conf that keeps pid, logs and temp files under `prefix` and includes `site`."""
    temp = "\n".join(f"    {kind}_temp_path {prefix}/temp/{kind};" for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"))
    # A root master hands requests to an unprivileged worker that could not read the test's private tmp dir.
    user = "user root;\n" if os.geteuid() == 0 else ""
    return (
        f"{user}worker_processes 1;\npid {prefix}/nginx.pid;\nerror_log {prefix}/error.log info;\n"
        f"events {{ worker_connections 256; }}\n"
        f"http {{\n    access_log {prefix}/access.log;\n{temp}\n    include {site};\n}}\n"
    )


@pytest.fixture(scope="module")
def site(tmp_path_factory, redis_server, live_database):
    """Run nginx with deploy/nginx.conf in front of two production-configured daphnes; yield (https, http) URLs."""
    nginx = require_binary("nginx")
    prefix = tmp_path_factory.mktemp("nginx")
    print(f"nginx and daphne logs in {prefix}")
    (prefix / "temp").mkdir()
    cert, key = prefix / "cert.pem", prefix / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=127.0.0.1",
         "-keyout", str(key), "-out", str(cert)], check=True, capture_output=True,
    )
    env = project_env(
        REDIS_URL=redis_server, DATABASE_URL=live_database, ALLOWED_HOSTS="127.0.0.1",
        SECURE_PROXY_SSL_HEADER=1, SECURE_SSL_REDIRECT=1, SECURE_COOKIES=1,
        STATIC_MANIFEST=1, STATIC_ROOT=prefix / "static", CHAT_LOGIN_FAILURE_RATE=f"{LOGIN_FAILURES}/900",
        MEDIA_ROOT=prefix / "media", CHAT_FILES_ACCEL_REDIRECT="/protected-files/",
    )
    manage("collectstatic", "--noinput", env=env)
    users_create(["nia", "noa", "nim"], env=env)
    rooms_create(["through-nginx"], by="nia", env=env)
    rooms_create([FILES_ROOM], by="nia", private=True, env=env)
    manage("shell", "-c", (
        "from django.contrib.auth import get_user_model\n"
        "from chat.domain.models import Membership, Room\n"
        f"Membership.objects.create(room=Room.objects.get(slug={FILES_ROOM!r}),"
        " user=get_user_model().objects.get(username='noa'))\n"
    ), env=env)
    servers = []
    try:
        servers += [start_daphne(prefix, env=env, name=f"daphne-{n}", options=unit_daphne_options()) for n in (1, 2)]
        http_port, https_port = free_port(), free_port()
        (prefix / "chat.conf").write_text(render_site(
            http_port=http_port, https_port=https_port, daphne_ports=[s.port for s in servers], cert=cert, key=key,
            media=prefix / "media",
        ))
        (prefix / "nginx.conf").write_text(main_config(prefix, prefix / "chat.conf"))
        subprocess.run([nginx, "-t", "-c", str(prefix / "nginx.conf"), "-p", str(prefix)], check=True, capture_output=True)
        servers.append(start_nginx(prefix / "nginx.conf", prefix, https_port))
        yield {"https": f"https://127.0.0.1:{https_port}", "http": f"http://127.0.0.1:{http_port}",
               "daphne_logs": [prefix / "daphne-1.log", prefix / "daphne-2.log"], "redis": redis_server,
               "daphnes": [f"http://127.0.0.1:{s.port}" for s in servers[:2]]}
    finally:
        for server in reversed(servers):
            server.stop()


def insecure_tls():
    """Return a client TLS context that accepts the test's self-signed certificate."""
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


def test_plain_http_redirects_to_https(site):
    connection = http.client.HTTPConnection(site["http"].removeprefix("http://"), timeout=10)
    try:
        connection.request("GET", "/accounts/login/?next=/", headers={"Host": "chat.example.com"})
        response = connection.getresponse()
    finally:
        connection.close()
    assert response.status == 301
    assert response.getheader("Location") == "https://chat.example.com/accounts/login/?next=/"


def test_health_static_and_pages_through_nginx(site):
    client = WebClient(site["https"], insecure_tls())
    status, body = client.request("/healthz")
    assert (status, json.loads(body)["status"]) == (200, "ok")
    status, page = client.request("/accounts/login/")
    assert status == 200
    stylesheet = page.split('href="/static/', 1)[1].split('"', 1)[0]
    # The manifest storage names files by content hash; WhiteNoise serves them from STATIC_ROOT.
    assert stylesheet.count(".") >= 2, stylesheet
    assert client.request(f"/static/{stylesheet}")[0] == 200


async def test_chat_through_nginx_spreads_sockets_over_both_daphnes(site):
    nia = WebClient(site["https"], insecure_tls()).login("nia")
    noa = WebClient(site["https"], insecure_tls()).login("noa")
    cookie = next(c for c in nia.cookies if c.name == "sessionid")
    assert cookie.secure
    # Round robin sends consecutive sockets to alternate daphnes.
    async with nia.socket("through-nginx") as nia_1, noa.socket("through-nginx") as noa_1, \
            nia.socket("through-nginx") as nia_2, noa.socket("through-nginx") as noa_2:
        sockets = [nia_1, noa_1, nia_2, noa_2]
        for socket in sockets:
            await frame_of(socket, "welcome")
        await nia_1.send(json.dumps({"type": "send", "body": "hello through nginx", "client_id": "n1"}))
        await noa_2.send(json.dumps({"type": "send", "body": "hello back", "client_id": "n2"}))
        seen = [[(await frame_of(socket, "message"))["message"] for _ in range(2)] for socket in sockets]
    # Both sends race, so either may come first, and two commits close together may even
    # arrive out of seq order (docs/protocol.md); every socket must see the same order.
    orders = {tuple((m["seq"], m["author"], m["body"]) for m in messages) for messages in seen}
    assert len(orders) == 1
    (order,) = orders
    assert sorted(seq for seq, _, _ in order) == [1, 2]
    assert {(author, body) for _, author, body in order} == {("nia", "hello through nginx"), ("noa", "hello back")}
    for log in site["daphne_logs"]:
        assert "WSCONNECT /ws/chat/through-nginx/" in log.read_text(), f"{log.name} served no socket"


def test_metrics_are_scraped_from_each_daphne_and_never_through_nginx(site):
    # Through nginx a scrape would come from 127.0.0.1 too (X-Forwarded-For), and reach either process.
    assert WebClient(site["https"], insecure_tls()).request("/metrics")[0] == 404
    for url in site["daphnes"]:
        # Plain HTTP straight at daphne, neither redirected to HTTPS nor refused: loopback is allowed by default.
        status, body = WebClient(url).request("/metrics")
        assert status == 200 and "chat_sockets_open" in body


def test_spoofed_forwarded_for_does_not_escape_the_login_throttle(site):
    import redis

    client = WebClient(site["https"], insecure_tls())
    statuses = []
    try:
        # Each attempt names another user (no username throttle) and claims another address.
        for n in range(LOGIN_FAILURES * 4 + 1):
            status, page = client.request("/accounts/login/")
            token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page).group(1)
            headers = {"Referer": f"{client.base_url}/accounts/login/", "Origin": client.base_url,
                       "X-Forwarded-For": f"198.51.100.{n + 1}"}
            data = {"username": f"sprayed-{n}", "password": "wrong-password", "csrfmiddlewaretoken": token}
            statuses.append(client.request("/accounts/login/", data, headers)[0])
    finally:
        # The throttled address is the test machine's: the other tests must still log in.
        store = redis.Redis.from_url(site["redis"])
        for key in store.scan_iter("chat:limit:login_failure*"):
            store.delete(key)
    assert statuses == [200] * (LOGIN_FAILURES * 4) + [429]


async def test_files_are_sent_by_nginx_once_daphne_has_checked_the_reader(site):
    nia, noa, nim = (WebClient(site["https"], insecure_tls()).login(name) for name in ("nia", "noa", "nim"))
    # Above the site's 1 MB body limit, within the upload location's.
    data = b"line of text\n" * 250_000
    status, answer = nia.upload(f"/chat/{FILES_ROOM}/uploads/", "big.html", data, "text/html")
    assert status == 201, answer
    async with nia.socket() as socket:
        await frame_of(socket, "hello")
        await socket.send(json.dumps({"type": "subscribe", "room": FILES_ROOM}))
        await frame_of(socket, "subscribed")
        await socket.send(json.dumps({"type": "send", "room": FILES_ROOM, "body": "", "attachments": [answer["id"]]}))
        assert (await frame_of(socket, "message"))["message"]["attachments"] == [answer]
    status, headers, body = noa.fetch(answer["url"])
    assert status == 200 and body == data
    assert headers["Content-Type"] == "text/plain; charset=utf-8"
    assert headers["Content-Disposition"] == 'attachment; filename="big.html"'
    assert headers.get_all("X-Content-Type-Options") == ["nosniff"]
    assert headers.get_all("Content-Security-Policy") == ["default-src 'none'; sandbox"]
    assert "X-Accel-Redirect" not in headers
    assert nim.fetch(answer["url"])[0] == 404
    # daphne only says where the file is, with an empty body: nginx reads it from MEDIA_ROOT.
    direct = WebClient(site["daphnes"][0])
    direct.cookies = noa.cookies
    status, headers, body = direct.fetch(answer["url"], headers={"X-Forwarded-Proto": "https"})
    assert status == 200 and body == b"" and headers["X-Accel-Redirect"].startswith("/protected-files/attachments/")
    # The internal location cannot be asked for from outside.
    assert noa.fetch(headers["X-Accel-Redirect"])[0] == 404
