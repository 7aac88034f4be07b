"""Run the benchmark scenarios against real daphne processes, a private Redis and a real database."""
import collections
import contextlib
import itertools
import json
import math
import multiprocessing
import os
import platform
import secrets
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import NamedTuple
from urllib.parse import urlsplit, urlunsplit

from bench import clients
from harness.servers import (
    PROJECT_DIR, Server, manage, project_env, rooms_create, start_on_a_free_port, start_redis,
)

APPS = {
    "project": "myproject.asgi:application",
    "tutorial": "bench.tutorial:application",
    "ceiling": "bench.ceiling:application",
    # Outside references: the websocket-shootout's Node ws broadcast, and a python-socketio room on uvicorn.
    "node-ws": "bench/peers/node/server.js",
    "socketio": "bench.peers.socketio_app:application",
}
# The protocol each app's sockets speak: the project's as its page does (v2); the references send no first frame.
PROTOCOLS = {"project": 2, "tutorial": None, "ceiling": None, "node-ws": None, "socketio": clients.SOCKETIO}
# The peers run on their own servers, whatever --server says.
SERVERS = {"node-ws": "node", "socketio": "uvicorn"}
# A client process above this share of its core was the ceiling of the round, not the server.
CLIENT_BOUND_SHARE = 0.9
QUIET_SECONDS = 1.0
QUIET_TIMEOUT = 180.0
COMMAND_TIMEOUT = 900.0
IDLE_CPU_SECONDS = 3.0
# Longer than daphne's --ping-interval (20 s in production), so that every
# socket's keepalive ping falls inside the reading whatever the ramp took.
STEADY_IDLE_CPU_SECONDS = 25.0


class Bench(contextlib.ExitStack):
    """One benchmark run's servers and files: everything it starts is stopped when it ends."""

    def __init__(self, workdir, server="daphne"):
        super().__init__()
        self.workdir = Path(workdir)
        self.server = server
        self.names = (f"b{secrets.token_hex(3)}_{i}" for i in itertools.count())
        self.account_prefixes = {}  # database URL -> the prefix of its benchmark users' names

    def __enter__(self):
        super().__enter__()
        self.redis = start_redis(self.workdir)
        self.callback(self.redis.stop)
        self.redis_url = f"redis://127.0.0.1:{self.redis.port}/0"
        return self

    def env(self, database_url):
        """Return the environment of a production-like server process on `database_url`."""
        return project_env(
            REDIS_URL=self.redis_url, DATABASE_URL=database_url, ALLOWED_HOSTS="127.0.0.1,localhost",
            # The load generator is a deliberate flood: lift the per-user abuse limits, nothing else.
            CHAT_MESSAGE_RATE="1000000/1", CHAT_ROOM_CREATION_RATE="1000000/1",
            CHAT_HANDSHAKE_RATE="1000000/1",
        )

    def sqlite(self):
        """Return the URL of a fresh, migrated SQLite database in the work directory."""
        url = f"sqlite:///{self.workdir / (next(self.names) + '.sqlite3')}"
        manage("migrate", "--noinput", env=self.env(url), timeout=300)
        return url

    def postgres(self, server_url):
        """Return the URL of a fresh, migrated PostgreSQL database on `server_url`, dropped at the end."""
        import psycopg

        name = f"chat_{next(self.names)}"
        admin_url = urlunsplit(urlsplit(server_url)._replace(path="/postgres"))
        with psycopg.connect(admin_url, autocommit=True) as admin:
            admin.execute(f'CREATE DATABASE "{name}"')

        def drop():
            with psycopg.connect(admin_url, autocommit=True) as admin:
                admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

        self.callback(drop)
        url = urlunsplit(urlsplit(server_url)._replace(path=f"/{name}"))
        manage("migrate", "--noinput", env=self.env(url), timeout=300)
        return url

    def accounts(self, count, database_url):
        """Create `count` users with login sessions; return their session keys."""
        prefix = self.account_prefixes[database_url] = next(self.names) + "u"
        result = subprocess.run(
            [sys.executable, "-m", "bench.accounts", str(count), prefix], cwd=PROJECT_DIR,
            env=self.env(database_url), capture_output=True, text=True, timeout=600, check=True,
        )
        return json.loads(result.stdout)

    def rooms(self, slugs, database_url, members=()):
        """Create the project's rooms `slugs`, making benchmark user i a member of room members[i].

        Sockets join rooms but never create them; their users are members
        already, as on every reconnect (a user's very first join also writes the membership).
        """
        rooms_create(slugs, env=self.env(database_url))
        if members:
            subprocess.run(
                [sys.executable, "-m", "bench.accounts", "members", self.account_prefixes[database_url]],
                input=json.dumps(list(members)), cwd=PROJECT_DIR, env=self.env(database_url),
                capture_output=True, text=True, timeout=600, check=True,
            )

    def messages(self, slugs, count, database_url):
        """Store `count` chat-sized messages in each room of `slugs`, through the services."""
        code = (
            "from django.contrib.auth import get_user_model\nfrom chat.domain import services\nfrom chat.domain.models import Room\n"
            "author, _ = get_user_model().objects.get_or_create(username='bench-author')\n"
            f"for room in Room.objects.filter(slug__in={list(slugs)!r}):\n"
            f"    for n in range({count}):\n"
            "        services.message_create(room=room, author=author, body=f'message {n}: about as long as a line of chat')\n"
        )
        manage("shell", "-c", code, env=self.env(database_url), timeout=600)

    def serve(self, app, database_url):
        """Start the bench's server serving `app` the way production runs it; return the Server, stopped at the end."""
        def build(port):
            server = SERVERS.get(app, self.server)
            if server == "node":
                args = ["node", str(PROJECT_DIR / APPS[app]), str(port)]
            elif server == "uvicorn":
                args = [sys.executable, "-m", "uvicorn", "--host", "127.0.0.1", "--port", str(port),
                        *UVICORN_OPTIONS, APPS[app]]
            else:
                args = [sys.executable, "-m", "daphne", "-b", "127.0.0.1", "-p", str(port), *production_options(),
                        APPS[app]]
            log = self.workdir / f"{server}-{app}-{port}.log"
            return Server(args, port, env=self.env(database_url), cwd=PROJECT_DIR, log_path=log)

        server = start_on_a_free_port(build)
        self.callback(server.stop)
        return server


# For the comparison only (README): uvicorn with the limits and pings production gives daphne.
UVICORN_OPTIONS = ["--ws", "websockets", "--ws-max-size", "65536", "--ws-ping-interval", "20",
                   "--ws-ping-timeout", "20", "--proxy-headers", "--no-access-log", "--log-level", "warning"]


def production_options():
    """Return the daphne options deploy/chat@.service runs with, less address, port and application."""
    unit = (PROJECT_DIR / "deploy" / "chat@.service").read_text()
    words = shlex.split(next(line for line in unit.splitlines() if line.startswith("ExecStart=")))[1:-1]
    options = []
    for word in words:
        if options and options[-1] in ("-b", "-p"):
            options.pop()
        else:
            options.append(word)
    return options


def url_of(server, app, room, protocol=None):
    """Return the websocket URL of `room` in `app` on `server` (the project's for `protocol`, by default its page's)."""
    base = f"ws://127.0.0.1:{server.port}"
    if app == "project" and (protocol or PROTOCOLS[app]) == 2:
        return base + "/ws/"  # one socket per tab: the room is named by the subscribe
    if app == "socketio":
        return base + "/socket.io/?EIO=4&transport=websocket"  # the room is named by the connect packet
    return base + (f"/ws/{room}/" if app in ("ceiling", "node-ws") else f"/ws/chat/{room}/")


def rss_kib(pid):
    """Return the resident memory of process `pid` in KiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for {pid}")


def cpu_seconds(pid):
    """Return the user plus system CPU time process `pid` has used."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class Ramp(NamedTuple):
    """What connecting a set of clients gave: counts, the wall time, and each socket's times."""

    connected: int
    failed: int
    seconds: float
    errors: list
    handshake_ms: list  # connect to first view (welcome, or hello and subscribed), per socket
    subscribe_ms: list  # subscribe to subscribed, per v2 socket


class Fleet:
    """The client processes of one measurement, each holding a share of the sockets."""

    def __init__(self, specs, processes, *, protocol, handshakes, subscribe=True):
        context = multiprocessing.get_context("spawn")
        self.pipes, self.processes = [], []
        shares = [specs[i::processes] for i in range(processes)]
        for number, share in enumerate(share for share in shares if share):
            mine, theirs = context.Pipe()
            process = context.Process(target=clients.main, args=(theirs,), daemon=True)
            process.start()
            # Several source addresses keep clear of the ephemeral port range of one address.
            mine.send({"clients": share, "protocol": protocol, "subscribe": subscribe,
                       "source": f"127.0.0.{number + 1}", "handshakes": handshakes})
            self.pipes.append(mine)
            self.processes.append(process)
        self.holders = {spec["index"]: n for n, share in enumerate(shares) for spec in share}

    def ask(self, command, pipes=None, timeout=COMMAND_TIMEOUT):
        """Send `command` to the client processes (all by default) and return their answers."""
        pipes = self.pipes if pipes is None else pipes
        for pipe in pipes:
            pipe.send(command)
        answers = []
        for pipe in pipes:
            if not pipe.poll(timeout):
                raise RuntimeError(f"a client process did not answer {command['do']} within {timeout} s")
            answers.append(pipe.recv())
        return answers

    def ramp(self, indexes=None):
        """Connect clients (all not yet connected, or `indexes`); return the Ramp."""
        pipes = self.pipes if indexes is None else [self.pipes[n] for n in {self.holders[i] for i in indexes}]
        started = time.monotonic()
        answers = self.ask({"do": "ramp", "indexes": indexes}, pipes)
        return Ramp(
            sum(a["connected"] for a in answers), sum(a["failed"] for a in answers), time.monotonic() - started,
            [e for a in answers for e in a["errors"]], sorted(t for a in answers for t in a["handshake_ms"]),
            sorted(t for a in answers for t in a["subscribe_ms"]),
        )

    def subscribe(self):
        """Subscribe every open v2 socket of a fleet made with subscribe=False; return the Ramp."""
        started = time.monotonic()
        answers = self.ask({"do": "subscribe"})
        return Ramp(
            sum(a["connected"] for a in answers), sum(a["failed"] for a in answers), time.monotonic() - started,
            [e for a in answers for e in a["errors"]], sorted(t for a in answers for t in a["handshake_ms"]), [],
        )

    def settle(self):
        """Wait until no client has received a frame for QUIET_SECONDS (presence frames after a ramp); say if so."""
        deadline = time.monotonic() + QUIET_TIMEOUT
        while time.monotonic() < deadline:
            if min(a["quiet_seconds"] for a in self.ask({"do": "quiet"})) >= QUIET_SECONDS:
                return True
            time.sleep(0.25)
        return False

    def close(self):
        """Close every socket and end the client processes."""
        for pipe in self.pipes:
            with contextlib.suppress(OSError):
                pipe.send({"do": "close"})
        for process in self.processes:
            process.join(30)
            if process.is_alive():
                process.kill()
                process.join()


def percentile(ordered, fraction):
    """Return the value below which `fraction` of the sorted values lie (nearest rank)."""
    if not ordered:
        return None
    return ordered[min(len(ordered) - 1, max(0, math.ceil(fraction * len(ordered)) - 1))]


def round_figures(answers, t0_ns, messages_total, cpu_used):
    """Return one round's figures from the client processes' answers."""
    latencies = sorted(l for a in answers for l in a["latencies_us"])
    received = sum(a["received"] for a in answers)
    expected = sum(a["expected"] for a in answers)
    last = max((a["last_receive_ns"] for a in answers), default=t0_ns)
    seconds = max((last - t0_ns) / 1e9, 1e-9)
    ms = lambda value: None if value is None else round(value / 1000, 1)  # noqa: E731
    return {
        "messages": messages_total, "expected": expected,
        "received": received, "lost": expected - received, "duplicates": sum(a["duplicates"] for a in answers),
        "deliveries_per_s": round(received / seconds), "seconds": round(seconds, 2),
        "p50_ms": ms(percentile(latencies, 0.5)), "p90_ms": ms(percentile(latencies, 0.9)),
        "p99_ms": ms(percentile(latencies, 0.99)), "max_ms": ms(latencies[-1] if latencies else None),
        "server_cpu_us_per_delivery": round(cpu_used / received * 1e6, 1) if received else None,
        "send_errors": [e for a in answers for e in a["send_errors"]][:3],
        "sockets_closed": sum(a["closed"] for a in answers),
        # The load generator's own CPU over the round, in % of one core: all processes, and the busiest one.
        "client_cpu_percent": round(sum(a["cpu_seconds"] for a in answers) / seconds * 100),
        "client_bound": max(a["cpu_seconds"] for a in answers) / seconds > CLIENT_BOUND_SHARE,
    }


def go(fleet, servers, *, round_id, senders, messages, rate, expected, timeout, report_seen=False):
    """Run one round of sends on every client process; return its figures, the answers and the deadline."""
    t0_ns = time.time_ns() + 1_000_000_000
    send_seconds = senders * messages / rate
    deadline_ns = t0_ns + int((send_seconds + timeout) * 1e9)
    cpu_before = sum(cpu_seconds(s.process.pid) for s in servers)
    answers = fleet.ask({"do": "go", "round": round_id, "t0_ns": t0_ns, "senders": senders, "messages": messages,
                         "rate": rate, "expected": expected, "deadline_ns": deadline_ns, "report_seen": report_seen})
    cpu_used = sum(cpu_seconds(s.process.pid) for s in servers) - cpu_before
    return round_figures(answers, t0_ns, senders * messages, cpu_used), answers, deadline_ns


def connect_all(fleet, server, total, profile=None, idle_seconds=IDLE_CPU_SECONDS):
    """Open client 0 alone (it creates the room), then ramp the rest; return the ramp figures with memory."""
    first = fleet.ramp([0])
    if first.failed:
        raise RuntimeError(f"the first client could not connect: {first.errors}")
    fleet.settle()
    rss_before = rss_kib(server.process.pid)
    with profiling(profile, server.process.pid) if profile else contextlib.nullcontext():
        connected, failed, seconds, errors, _, _ = fleet.ramp()
    settled = fleet.settle()
    rss_after = rss_kib(server.process.pid)
    # What the idle sockets cost with nothing sent (heartbeats, pings, timers).
    cpu_before, idle_started = cpu_seconds(server.process.pid), time.monotonic()
    time.sleep(idle_seconds)
    idle_cpu = (cpu_seconds(server.process.pid) - cpu_before) / (time.monotonic() - idle_started)
    return {
        "sockets": connected + 1, "connect_failed": failed, "connect_errors": errors[:3],
        "ramp_seconds": round(seconds, 2), "ramp_per_s": round(connected / seconds) if seconds else None,
        "rss_before_mib": round(rss_before / 1024, 1), "rss_after_mib": round(rss_after / 1024, 1),
        "rss_kib_per_socket": round((rss_after - rss_before) / max(total - 1, 1), 1),
        "idle_cpu_percent": round(idle_cpu * 100, 1), "settled": settled,
        "sockets_closed": sum(a["closed"] for a in fleet.ask({"do": "quiet"})),
    }


@contextlib.contextmanager
def profiling(path, pid):
    """Record process `pid` with py-spy into `path` (collapsed stacks, one line each) while the block runs."""
    path.parent.mkdir(parents=True, exist_ok=True)
    spy = subprocess.Popen([str(Path(sys.executable).parent / "py-spy"), "record", "--pid", str(pid), "--format",
                            "raw", "--output", str(path), "--rate", "200", "--nonblocking"],
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        yield
    finally:
        # py-spy writes its file on SIGINT.
        spy.send_signal(signal.SIGINT)
        try:
            spy.wait(30)
        except subprocess.TimeoutExpired:
            spy.kill()
            spy.wait()


def room_scenario(bench, *, apps, sizes, loads, senders, deliveries, processes, handshakes, timeout, profile=None):
    """Measure one room of each size, on each app: ramp, then one round per offered load (deliveries/s)."""
    database = bench.sqlite()
    sessions = bench.accounts(max(sizes), database)
    rows, round_ids = [], itertools.count(1)
    for size, app in itertools.product(sizes, apps):
        server = bench.serve(app, database)
        room = next(bench.names)
        if app == "project":
            bench.rooms([room], database, members=[room] * size)
        specs = [{"index": i, "url": url_of(server, app, room), "room": 0, "slug": room,
                  "sender": i if i < senders else None, "cookie": sessions[i] if app == "project" else None}
                 for i in range(size)]
        fleet = Fleet(specs, processes, protocol=PROTOCOLS[app], handshakes=handshakes)
        try:
            spy = profile is not None and size == max(sizes)
            ramp = connect_all(fleet, server, size, profile / f"{app}-{size}-ramp.txt" if spy else None)
            for load in loads:
                messages = max(1, math.ceil(deliveries / size / senders))
                with profiling(profile / f"{app}-{size}-{load}.txt", server.process.pid) if spy \
                        else contextlib.nullcontext():
                    figures, _, _ = go(fleet, [server], round_id=next(round_ids), senders=senders,
                                       messages=messages, rate=load / size, expected={"0": senders * messages},
                                       timeout=timeout)
                rows.append({"app": app, "room_size": size, "senders": senders, "offered_per_s": load, **ramp, **figures})
                print_row(rows[-1])
        finally:
            fleet.close()
            server.stop()
    return rows


def rooms_scenario(bench, *, database_server, rooms, members, rate, seconds, servers, processes, handshakes,
                   timeout, profile=None):
    """Measure many small rooms on PostgreSQL: one sender per room, messages stored and delivered per second."""
    import psycopg

    database = bench.postgres(database_server)
    total = rooms * members
    sessions = bench.accounts(total, database)
    daphnes = [bench.serve("project", database) for _ in range(servers)]
    prefix = next(bench.names)
    bench.rooms([f"{prefix}_{n}" for n in range(rooms)], database,
                members=[f"{prefix}_{i // members}" for i in range(total)])
    # Sockets alternate between the server processes, as behind a round-robin proxy; shifting each room's
    # start by one spreads the senders (each room's first member) too.
    specs = [{"index": i, "url": url_of(daphnes[(i + i // members) % servers], "project", f"{prefix}_{i // members}"),
              "room": i // members, "slug": f"{prefix}_{i // members}",
              "sender": i // members if i % members == 0 else None, "cookie": sessions[i]}
             for i in range(total)]
    messages = max(1, round(rate * seconds / rooms))
    fleet = Fleet(specs, processes, protocol=PROTOCOLS["project"], handshakes=handshakes)
    try:
        # The first member of each room creates it, then the rest join.
        first = fleet.ramp([i for i in range(0, total, members)])
        if first.failed:
            raise RuntimeError(f"room creators could not connect: {first.errors}")
        connected, failed, ramp_seconds, errors, _, _ = fleet.ramp()
        fleet.settle()
        with profiling(profile / "rooms.txt", daphnes[0].process.pid) if profile else contextlib.nullcontext():
            figures, answers, deadline_ns = go(
                fleet, daphnes, round_id=1, senders=rooms, messages=messages, rate=rate,
                expected={str(r): messages for r in range(rooms)}, timeout=timeout, report_seen=True)
    finally:
        fleet.close()
        # A server still storing a backlog would weigh on the next measurement.
        for server in daphnes:
            server.stop()
    with psycopg.connect(database) as db:
        stored = db.execute(
            "SELECT r.slug, m.body, m.created_at FROM chat_message m JOIN chat_room r ON r.id = m.room_id "
            "WHERE r.slug LIKE %s ORDER BY m.created_at", (f"{prefix}_%",)
        ).fetchall()
    seen = {}
    for answer in answers:
        for room, counts in answer["seen"].items():
            seen.setdefault(room, collections.Counter()).update(counts)
    # A message stored just before the clients stopped listening had no time to arrive: judge the others.
    judged = [(slug, body) for slug, body, created in stored if created.timestamp() * 1e9 < deadline_ns - 2e9]
    lost = 0
    for slug, body in judged:
        match = clients.STAMP.search(body)
        lost += members - seen.get(slug.rsplit("_", 1)[1], {}).get(f"{match[2]}|{match[3]}", 0)
    span = (stored[-1][2] - stored[0][2]).total_seconds() if len(stored) > 1 else 0
    row = {"app": "project", "rooms": rooms, "members": members, "servers": servers, "offered_messages_per_s": rate,
           "offered_per_s": rate * members,
           "sockets": connected + rooms, "connect_failed": failed, "connect_errors": errors[:3],
           "ramp_seconds": round(ramp_seconds, 2), "stored": len(stored), "stored_expected": rooms * messages,
           "stored_per_s": round(len(stored) / span) if span else None, **figures,
           # Deliveries missing for messages the server stored (and had time to deliver): must be 0.
           "lost": lost, "undelivered_unstored": figures["expected"] - figures["received"] - lost}
    print_row(row)
    return [row]


def idle_scenario(bench, *, apps, sockets, room_size, processes, handshakes):
    """Ramp idle sockets onto one daphne process per app; report memory per socket and ramp rate."""
    database = bench.sqlite() if "project" in apps else None
    sessions = bench.accounts(sockets, database) if database else []
    rows = []
    for app in apps:
        server = bench.serve(app, database or bench.sqlite())
        prefix = next(bench.names)
        if app == "project":
            bench.rooms([f"{prefix}_{n}" for n in range(math.ceil(sockets / room_size))], database,
                        members=[f"{prefix}_{i // room_size}" for i in range(sockets)])
        specs = [{"index": i, "url": url_of(server, app, f"{prefix}_{i // room_size}"), "room": i // room_size,
                  "slug": f"{prefix}_{i // room_size}", "cookie": sessions[i] if app == "project" else None}
                 for i in range(sockets)]
        fleet = Fleet(specs, processes, protocol=PROTOCOLS[app], handshakes=handshakes)
        try:
            ramp = connect_all(fleet, server, sockets, idle_seconds=STEADY_IDLE_CPU_SECONDS)
            row = {"app": app, "room_size": room_size, **ramp}
        finally:
            fleet.close()
            server.stop()
        rows.append(row)
        print_row(row)
    return rows


# Messages in each room of the connect scenario: a first view carries up to 50, as a room page's does.
CONNECT_MESSAGES = 50
# Server CPU below this share of a core counts as idle between two measurements.
IDLE_CPU_SHARE = 0.05
# What the connect scenario times: v1's handshake (connect, welcome), v2's (connect, hello, subscribe, subscribed),
# and v2's subscribe alone on sockets that have their hello (a room switch, or a second room on the page).
HANDSHAKES = {"v1": 1, "v2": 2, "v2-subscribe": 2}


def connect_scenario(bench, *, sockets, rounds, room_size, processes, handshakes):
    """Time v2's page load (connect, hello, subscribe) and its subscribe alone against v1's handshake, in turns."""
    database = bench.sqlite()
    sessions = bench.accounts(sockets, database)
    prefix = next(bench.names)
    slugs = [f"{prefix}_{n}" for n in range(math.ceil(sockets / room_size))]
    bench.rooms(slugs, database)
    bench.messages(slugs, CONNECT_MESSAGES, database)
    server = bench.serve("project", database)

    def measure(handshake):
        protocol, alone = HANDSHAKES[handshake], handshake == "v2-subscribe"
        specs = [{"index": i, "url": url_of(server, "project", slugs[i // room_size], protocol),
                  "room": i // room_size, "slug": slugs[i // room_size], "cookie": sessions[i]}
                 for i in range(sockets)]
        fleet = Fleet(specs, processes, protocol=protocol, handshakes=handshakes, subscribe=not alone)
        try:
            if alone:
                opened = fleet.ramp()
                if opened.failed:
                    raise RuntimeError(f"v2 sockets could not open: {opened.errors}")
            wait_idle(server.process.pid)
            cpu_before = cpu_seconds(server.process.pid)
            ramp = fleet.subscribe() if alone else fleet.ramp()
            # The joins the handshakes announce to the rooms are part of what they cost.
            fleet.settle()
            cpu_used = cpu_seconds(server.process.pid) - cpu_before
        finally:
            fleet.close()
        ms = lambda values, fraction: None if not values else round(percentile(values, fraction), 1)  # noqa: E731
        return {
            "sockets": sockets, "room_size": room_size, "connected": ramp.connected, "connect_failed": ramp.failed,
            "connect_errors": ramp.errors[:3], "ramp_seconds": round(ramp.seconds, 2),
            "handshake_p50_ms": ms(ramp.handshake_ms, 0.5), "handshake_p99_ms": ms(ramp.handshake_ms, 0.99),
            "subscribe_p50_ms": ms(ramp.subscribe_ms, 0.5),
            "server_cpu_us_per_socket": round(cpu_used / max(ramp.connected, 1) * 1e6, 1),
        }

    try:
        # Each user's first subscribe makes them a member; the rounds time returning users, as a reload does.
        warm = measure("v2")
        if warm["connect_failed"]:
            raise RuntimeError(f"the warm-up could not connect: {warm['connect_errors']}")
        rows = []
        for number in range(1, rounds + 1):
            # Turns alternate, so that no measurement always comes first after a pause.
            order = list(HANDSHAKES) if number % 2 else list(reversed(HANDSHAKES))
            for handshake in order:
                rows.append({"app": "project", "round": number, "handshake": handshake, **measure(handshake)})
                print_row(rows[-1])
    finally:
        server.stop()
    return rows


def wait_idle(pid, timeout=60.0):
    """Wait until process `pid` uses less than IDLE_CPU_SHARE of a core over half a second, at most `timeout` s."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        before = cpu_seconds(pid)
        time.sleep(0.5)
        if cpu_seconds(pid) - before < IDLE_CPU_SHARE * 0.5:
            return


def print_row(row):
    """Print one measurement as a compact line while the run goes on."""
    skip = {"connect_errors", "send_errors"}
    print("  " + " ".join(f"{k}={v}" for k, v in row.items() if k not in skip or v), flush=True)


def machine():
    """Return what the figures depend on: cores, load, versions."""
    from importlib.metadata import PackageNotFoundError, version

    def installed(name):
        # uvicorn comes with requirements-bench.txt only; the smoke run of `make test` has no need of it.
        try:
            return version(name)
        except PackageNotFoundError:
            return None

    return {
        "cores": os.cpu_count(), "python": platform.python_version(),
        **{name: installed(name) for name in ("daphne", "uvicorn", "channels", "channels-redis", "redis", "websockets")},
        "redis_server": subprocess.run(["redis-server", "--version"], capture_output=True, text=True).stdout.strip(),
    }
