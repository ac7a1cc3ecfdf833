"""The one narrow interface between the cycle and a mail store: the ``Mailbox`` protocol
and the plain data it answers with. ``mail.imap`` talks to a real server, ``mail.memory``
is its in-memory twin; both obey the same contract (tests/test_mailbox_contract.py):
reads never change a message, and the only write is APPEND to Drafts (plus removing
nudger's own draft, later)."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from enum import StrEnum
from threading import Event
from typing import Protocol


class Mark(StrEnum):
    """What marking nudger's own draft did."""

    SET = "set"  # the keyword set (or taken off)
    NOT_KEPT = "not-kept"  # the folder keeps no such keyword: nothing changed
    GONE = "gone"  # the UID no longer holds nudger's draft (deleted, or saved anew)


@dataclass(frozen=True)
class FolderInfo:
    name: str
    flags: tuple[str, ...] = ()  # LIST flags, e.g. "\\Sent", "\\Noselect"

    @property
    def selectable(self) -> bool:
        return not any(f.lower() in ("\\noselect", "\\nonexistent") for f in self.flags)

    def has(self, flag: str) -> bool:
        return flag.lower() in (f.lower() for f in self.flags)


@dataclass(frozen=True)
class FolderStatus:
    uidvalidity: int
    uidnext: int
    highestmodseq: int | None = None
    messages: int | None = None


@dataclass(frozen=True)
class Fetched:
    uid: int
    header: bytes
    internaldate: datetime | None
    flags: tuple[str, ...]
    size: int
    gm_thrid: int | None = None


class Mailbox(Protocol):
    def list_folders(self) -> list[FolderInfo]: ...
    def status(self, folder: str) -> FolderStatus: ...
    def status_many(self, folders: Sequence[str]) -> dict[str, FolderStatus]:
        """What status() answers for each of ``folders``, in a number of round trips that
        does not grow with theirs. A folder left out is one the server would not answer
        for: status() on it raises the reason."""
        ...

    def examine(self, folder: str) -> FolderStatus: ...
    def search_many(self, asks: Sequence[tuple[str, int]],
                    since: date | None) -> Mapping[str, tuple[FolderStatus, list[int]]]:
        """For each (folder, UID): what examine(folder) and then search_new(folder, UID,
        since) answer, for all folders in a few round trips. A folder left out is one the
        server refused: examine() on it raises the reason."""
        ...

    def fetched_with_search(self, folder: str, uids: Sequence[int]) -> bool:
        """Whether fetch_headers_many of this folder alone, after search_many, waits for
        no answer of the server (its headers came with its search)."""
        ...

    def fetch_headers_many(self, wants: Sequence[tuple[str, Sequence[int]]]
                           ) -> Iterator[tuple[str, list[Fetched]]]:
        """What fetch_headers() yields for each (folder, UIDs), in order, in batches (a
        folder's may come in several), the folders' reads overlapping. A folder refused
        raises FolderUnavailable when its turn comes; the folders after it are not read."""
        ...

    def search_ahead(self, folder: str, kind: str) -> None:
        """Ask all_uids(folder) (``kind`` "all") or find_marked(folder) ("marked") with the
        next search_many, in its write: the call that follows soon after takes that answer
        (no round trip of its own). Only a hint: without a search_many, the call asks."""
        ...

    def search_new(self, folder: str, after_uid: int, since: date | None) -> list[int]: ...
    def all_uids(self, folder: str) -> set[int]: ...
    def fetch_headers(self, folder: str, uids: Sequence[int]) -> Iterator[Fetched]: ...
    def fetch_flags(self, folder: str, uids: Sequence[int]) -> dict[int, tuple[str, ...]]: ...
    def changed_flags(self, folder: str, modseq: int) -> dict[int, tuple[str, ...]]: ...
    def fetch_message(self, folder: str, uid: int, limit: int) -> bytes | None: ...
    def fetch_messages(self, folder: str, uids: Sequence[int], limit: int) -> dict[int, bytes]: ...
    def calendar_uids(self, folder: str, uids: Sequence[int]) -> set[int]: ...
    def find_message_id(self, folder: str, message_id: str) -> list[int]: ...
    def find_marked(self, folder: str) -> list[int]: ...
    def append(self, folder: str, data: bytes, flags: Sequence[str], when: datetime) -> int | None: ...
    def delete_own_draft(self, folder: str, uid: int, message_id: str) -> bool: ...
    def mark_own_draft(self, folder: str, uid: int, message_id: str, keyword: str,
                       on: bool = True) -> Mark: ...
    def wait_for_news(self, folders: Sequence[str], seconds: float, stop: Event) -> set[str]:
        """Wait up to ``seconds`` (less once ``stop`` is set) for news: the folders of
        ``folders`` where a message arrived, went or changed flags since the last cycle,
        as far as the store tells (a server without NOTIFY tells of INBOX only). It
        returns at the first news it is told of."""
        ...

    def close(self) -> None: ...
    @property
    def append_limit(self) -> int | None: ...  # the largest APPEND taken (RFC 7889), if told


