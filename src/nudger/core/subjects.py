"""A subject line as a thread topic: reply and forward prefixes off, spaces folded.

Pure text in, text out; shared by the record (its topic), the classifier (an automatic
reply's subject behind a "Re:") and the plan (the subject a follow-up carries).
"""

from __future__ import annotations

import functools
import re

_REPLY_PREFIX = re.compile(
    r"^\s*(?:(?:re|aw|sv|vs|antw|odp|res|r|rif|ynt|atb|vá|回复|回覆|答复|返信|fw|fwd|wg|tr|rv|i|enc|doorst)"
    r"\s*(?:\[\d+\]|\(\d+\))?\s*[:：]|\[[^\]]{1,40}\])\s*",
    re.IGNORECASE,
)
_ONLY_REPLY_PREFIX = re.compile(
    r"^\s*(?:re|aw|sv|vs|antw|odp|res|r|rif|ynt|atb|vá|回复|回覆|答复|返信)\s*(?:\[\d+\]|\(\d+\))?\s*[:：]\s*",
    re.IGNORECASE,
)
_SPACES = re.compile(r"\s+")


def _strip_prefixes(pattern: re.Pattern[str], subject: str) -> str:
    text = subject or ""
    while (found := pattern.match(text)) and found.end():  # "Re: AW: Re:": one per round
        text = text[found.end():]
    return _SPACES.sub(" ", text).strip() if "  " in text or not text.isprintable() else text.strip()


# (Cached: a thread's messages share a subject, and each message's is normalised more
# than once: its topic, the classifier's test, subject threading.)
@functools.lru_cache(maxsize=4096)
def normalise_subject(subject: str) -> str:
    """The thread topic: reply/forward prefixes and list tags removed, spaces folded."""
    return _strip_prefixes(_REPLY_PREFIX, subject)


@functools.lru_cache(maxsize=4096)
def strip_reply_prefixes(subject: str) -> str:
    """Subject without its leading Re:/AW:/SV:... (Fwd: and list tags stay)."""
    return _strip_prefixes(_ONLY_REPLY_PREFIX, subject)
