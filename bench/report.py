"""Turn benchmark rows into tables, ratios and a chart."""


def table(rows, columns):
    """Return a Markdown table of `rows` with `columns` (key, heading) pairs."""
    lines = ["| " + " | ".join(h for _, h in columns) + " |", "|" + " --- |" * len(columns)]
    for row in rows:
        lines.append("| " + " | ".join(_cell(row.get(k)) for k, _ in columns) + " |")
    return "\n".join(lines)


def _cell(value):
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:,.1f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


ROOM_COLUMNS = [("room_size", "room"), ("offered_per_s", "offered/s"), ("app", "app"),
                ("deliveries_per_s", "deliveries/s"), ("p50_ms", "p50 ms"), ("p90_ms", "p90 ms"),
                ("p99_ms", "p99 ms"), ("max_ms", "max ms"), ("lost", "lost"), ("duplicates", "dup"),
                ("server_cpu_us_per_delivery", "server CPU µs/delivery"), ("rss_kib_per_socket", "KiB/socket"),
                ("ramp_seconds", "ramp s"), ("client_cpu_percent", "client CPU %")]
ROOMS_COLUMNS = [("rooms", "rooms"), ("members", "members"), ("servers", "daphnes"),
                 ("offered_messages_per_s", "messages/s offered"), ("offered_per_s", "deliveries/s offered"),
                 ("stored", "stored"), ("stored_per_s", "stored/s"), ("deliveries_per_s", "deliveries/s"),
                 ("p50_ms", "p50 ms"), ("p99_ms", "p99 ms"), ("max_ms", "max ms"), ("lost", "lost"),
                 ("undelivered_unstored", "not stored by the deadline"), ("duplicates", "dup")]
IDLE_COLUMNS = [("app", "app"), ("sockets", "sockets"), ("connect_failed", "failed"), ("ramp_seconds", "ramp s"),
                ("ramp_per_s", "sockets/s"), ("rss_before_mib", "RSS before MiB"), ("rss_after_mib", "RSS after MiB"),
                ("rss_kib_per_socket", "KiB/socket"), ("idle_cpu_percent", "idle CPU %"),
                ("sockets_closed", "closed by the server")]


PEERS = ("tutorial", "ceiling", "node-ws", "socketio")
_RATIOS = [("deliveries_per_s", "deliveries"), ("server_cpu_us_per_delivery", "cpu"), ("ramp_seconds", "ramp"),
           ("rss_kib_per_socket", "memory")]


def ratios(rows):
    """Return, for each peer measured beside the project, the project's figures over the peer's.

    The deliveries/s ratios stop at the offered load and at what the clients on
    the same cores can take (see client_bound); a CPU, ramp or memory ratio
    below 1 means the project spends less than the peer.
    """
    by_key = {(r["room_size"], r["offered_per_s"], r["app"]): r for r in rows}
    out = []
    for (size, load, app), row in by_key.items():
        if app != "project":
            continue
        for peer in PEERS:
            ref = by_key.get((size, load, peer))
            if ref:
                out.append({"room_size": size, "offered_per_s": load, "peer": peer,
                            **{name: round(row[key] / ref[key], 2) if ref.get(key) and row.get(key) is not None
                               else None for key, name in _RATIOS}})
    return out


RATIO_COLUMNS = [("room_size", "room"), ("offered_per_s", "offered/s"), ("peer", "peer"),
                 ("deliveries", "deliveries/s project/peer"), ("cpu", "CPU per delivery project/peer"),
                 ("ramp", "connect (ramp) time project/peer"), ("memory", "KiB/socket project/peer")]


def client_bound(rows):
    """Return a line for each round whose busiest client process was near a whole core: its figure is the clients'."""
    return [f"client-bound: room {r['room_size']:,} at {r['offered_per_s']:,}/s on {r['app']}: the load generator "
            f"(clients at {r['client_cpu_percent']} % of a core in all) was the ceiling, not the server"
            for r in rows if r.get("client_bound")]


def chart(rows, path):
    """Draw latency percentiles and deliveries/s against room size, one line per app and load."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, (latency, rate) = plt.subplots(1, 2, figsize=(12, 4.5))
    series = sorted({(r["app"], r["offered_per_s"]) for r in rows})
    colours = {"project": "tab:blue", "tutorial": "tab:red", "ceiling": "tab:green", "node-ws": "tab:purple",
               "socketio": "tab:orange"}
    styles = {}
    for app, load in series:
        points = sorted((r for r in rows if (r["app"], r["offered_per_s"]) == (app, load)),
                        key=lambda r: r["room_size"])
        sizes = [r["room_size"] for r in points]
        style = styles.setdefault(load, ["-", "--", ":"][len(styles) % 3])
        label = f"{app} @ {load:,}/s offered"
        for key, marker in (("p50_ms", "o"), ("p99_ms", "^")):
            latency.plot(sizes, [r[key] for r in points], style, marker=marker, color=colours.get(app),
                         label=f"{label} {key[:3]}")
        rate.plot(sizes, [r["deliveries_per_s"] for r in points], style, marker="o", color=colours.get(app),
                  label=label)
    latency.set(xlabel="room size (sockets)", ylabel="latency, ms (log)", yscale="log",
                title="Send-to-receive latency, p50 (o) and p99 (^)")
    rate.set(xlabel="room size (sockets)", ylabel="deliveries/s", title="Deliveries per second")
    for axes in (latency, rate):
        axes.grid(True, alpha=0.3)
    latency.legend(fontsize=6)
    rate.legend(fontsize=7)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


CONNECT_COLUMNS = [("round", "round"), ("handshake", "timed"), ("sockets", "sockets"), ("room_size", "room"),
                   ("connect_failed", "failed"), ("ramp_seconds", "ramp s"), ("handshake_p50_ms", "p50 ms"),
                   ("handshake_p99_ms", "p99 ms"), ("subscribe_p50_ms", "of which subscribe p50 ms"),
                   ("server_cpu_us_per_socket", "server CPU µs/socket")]
_CONNECT_RATIOS = [("ramp_seconds", "time_vs_v1"), ("handshake_p50_ms", "p50_vs_v1"), ("handshake_p99_ms", "p99_vs_v1"),
                   ("server_cpu_us_per_socket", "cpu_vs_v1")]


def connect_ratios(rows):
    """Return ramp time, p50, p99 and server CPU per socket of v2 and its subscribe over v1's, per round and overall."""
    by_round = {}
    for row in rows:
        by_round.setdefault(row["round"], {})[row["handshake"]] = row
    out = []
    for number, timed in sorted(by_round.items()):
        for handshake in ("v2", "v2-subscribe"):
            if {"v1", handshake} <= timed.keys():
                out.append({"round": number, "handshake": handshake, **_ratios(timed[handshake], timed["v1"])})
    if len(by_round) > 1:
        # Sums rather than a mean of ratios: a round slowed by the machine then weighs as much for each.
        for handshake in ("v2", "v2-subscribe"):
            both = [timed for timed in by_round.values() if {"v1", handshake} <= timed.keys()]
            total = {name: {k: sum(timed[name][k] or 0 for timed in both) for k, _ in _CONNECT_RATIOS}
                     for name in ("v1", handshake)}
            if both:
                out.append({"round": "all", "handshake": handshake, **_ratios(total[handshake], total["v1"])})
    return out


def _ratios(measured, v1):
    return {name: round(measured[key] / v1[key], 2) if v1.get(key) and measured.get(key) is not None else None
            for key, name in _CONNECT_RATIOS}


CONNECT_RATIO_COLUMNS = [("round", "round"), ("handshake", "timed"), ("time_vs_v1", "ramp time /v1"),
                         ("p50_vs_v1", "p50 /v1"), ("p99_vs_v1", "p99 /v1"),
                         ("cpu_vs_v1", "server CPU per socket /v1")]
