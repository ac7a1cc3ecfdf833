"""A longer fuzz run than the test suite's, in three parts, each with its figures:

1. mutated corpus messages and random bytes through the parsers and the thread builder
   (inputs tried, failures);
2. hostile header sets and mutated corpus messages composed into drafts (drafts written,
   refused, injected headers, escaped exceptions: the last two must be 0);
3. a References header of 5k, 40k and 200k msg-ids, and other huge header shapes, through
   parse_record (seconds).

    .venv/bin/python bench/fuzz.py [--inputs 20000] [--drafts 5000] [--corpus ../shared/corpus]
"""

from __future__ import annotations

import argparse
import random
import sys
import time
import traceback
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from nudger.core.parse import parse_record  # noqa: E402
from support.fuzzing import CORPUS_FILES, check_draft, check_messages, hostile_message, mutate  # noqa: E402


def parsers(files: list[Path], rng: random.Random, inputs: int) -> int:
    failures = verdicts = 0
    started = time.perf_counter()
    for _ in range(inputs):
        if rng.random() < 0.2:
            blobs = [rng.randbytes(rng.randrange(0, 600)) for _ in range(rng.randrange(1, 5))]
        else:
            blobs = [mutate(rng.choice(files).read_bytes(), rng.randrange(2**32))
                     for _ in range(rng.randrange(1, 5))]
        try:
            verdicts += check_messages(blobs)
        except Exception:  # noqa: BLE001 - counted and shown, the run goes on
            failures += 1
            if failures <= 5:
                traceback.print_exc()
    print(f"fuzz: {inputs} inputs ({inputs} thread sets, {verdicts} verdicts) in "
          f"{time.perf_counter() - started:.0f}s; failures: {failures}")
    return failures


def drafts(files: list[Path], rng: random.Random, cases: int) -> int:
    outcomes: Counter[str] = Counter()
    started = time.perf_counter()
    for i in range(cases):
        raw = hostile_message(rng) if i % 4 else mutate(rng.choice(files).read_bytes(), rng.randrange(2**32))
        try:
            outcomes[check_draft(raw)] += 1
        except AssertionError as exc:
            outcomes["injected" if str(exc).startswith("injected") else "broken"] += 1
            shown = outcomes["injected"] + outcomes["broken"] <= 5
        except Exception:  # noqa: BLE001 - counted and shown, the run goes on
            outcomes["escaped"] += 1
            shown = outcomes["escaped"] <= 5
        else:
            shown = False
        if shown:
            print(raw[:400])
            traceback.print_exc()
    print(f"drafts: {cases} header sets in {time.perf_counter() - started:.0f}s; written "
          f"{outcomes['written']}, refused {outcomes['refused']}; injected headers: "
          f"{outcomes['injected']}, other broken properties: {outcomes['broken']}, escaped "
          f"exceptions: {outcomes['escaped']}")
    return outcomes["injected"] + outcomes["broken"] + outcomes["escaped"]


def references() -> None:
    for count in (5_000, 40_000, 200_000):
        ids = "\r\n ".join(f"<id{i}.{i * 7919}@host{i % 50}.example>" for i in range(count))
        raw = f"Message-ID: <m@x>\r\nFrom: a@b.c\r\nReferences: {ids}\r\n\r\n".encode()
        started = time.perf_counter()
        record = parse_record(raw, folder="f", uid=1)
        print(f"references: {count} ids ({len(raw) / 1e6:.1f} MB) parsed in "
              f"{time.perf_counter() - started:.2f}s; {len(record.references)} kept")
    # Other shapes that once took quadratic time (31 s, 6 s and 5 s before 0ee273d).
    for what, header in (("a folded Subject with 80k spaces", b"Subject: x\r\n y" + b" " * 80_000 + b"z"),
                         ("a To with 80k spaces", b"To: a" + b" " * 80_000 + b"b"),
                         ("a Subject of 80k encoded words", b"Subject: " + b"=?utf-8?q?a?= " * 80_000)):
        started = time.perf_counter()
        parse_record(header + b"\r\n\r\n", folder="f", uid=1)
        print(f"headers: {what} parsed in {time.perf_counter() - started:.2f}s")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--inputs", type=int, default=20000)
    parser.add_argument("--drafts", type=int, default=5000)
    parser.add_argument("--corpus", default=str(ROOT.parent / "shared" / "corpus"))
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    files = CORPUS_FILES(Path(args.corpus))
    if not files:
        raise SystemExit(f"no .eml files under {args.corpus}")
    rng = random.Random(args.seed)
    failures = parsers(files, rng, args.inputs) + drafts(files, rng, args.drafts)
    references()
    raise SystemExit(1 if failures else 0)


if __name__ == "__main__":
    main()
