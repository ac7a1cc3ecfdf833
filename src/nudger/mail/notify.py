"""What a server tells unasked of an account's folders (NOTIFY, RFC 5465), kept for the
service.

Once asked (``NOTIFY SET STATUS ...``), the server sends the STATUS of every folder at
once, and again whenever a message arrives in one, is removed or changes flags, amid any
command or while we wait. Kept here, those answers stand in for asking: a poll with
nothing changed sends no command at all, and a change in any folder (not only INBOX)
ends the wait. The open (selected) folder is told of differently (EXISTS, FETCH), so
nothing counts for it while it is open, nor after we appended to it: such a folder is
asked again before the next wait.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from typing import Any

from imapclient.response_parser import parse_response

from nudger.mail.imap_pipeline import folder_name
from nudger.mail.mailbox import FolderInfo, FolderStatus

# Every personal folder: new and removed messages, flags (with CONDSTORE a flag change
# moves HIGHESTMODSEQ), and folders created, deleted or renamed (told as LIST).
EVENTS = b"(PERSONAL (MessageNew MessageExpunge FlagChange MailboxName))"
# The folders are listed again this often all the same: one created in the moment between
# a LIST and NOTIFY SET, or told of in a way not understood, is not missed for long.
LIST_EVERY = 3600.0


class Told:
    """The latest STATUS the server gave of each folder (asked or told), and what the
    cycle was last given for each: where the two differ, something changed."""

    def __init__(self, condstore: bool, folders: list[FolderInfo] | None = None,
                 answered: dict[str, FolderStatus] | None = None):
        self.condstore = condstore
        self.status: dict[str, FolderStatus] = {}
        self.answered = answered if answered is not None else {}
        self.folders = folders  # the last LIST, until a folder moves (or an hour passed)
        self._names = {f.name for f in folders or ()}
        self.listed_at = time.monotonic()
        self.moved: set[str] = set()  # folders created, deleted or renamed since that LIST

    def hear_status_line(self, dat: Any, selected: str | None) -> tuple[str, bool] | None:
        """One STATUS line as imaplib files it: b'NAME (MESSAGES 3 UIDNEXT 9 ...)'."""
        return self.hear_status_parts([dat], selected)

    def hear_status_parts(self, parts: list[Any], selected: str | None) -> tuple[str, bool] | None:
        """One STATUS response without its word, as lines and ``(line, literal)`` pairs:
        its folder and whether it is whole (could answer a STATUS); None when unreadable."""
        try:
            name, items = parse_response(parts)
        except Exception:  # noqa: BLE001
            self._lost()
            return None
        return self.hear_status(name, items, selected)

    def hear_status(self, name: Any, items: Any, selected: str | None) -> tuple[str, bool] | None:
        """One STATUS answer, parsed: its folder's name and its items (name, number ...).
        A notice may carry only what changed (RFC 5465 5.2): it is added to what was kept."""
        try:
            values = {bytes(k).upper(): int(v) for k, v in zip(items[::2], items[1::2], strict=True)}
        except Exception:  # noqa: BLE001
            self._lost()
            return None
        folder = folder_name(name)
        whole = {b"UIDVALIDITY", b"UIDNEXT", b"MESSAGES"} <= values.keys() and (
            not self.condstore or b"HIGHESTMODSEQ" in values)
        old = self.status.pop(folder, None)
        if folder == selected or (self.folders is not None and folder not in self._names):
            # (a name not listed is kept by no one: a server could invent names without end)
            return folder, whole
        uidvalidity = values.get(b"UIDVALIDITY", old.uidvalidity if old else None)
        uidnext = values.get(b"UIDNEXT", old.uidnext if old else None)
        messages = values.get(b"MESSAGES", old.messages if old else None)
        modseq = values.get(b"HIGHESTMODSEQ")
        if uidvalidity is None or uidnext is None or (self.condstore and modseq is None):
            return folder, whole  # not enough to stand in for asking: asked before the next wait
        self.status[folder] = FolderStatus(uidvalidity, uidnext, modseq, messages)
        return folder, whole

    def listed(self) -> list[FolderInfo] | None:
        """The folders, while what NOTIFY told keeps the last LIST true."""
        if self.folders is None or time.monotonic() - self.listed_at > LIST_EVERY:
            return None
        return list(self.folders)

    def relisted(self, folders: list[FolderInfo]) -> None:
        self.folders, self.moved, self.listed_at = list(folders), set(), time.monotonic()
        self._names = {f.name for f in folders}
        self.status = {f: s for f, s in self.status.items() if f in self._names}

    def hear_list_line(self, dat: Any) -> None:
        """A LIST line told unasked (b'(FLAGS) "/" NAME'): a folder created, deleted or
        renamed (RFC 5465 MailboxName)."""
        self.hear_list_parts([dat])

    def hear_list_parts(self, parts: list[Any]) -> None:
        """The same as lines and ``(line, literal)`` pairs (a name sent as a literal)."""
        try:
            flags, _delim, name = parse_response(parts)[:3]
        except Exception:  # noqa: BLE001
            self._lost()
            return
        self.hear_list(flags, name)

    def hear_list(self, flags: Any, name: Any) -> None:
        """A folder we do not know yet, or one gone: LIST again before the next cycle.
        (Dovecot also tells of folders it just created for the user's first LIST.)"""
        folder = folder_name(name)
        gone = any(bytes(f).lower() == b"\\nonexistent" for f in flags or ())
        if self.folders is None or gone or folder not in {f.name for f in self.folders}:
            self.folders = None
            self.moved.add(folder)

    def _lost(self) -> None:
        """A notice that does not read: trust nothing kept, and end the wait (the cycle
        then asks every folder)."""
        self.status.clear()
        self.folders = None
        self.moved.add("(an unreadable notice)")

    def forget(self, folder: str) -> None:
        self.status.pop(folder, None)

    def unknown(self, folders: Iterable[str]) -> list[str]:
        return [f for f in folders if f not in self.status]

    def news(self, folders: Iterable[str]) -> set[str]:
        """The folders among ``folders`` that changed since the cycle last looked, and the
        folders that moved."""
        changed = {f for f in folders
                   if f in self.status and f in self.answered and self.status[f] != self.answered[f]}
        return changed | self.moved
