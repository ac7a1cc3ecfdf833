"""A folder's few new headers read in the write that opens it: SEARCHRES (RFC 5182)
and ESEARCH (RFC 4731).

A first sync (or a cycle with news) asks each folder's new UIDs and then their headers:
two round trips, the second waiting for the first's answer. Where the server keeps a
search's result as ``$``, a folder's EXAMINE, ``UID SEARCH RETURN (SAVE ALL) ...`` and
``UID FETCH $ (headers)`` go out together, in the write that opens every folder. Only
for folders whose status the server told (STATUS or LIST-STATUS) and whose search can
name few messages (few in all, or few UIDs new), and up to a window in all: what is
read so is held until the sync takes it, so memory stays bounded as the header
stream's does. A failed search empties ``$`` (RFC 5182 2.1): its FETCH then answers
nothing, or BAD; either is read.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from nudger.mail.imap_pipeline import Answer, read_answers, split_word
from nudger.mail.imap_wire import TOLD, Garbled, Refused, expected_amid
from nudger.mail.mailbox import FolderStatus

_NEWS = {b"EXISTS", b"EXPUNGE", b"RECENT"}  # of the open folder, amid any answer
SMALL = 500  # messages: a folder at most this big is read in the write that opens it
# "* ESEARCH (TAG "a5") UID ALL 1:3,7" (no ALL when nothing matched).
_ESEARCH = re.compile(rb'\(TAG "([^"]*)"\)\s+UID(?:\s+ALL\s+([0-9:,]+))?\s*', re.IGNORECASE)


def usable(capabilities: Iterable[str]) -> bool:
    """Whether the server keeps a search's result for the next command (and answers
    the search with ESEARCH, which tells the UIDs besides)."""
    return {"SEARCHRES", "ESEARCH"} <= set(capabilities)


def small_folders(asks: Sequence[tuple[str, int]], known: Mapping[str, FolderStatus],
                  window: int) -> set[str]:
    """Those of ``asks`` (folder, UID searched above) whose search can name at most SMALL
    messages, by their last status (its MESSAGES, and the UIDs between the one searched
    above and UIDNEXT), in order, until they may name ``window`` in all."""
    chosen: set[str] = set()
    total = 0
    for folder, after in asks:
        status = known.get(folder)
        if status is None:
            continue
        # (+1: "UID n:*" also names the highest UID, even below n: RFC 3501 6.4.8)
        most = min(status.messages if status.messages is not None else status.uidnext,
                   max(status.uidnext - after, 1))
        if most > SMALL or total + most > window:
            continue
        chosen.add(folder)
        total += most
    return chosen


def saved_search(criteria: bytes) -> bytes:
    return b"UID SEARCH RETURN (SAVE ALL) " + criteria


def fetch_saved(items: Sequence[str]) -> bytes:
    return f"UID FETCH $ ({' '.join(items)})".encode("ascii")


def esearch_uids(searched: Answer, most: int) -> list[int] | None:
    """The UIDs an ESEARCH answer names for its own command (None: no such answer);
    Garbled when its ranges name more than ``most``."""
    for rest in searched.responses(b"ESEARCH"):
        line = rest[0][0] if isinstance(rest[0], tuple) else rest[0]
        found = _ESEARCH.fullmatch(line)
        if found is None or found.group(1) != searched.tag:
            continue
        ranges = []
        for part in (found.group(2) or b"").split(b","):
            if part:
                first, _, last = part.partition(b":")
                ranges.append(sorted((int(first), int(last or first))))
        if sum(high - low + 1 for low, high in ranges) > most:
            raise Garbled(f"an ESEARCH naming more messages than the folder holds ({most})")
        return sorted({uid for low, high in ranges for uid in range(low, high + 1)})
    return None


def read_in_order(imap: Any, tags: Sequence[bytes], fetches: set[int],
                  heard: Callable[..., Any] | None) -> list[Answer | list[Any] | Exception]:
    """The answers to commands sent together, in order: an Answer for each but the
    FETCHes (positions ``fetches``), whose answer is in read_fetch_answer's shape, or the
    Refused or Garbled it would raise. Read as one group (read_answers): an answer for a
    later group's command, which a server may end first, fails the read as garbled."""
    answers = read_answers(imap.readline, imap.read, tags, heard)
    _by_tag(answers)
    got: list[Answer | list[Any] | Exception] = list(answers)
    for i in fetches:
        try:
            got[i] = fetch_data(answers[i], told=heard is not None)
        except (Refused, Garbled) as exc:
            got[i] = exc
    return got


def _by_tag(answers: list[Answer]) -> None:
    """Each ESEARCH response to the command it names: a server running a search beside
    the command before it (as Dovecot does after a FETCH in the same folder) may send it
    while that one is not done, where read_answers files it."""
    tags = {a.tag: a for a in answers}
    for answer in answers:
        for parts in [p for p in answer.untagged if _first(p)[:8].upper() == b"ESEARCH "]:
            found = _ESEARCH.match(_first(parts)[8:])
            owner = tags.get(found.group(1)) if found else None
            if owner is not None and owner is not answer:
                answer.untagged.remove(parts)
                owner.untagged.append(parts)


def _first(parts: list[Any]) -> bytes:
    return bytes(parts[0][0] if isinstance(parts[0], tuple) else parts[0])


def fetch_data(answer: Answer, told: bool = False) -> list[Any]:
    """A UID FETCH's answer as read_fetch_answer gives it (each FETCH response's lines
    and literals, "n (...)"); Refused for a NO or BAD, Garbled for a response no FETCH
    brings (news of the folder and status responses are passed over, as there, and with
    ``told``, NOTIFY on, a STATUS or LIST it told: already heard, as there)."""
    if not answer.ok:
        raise Refused(answer.text)
    data: list[Any] = []
    for parts in answer.untagged:
        word, rest = split_word(parts)
        first = rest[0]
        line = first[0] if isinstance(first, tuple) else first
        kind = line.split(b" ", 1)[0].upper()
        if word.isdigit() and kind == b"FETCH":
            head = word + b" " + line[len(b"FETCH "):]
            data.append((head, first[1]) if isinstance(first, tuple) else head)
            data.extend(rest[1:])
            continue
        if not (kind in _NEWS if word.isdigit() else expected_amid(word, TOLD if told else set())):
            raise Garbled(f"unexpected answer to a FETCH: {(word + b' ' + line)[:80]!r}")
    return data
