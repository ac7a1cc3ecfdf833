"""The IMAP edge: one connection, imapclient behind the ``Mailbox`` interface.

Every folder is opened read-only (EXAMINE) and read with BODY.PEEK, so no flag of
the user's changes; the only writes are APPEND to Drafts, and removing or marking
nudger's own draft (imap_drafts.py). Library and socket errors become our own classes
(imap_errors.py); a NO to a command in one folder is that folder's failure. Every
command, and every cycle, has a deadline (deadline.py); answers are read by
imap_wire.py.
"""

from __future__ import annotations

import logging
import socket
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import date, datetime
from typing import Any

from imapclient.exceptions import IMAPClientError
from imapclient.imapclient import _normalise_search_criteria
from imapclient.response_parser import parse_message_list

from nudger.config.model import Account
from nudger.core.headers import HEADER_FIELDS
from nudger.errors import FolderUnavailable, GarbledAnswer
from nudger.mail.imap_drafts import OwnDrafts
from nudger.mail.imap_errors import garbled, refused, translate, where
from nudger.mail.imap_login import LoggedIn, log_in
from nudger.mail.imap_many import (
    AHEAD,
    AHEAD_FRESH,
    HeaderStream,
    ManyFolders,
    Searches,
    after_criteria,
    only_after,
)
from nudger.mail.imap_oauth import Bearer
from nudger.mail.imap_pipeline import read_answers
from nudger.mail.imap_wait import Waiting
from nudger.mail.imap_wire import (
    Garbled,
    Refused,
    append_limit,
    appended_uid,
    decode_flags,
    expand_set,
    has_calendar_part,
    parse_fetch,
    read_capabilities,
    read_fetch_answer,
    uid_batches,
)
from nudger.mail.mailbox import Fetched, FolderInfo, FolderStatus
from nudger.mail.notify import Told

log = logging.getLogger(__name__)

_FIELDS = "BODY.PEEK[HEADER.FIELDS (" + " ".join(f.upper() for f in HEADER_FIELDS) + ")]"


class ImapMailbox(Waiting, OwnDrafts):
    """A live connection to one account (its waits for news: imap_wait.py)."""

    def __init__(self, account: Account, logged_in: LoggedIn):
        """``logged_in``: the client, logged in as the account (imap_login.py)."""
        self.account = account
        self._selected: str | None = None
        # Statuses a LIST-STATUS gave with the folders, and when: the next status_many's
        # answers, unless another command came first or they are no longer fresh.
        self._listed: dict[str, FolderStatus] | None = None
        self._listed_at = 0.0
        self._stream: HeaderStream | Searches | None = None  # answers still to read, if any
        self._opening: str | None = None  # the folder to EXAMINE with the next command
        self.many = ManyFolders(self)
        self._told: Told | None = None  # what NOTIFY tells, once the service asked for it
        self._no_notify = False  # NOTIFY refused: not asked again on this connection
        self._folders: list[FolderInfo] | None = None  # the last LIST
        self._answered: dict[str, FolderStatus] = {}  # what each folder's status last said
        self._asking: str | None = None  # the folder of the STATUS in progress
        # Searches to send with the next search_many, and their answers (UIDs, when).
        self._ahead_asks: list[tuple[str, str]] = []
        self._ahead: dict[tuple[str, str], tuple[list[int], float]] = {}
        self._listing = False  # a LIST in progress: its answers are not news
        self._idling = False  # IDLE goes on between a wait and the next command
        self._idle_since = 0.0
        self.where = where(account)
        self.client, self.deadline = logged_in.client, logged_in.deadline
        self._prelisted = logged_in.listing  # the LIST sent with the login: the first listing
        self.client._imap.heard = self._heard
        self.capabilities = read_capabilities(self.client.capabilities())
        self.gmail = "X-GM-EXT-1" in self.capabilities
        self.condstore = "CONDSTORE" in self.capabilities
        self.list_status = "LIST-STATUS" in self.capabilities  # RFC 5819
        # ENABLE is legal only before any SELECT (RFC 7162): sent with the first LIST, or
        # before any other first command. Never QRESYNC (imapclient breaks).
        self._enable = self.condstore and "ENABLE" in self.capabilities

    @property
    def append_limit(self) -> int | None:
        """The largest message the server takes, when it says so (RFC 7889)."""
        return append_limit(self.capabilities)

    def _call(self, doing: str, fn: Any, *args: Any, folder: str | None = None,
              opens: bool = False, enables: bool = False, piped: bool = False, **kwargs: Any) -> Any:
        """``fn(*args)``, its failures translated; a NO to a command in ``folder`` is that
        folder's failure, not the connection's. ``opens``: ``fn`` sends the EXAMINE that
        is due with its own command (else it is sent first, alone). Ends an IDLE left
        going by a wait (``piped``: ``fn`` writes through _send, which ends it in its write)."""
        self._listed = None
        self._prelisted = None  # (taken before this command: no longer the folders of now)
        self._settle(keep_idle=piped)
        if self._enable and not enables:
            self._enable = False
            self._call("enabling CONDSTORE", self.client.enable, "CONDSTORE", opens=True)
        if self._opening is not None and not opens:
            self.examine(self._opening)
        return self._translated(doing, fn, *args, folder=folder, **kwargs)

    def _translated(self, doing: str, fn: Any, *args: Any, folder: str | None = None,
                    **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except Exception as exc:  # noqa: BLE001
            if folder is not None and refused(exc):
                raise FolderUnavailable(folder, f"{self.where}: the server refused {doing}: {exc}",
                                        detail=str(exc)) from exc
            raise translate(exc, self.account, doing) from exc

    def _uid_fetch(self, uid_sets: Sequence[str], items: Sequence[str]) -> list[dict[int, dict[bytes, Any]]]:
        """UID FETCH with compact UID sets ("1:500,502"), which imapclient's fetch() cannot
        send (it takes UID lists): one command a set, all in one write (one round trip),
        the answers read in order. Reads them through imaplib's public readline/read,
        with tags from its own counter (as imapclient does for the commands imaplib lacks)."""
        imap = self.client._imap
        opening, self._opening = self._opening, None
        items_text = " ".join(items)
        commands = [f"UID FETCH {uid_set} ({items_text})".encode("ascii") for uid_set in uid_sets]
        tags = self._send([self.many.examine_command(opening), *commands] if opening else commands)
        if opening is not None:
            self.many.opened(opening, read_answers(imap.readline, imap.read, tags[:1],
                                                   self._piped_heard())[0])
            tags = tags[1:]
        answers: list[dict[int, dict[bytes, Any]]] = []
        failure: Exception | None = None
        for tag in tags:
            try:
                answers.append(parse_fetch(read_fetch_answer(imap.readline, imap.read, tag,
                                                             self._fetch_heard())))
            except (Refused, Garbled) as exc:  # (read to its end: the next answers stay in step)
                failure = failure or exc
        if failure is not None:
            raise failure
        return answers

    def _fetch(self, folder: str, what: str, uid_sets: Sequence[str], items: Sequence[str],
               key: bytes) -> dict[int, dict[bytes, Any]]:
        """The answer for each UID of ``uid_sets`` (asked together), each with an item
        named ``key...``.

        A UID left out of the answer is fine when it is gone (expunged meanwhile), and
        a garbled answer when the server still has it: never taken as read."""
        doing = f"{what} in {folder!r}"
        if not uid_sets:
            return {}
        answers = self._call(doing, self._uid_fetch, uid_sets, items, folder=folder, opens=True, piped=True)
        # (A server may run them side by side and answer a message within another's
        # answer, RFC 3501 5.5; Dovecot does: they are checked together.)
        got = answers[0]
        if len(answers) > 1:
            got = {}
            for answer in answers:
                for uid, data in answer.items():  # (a flag's news about one asked: merged)
                    got.setdefault(uid, {}).update(data)
        return self._checked(folder, doing, ",".join(uid_sets), got, key)

    def _checked(self, folder: str, doing: str, uid_set: str, got: dict[int, dict[bytes, Any]],
                 key: bytes) -> dict[int, dict[bytes, Any]]:
        wanted = expand_set(uid_set)
        found = {uid: data for uid, data in got.items() if uid in wanted}  # (others: news)
        for uid, data in found.items():  # (loops, not any(): thousands of messages a batch)
            for k in data:
                if k.startswith(key):
                    break
            else:
                raise self._garbled(doing, f"UID {uid} without {key.decode()}")
        missing = sorted(wanted - set(found))
        if missing:
            # Amid fetch_headers_many another folder may be open (its EXAMINE sent ahead):
            # open this one again first, in the same write as the SEARCH.
            self._examine(folder)
            still = set().union(*(self._search(folder, ["UID", uids]) for uids in uid_batches(missing)))
            if still:
                raise self._garbled(doing, f"{len(still)} message(s) left out, first UID {min(still)}")
        return found

    def _garbled(self, doing: str, detail: str) -> GarbledAnswer:
        return garbled(self.where, doing, detail)

    def _settle(self, keep_idle: bool = False) -> None:
        """End an IDLE left going by a wait (unless ``keep_idle``: the next write ends it),
        and read the answers to the FETCHes sent ahead, if any: another command's answer
        comes after them, and only then is it known which folder is open."""
        if self._idling and not keep_idle:
            self._end_idle()
        if self._stream is not None:
            self._stream.drain()

    def _examine(self, folder: str) -> None:
        """Have ``folder`` open for the next command: its EXAMINE goes out with that
        command, in one write (one round trip for both)."""
        self._settle()
        self._opening = None if self._selected == folder else folder

    def list_folders(self) -> list[FolderInfo]:
        """The folders; while NOTIFY tells of folders created, deleted or renamed, the last
        answer stands until one is."""
        told = self._told
        if told is not None and (known := told.listed()) is not None:
            return known
        prelisted, self._prelisted = self._prelisted, None
        if prelisted is not None and prelisted.ok and not self.list_status:
            # (With LIST-STATUS, the statuses come with a new listing: the same round trip.)
            self._folders = self._call("listing folders", self.many.read_listing, prelisted,
                                       enables=True)
            return self._folders
        folders, listed = self._call("listing folders", self.many.list_with_status,
                                     self.list_status, enables=True, piped=True)
        self._listed, self._listed_at = listed, time.monotonic()
        self._folders = folders
        if told is not None:
            told.relisted(folders)
        return folders

    def _folder_infos(self, listed: list[tuple[Any, Any, Any]]) -> list[FolderInfo]:
        # (A name imapclient could not decode stays readable; if it is no name the server
        # knows, opening it is refused and that folder alone is skipped.)
        return [FolderInfo(name if isinstance(name, str) else name.decode("utf-8", "replace"),
                           self._flags("listing folders", flags))
                for flags, _delim, name in listed]

    def status_many(self, folders: Sequence[str]) -> dict[str, FolderStatus]:
        # A cycle starts here: what an earlier one asked ahead is older than these statuses
        # (and so is what is still to be read of its searches).
        if self.many.pending is not None:
            self.many.pending.drain()
        self._ahead_asks, self._ahead = [], {}
        found = self._statuses_told(folders)
        self._answered.update(found)
        return found

    def search_many(self, asks: Sequence[tuple[str, int]],
                    since: date | None) -> Mapping[str, tuple[FolderStatus, list[int]]]:
        return self.many.search_many(asks, since)

    def fetched_with_search(self, folder: str, uids: Sequence[int]) -> bool:
        return self.many.fetched_with_search(folder, uids)

    def fetch_headers_many(self, wants: Sequence[tuple[str, Sequence[int]]]
                           ) -> Iterator[tuple[str, list[Fetched]]]:
        return self.many.fetch_headers_many(wants)

    def status(self, folder: str) -> FolderStatus:
        """One STATUS command: enough to skip an unchanged folder without selecting it.
        While NOTIFY tells of every change, what it last told stands in for asking."""
        told = self._told
        known = told.status.get(folder) if told is not None and folder != self._selected else None
        self._answered[folder] = status = known or self._ask_status(folder)
        return status

    def _ask_status(self, folder: str) -> FolderStatus:
        items = [i.encode() for i in self.many.status_items()]
        doing = f"checking {folder!r}"
        self._asking = folder
        try:
            got = self._call(doing, self.client.folder_status, folder, items, folder=folder)
        finally:
            self._asking = None
        status = self._folder_status(doing, got, b"MESSAGES")
        if self._told is not None and folder != self._selected:
            return self._told.status.get(folder, status)  # (a notice after the answer is newer)
        return status

    def _folder_status(self, doing: str, got: dict[bytes, Any], count: bytes) -> FolderStatus:
        """The numbers of a STATUS or EXAMINE answer; both must carry UIDVALIDITY and
        UIDNEXT (RFC 3501 6.3.1, 6.3.10): an answer without them is garbled."""
        try:
            modseq = got.get(b"HIGHESTMODSEQ")
            return FolderStatus(int(got[b"UIDVALIDITY"]), int(got[b"UIDNEXT"]),
                                int(modseq) if modseq is not None else None, int(got.get(count, 0)))
        except (KeyError, TypeError, ValueError) as exc:
            raise self._garbled(doing, f"no usable {exc}") from exc

    def examine(self, folder: str) -> FolderStatus:
        """Open the folder read-only; its answer carries what STATUS would (a first sync
        opens the folder anyway, so it needs no STATUS)."""
        self._settle()
        self._selected = self._opening = None  # a refused EXAMINE leaves none open (RFC 3501 6.3.1)
        doing = f"opening {folder!r}"
        got = self._call(doing, self.client.select_folder, folder, readonly=True, folder=folder)
        status = self._folder_status(doing, got, b"EXISTS")
        self._selected = folder
        self._answered[folder] = status
        if self._told is not None:
            self._told.forget(folder)  # open, it is told of otherwise: asked before a wait
        return status

    def changed_flags(self, folder: str, modseq: int) -> dict[int, tuple[str, ...]]:
        """Flags of the messages changed since ``modseq`` (CONDSTORE only)."""
        if not self.condstore:
            return {}
        self._examine(folder)
        uids = self._search(folder, ["MODSEQ", str(modseq + 1)])
        return self.fetch_flags(folder, sorted(uids)) if uids else {}

    def _search(self, folder: str, criteria: list[Any]) -> list[int]:
        """UID SEARCH in the open folder. imapclient's search() answers [] when no SEARCH
        response came at all (a garbled "* SEA..RCH" line is filed under another name),
        which would make a folder look empty and be marked read; RFC 3501 6.4.4 requires
        that response, so its absence is a garbled answer."""
        doing = f"searching {folder!r}"
        if self._opening is None and self._selected == folder:
            # An open folder shows what other sessions changed only once the server syncs
            # it, at a command's end (RFC 3501 5.2): a SEARCH would miss a draft another
            # instance appended a moment ago. A NOOP sent ahead does not help (Dovecot runs
            # it beside the SEARCH); an EXAMINE does, in the same write: no extra round trip.
            self._opening = folder
        if self._opening == folder:
            return self._call(doing, self.many.open_and_search, folder, criteria, folder=folder,
                              opens=True, piped=True)
        data = self._call(doing, self.client._raw_command_untagged, b"SEARCH",
                          _normalise_search_criteria(criteria, None), folder=folder)
        if data == [None]:
            raise self._garbled(doing, "no SEARCH response")
        try:
            return list(parse_message_list(data))
        except (ValueError, TypeError) as exc:
            raise self._garbled(doing, "an unreadable SEARCH response") from exc

    def search_new(self, folder: str, after_uid: int, since: date | None) -> list[int]:
        self._examine(folder)
        return only_after(self._search(folder, after_criteria(after_uid, since)), after_uid)

    def search_ahead(self, folder: str, kind: str) -> None:
        if kind not in AHEAD:
            raise ValueError(f"no search ahead of kind {kind!r}")
        if (folder, kind) not in self._ahead_asks:
            self._ahead_asks.append((folder, kind))

    def _taken_ahead(self, folder: str, kind: str) -> list[int] | None:
        """The answer search_many got for search_ahead(folder, kind), if fresh (once)."""
        found = self._ahead.pop((folder, kind), None)
        if found is None or time.monotonic() - found[1] > AHEAD_FRESH:
            return None
        return found[0]

    def all_uids(self, folder: str) -> set[int]:
        if (ahead := self._taken_ahead(folder, "all")) is not None:
            return set(ahead)
        self._examine(folder)
        return set(self._search(folder, AHEAD["all"]))

    def fetch_headers(self, folder: str, uids: Sequence[int]) -> Iterator[Fetched]:
        self._examine(folder)
        for batch in uid_batches(uids):  # (a batch at a time: headers for a whole folder may be asked)
            got = self._fetch(folder, "reading headers", [batch], self._header_items(), b"BODY[HEADER")
            yield from self._headers_of(folder, got)

    def _header_items(self) -> list[str]:
        return [_FIELDS, "INTERNALDATE", "FLAGS", "RFC822.SIZE"] + (["X-GM-THRID"] if self.gmail else [])

    def _headers_of(self, folder: str, got: dict[int, dict[bytes, Any]]) -> Iterator[Fetched]:
        doing = f"reading headers in {folder!r}"
        decoded: dict[tuple[Any, ...], tuple[str, ...]] = {}  # (a few sets of flags, thousands of messages)
        for uid in sorted(got):
            data = got[uid]
            for key in data:
                if key.startswith(b"BODY[HEADER"):
                    header = data[key]
                    break
            else:
                raise self._garbled(doing, f"UID {uid} without BODY[HEADER")
            flags = data.get(b"FLAGS", ())
            try:
                text = decoded[flags]
            except KeyError:
                text = decoded[flags] = self._flags(doing, flags)
            except TypeError:  # (flags no tuple can hold: garbled, as _flags says)
                text = self._flags(doing, flags)
            yield Fetched(
                uid=uid,
                header=header or b"",
                internaldate=data.get(b"INTERNALDATE"),
                flags=text,
                size=int(data.get(b"RFC822.SIZE", 0)),
                gm_thrid=data.get(b"X-GM-THRID"),
            )

    def _flags(self, doing: str, flags: Any) -> tuple[str, ...]:
        try:
            return decode_flags(flags)
        except Garbled as exc:
            raise self._garbled(doing, str(exc)) from exc

    def fetch_flags(self, folder: str, uids: Sequence[int]) -> dict[int, tuple[str, ...]]:
        self._examine(folder)
        fetched = self._fetch(folder, "reading flags", uid_batches(uids), ["FLAGS"], b"FLAGS")
        return {uid: self._flags(f"reading flags in {folder!r}", data[b"FLAGS"])
                for uid, data in fetched.items()}

    def fetch_message(self, folder: str, uid: int, limit: int) -> bytes | None:
        return self.fetch_messages(folder, [uid], limit).get(uid)

    def fetch_messages(self, folder: str, uids: Sequence[int], limit: int) -> dict[int, bytes]:
        """The first ``limit`` bytes of each message, read with BODY.PEEK (no \\Seen); all
        in one round trip (the caller bounds how many: they are all held)."""
        self._examine(folder)
        got = self._fetch(folder, "reading messages", uid_batches(uids, size=100),
                          [f"BODY.PEEK[]<0.{limit}>"], b"BODY[")
        found: dict[int, bytes] = {}
        for uid, data in got.items():
            body = next(v for k, v in data.items() if k.startswith(b"BODY["))
            if isinstance(body, bytes):
                found[uid] = body
        return found

    def calendar_uids(self, folder: str, uids: Sequence[int]) -> set[int]:
        """Those of ``uids`` with a calendar part, by their BODYSTRUCTURE (no body read)."""
        self._examine(folder)
        got = self._fetch(folder, "reading message structures", uid_batches(uids), ["BODYSTRUCTURE"],
                          b"BODYSTRUCTURE")
        return {uid for uid, data in got.items() if has_calendar_part(data.get(b"BODYSTRUCTURE"))}

    def find_message_id(self, folder: str, message_id: str) -> list[int]:
        self._examine(folder)
        return sorted(self._search(folder, ["HEADER", "Message-ID", message_id]))

    def find_marked(self, folder: str) -> list[int]:
        """Messages carrying one of nudger's marks (SEARCH HEADER is a substring match)."""
        if (ahead := self._taken_ahead(folder, "marked")) is not None:
            return sorted(ahead)
        self._examine(folder)
        return sorted(self._search(folder, AHEAD["marked"]))

    def append(self, folder: str, data: bytes, flags: Sequence[str], when: datetime) -> int | None:
        self._settle()  # (what is still to be read of a search_many could refill _ahead)
        self._ahead.clear()  # (what was asked ahead is older than this change)
        # \Draft and \Seen in the APPEND itself: adding \Draft later duplicates on some servers.
        answer = self._call(f"saving a draft in {folder!r}", self.client.append, folder, data,
                            flags=[f.encode() for f in flags], msg_time=when)
        uid = appended_uid(answer)
        if uid is None:
            self._selected = None
        if self._told is not None:
            self._told.forget(folder)  # our own change: asked again before the next wait
        return uid

    def close(self) -> None:
        """LOGOUT, without waiting for its answer (the server's BYE says nothing we need:
        a round trip saved), and the connection closed."""
        try:
            done = b"DONE\r\n" if self._idling else b""  # (an IDLE ends in the same write)
            self._idling = False
            self._settle()
            imap = self.client._imap
            imap.send(done + imap._new_tag() + b" LOGOUT\r\n")
            imap.shutdown()
        except (IMAPClientError, OSError, EOFError):
            pass
        except Exception:  # noqa: BLE001 - closing must never raise
            log.debug("logout failed", exc_info=True)


def connect(account: Account, password: str | Bearer,
            dialled: Callable[[], socket.socket] | None = None) -> ImapMailbox:
    """``dialled``: the connection, dialled already (connect.py's ``Early``)."""
    return ImapMailbox(account, log_in(account, password, dialled))
