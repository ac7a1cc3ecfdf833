"""Many folders in a few round trips: the part of the IMAP edge that pipelines.

Over a distant server every answer waited for costs a round trip, so the commands
that go to every folder go out together (imap_pipeline.py): every status in one
LIST-STATUS or one write of STATUS commands; a first sync's EXAMINE and SEARCH of every
folder in one write; then the header FETCHes of all folders, sent ahead a window at a
time (``WINDOW`` messages) and read in order, one batch at a time, so memory stays flat;
where the server keeps a search's result, a small folder's FETCH goes out with its SEARCH
(imap_saved.py).
A command of another kind meanwhile first reads what was sent ahead (at most a window).
"""

from __future__ import annotations

import re
import time
from collections import deque
from collections.abc import Iterator, Mapping, Sequence
from datetime import date
from typing import TYPE_CHECKING, Any

from imapclient.imapclient import _normalise_search_criteria
from imapclient.response_parser import parse_message_list
from imapclient.util import to_bytes

from nudger.errors import GarbledAnswer
from nudger.mail.imap_pipeline import Answer, read_answers, read_listing, read_status, split_word
from nudger.mail.imap_saved import (
    esearch_uids,
    fetch_saved,
    read_in_order,
    saved_search,
    small_folders,
    usable,
)
from nudger.mail.imap_stream import WINDOW, HeaderStream, failed
from nudger.mail.imap_wire import (
    Garbled,
    Refused,
    expected_amid,
    parse_fetch,
    uid_batches,
)
from nudger.mail.mailbox import Fetched, FolderInfo, FolderStatus

if TYPE_CHECKING:
    from nudger.mail.imap import ImapMailbox

# A status a moment old is as good as one asked now (what arrives later has a higher UID
# and the next poll sees it); a daemon that listed folders and then waited asks again.
LISTED_FRESH = 2.0
# What search_ahead() may ask with a search_many, by kind: all_uids() and find_marked()'s
# searches (Drafts' UIDs, Trash's follow-ups of ours: asked after the watched folders').
AHEAD: dict[str, list[Any]] = {
    "all": ["ALL"],
    "marked": ["OR", "HEADER", "Message-ID", "<nudger.", "HEADER", "X-Nudger-For", ""],
}
AHEAD_FRESH = 5.0  # seconds: an answer asked ahead is taken only in the cycle that asked
_EXISTS = re.compile(rb"(\d+) EXISTS", re.IGNORECASE)
_LISTED = {b"LIST", b"STATUS"}  # a LIST's responses (STATUS with LIST-STATUS, RFC 5819)
_CODE = re.compile(rb"OK \[(UIDVALIDITY|UIDNEXT|HIGHESTMODSEQ) (\d+)\]", re.IGNORECASE)


def opened(answer: Answer) -> dict[bytes, int]:
    """What an EXAMINE's answer tells, as imapclient's select_folder names it."""
    got: dict[bytes, int] = {}
    for parts in answer.untagged:
        line = parts[0][0] if isinstance(parts[0], tuple) else parts[0]
        if found := _EXISTS.fullmatch(line.strip()):
            got[b"EXISTS"] = int(found.group(1))
        elif found := _CODE.match(line):
            got[found.group(1).upper()] = int(found.group(2))
    return got


def after_criteria(after: int, since: date | None) -> list[Any]:
    """UID SEARCH criteria for the messages above UID ``after`` (from the day ``since`` on)."""
    return ["UID", f"{after + 1}:*"] + (["SINCE", since] if since else [])


def only_after(uids: list[int], after: int) -> list[int]:
    """The UIDs above ``after``, sorted: "UID n:*" always matches the highest UID, even
    below n (RFC 3501 6.4.8)."""
    return sorted(u for u in uids if u > after)


class ManyFolders:
    """ImapMailbox's calls that take many folders at once."""

    def __init__(self, box: ImapMailbox):
        self.box = box
        # The folders the last status_many asked, without LIST-STATUS: their STATUS goes
        # out with the next LIST (a daemon's poll: one round trip for both).
        self.polled: list[str] = []
        # Headers read with a search_many (imap_saved.py), by folder: (the new UIDs, their
        # FETCH answer), for the fetch_headers_many that follows.
        self.read: dict[str, tuple[list[int], dict[int, dict[bytes, Any]] | Exception]] = {}
        self.pending: Searches | None = None  # search_many's answers still to read

    def status_items(self) -> list[str]:
        return ["UIDVALIDITY", "UIDNEXT", "MESSAGES"] + (["HIGHESTMODSEQ"] if self.box.condstore else [])

    def enabling(self) -> list[bytes]:
        """ENABLE CONDSTORE when it is still to be sent, for the write of the next command
        (it must come before any EXAMINE, RFC 7162)."""
        first = [b"ENABLE CONDSTORE"] if self.box._enable else []
        self.box._enable = False
        return first

    def list_with_status(self, with_status: bool) -> tuple[list[FolderInfo], dict[str, FolderStatus]]:
        """Every folder, and with LIST-STATUS (RFC 5819) the status of each, in one
        command (without it, the STATUS of the folders polled last, in the same write);
        ENABLE CONDSTORE in the same write when it is still to be sent."""
        # Flags as a plain LIST gives them: extended LIST returns what it is asked for
        # (RFC 5258, 6154; LIST-STATUS implies LIST-EXTENDED), so \Sent asks SPECIAL-USE.
        options = (["SPECIAL-USE"] if "SPECIAL-USE" in self.box.capabilities else []) + ["CHILDREN"]
        command = (f'LIST "" "*" RETURN ({" ".join(options)} '
                   f'STATUS ({" ".join(self.status_items())}))') if with_status else 'LIST "" "*"'
        first = self.enabling()
        asked = self.polled if not with_status and self.box._told is None else []
        commands = first + [command.encode()] + [self.status_command(f) for f in asked]
        self.box._listing = True  # (a LIST told meanwhile is a folder of the listing)
        try:
            answers = self._pipelined(commands)
        finally:
            self.box._listing = False
        for answer in answers[: len(first)]:
            if not answer.ok:
                raise Refused(answer.text)
        folders = self.read_listing(answers[len(first)])  # (a STATUS refused: status() tells why)
        statuses = [r for a in answers[len(first):] for r in a.responses(b"STATUS")]
        return folders, self._statuses(statuses)

    def read_listing(self, listing: Answer) -> list[FolderInfo]:
        """The folders a LIST answered (extended or not)."""
        if not listing.ok:
            raise Refused(listing.text)
        odd = next((w for w, _ in map(split_word, listing.untagged) if not expected_amid(w, _LISTED)), None)
        if odd is not None:  # (then the folders it lost are no setting to fix: asked again)
            raise Garbled(f"a line starting {odd[:20]!r} amid the folder list")
        client = self.box.client
        listed = read_listing(listing.responses(b"LIST"), client.folder_encode, client._proc_folder_list)
        return self.box._folder_infos(listed)

    def _statuses(self, responses: list[list[Any]]) -> dict[str, FolderStatus]:
        found = {}
        for parts in responses:
            name, items = read_status(parts, self.box.client.folder_encode)
            found[name] = self.box._folder_status(f"checking {name!r}", items, b"MESSAGES")
        return found

    def status_many(self, folders: Sequence[str]) -> dict[str, FolderStatus]:
        """The status of each of ``folders`` in one round trip, whatever their number:
        the LIST-STATUS that listed them when nothing came between (else a new one), or
        every STATUS in one write. A folder the server did not answer for is left out:
        status() asks it alone and tells why."""
        wanted = list(dict.fromkeys(folders))
        got, self.box._listed = self.box._listed, None
        if time.monotonic() - self.box._listed_at > LISTED_FRESH:
            got = None
        if got is None and self.box.list_status:
            got = self.box._call("checking folders", self.list_with_status, True, piped=True)[1]
        got = dict(got or {})
        missing = [f for f in wanted if f not in got]
        if not self.box.list_status:
            self.polled = wanted
        if missing and not self.box.list_status:
            got.update(self.box._call("checking folders", self._pipelined_status, missing,
                                      piped=True, enables=True))
        return {f: got[f] for f in wanted if f in got}

    def _pipelined_status(self, folders: list[str]) -> dict[str, FolderStatus]:
        imap = self.box.client._imap
        first = self.enabling()
        commands = first + [self.status_command(f) for f in folders]
        answers = read_answers(imap.readline, imap.read, self.box._send(commands), self.box._piped_heard())
        if first and not answers[0].ok:
            raise Refused(answers[0].text)
        # By name: a server may run STATUS commands side by side and answer out of turn
        # (RFC 3501 5.5). A NO leaves its folder out, for status() to report.
        found = self._statuses([r for a in answers for r in a.responses(b"STATUS")])
        return {f: found[f] for f in folders if f in found}

    def search_many(self, asks: Sequence[tuple[str, int]], since: date | None) -> Searches:
        """For each (folder, UID), what examine() and then search_new() answer, every
        folder's EXAMINE and UID SEARCH in one write; a small folder's header FETCH in it
        too where the server keeps a search's result (fetch_headers_many takes that
        answer). A folder the server refused is left out (examine() on it tells why).
        The answers are read as they are asked for (Searches)."""
        if self.pending is not None:
            self.pending.drain()
        self.read = {}
        # By the statuses the cycle just asked or was told (NOTIFY): a quiet folder's old
        # status would call it small after thousands of messages were moved into it.
        small = (small_folders(asks, self.box._answered, WINDOW)
                 if usable(self.box.capabilities) else set())
        commands: list[bytes] = []
        for folder, after in asks:
            criteria = self.criteria(after_criteria(after, since))
            commands.append(self.examine_command(folder))
            if folder in small:
                commands += [saved_search(criteria), fetch_saved(self.box._header_items())]
            else:
                commands.append(b"UID SEARCH " + criteria)
        ahead, self.box._ahead_asks = self.box._ahead_asks, []
        for folder, kind in ahead:
            commands += [self.examine_command(folder), self.search_command(AHEAD[kind])]
        tags = self.box._call("opening folders", self.box._send, commands, piped=True)
        groups: deque[tuple[str, int, list[bytes]]] = deque()
        at = 0
        for folder, after in asks:
            size = 3 if folder in small else 2
            groups.append((folder, after, tags[at : at + size]))
            at += size
        self.pending = Searches(self, groups, ahead, tags[at:])
        self.box._stream = self.pending
        return self.pending

    def searched_one(self, folder: str, after: int,
                     answers: list[Answer | list[Any] | Exception]) -> tuple[FolderStatus, list[int]] | None:
        """One folder's part of search_many: its EXAMINE, SEARCH (and FETCH $) answers."""
        examined, searched = answers[0], answers[1]
        assert isinstance(examined, Answer) and isinstance(searched, Answer)
        self.opened(folder, examined)
        if not (examined.ok and searched.ok):
            return None  # (a failed EXAMINE closes the folder before: the SEARCH fails too)
        status = self.box._folder_status(f"opening {folder!r}", opened(examined), b"EXISTS")
        saved = len(answers) == 3
        found = self._saved(folder, searched, status) if saved else self._found(folder, searched)
        uids = only_after(found, after)
        self.box._answered[folder] = status
        if saved and not isinstance(answers[2], Answer):
            self._keep(folder, uids, answers[2])
        return status, uids

    def _saved(self, folder: str, searched: Answer, status: FolderStatus) -> list[int]:
        # A range costs the server a few bytes whatever its length: at most what the
        # folder holds (and a window more, for mail come meanwhile) is taken apart.
        try:
            uids = esearch_uids(searched, (status.messages or 0) + WINDOW)
        except Garbled as exc:
            raise self.box._garbled(f"searching {folder!r}", str(exc)) from exc
        if uids is None:
            raise self.box._garbled(f"searching {folder!r}", "no ESEARCH response")
        return uids

    def _keep(self, folder: str, uids: list[int], fetched: list[Any] | Exception) -> None:
        """Keep a FETCH $ answer for fetch_headers_many (what it met, refused or garbled,
        raised there, in its turn, as the header stream would), unless more than a window
        is kept already (a folder grown since its status: the stream reads it)."""
        if isinstance(fetched, Refused):
            return  # (FETCH $ refused, as a proxy may: the stream asks by UID, as without it)
        if isinstance(fetched, Exception):
            self.read[folder] = (uids, fetched)
            return
        if len(uids) + sum(len(u) for u, _ in self.read.values()) > WINDOW:
            return
        try:
            self.read[folder] = (uids, parse_fetch(fetched))
        except Garbled as exc:
            self.read[folder] = (uids, exc)

    def _took_ahead(self, ahead: list[tuple[str, str]], answers: list[Answer]) -> None:
        """Keep the answers to the searches asked ahead (imap.py search_ahead); one
        refused or garbled is left for its own call to ask again and report."""
        at = time.monotonic()
        for (folder, kind), examined, searched in zip(ahead, answers[::2], answers[1::2], strict=True):
            self.opened(folder, examined)
            if not (examined.ok and searched.ok):
                continue
            try:
                self.box._ahead[(folder, kind)] = (self._found(folder, searched), at)
            except GarbledAnswer:
                continue

    def status_command(self, folder: str) -> bytes:
        return (b"STATUS " + to_bytes(self.box.client._normalise_folder(folder))
                + f" ({' '.join(self.status_items())})".encode())

    def examine_command(self, folder: str) -> bytes:
        return b"EXAMINE " + to_bytes(self.box.client._normalise_folder(folder))

    def search_command(self, criteria: list[Any]) -> bytes:
        return b"UID SEARCH " + self.criteria(criteria)

    def criteria(self, criteria: list[Any]) -> bytes:
        return b" ".join(_normalise_search_criteria(criteria, None))

    def opened(self, folder: str, examined: Answer) -> None:
        """Note what an EXAMINE's answer leaves open (a refused one: none). An open
        folder is told of otherwise than by NOTIFY's STATUS: asked again before a wait."""
        self.box._selected = folder if examined.ok else None
        if self.box._told is not None:
            self.box._told.forget(folder)

    def open_and_search(self, folder: str, criteria: list[Any]) -> list[int]:
        """EXAMINE and UID SEARCH in one write: one round trip."""
        examined, searched = self._pipelined([self.examine_command(folder),
                                              self.search_command(criteria)])
        self.opened(folder, examined)
        if not (examined.ok and searched.ok):
            raise Refused(examined.text if not examined.ok else searched.text)
        return self._found(folder, searched)

    def close_folder(self, command: bytes) -> None:
        """UNSELECT or CLOSE, whichever folder is open (imaplib may not know it is)."""
        [answer] = self._pipelined([command])
        if not answer.ok:
            raise Refused(answer.text)

    def _found(self, folder: str, searched: Answer) -> list[int]:
        """The UIDs of a SEARCH answer; none at all (not even an empty one) is garbled."""
        lines = [p for r in searched.responses(b"SEARCH") for p in r]
        if not lines:
            raise self.box._garbled(f"searching {folder!r}", "no SEARCH response")
        try:
            return list(parse_message_list([line.strip() for line in lines]))
        except (ValueError, TypeError) as exc:
            raise self.box._garbled(f"searching {folder!r}", "an unreadable SEARCH response") from exc

    def _pipelined(self, commands: list[bytes]) -> list[Answer]:
        imap = self.box.client._imap
        return read_answers(imap.readline, imap.read, self.box._send(commands), self.box._piped_heard())

    def fetched_with_search(self, folder: str, uids: Sequence[int]) -> bool:
        """Whether fetch_headers_many of this folder alone waits for no answer: its
        headers came with its search (or none are wanted)."""
        if not uids:
            return True
        if self.pending is not None and folder not in self.pending.passed:
            return False
        return folder in self.read and self.read[folder][0] == sorted(uids)

    def fetch_headers_many(self, wants: Sequence[tuple[str, Sequence[int]]]
                           ) -> Iterator[tuple[str, list[Fetched]]]:
        """fetch_headers() of each (folder, UIDs), in order, a batch at a time, the
        FETCHes of all folders sent ahead (a window at a time), but those search_many
        read already. A folder the server refuses raises FolderUnavailable when its turn
        comes; the rest is not read."""
        pending = self.pending
        if pending is not None and any(f not in pending.passed for f, _ in wants):
            pending.drain()
        kept = {f: self.read.pop(f)[1] for f, uids in wants
                if f in self.read and self.read[f][0] == sorted(uids)}
        units = [(f, b) for f, uids in wants if f not in kept for b in uid_batches(uids)]
        stream = HeaderStream(self.box, units)
        if units:
            if self.pending is not None:
                self.pending.drain()  # (their answers come before the stream's)
            self.box._stream = stream
        try:
            batches = iter(stream)
            for folder, uids in wants:
                if folder in kept:
                    got = kept.pop(folder)
                    if isinstance(got, Exception):
                        raise failed(self.box, folder, got) from got
                    yield folder, self._headers(folder, ",".join(uid_batches(uids)), got)
                    continue
                for _ in uid_batches(uids):
                    _, batch, got = next(batches)
                    yield folder, self._headers(folder, batch, got)
        finally:
            if units:
                stream.drain()
                self.box._stream = None

    def _headers(self, folder: str, batch: str, got: dict[int, dict[bytes, Any]]) -> list[Fetched]:
        return list(self.box._headers_of(folder, self.box._checked(
            folder, f"reading headers in {folder!r}", batch, got, b"BODY[HEADER")))


class Searches(Mapping[str, tuple[FolderStatus, list[int]]]):
    """search_many's answers, read as they are asked for, folder by folder in the order
    sent: the sync stores a folder's headers while the server still answers for the
    next ones. Any other command first reads the rest (drain), as it does the header
    stream's (what is held stays bounded: at most a window of headers)."""

    def __init__(self, many: ManyFolders, groups: deque[tuple[str, int, list[bytes]]],
                 ahead: list[tuple[str, str]], ahead_tags: list[bytes]):
        self.many, self.groups, self.ahead, self.ahead_tags = many, groups, ahead, ahead_tags
        self.found: dict[str, tuple[FolderStatus, list[int]]] = {}
        self.passed: set[str] = set()  # the folders whose answers were read

    def __getitem__(self, folder: str) -> tuple[FolderStatus, list[int]]:
        while folder not in self.passed and self.groups:
            self._next()
        return self.found[folder]

    def __iter__(self) -> Iterator[str]:
        self.drain()
        return iter(self.found)

    def __len__(self) -> int:
        self.drain()
        return len(self.found)

    def drain(self) -> None:
        while self.groups:
            self._next()
        self._end()

    def _next(self) -> None:
        folder, after, tags = self.groups.popleft()
        box = self.many.box
        try:
            answers = box._translated("opening folders", read_in_order, box.client._imap, tags,
                                      {2} if len(tags) == 3 else set(), box._piped_heard())
        except Exception:
            self._lost()
            raise
        self.passed.add(folder)
        if (found := self.many.searched_one(folder, after, answers)) is not None:
            self.found[folder] = found
        if not self.groups:
            self._end()

    def _end(self) -> None:
        """The searches asked ahead (Drafts', Trash's), after the watched folders'."""
        tags, self.ahead_tags = self.ahead_tags, []
        box = self.many.box
        if tags:
            imap = box.client._imap
            try:
                answers = box._translated("opening folders", read_answers, imap.readline, imap.read,
                                          tags, box._piped_heard())
            except Exception:
                self._lost()
                raise
            self.many._took_ahead(self.ahead, answers)
        self._done()

    def _lost(self) -> None:
        """The connection is lost or out of step: nothing more is read from it."""
        self.groups.clear()
        self.ahead_tags = []
        self._done()

    def _done(self) -> None:
        if self.many.pending is self:
            self.many.pending = None
        if self.many.box._stream is self:
            self.many.box._stream = None
