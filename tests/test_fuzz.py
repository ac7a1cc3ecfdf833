"""Hostile input never escapes as an exception: random and mutated real messages through
the header parser, the report parser and the thread builder; every verdict has a reason.
Hostile headers never reach a draft: its header names are exactly the ones nudger writes.

A bigger run of the same properties: ``.venv/bin/python bench/fuzz.py``.
"""

from __future__ import annotations

import random
from collections import Counter
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from support.fuzzing import CORPUS_FILES, check_draft, check_messages, hostile_message, mutate

pytestmark = pytest.mark.filterwarnings("ignore")


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.binary(max_size=400), min_size=1, max_size=6))
def test_random_bytes(blobs: list[bytes]) -> None:
    check_messages(blobs)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_mutated_corpus_messages(corpus: Path, data: st.DataObject) -> None:
    files = CORPUS_FILES(corpus)
    picks = data.draw(st.lists(st.sampled_from(files), min_size=1, max_size=5))
    seed = data.draw(st.integers(0, 2**32 - 1))
    check_messages([mutate(p.read_bytes(), seed + i) for i, p in enumerate(picks)])


def test_hostile_headers_never_become_headers_of_a_draft() -> None:
    # Fixed seed: the same 300 header sets every run (bench/fuzz.py --drafts runs thousands).
    rng = random.Random(17)
    outcomes = Counter(check_draft(hostile_message(rng)) for _ in range(300))
    assert outcomes["written"] >= 200, outcomes  # (refused: no writable recipient or parent id)


def test_mutated_corpus_messages_compose_clean_drafts(corpus: Path) -> None:
    files = CORPUS_FILES(corpus)
    rng = random.Random(17)
    outcomes = Counter(check_draft(mutate(rng.choice(files).read_bytes(), rng.randrange(2**32)))
                       for _ in range(150))
    assert outcomes["written"] >= 75, outcomes
