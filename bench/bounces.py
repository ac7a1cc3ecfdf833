"""nudger's bounce parser over sets of real bounces: who failed, which message it reports on.

    .venv/bin/python bench/bounces.py DIR [DIR ...] [--misses]

Each DIR is one source set (a directory of messages, e.g. a published sample set of a
bounce-parsing project, exported from its repository; never copied into this project).
Every file is read as sync reads a message: the header block first, the whole message
when its kind is a report. The table counts, per set, the messages nudger calls a
bounce, those that name a failed recipient, and those that name the original's
Message-ID, out of those whose body carries one at all (a "Message-ID:" line below the
report's own headers); the misses are named with --misses.
"""

from __future__ import annotations

import argparse
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from nudger.core.parse import parse_record
from nudger.core.record import BOUNCE, DELAY

_CARRIED_ID = re.compile(rb"(?im)^[ \t>]*(?:original-)?message-id:[ \t]*<?[^\s@>]+@[^\s>]+")


@dataclass
class SetCounts:
    files: int = 0
    reports: int = 0  # bounce or delay notice
    bounces: int = 0
    named_failed: int = 0
    carries_original: int = 0  # an original Message-ID is in the body at all
    named_original: int = 0
    kinds: dict[str, int] = field(default_factory=dict)
    not_reports: list[str] = field(default_factory=list)
    no_failed: list[str] = field(default_factory=list)
    no_original: list[str] = field(default_factory=list)


def split_head(raw: bytes) -> tuple[bytes, bytes]:
    for sep in (b"\r\n\r\n", b"\n\n", b"\r\r"):
        at = raw.find(sep, 0, 262144)
        if at >= 0:
            return raw[:at + len(sep)], raw[at + len(sep):]
    return raw, b""


def messages(directory: Path) -> Iterator[Path]:
    for path in sorted(directory.rglob("*")):
        if path.is_file() and not path.name.startswith(".") and path.suffix.lower() not in (".md", ".json"):
            yield path


def read_set(directory: Path) -> SetCounts:
    counts = SetCounts()
    for path in messages(directory):
        raw = path.read_bytes()
        head, body = split_head(raw)
        record = parse_record(head, folder="bench", uid=1)
        if record.needs_report_body:
            record = parse_record(head, folder="bench", uid=1, report_bytes=raw)
        name = str(path.relative_to(directory))
        counts.files += 1
        counts.kinds[record.kind] = counts.kinds.get(record.kind, 0) + 1
        if record.kind not in (BOUNCE, DELAY):
            counts.not_reports.append(f"{name} ({record.kind})")
            continue
        counts.reports += 1
        if record.kind == BOUNCE:
            counts.bounces += 1
            if record.failed_recipients:
                counts.named_failed += 1
            else:
                counts.no_failed.append(name)
        if _CARRIED_ID.search(body):
            counts.carries_original += 1
            if record.original_ids:
                counts.named_original += 1
            else:
                counts.no_original.append(name)
    return counts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("sets", nargs="+", type=Path, help="directories, one per source set")
    parser.add_argument("--misses", action="store_true", help="name the files missed")
    args = parser.parse_args()
    results = {}
    for directory in args.sets:
        if not directory.is_dir():
            raise SystemExit(f"no directory at {directory}")
        results[directory.name] = read_set(directory)
    print(f"{'set':<22} {'files':>6} {'reports':>8} {'bounces':>8} {'failed named':>13} "
          f"{'original carried':>17} {'original named':>15}")
    total = SetCounts()
    for name, c in results.items():
        print(f"{name:<22} {c.files:>6} {c.reports:>8} {c.bounces:>8} {c.named_failed:>13} "
              f"{c.carries_original:>17} {c.named_original:>15}")
        for attr in ("files", "reports", "bounces", "named_failed", "carries_original", "named_original"):
            setattr(total, attr, getattr(total, attr) + getattr(c, attr))
    print(f"{'total':<22} {total.files:>6} {total.reports:>8} {total.bounces:>8} {total.named_failed:>13} "
          f"{total.carries_original:>17} {total.named_original:>15}")
    if args.misses:
        for name, c in results.items():
            print(f"\n== {name}: kinds {dict(sorted(c.kinds.items()))}")
            for title, files in (("not read as a report", c.not_reports),
                                 ("bounce naming no failed recipient", c.no_failed),
                                 ("original carried but not named", c.no_original)):
                print(f"-- {title} ({len(files)}): {' '.join(files)}")


if __name__ == "__main__":
    main()
