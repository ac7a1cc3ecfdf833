"""A mailbox in memory with IMAP's UID and CONDSTORE semantics: the demo and fast tests
run on it, and tests/test_mailbox_contract.py holds it to the same answers as Dovecot."""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from email import policy
from email.parser import BytesHeaderParser, BytesParser
from threading import Condition, Event

from nudger.core.calendar import CALENDAR_TYPES
from nudger.core.headers import normalise_message_id
from nudger.mail.mailbox import Fetched, FolderInfo, FolderStatus, Mark


@dataclass
class _Stored:
    data: bytes
    flags: tuple[str, ...]
    internaldate: datetime
    modseq: int  # of its last change (RFC 7162)


@dataclass
class _Folder:
    flags: tuple[str, ...]
    uidvalidity: int = 1
    uidnext: int = 1
    highestmodseq: int = 1  # as Dovecot starts an empty folder
    messages: dict[int, _Stored] = field(default_factory=dict)


class MemoryMailbox:
    """A mailbox in memory, like a CONDSTORE server: every change to a folder (a message
    added, flags set, a draft removed) takes the folder's next modification sequence."""

    def __init__(self, folders: dict[str, tuple[str, ...]] | None = None):
        default = {"INBOX": (), "Sent": ("\\Sent",), "Drafts": ("\\Drafts",),
                   "Archive": ("\\Archive",), "Trash": ("\\Trash",), "Junk": ("\\Junk",)}
        self.folders = {name: _Folder(flags) for name, flags in (folders or default).items()}
        self.appends = 0
        self.append_limit: int | None = None  # no limit, unless a test sets one
        self.changed = Condition()  # told of every change, as NOTIFY tells of every folder
        self.seen: dict[str, int] = {}  # each folder's modseq when the cycle last asked

    def add(self, folder: str, data: bytes, flags: Sequence[str] = (), when: datetime | None = None) -> int:
        box = self.folders[folder]
        uid = box.uidnext
        box.uidnext += 1
        box.highestmodseq += 1
        box.messages[uid] = _Stored(data, tuple(flags), when or datetime.now(UTC), box.highestmodseq)
        self._tell()
        return uid

    def set_flags(self, folder: str, uid: int, flags: Sequence[str]) -> None:
        """What another client's STORE FLAGS does (nudger sets only its sending mark)."""
        box = self.folders[folder]
        stored = box.messages[uid]
        if set(stored.flags) != set(flags):  # an unchanged message keeps its modseq
            box.highestmodseq += 1
            stored.flags, stored.modseq = tuple(flags), box.highestmodseq
            self._tell()

    def messages(self, folder: str) -> dict[int, bytes]:
        return {uid: m.data for uid, m in self.folders[folder].messages.items()}

    # Mailbox protocol
    def list_folders(self) -> list[FolderInfo]:
        return [FolderInfo(name, f.flags) for name, f in self.folders.items()]

    def _tell(self) -> None:
        with self.changed:
            self.changed.notify_all()

    def status(self, folder: str) -> FolderStatus:
        box = self.folders[folder]
        self.seen[folder] = box.highestmodseq
        return FolderStatus(box.uidvalidity, box.uidnext, box.highestmodseq, len(box.messages))

    def status_many(self, folders: Sequence[str]) -> dict[str, FolderStatus]:
        return {f: self.status(f) for f in folders if f in self.folders}

    def examine(self, folder: str) -> FolderStatus:
        return self.status(folder)

    def search_many(self, asks: Sequence[tuple[str, int]],
                    since: date | None) -> dict[str, tuple[FolderStatus, list[int]]]:
        return {f: (self.examine(f), self.search_new(f, after, since))
                for f, after in asks if f in self.folders}

    def fetched_with_search(self, folder: str, uids: Sequence[int]) -> bool:
        return True  # (no round trips to save)

    def fetch_headers_many(self, wants: Sequence[tuple[str, Sequence[int]]]
                           ) -> Iterator[tuple[str, list[Fetched]]]:
        for folder, uids in wants:
            items = list(self.fetch_headers(folder, uids))
            for start in range(0, len(items), 1000):
                yield folder, items[start : start + 1000]

    def search_new(self, folder: str, after_uid: int, since: date | None) -> list[int]:
        return sorted(
            uid for uid, m in self.folders[folder].messages.items()
            if uid > after_uid and (since is None or m.internaldate.date() >= since)
        )  # fmt: skip

    def search_ahead(self, folder: str, kind: str) -> None:
        pass  # (no round trips to save)

    def all_uids(self, folder: str) -> set[int]:
        return set(self.folders[folder].messages)

    def fetch_headers(self, folder: str, uids: Sequence[int]) -> Iterator[Fetched]:
        box = self.folders[folder]
        for uid in uids:
            m = box.messages.get(uid)
            if m is not None:
                sep = b"\r\n\r\n" if b"\r\n\r\n" in m.data else b"\n\n"
                head = m.data.split(sep, 1)[0]
                yield Fetched(uid, head + b"\r\n\r\n", m.internaldate, m.flags, len(m.data))

    def fetch_flags(self, folder: str, uids: Sequence[int]) -> dict[int, tuple[str, ...]]:
        box = self.folders[folder]
        return {uid: box.messages[uid].flags for uid in uids if uid in box.messages}

    def changed_flags(self, folder: str, modseq: int) -> dict[int, tuple[str, ...]]:
        """Flags of the messages changed since ``modseq`` (added or given new flags)."""
        return {uid: m.flags for uid, m in self.folders[folder].messages.items() if m.modseq > modseq}

    def fetch_message(self, folder: str, uid: int, limit: int) -> bytes | None:
        return self.fetch_messages(folder, [uid], limit).get(uid)

    def fetch_messages(self, folder: str, uids: Sequence[int], limit: int) -> dict[int, bytes]:
        box = self.folders[folder].messages
        return {uid: box[uid].data[:limit] for uid in uids if uid in box}

    def calendar_uids(self, folder: str, uids: Sequence[int]) -> set[int]:
        box = self.folders[folder].messages
        return {uid for uid in uids if uid in box
                and any(part.get_content_type() in CALENDAR_TYPES
                        for part in BytesParser(policy=policy.default).parsebytes(box[uid].data).walk())}

    def find_message_id(self, folder: str, message_id: str) -> list[int]:
        wanted = normalise_message_id(message_id)
        found = []
        for uid, m in self.folders[folder].messages.items():
            header = BytesHeaderParser().parsebytes(m.data)  # compat32
            if normalise_message_id(str(header.get("Message-ID", ""))) == wanted:
                found.append(uid)
        return found

    def find_marked(self, folder: str) -> list[int]:
        """Messages carrying one of nudger's marks: its Message-ID or X-Nudger-For."""
        found = []
        for uid, m in self.folders[folder].messages.items():
            header = BytesHeaderParser().parsebytes(m.data)  # compat32
            if ("<nudger." in str(header.get("Message-ID", "")).lower()
                    or header.get("X-Nudger-For") is not None):
                found.append(uid)
        return found

    def append(self, folder: str, data: bytes, flags: Sequence[str], when: datetime) -> int | None:
        self.appends += 1
        return self.add(folder, data, flags, when)

    def delete_own_draft(self, folder: str, uid: int, message_id: str) -> bool:
        if uid in self.find_message_id(folder, message_id):
            box = self.folders[folder]
            del box.messages[uid]
            box.highestmodseq += 1  # an expunge is a change too
            self._tell()
            return True
        return False

    def mark_own_draft(self, folder: str, uid: int, message_id: str, keyword: str,
                       on: bool = True) -> Mark:
        if uid not in self.find_message_id(folder, message_id):
            return Mark.GONE
        flags = [f for f in self.folders[folder].messages[uid].flags if f != keyword]
        self.set_flags(folder, uid, [*flags, keyword] if on else flags)
        return Mark.SET

    def wait_for_news(self, folders: Sequence[str], seconds: float, stop: Event) -> set[str]:
        """Like a server with NOTIFY: told of a change in any folder (every change moves
        its modseq), it returns the folders that changed since the cycle last asked."""
        until = time.monotonic() + seconds
        with self.changed:
            while not (news := self._news(folders)) and not stop.is_set():
                left = until - time.monotonic()
                if left <= 0:
                    break
                self.changed.wait(min(left, 0.5))  # (a look at ``stop`` twice a second)
        return news

    def _news(self, folders: Sequence[str]) -> set[str]:
        return {f for f in folders if f in self.seen and f in self.folders
                and self.folders[f].highestmodseq != self.seen[f]}

    def close(self) -> None:
        pass
