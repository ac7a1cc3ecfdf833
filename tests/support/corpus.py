"""How the shared corpus is classified: used by the tests and by bench/corpus_table.py."""

from __future__ import annotations

from pathlib import Path

from nudger.core.parse import parse_record


def classify_corpus(corpus: Path) -> dict[str, tuple[str, str]]:
    """file -> (its corpus category, the kind nudger gives it), reading it as sync does:
    the header block first, the whole message only when a report needs it."""
    result = {}
    for path in sorted(corpus.rglob("*.eml")):
        raw = path.read_bytes()
        head = raw.split(b"\r\n\r\n", 1)[0] if b"\r\n\r\n" in raw[:65536] else raw.split(b"\n\n", 1)[0]
        record = parse_record(head, folder="corpus", uid=1)
        if record.needs_report_body:
            record = parse_record(head, folder="corpus", uid=1, report_bytes=raw)
        result[str(path.relative_to(corpus))] = (path.relative_to(corpus).parts[0], record.kind)
    return result
