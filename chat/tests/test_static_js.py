"""The page's pure JavaScript modules, run in node."""
import json
import subprocess

from harness.servers import PROJECT_DIR, require_binary

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


def test_the_change_cursor_advances_over_consecutive_changes_and_remembers_a_hole():
    steps = run_module("feed.js", """
        const cursor = new module.ChangeCursor();
        const seen = [];
        const note = (hole) => seen.push([cursor.cseq, hole, cursor.hole]);
        cursor.reset(5);
        note(cursor.applied(6));    // the next change: no hole
        note(cursor.applied(8));    // 7 was dropped
        note(cursor.applied(9));
        note(cursor.applied(4));    // already in the view
        note(cursor.caughtUp(7));   // a changes page up to 7 fills the hole, and 8 and 9 were applied already
        note(cursor.caughtUp(3));   // an older page moves nothing back
        cursor.reset(null);
        note(cursor.applied(2));
        console.log(JSON.stringify(seen));
    """)
    assert steps == [
        [6, False, False], [6, True, True], [6, True, True], [6, True, True], [9, False, False], [9, False, False],
        [0, True, True],
    ]


def test_the_tab_title_shows_the_unread_count_only_when_there_is_one():
    titles = run_module("rooms.js", """
        console.log(JSON.stringify([0, 1, 12].map((count) => module.titleWithCount("lobby · Chat", count))));
    """)
    assert titles == ["lobby · Chat", "(1) lobby · Chat", "(12) lobby · Chat"]


def test_the_composer_completes_the_mention_or_shortcode_the_caret_ends():
    found = run_module("completion.js", """
        const texts = ["hi @ad", "@bo", "mail ada@exa", "at 10:30", "nice :th", "a :t", "@", ":thumbs_up", "x @a.b"];
        console.log(JSON.stringify(texts.map((text) => module.tokenBefore(text))));
    """)
    assert found == [
        {"kind": "mention", "query": "ad", "start": 3}, {"kind": "mention", "query": "bo", "start": 0},
        None, None, {"kind": "emoji", "query": "th", "start": 5}, None, None,
        {"kind": "emoji", "query": "thumbs_up", "start": 0}, {"kind": "mention", "query": "a.b", "start": 2},
    ]


def test_emoji_whose_words_start_with_the_query_come_first():
    matched = run_module("completion.js", """
        const choices = [["😀", "grinning face"], ["👍", "thumbs up thumbsup +1"], ["🤔", "thinking face"],
                         ["🙄", "face with rolling eyes"], ["🧵", "thread"]];
        console.log(JSON.stringify([module.matchEmoji(choices, "th"), module.matchEmoji(choices, "thumbs_up"),
                                    module.matchEmoji(choices, "face", 2), module.matchEmoji(choices, "zz")]));
    """)
    # "with" contains "th" without starting with it: offered, after the words that start with it.
    assert matched == [["👍", "🤔", "🧵", "🙄"], ["👍"], ["😀", "🤔"], []]


def test_the_quick_switcher_matches_prefixes_first_then_anywhere_in_any_case():
    result = run_module("matching.js", """
        const rooms = [
            {room: "dev-ops", title: "Dev Ops"}, {room: "general", title: "general"},
            {room: "dm-1-2", title: "devon"}, {room: "random", title: "Random devs"},
        ];
        const names = (typed, limit) => module.matchRooms(rooms, typed, limit).map((room) => room.title);
        console.log(JSON.stringify([names("DEV"), names(""), names("zzz"), names("dev", 1), names("  gen ")]));
    """)
    assert result == [
        ["Dev Ops", "devon", "Random devs"],
        ["Dev Ops", "general", "devon", "Random devs"],
        [],
        ["Dev Ops"],
        ["general"],
    ]


def test_file_sizes_read_as_people_write_them():
    sizes = run_module("files.js", """
        console.log(JSON.stringify([0, 512, 1024, 3481, 10 * 1024, 1536 * 1024, 12 * 1024 * 1024].map(module.formatSize)));
    """)
    assert sizes == ["0 B", "512 B", "1.0 KB", "3.4 KB", "10 KB", "1.5 MB", "12 MB"]


def test_preview_cards_link_only_to_the_web_and_show_only_this_sites_images():
    checks = run_module("previews.js", """
        const links = ["https://a.test/", "HTTP://b.test", "javascript:alert(1)", "data:text/html,x", "//evil.test/"];
        const images = ["/chat/r/previews/1/image", "//evil.test/x.png", "/\\\\evil.test/x", "https://evil.test/x.png",
                        null, 7];
        console.log(JSON.stringify({links: links.map(module.isWebLink), images: images.map(module.isLocalImage)}));
    """)
    assert checks == {"links": [True, True, False, False, False], "images": [True, False, False, False, False, False]}
