"""The confusion table of nudger's classifier over the shared corpus (category -> kind).

    .venv/bin/python bench/corpus_table.py [--corpus ../shared/corpus]
"""

from __future__ import annotations

import argparse
import sys
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from support.corpus import classify_corpus  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--corpus", default=str(ROOT.parent / "shared" / "corpus"))
    corpus = Path(parser.parse_args().corpus)
    if not corpus.is_dir():
        raise SystemExit(f"no corpus at {corpus}")
    table = Counter(classify_corpus(corpus).values())
    print(f"{'category':<26} {'kind':<16} count")
    for (category, kind), n in sorted(table.items()):
        print(f"{category:<26} {kind:<16} {n}")
    print(f"{'':<26} {'total':<16} {sum(table.values())}")


if __name__ == "__main__":
    main()
