"""Run the benchmark (python -m bench smoke) on a few clients, so that it never rots; no speed is asserted."""
import importlib.util
import json
import subprocess
import sys

import pytest

from harness.servers import PROJECT_DIR, project_env, require, require_binary

pytestmark = [pytest.mark.timeout(240)]


def test_the_benchmark_delivers_every_message_on_every_app_and_peer_and_times_both_handshakes(tmp_path):
    require_binary("redis-server")
    require_binary("node")
    # The outside peers come with `make test` (requirements-bench.txt, npm ci); a bare venv has neither.
    for module in ("socketio", "uvicorn"):
        require(importlib.util.find_spec(module) is not None, f"{module} is not installed (make bench installs it).")
    require((PROJECT_DIR / "bench/peers/node/node_modules/ws").is_dir(),
            "the Node peer's ws is not installed (npm ci --prefix bench/peers/node).")
    result = subprocess.run(
        [sys.executable, "-m", "bench", "smoke", "--out", str(tmp_path)], cwd=PROJECT_DIR, env=project_env(),
        capture_output=True, text=True, timeout=220,
    )
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    rows = json.loads((tmp_path / "room.json").read_text())["rows"]
    assert {row["app"] for row in rows} == {"project", "tutorial", "ceiling", "node-ws", "socketio"}
    for row in rows:
        assert row["connect_failed"] == 0 and row["sockets"] == row["room_size"], row
        assert row["received"] == row["expected"] > 0 and row["lost"] == 0 and row["duplicates"] == 0, row
        assert row["client_cpu_percent"] >= 0 and row["client_bound"] is False, row
    # One ratio row per peer, and the load generator's verdict.
    assert "| 4 | 200 | node-ws |" in result.stdout and "| 4 | 200 | socketio |" in result.stdout
    assert "client-bound: none" in result.stdout
    # The connect scenario, on 4 sockets: v1's handshake, v2's and v2's subscribe alone, each round, none refused.
    rows = json.loads((tmp_path / "connect.json").read_text())["rows"]
    timed = ["v1", "v2", "v2-subscribe"]
    assert sorted((row["round"], row["handshake"]) for row in rows) == [(r, h) for r in (1, 2) for h in timed]
    for row in rows:
        assert row["connected"] == row["sockets"] == 4 and row["connect_failed"] == 0, row
        assert row["handshake_p50_ms"] > 0 and row["server_cpu_us_per_socket"] >= 0, row
    assert all(row["subscribe_p50_ms"] is not None for row in rows if row["handshake"] == "v2")


def test_the_shards_scenario_counts_every_publish_and_delivery_on_one_redis_and_on_two(tmp_path):
    for binary in ("redis-server", "redis-benchmark", "redis-cli"):
        require_binary(binary)
    result = subprocess.run(
        [sys.executable, "-m", "bench", "shards", "--out", str(tmp_path), "--shard-seconds", "1", "--shard-rooms", "20",
         "--shard-publishes", "20000", "--servers", "2", "--clients", "1"],
        cwd=PROJECT_DIR, env=project_env(), capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    rows = json.loads((tmp_path / "shards.json").read_text())["rows"]
    ceilings = [row for row in rows if "publishes_per_s" in row]
    layers = [row for row in rows if "messages_per_s" in row]
    assert [row["shards"] for row in ceilings] == [row["shards"] for row in layers] == [1, 2]
    for row in ceilings:
        assert row["publishes_per_s"] > 0 and row["lost"] == 0 and row["redis_us_per_publish"] > 0, row
    for row in layers:
        assert row["messages"] > 0 and row["lost"] == 0 and row["deliveries_per_s"] > 0, row
    # Both Redis servers took part in the two-shard runs.
    assert all(len(row["redis_cpu_percent"].split(", ")) == 2 for row in rows if row["shards"] == 2)
    assert "two shards / one" in result.stdout
