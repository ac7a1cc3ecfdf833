"""A longer fuzz run than the test suite's: mutated corpus messages and random bytes
through the parsers and the thread builder. Prints inputs tried and failures.

    .venv/bin/python bench/fuzz.py [--inputs 20000] [--corpus ../shared/corpus]
"""

from __future__ import annotations

import argparse
import random
import sys
import time
import traceback
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from support.fuzzing import CORPUS_FILES, check_messages, mutate  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--inputs", type=int, default=20000)
    parser.add_argument("--corpus", default=str(ROOT.parent / "shared" / "corpus"))
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    files = CORPUS_FILES(Path(args.corpus))
    if not files:
        raise SystemExit(f"no .eml files under {args.corpus}")
    rng = random.Random(args.seed)
    failures = verdicts = 0
    started = time.perf_counter()
    for _ in range(args.inputs):
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
    print(f"fuzz: {args.inputs} inputs ({args.inputs} thread sets, {verdicts} verdicts) in "
          f"{time.perf_counter() - started:.0f}s; failures: {failures}")
    raise SystemExit(1 if failures else 0)


if __name__ == "__main__":
    main()
