"""Time the rendering of 4,000-character messages (chat/domain/markup.py): the issue's target is a millisecond or two.

    DEBUG=1 python -m bench.markup [--rounds 200]

Prints, per kind of body, the median and 99th percentile of one render (the
process cache bypassed), beside markdown-it-py's rendering alone measured in
the same run, so that the sanitiser's share shows.
"""
import argparse
import os
import statistics
import time

import django

LIMIT = 4000


def bodies():
    """Return kinds of 4,000-character bodies: ordinary to pathological."""
    prose = ("Meeting moved to **3 pm**, see https://example.com/notes?id=42 and ask @ada or _bruno_. ") * 60
    code = "```\n" + ("for (let i = 0; i < n; i++) { total += values[i] * 2; }\n" * 80)
    lists = "> quoted line with `code` and ~~old~~ text\n- first item\n- second *item*\n1. third\n" * 60
    nested = "> - " * 40 + "*_~~`x" * 600
    brackets = "[a](" * (LIMIT // 4)
    emphasis = "**a" * (LIMIT // 3)
    return {
        "prose and links": prose, "code block": code, "quotes and lists": lists,
        "deep nesting": nested, "unclosed links": brackets, "unclosed emphasis": emphasis,
    }


def timed(function, body, rounds):
    """Return the sorted times of `rounds` calls, in microseconds."""
    times = []
    for _ in range(rounds):
        started = time.perf_counter()
        function(body)
        times.append((time.perf_counter() - started) * 1e6)
    return sorted(times)


def main():
    parser = argparse.ArgumentParser(prog="python -m bench.markup", description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=200)
    args = parser.parse_args()
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "myproject.settings")
    django.setup()
    from chat.domain import markup

    print(f"{'body (4,000 chars at most)':<28}{'median µs':>11}{'p99 µs':>10}{'parser µs':>11}{'sanitiser share':>17}")
    for name, body in bodies().items():
        body = body[:LIMIT]
        render = timed(markup.render.__wrapped__, body, args.rounds)
        parse = timed(markup._markdown.render, body, args.rounds)
        median, parsed = statistics.median(render), statistics.median(parse)
        p99 = render[min(len(render) - 1, int(len(render) * 0.99))]
        print(f"{name:<28}{median:>11.0f}{p99:>10.0f}{parsed:>11.0f}{1 - parsed / median:>16.0%}")


if __name__ == "__main__":
    main()
