"""Shared by the fuzz test and bench/fuzz.py: mutations, and the properties checked."""

from __future__ import annotations

import random
from datetime import UTC, datetime
from pathlib import Path

from nudger.mailfacts import parse_record
from nudger.threads import build_threads, judge

_TOKENS = [b"\r\n", b"\n", b"<", b">", b"@", b":", b"=?utf-8?q?", b"?=", b"\xff", b"\x00",
           b"References: <", b"In-Reply-To: ", b"Content-Type: multipart/report; boundary=",
           b"--", b"Date: ", b" " * 200, b"A" * 3000, b"\t", b"\xe4\xf6", b"Message-ID: "]


def CORPUS_FILES(corpus: Path) -> list[Path]:  # noqa: N802 - reads as a constant at call sites
    return sorted(corpus.rglob("*.eml"))


def mutate(raw: bytes, seed: int) -> bytes:
    """Cut, splice, flip and inject: what broken MTAs and truncated downloads produce."""
    rng = random.Random(seed)
    data = bytearray(raw[: rng.randrange(1, len(raw) + 1)] if rng.random() < 0.3 else raw)
    for _ in range(rng.randrange(1, 8)):
        if not data:
            data += rng.choice(_TOKENS)
            continue
        at = rng.randrange(len(data))
        choice = rng.random()
        if choice < 0.3:
            data[at : at] = rng.choice(_TOKENS)
        elif choice < 0.5:
            data[at] = rng.randrange(256)
        elif choice < 0.7:
            end = min(len(data), at + rng.randrange(1, 200))
            del data[at:end]
        else:
            end = min(len(data), at + rng.randrange(1, 400))
            data[at:at] = data[at:end]
    return bytes(data)


def check_messages(blobs: list[bytes], me: str = "me@example.com") -> int:
    """Parse each blob as a header block and as a whole report; thread them; judge each
    thread. Raises AssertionError on a broken property; returns verdicts checked."""
    records = []
    for i, blob in enumerate(blobs):
        record = parse_record(blob, folder="INBOX" if i % 2 else "Sent", uid=i + 1,
                              internaldate=datetime(2026, 11, 1, tzinfo=UTC), report_bytes=blob)
        assert record.date.tzinfo is not None
        records.append(record)
    checked = 0
    for thread in build_threads(records, sent="Sent"):
        verdict = judge(thread, lambda a: a in (me,) or bool(records) and a == records[0].sender.email)
        assert verdict.reason, verdict
        checked += 1
    return checked
