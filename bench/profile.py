"""Summarize a py-spy raw profile (collapsed stacks): where the samples go, by function.

    python -m bench.profile bench/results/profile/project-1000-20000.txt [--top 30] [--match chat/]
"""
import argparse
import collections
import re

# "function (path/file.py:123)" -> "function (file.py)": lines of one function add up.
FRAME = re.compile(r"^(?P<name>.*?) \((?P<path>[^:()]*)(?::\d+)?\)$")


def short(frame):
    match = FRAME.match(frame.strip())
    if not match:
        return frame.strip()
    path = match["path"]
    for marker in ("site-packages/", "/work/main/", "python3.11/"):
        path = path.split(marker, 1)[-1]
    return f"{match['name']} ({path})"


def summarize(path, top, match):
    """Return (total samples, [(inclusive, self, function)]) of the most inclusive functions."""
    inclusive, own, total = collections.Counter(), collections.Counter(), 0
    for line in open(path):
        stack, _, count = line.rstrip("\n").rpartition(" ")
        if not stack:
            continue
        count = int(count)
        total += count
        frames = [short(f) for f in stack.split(";")]
        for name in set(frames):
            inclusive[name] += count
        own[frames[-1]] += count
    rows = [(n, own[f], f) for f, n in inclusive.most_common() if match in f]
    return total, rows[:top]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("path")
    parser.add_argument("--top", type=int, default=40)
    parser.add_argument("--match", default="")
    args = parser.parse_args()
    total, rows = summarize(args.path, args.top, args.match)
    print(f"{total} samples; inclusive %, self %, function")
    for inclusive, own, name in rows:
        print(f"{100 * inclusive / total:6.1f} {100 * own / total:6.1f}  {name}")


if __name__ == "__main__":
    main()
