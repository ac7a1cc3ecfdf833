"""Counts in words: "1 draft", "2 drafts" (what people read, never "draft(s)")."""

from __future__ import annotations


def counted(n: int, word: str, plural: str | None = None) -> str:
    return f"{n} {word if n == 1 else plural or word + 's'}"
