"""Header FETCHes of many folders, sent ahead a window at a time and read in order
(imap_many.py's fetch_headers_many): over a distant server the next folder's answer is
on its way while this one's is parsed; at most a window is read ahead."""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from nudger.errors import FolderUnavailable
from nudger.mail.imap_errors import translate
from nudger.mail.imap_pipeline import read_answers
from nudger.mail.imap_wire import Garbled, Refused, expand_set, parse_fetch, read_fetch_answer

if TYPE_CHECKING:
    from nudger.mail.imap import ImapMailbox

WINDOW = 5000  # header FETCHes sent ahead, in messages: what reading ahead may hold


def failed(box: ImapMailbox, folder: str, exc: Exception) -> Exception:
    """What reading a folder's headers raises for what its FETCH met: a NO or BAD is
    that folder's failure (FolderUnavailable), anything else the connection's."""
    doing = f"reading headers in {folder!r}"
    if isinstance(exc, Refused):
        return FolderUnavailable(folder, f"{box.where}: the server refused {doing}: {exc}",
                                 detail=str(exc))
    return translate(exc, box.account, doing)


class HeaderStream:
    """Header FETCHes of many folders: sent ahead a window at a time, each folder's
    preceded by its EXAMINE, the answers read in order."""

    def __init__(self, box: ImapMailbox, units: list[tuple[str, str]]):
        self.box, self.units = box, units
        self.sent = 0  # units sent so far
        self.flight: deque[tuple[int, bytes | None, bytes]] = deque()  # (unit, EXAMINE tag, FETCH tag)
        self.ready: dict[int, dict[int, dict[bytes, Any]] | Exception] = {}  # read ahead
        self.early: dict[int, dict[int, dict[bytes, Any]]] = {}  # answered before their turn
        self.selected: str | None = None  # the folder open once all sent is done

    def __iter__(self) -> Iterator[tuple[str, str, dict[int, dict[bytes, Any]]]]:
        for i, (folder, batch) in enumerate(self.units):
            if i not in self.ready and not self.flight:
                self._send_ahead()
            while i not in self.ready:
                self._read_one()
            got = self.ready.pop(i)
            if isinstance(got, Exception):
                raise failed(self.box, folder, got) from got
            if not self.flight and self.sent < len(self.units):
                self._send_ahead()
            yield folder, batch, got

    def _send_ahead(self) -> None:
        box = self.box
        box._opening = None  # (each folder's EXAMINE goes with its FETCHes)
        self.selected = box._selected
        commands: list[bytes] = []
        kinds: list[tuple[int, bool]] = []  # (unit, is EXAMINE)
        count = 0
        items = " ".join(box._header_items())
        while self.sent < len(self.units) and (not kinds or count < WINDOW):
            folder, batch = self.units[self.sent]
            if folder != self.selected:
                commands.append(box.many.examine_command(folder))
                kinds.append((self.sent, True))
                self.selected = folder
            commands.append(f"UID FETCH {batch} ({items})".encode("ascii"))
            kinds.append((self.sent, False))
            count += batch.count(",") + 1 + sum(int(b) - int(a) for a, _, b in
                                                 (p.partition(":") for p in batch.split(",")) if b)
            self.sent += 1
        try:
            tags = box._send(commands)  # (sent past _call: an IDLE left going ends in it)
        except Exception as exc:  # noqa: BLE001 - translated
            raise translate(exc, box.account, "reading headers") from exc
        examine: bytes | None = None
        for (unit, is_examine), tag in zip(kinds, tags, strict=True):
            if is_examine:
                examine = tag
            else:
                self.flight.append((unit, examine, tag))
                examine = None

    def _read_one(self) -> None:
        unit, examine, tag = self.flight.popleft()
        imap, folder = self.box.client._imap, self.units[unit][0]
        try:
            if examine is not None:
                examined = read_answers(imap.readline, imap.read, [examine], self.box._piped_heard())[0]
                self.box.many.opened(folder, examined)
            try:
                got = parse_fetch(read_fetch_answer(imap.readline, imap.read, tag, self.box._fetch_heard()))
            except (Refused, Garbled) as exc:  # read to its end: the next answers stay in step
                self.ready[unit] = exc
                return
        except Exception as exc:  # noqa: BLE001 - the connection is lost: so is what follows
            self.ready[unit] = exc
            while self.flight:
                self.ready[self.flight.popleft()[0]] = exc
            return
        # A server may run FETCHes of one folder side by side (RFC 3501 5.5; Dovecot does)
        # and answer a later one's messages before an earlier one ends: each message goes
        # to the FETCH that asked for it. (Others are news: left, as a FETCH alone would.)
        mine = self.early.pop(unit, {})
        asked = []
        for later, examines, _ in self.flight:  # (UIDs are a folder's: only up to its end)
            if examines is not None:
                break
            asked.append((later, expand_set(self.units[later][1])))
        theirs = set().union(*(got.keys() & uids for _, uids in asked))
        for uid, data in got.items():  # (one look per message; a later FETCH's: a few)
            if uid not in theirs:
                mine[uid] = data
            else:
                owner = next(u for u, uids in asked if uid in uids)
                self.early.setdefault(owner, {})[uid] = data
        self.ready[unit] = mine

    def drain(self) -> None:
        """Read every answer sent ahead (another command is about to be sent)."""
        while self.flight:
            self._read_one()
