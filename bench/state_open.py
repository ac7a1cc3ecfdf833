"""What opening a large state costs: ``run --once`` from a timer opens it at every poll.

Builds a state of ``--messages`` header records (rows shaped like real ones), closes it
cleanly, then times opening and closing it for a run (``State.open``) and for ``status``
(``State.open_for_reading``), median of ``--runs``, warm page cache.

    .venv/bin/python bench/state_open.py [--messages 300000] [--runs 7]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from nudger.cycle.state import State
from nudger.cycle.statefile import FILE_NAME


def build(state_dir: Path, messages: int) -> None:
    state = State.open(state_dir)
    record = {"from": "Ann Example <ann@client.example>", "to": [["Mia", "mia@example.com"]],
              "subject": "Re: the quarterly roadmap and the budget for the launch",
              "refs": [f"<ref{i}@client.example>" for i in range(3)], "size": 4211}
    with state.transaction():
        for start in range(0, messages, 10000):
            rows = [("mia", "INBOX" if i % 3 else "Sent", i, f"<m{i}@client.example>",
                     "ann@client.example", f"2026-{1 + i % 12:02d}-01T10:00:00+00:00",
                     f"topic {i % 5000}", json.dumps({**record, "uid": i}))
                    for i in range(start, min(messages, start + 10000))]
            state.conn.executemany("INSERT INTO messages VALUES (?,?,?,?,?,?,?,?)", rows)
    state.close()


def timed(opener: Callable[[Path], State], state_dir: Path, runs: int) -> float:
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        state = opener(state_dir)
        state.close()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--messages", type=int, default=300_000)
    parser.add_argument("--runs", type=int, default=7)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="nudger-bench-") as tmp:
        state_dir = Path(tmp)
        build(state_dir, args.messages)
        size = (state_dir / FILE_NAME).stat().st_size / 1e6
        run = timed(State.open, state_dir, args.runs)
        status = timed(State.open_for_reading, state_dir, args.runs)
    print(f"state of {args.messages:,} records, {size:.0f} MB: open+close for a run "
          f"{run * 1000:.1f} ms, for status {status * 1000:.1f} ms (median of {args.runs})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
