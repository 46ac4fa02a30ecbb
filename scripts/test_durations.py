"""Write ``tests/durations.json``: each test file's seconds in a CI run, which conftest.py reads to start
the longest files first (so that the workers end together).

Run the suite with ``--durations=0`` and give this the log::

    ./scripts/test.sh --durations=0 --durations-min=0.05 > ci.log 2>&1
    python scripts/test_durations.py ci.log

Only the first tier's report is read (the browser tier runs alone, in its own order). Seconds are the
sum of each file's setups, calls and teardowns, rounded; a file the log does not name keeps no entry
and is placed by its tier's estimate (conftest.py). Times from a loaded machine are fine: only their
order matters.
"""

from __future__ import annotations

import argparse
import collections
import json
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
_LINE = re.compile(r"^([\d.]+)s (?:call|setup|teardown)\s+([^:\s]+)")


def file_seconds(log: str) -> dict[str, float]:
    """The seconds of each file in the first ``slowest durations`` report of a pytest ``log``.

    Examples
    --------
    >>> log = "== slowest durations ==\\n2.50s call     tests/a.py::t\\n0.50s setup    tests/a.py::t\\n"
    >>> file_seconds(log)
    {'tests/a.py': 3.0}
    """
    seconds: collections.Counter[str] = collections.Counter()
    reports = 0
    for line in log.splitlines():
        if "slowest" in line and "durations" in line:
            reports += 1
            continue
        match = _LINE.match(line) if reports == 1 else None
        if match:
            seconds[match.group(2)] += float(match.group(1))
    return {path: round(s, 1) for path, s in sorted(seconds.items())}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("log", type=Path, help="a pytest log with a --durations=0 report")
    parser.add_argument("--out", type=Path, default=ROOT / "tests" / "durations.json")
    args = parser.parse_args(argv)
    seconds = file_seconds(args.log.read_text(errors="replace"))
    if not seconds:
        sys.exit(f"{args.log}: no 'slowest durations' report; run pytest with --durations=0")
    args.out.write_text(json.dumps(seconds, indent=0, sort_keys=True) + "\n")
    print(f"{args.out}: {len(seconds)} files, {sum(seconds.values()) / 60:.1f} min in all")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
