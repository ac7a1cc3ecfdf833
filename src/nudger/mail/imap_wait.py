"""Waiting for news on an IMAP connection, for the service: NOTIFY (RFC 5465) where the
server offers it, told of every folder; else IDLE on INBOX (RFC 2177). Mixed into
``ImapMailbox``, whose connection and bookkeeping it uses."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from imapclient import IMAPClient

from nudger.errors import NudgerError
from nudger.mail.deadline import Deadline
from nudger.mail.imap_errors import refused
from nudger.mail.imap_pipeline import Response, send
from nudger.mail.mailbox import FolderInfo, FolderStatus
from nudger.mail.notify import EVENTS, Told

if TYPE_CHECKING:
    from nudger.mail.imap_many import ManyFolders

log = logging.getLogger(__name__)

IDLE_RENEW = 25 * 60  # servers may drop an IDLE client after 29 minutes (RFC 2177)


class Waiting:
    """The waits of one connection; the rest of it is ``ImapMailbox``'s."""

    client: IMAPClient
    deadline: Deadline
    capabilities: set[str]
    condstore: bool
    where: str
    _told: Told | None
    _no_notify: bool  # refused once: not asked again on this connection
    _no_idle = False  # IDLE refused (NO or BAD): this connection waits by the clock
    _folders: list[FolderInfo] | None
    _answered: dict[str, FolderStatus]
    _selected: str | None
    _asking: str | None
    _listing: bool
    _idling: bool
    _idle_since: float

    def _call(self, doing: str, fn: Any, *args: Any, folder: str | None = None, **kwargs: Any) -> Any:
        raise NotImplementedError

    def _translated(self, doing: str, fn: Any, *args: Any, folder: str | None = None,
                    **kwargs: Any) -> Any:
        raise NotImplementedError

    _opening: str | None
    many: ManyFolders

    def examine(self, folder: str) -> FolderStatus:
        raise NotImplementedError

    def wait_for_news(self, folders: Sequence[str], seconds: float,
                      stop: threading.Event) -> set[str]:
        """Wait up to ``seconds`` for news: the folders of ``folders`` where something
        changed. With NOTIFY (RFC 5465) every folder tells, the wait ends at the first
        change and IDLE goes on until the next command; without it, IDLE on INBOX, the
        one folder it watches (RFC 2177). Checks ``stop`` every second, so a SIGTERM is
        honoured quickly."""
        if self.many.pending is not None:  # (which folder is open is known after it)
            self.many.pending.drain()
        if "IDLE" not in self.capabilities or self._no_idle:
            stop.wait(seconds)
            self.deadline.new_cycle()
            return set()
        if self._told is not None or ("NOTIFY" in self.capabilities and not self._no_notify
                                      and self._ask_to_be_told()):
            return self._wait_told(folders, seconds, stop)
        return {"INBOX"} if self._idle_on_inbox(seconds, stop) else set()

    def _ask_to_be_told(self) -> bool:
        """NOTIFY SET: True once the server tells of every folder from now on."""
        self._told = Told(self.condstore, self._folders, self._answered)
        try:
            typ, _ = self._call("asking to be told of changes", self.client._raw_command,
                                b"NOTIFY", [b"SET", b"STATUS", EVENTS], uid=False)
        except NudgerError as exc:
            self._told = None
            if exc.__cause__ is None or not refused(exc.__cause__):
                raise
            typ = "BAD"  # (a BAD raises; a NO is answered)
        if typ != "OK":  # refused (a limit, a proxy in front): IDLE on INBOX as before
            log.info("%s: the server refused NOTIFY; waiting on INBOX only", self.where)
            self._told, self._no_notify = None, True
        return self._told is not None

    def _heard(self, typ: str, dat: Any) -> bool:
        """An untagged answer as imaplib reads it (deadline.py): what NOTIFY tells is kept
        here; True when imaplib must keep it too (only the whole STATUS we asked for)."""
        told = self._told
        if told is None:
            return True
        if typ == "STATUS":
            heard = told.hear_status_line(dat, self._selected)
            return heard is not None and heard == (self._asking, True)
        if typ == "LIST" and not self._listing:
            told.hear_list_line(dat)
            return False
        if typ == "OK" and isinstance(dat, bytes):
            self._overflow(dat)
        return True

    def _heard_piped(self, word: bytes, parts: Response) -> bool:
        """The same for an answer read past imaplib (imap_pipeline.py, imap_many.py): every
        STATUS is kept as told, and answers only when whole (pipelined STATUS answers are
        matched by name; a notice may carry only what changed); a LIST only while listing."""
        told = self._told
        if told is None:
            return True
        if word == b"STATUS":
            heard = told.hear_status_parts(parts, self._selected)
            return heard is not None and heard[1]
        if word == b"LIST" and not self._listing:
            told.hear_list_parts(parts)
            return False
        if word == b"OK" and isinstance(parts[-1], bytes):
            self._overflow(parts[-1])
        return True

    def _piped_heard(self) -> Any:
        """What answers read past imaplib show what they read to (None: NOTIFY is off)."""
        return self._heard_piped if self._told is not None else None

    def _fetch_heard(self) -> Any:
        return self._heard if self._told is not None else None

    def _statuses_told(self, folders: Sequence[str]) -> dict[str, FolderStatus]:
        """status_many: while NOTIFY tells of every change, what it last told stands in
        for asking (a poll with nothing changed sends nothing); the rest asked in one
        round trip, and a notice read meanwhile is newer than the answer."""
        wanted = list(dict.fromkeys(folders))
        told = self._told
        known = {} if told is None else {f: told.status[f] for f in wanted
                                         if f in told.status and f != self._selected}
        if len(known) < len(wanted):
            asked = self.many.status_many([f for f in wanted if f not in known])
            told = self._told  # (an overflow read meanwhile ends the telling)
            known.update((f, told.status.get(f, s) if told is not None and f != self._selected else s)
                         for f, s in asked.items())
        return {f: known[f] for f in wanted if f in known}

    def _overflow(self, text: bytes) -> None:
        """The server stopped telling (RFC 5465 NOTIFICATIONOVERFLOW): nothing kept holds;
        the next wait asks to be told again."""
        if b"[NOTIFICATIONOVERFLOW]" in text.upper():
            log.info("%s: the server stopped telling of changes; asking again", self.where)
            self._told = None

    def _wait_told(self, folders: Sequence[str], seconds: float, stop: threading.Event) -> set[str]:
        told = self._told
        assert told is not None
        if not self._idling:
            self._before_wait(folders)
            if self._told is not told:
                return set(folders)  # it stopped telling meanwhile
            if news := told.news(folders):
                return news  # it changed while the cycle ran
            self._start_idle()
        until = time.monotonic() + seconds
        while not stop.is_set() and time.monotonic() < until:
            if time.monotonic() - self._idle_since > IDLE_RENEW:
                self._end_idle()
                self._start_idle()
            for response in self._translated("waiting for new mail", self.client.idle_check, timeout=1):
                if len(response) == 3 and response[0] == b"STATUS":
                    told.hear_status(response[1], response[2], None)
                elif response[:1] == (b"LIST",) and len(response) >= 4:
                    told.hear_list(response[1], response[3])
                elif response[:1] == (b"OK",) and isinstance(response[-1], bytes):
                    self._overflow(response[-1])
                    if self._told is None:
                        return set(folders)  # (the next cycle asks every folder)
            if news := told.news(folders):
                return news
        return set()

    def _before_wait(self, folders: Sequence[str]) -> None:
        """Close the open folder (the server tells of it as of any other then) and ask
        the status of each folder nothing stands for (in one round trip), so that the
        wait sees every change from what the cycle saw."""
        assert self._told is not None
        self._opening = None  # (an EXAMINE not sent yet: none is needed now)
        if self._selected is not None:
            doing = f"closing {self._selected!r}"
            self._told.forget(self._selected)
            self._selected = None
            # Past imaplib, which knows nothing of a folder opened by a pipelined EXAMINE.
            # CLOSE removes nothing from a folder opened read-only (RFC 3501 6.4.2).
            self._call(doing, self.many.close_folder,
                       b"UNSELECT" if "UNSELECT" in self.capabilities else b"CLOSE")
        if self._told is not None and (unknown := self._told.unknown(folders)):
            self._statuses_told(unknown)  # (kept as told; a folder left out: the next cycle says)

    def _start_idle(self) -> None:
        self._call("waiting for new mail", self.client.idle)  # (after an EXAMINE due)
        self._idling, self._idle_since = True, time.monotonic()
        self.deadline.paused = True  # idling is waiting, not a command to bound

    def _idle_or_not(self) -> bool:
        """IDLE on the open folder; False when the server answers it NO or BAD (a limit,
        a proxy in front): not asked again on this connection, which polls by the clock."""
        try:
            self._start_idle()
        except NudgerError:
            answered = self.client._imap.tagged_commands.pop(getattr(self.client, "_idle_tag", None), None)
            if not answered or answered[0] not in ("NO", "BAD"):
                raise
            text = b" ".join(d for d in answered[1] if isinstance(d, bytes)).decode("ascii", "replace")
            log.info("%s: the server refused IDLE (%s); checking at each poll instead", self.where, text)
            self._no_idle = True
            return False
        return True

    def _idle_over(self) -> None:
        self._idling = False
        self.deadline.paused = False
        self.deadline.new_cycle()  # the end of a wait starts the next cycle

    def _end_idle(self) -> None:
        """DONE, alone, and IDLE's completion waited for (a command imapclient sends)."""
        self._idle_over()
        self._translated("waiting for new mail", self.client.idle_done)

    def _send(self, commands: Sequence[bytes]) -> list[bytes]:
        """Send ``commands`` in one write; their tags. An IDLE left going by a wait ends in
        that write (RFC 2177: DONE, then the next command): its completion comes ahead of
        their answers, in the same round trip, and is read here."""
        imap = self.client._imap
        if not self._idling:
            return send(imap, commands)
        self._idle_over()
        tags = send(imap, commands, before=b"DONE\r\n")
        self.client._consume_until_tagged_response(self.client._idle_tag, "IDLE")
        return tags

    def _idle_on_inbox(self, seconds: float, stop: threading.Event) -> bool:
        """IMAP IDLE on INBOX for up to ``seconds``; True when a message arrived there.
        The IDLE goes on until the next command, which ends it in its own write (_send).
        Renewed well before the 29 minutes after which servers may drop an idle client."""
        until = time.monotonic() + seconds
        if not (self._idling and self._selected == "INBOX"):
            if self._selected != "INBOX":
                seen = self._answered.get("INBOX")  # what the cycle saw of it
                opened = self.examine("INBOX")
                if seen is not None and opened.uidnext != seen.uidnext:
                    return True  # came since the cycle looked: IDLE would never tell of it
            if not self._idle_or_not():
                stop.wait(max(0.0, until - time.monotonic()))
                self.deadline.new_cycle()
                return False
        arrived = False
        while not arrived and not stop.is_set() and time.monotonic() < until:
            if time.monotonic() - self._idle_since > IDLE_RENEW:
                self._end_idle()
                self._start_idle()
            # (Never past ``until``: IDLE's "+" was awaited inside the wait, not after it.)
            left = min(1.0, max(0.0, until - time.monotonic()))
            responses = self._translated("waiting for new mail", self.client.idle_check, timeout=left)
            arrived = any(len(r) > 1 and r[1] in (b"EXISTS", b"RECENT") for r in responses)
        return arrived
