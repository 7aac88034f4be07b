"""Measure room fan-out of the chat against the Channels tutorial consumer and a bare ASGI app.

    python -m bench                 # all scenarios, figures and chart into bench/results/
    python -m bench room --sizes 100,1000 --loads 20000
    python -m bench rooms           # 100 rooms of 10 on PostgreSQL
    python -m bench idle --sockets 10000
    python -m bench connect --connect-sockets 200   # v2's page load and subscribe against v1's handshake
    python -m bench shards          # redis-server's ceiling and the layer's cost, on one Redis and on two
    python -m bench smoke --out /tmp/smoke   # a few clients; exits 1 on a lost or duplicate message
"""
import argparse
import json
import os
import resource
import shutil
import sys
import tempfile
import time
from pathlib import Path

from bench import report, run, shards

RESULTS = Path(__file__).resolve().parent / "results"


def integers(text):
    return [int(part) for part in text.split(",")]


def names(text):
    chosen = text.split(",")
    unknown = set(chosen) - set(run.APPS)
    if unknown:
        raise argparse.ArgumentTypeError(f"unknown apps {sorted(unknown)}; choose from {sorted(run.APPS)}")
    return chosen


def parse(argv):
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    parser.add_argument("scenario", nargs="?", default="all", choices=["all", "room", "rooms", "idle", "connect", "shards", "smoke"])
    parser.add_argument("--out", type=Path, default=RESULTS, help="where the JSON files and the chart go")
    parser.add_argument("--clients", type=int, default=3, help="client processes (one receives ~17k frames/s)")
    parser.add_argument("--handshakes", type=int, default=4,
                        help="handshakes in flight per client process; more time out under the project's join storm")
    parser.add_argument("--server", choices=["daphne", "uvicorn"], default="daphne",
                        help="the ASGI server of every app (production runs daphne; uvicorn for comparison)")
    parser.add_argument("--timeout", type=float, default=120, help="seconds to wait for deliveries after sending")
    room = parser.add_argument_group("room: one room, three apps")
    room.add_argument("--apps", type=names, default=list(run.APPS))
    room.add_argument("--sizes", type=integers, default=[100, 500, 1000])
    room.add_argument("--loads", type=integers, default=[20000, 40000], help="offered deliveries/s, one round each")
    room.add_argument("--senders", type=int, default=10)
    room.add_argument("--deliveries", type=int, default=40_000, help="deliveries per round")
    parser.add_argument("--profile", action="store_true", help="record the daphne processes with py-spy")
    rooms = parser.add_argument_group("rooms: many small rooms on PostgreSQL")
    rooms.add_argument("--database-url", default=os.environ.get("BENCH_DATABASE_URL",
                                                                "postgres://postgres@127.0.0.1:5432/postgres"))
    rooms.add_argument("--rooms", type=int, default=100)
    rooms.add_argument("--members", type=int, default=10)
    rooms.add_argument("--rate", type=float, default=1200, help="messages/s offered, all rooms together")
    rooms.add_argument("--seconds", type=float, default=10)
    rooms.add_argument("--servers", type=int, default=2, help="daphne processes, as deploy/ runs")
    idle = parser.add_argument_group("idle: many idle sockets on one daphne")
    idle.add_argument("--sockets", type=int, default=10_000)
    idle.add_argument("--room-size", type=int, default=10)
    idle.add_argument("--idle-apps", type=names, default=["project", "tutorial", "ceiling"])
    connect = parser.add_argument_group("connect: v2's page load and its subscribe alone against v1's handshake")
    connect.add_argument("--connect-sockets", type=int, default=200)
    connect.add_argument("--connect-rounds", type=int, default=2, help="each round times v1 and v2 once, in turn")
    connect.add_argument("--connect-room-size", type=int, default=10)
    sharding = parser.add_argument_group("shards: what the channel layer costs each Redis, one shard against two")
    sharding.add_argument("--shard-rooms", type=int, default=200)
    sharding.add_argument("--shard-seconds", type=float, default=5)
    sharding.add_argument("--shard-publishes", type=int, default=300_000, help="redis-benchmark's PUBLISHes per run")
    args = parser.parse_args(argv)
    if args.scenario == "smoke":
        args.sizes, args.loads, args.senders, args.deliveries, args.clients = [4], [200], 2, 200, 1
        args.timeout, args.connect_sockets = 30, 4
    return args


def save(args, name, rows, started, load):
    """Write one scenario's rows with the run's settings, machine and load averages to <out>/<name>.json."""
    args.out.mkdir(parents=True, exist_ok=True)
    settings = {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()}
    document = {"scenario": name, "started": time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(started)),
                "machine": run.machine(), "loadavg_at_start": load, "loadavg_at_end": os.getloadavg(),
                "settings": settings, "rows": rows}
    (args.out / f"{name}.json").write_text(json.dumps(document, indent=1) + "\n")


def main(argv=None):
    args = parse(argv)
    # Both the client processes and the daphne processes inherit this: 10,000 sockets need more than 1,024 files.
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    failures = []
    # Kept when the run fails, for the servers' logs.
    workdir = tempfile.mkdtemp(prefix="bench-")
    with run.Bench(workdir, args.server) as bench:
        print(f"servers' logs in {workdir}; {os.cpu_count()} cores, load average {os.getloadavg()}", flush=True)
        if args.scenario in ("all", "room", "smoke"):
            started, load = time.time(), os.getloadavg()
            print(f"== room: one room, {' vs '.join(args.apps)}", flush=True)
            rows = run.room_scenario(bench, apps=args.apps, sizes=args.sizes, loads=args.loads,
                                     senders=args.senders, deliveries=args.deliveries, processes=args.clients,
                                     handshakes=args.handshakes, timeout=args.timeout, profile=args.out / "profile" if args.profile else None)
            save(args, "room", rows, started, load)
            print(report.table(rows, report.ROOM_COLUMNS))
            print(report.table(report.ratios(rows), report.RATIO_COLUMNS))
            print("\n".join(report.client_bound(rows)) or "client-bound: none (no client process near a whole core)")
            failures += [r for r in rows if r["lost"] or r["duplicates"] or r["connect_failed"]]
            if args.scenario != "smoke":
                report.chart(rows, args.out / "room.png")
        if args.scenario in ("all", "rooms"):
            started, load = time.time(), os.getloadavg()
            print("== rooms: many small rooms on PostgreSQL", flush=True)
            rows = run.rooms_scenario(bench, database_server=args.database_url, rooms=args.rooms,
                                      members=args.members, rate=args.rate, seconds=args.seconds,
                                      servers=args.servers, processes=args.clients, handshakes=args.handshakes,
                                      timeout=args.timeout, profile=args.out / "profile" if args.profile else None)
            save(args, "rooms", rows, started, load)
            print(report.table(rows, report.ROOMS_COLUMNS))
            failures += [r for r in rows if r["lost"] or r["duplicates"]]
        if args.scenario in ("all", "idle"):
            started, load = time.time(), os.getloadavg()
            print("== idle: sockets held by one daphne process", flush=True)
            rows = run.idle_scenario(bench, apps=args.idle_apps, sockets=args.sockets, room_size=args.room_size,
                                     processes=max(args.clients, 4), handshakes=args.handshakes)
            save(args, "idle", rows, started, load)
            print(report.table(rows, report.IDLE_COLUMNS))
            failures += [r for r in rows if r["connect_failed"] or r["sockets_closed"]]
        if args.scenario in ("all", "connect", "smoke"):
            started, load = time.time(), os.getloadavg()
            print("== connect: v2 connect + hello + subscribe, and subscribe alone, against v1 connect + welcome",
                  flush=True)
            rows = run.connect_scenario(bench, sockets=args.connect_sockets, rounds=args.connect_rounds,
                                        room_size=args.connect_room_size, processes=args.clients,
                                        handshakes=args.handshakes)
            save(args, "connect", rows, started, load)
            print(report.table(rows, report.CONNECT_COLUMNS))
            print(report.table(report.connect_ratios(rows), report.CONNECT_RATIO_COLUMNS))
            failures += [r for r in rows if r["connect_failed"]]
    if args.scenario in ("all", "shards"):
        started, load = time.time(), os.getloadavg()
        print("== shards: redis-server's ceiling, then the channel layer, on one Redis and on two", flush=True)
        ceilings, rows = shards.shards_scenario(rooms=args.shard_rooms, processes=args.servers,
                                                publishers=args.clients, seconds=args.shard_seconds,
                                                publishes=args.shard_publishes)
        save(args, "shards", ceilings + rows, started, load)
        print(report.table(ceilings, shards.CEILING_COLUMNS))
        print(report.table(rows, shards.COLUMNS))
        print(shards.ratio(rows))
        failures += [r for r in ceilings + rows if r["lost"]]
    if failures:
        print(f"FAILED: {len(failures)} measurement(s) lost, duplicated or refused something; logs in {workdir}",
              file=sys.stderr)
        return 1
    shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
