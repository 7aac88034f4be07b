"""The page's pure JavaScript modules, run in node."""
import json
import subprocess

from chat.tests.servers import PROJECT_DIR, require_binary

STATIC = PROJECT_DIR / "static" / "chat"


def run_module(name, code):
    """Import static/chat/<name> in node as `module`, run `code`, and return what it printed as JSON."""
    node = require_binary("node")
    url = (STATIC / name).as_uri()
    script = f"const module = await import({json.dumps(url)});\n{code}"
    result = subprocess.run(
        [node, "--input-type=module", "-e", script], capture_output=True, text=True, timeout=30, check=True,
    )
    return json.loads(result.stdout)


def test_retry_delays_spread_over_the_whole_window_and_never_pass_the_cap():
    draws = run_module("backoff.js", """
        const delays = Array.from({length: 1000}, () => module.retryDelay(3));
        const big = [10, 40, 2000].map((attempt) => module.retryDelay(attempt, () => 0.999999));
        console.log(JSON.stringify({delays, big, max: module.MAX_RETRY_MS, first: module.FIRST_RETRY_MS}));
    """)
    cap = draws["first"] * 2**3
    assert cap == 4000
    delays = draws["delays"]
    assert all(0 <= delay <= cap for delay in delays)
    # Full jitter: the draws cover the window, not a band near its top.
    assert sum(delay < cap / 4 for delay in delays) > 100
    assert sum(delay > cap * 3 / 4 for delay in delays) > 100
    assert all(draws["max"] * 0.99 < delay <= draws["max"] for delay in draws["big"])


def test_retry_delay_is_the_random_share_of_the_exponential_window():
    result = run_module("backoff.js", """
        const at = (attempt, r) => module.retryDelay(attempt, () => r);
        console.log(JSON.stringify([at(0, 0), at(0, 0.5), at(1, 1), at(4, 0.25), at(-1, 1)]));
    """)
    assert result == [0, 250, 1000, 2000, 500]


def test_a_dead_connection_is_given_up_about_two_pings_after_its_last_frame():
    result = run_module("backoff.js", """
        console.log(JSON.stringify([module.HEARTBEAT_MS, module.pongTimeout(module.HEARTBEAT_MS)]));
    """)
    heartbeat, timeout = result
    # The deadline runs from the first unanswered ping, itself at most one interval after the last frame.
    assert heartbeat < timeout < 2 * heartbeat
    assert heartbeat + timeout <= 60_000
