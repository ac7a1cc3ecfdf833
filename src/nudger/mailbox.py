"""The one narrow interface between the engine and a mail store, and its in-memory twin.

``ImapMailbox`` (in ``imap.py``) talks to a real server; ``MemoryMailbox`` here backs
the demo and fast engine tests. Both obey the same contract: reads never change a
message, and the only write is APPEND to the Drafts folder (plus removing our own
draft, later).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from email.parser import BytesHeaderParser
from typing import Protocol

from nudger.mailfacts import normalise_message_id


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
    def examine(self, folder: str) -> FolderStatus: ...
    def search_new(self, folder: str, after_uid: int, since: date | None) -> list[int]: ...
    def all_uids(self, folder: str) -> set[int]: ...
    def fetch_headers(self, folder: str, uids: Sequence[int]) -> Iterator[Fetched]: ...
    def fetch_flags(self, folder: str, uids: Sequence[int]) -> dict[int, tuple[str, ...]]: ...
    def changed_flags(self, folder: str, modseq: int) -> dict[int, tuple[str, ...]]: ...
    def fetch_message(self, folder: str, uid: int, limit: int) -> bytes | None: ...
    def fetch_messages(self, folder: str, uids: Sequence[int], limit: int) -> dict[int, bytes]: ...
    def find_message_id(self, folder: str, message_id: str) -> list[int]: ...
    def find_marked(self, folder: str) -> list[int]: ...
    def append(self, folder: str, data: bytes, flags: Sequence[str], when: datetime) -> int | None: ...
    def delete_own_draft(self, folder: str, uid: int, message_id: str) -> bool: ...
    def companion(self) -> Mailbox | None: ...
    def close(self) -> None: ...
    @property
    def append_limit(self) -> int | None: ...  # the largest APPEND taken (RFC 7889), if told


# -- folder discovery ------------------------------------------------------------------------

SENT_NAMES = ("Sent", "Sent Items", "Sent Messages", "Sent Mail", "[Gmail]/Sent Mail",
              "INBOX.Sent", "INBOX/Sent", "Gesendet", "Gesendete Elemente", "Envoyés",
              "Elementos enviados", "Posta inviata", "Verzonden items", "Skickat")
DRAFTS_NAMES = ("Drafts", "[Gmail]/Drafts", "INBOX.Drafts", "INBOX/Drafts", "Draft",
                "Entwürfe", "Brouillons", "Borradores", "Bozze", "Concepten", "Utkast")
TRASH_NAMES = ("Trash", "Deleted Items", "Deleted Messages", "Deleted", "Bin", "[Gmail]/Trash",
               "[Gmail]/Bin", "INBOX.Trash", "INBOX/Trash", "Papierkorb", "Gelöschte Elemente",
               "Corbeille", "Éléments supprimés", "Papelera", "Cestino", "Prullenbak", "Papperskorgen")
_SKIP_NAMES = re.compile(
    r"(^|[./])(trash|deleted( items| messages)?|bin|junk( e-?mail)?|spam|bulk mail|drafts?"
    r"|papierkorb|corbeille|papelera|cestino|prullenbak|outbox|templates)$",
    re.IGNORECASE,
)


@dataclass(frozen=True)
class Layout:
    sent: str
    drafts: str
    watched: tuple[str, ...]  # includes sent
    how: dict[str, str] = field(default_factory=dict, compare=False)  # how each was found
    trash: str | None = None  # searched for our deleted drafts only when the state is new


def discover(
    folders: Sequence[FolderInfo],
    sent: str | None = None,
    drafts: str | None = None,
    watch: Sequence[str] | None = None,
) -> Layout:
    """Find Sent, Drafts and the folders to watch: config, then SPECIAL-USE, then names."""
    from nudger.errors import ServerConfigError

    names = {f.name: f for f in folders}
    how: dict[str, str] = {}

    def pick(given: str | None, flag: str, candidates: Iterable[str], what: str, key: str) -> str:
        found = find(given, flag, candidates, what, key)
        if found is None:
            raise ServerConfigError(
                f"cannot find the {what} folder (no SPECIAL-USE {flag} and no usual name); "
                f"set {key} (folders: {', '.join(sorted(names))})")
        return found

    def find(given: str | None, flag: str, candidates: Iterable[str], what: str,
             key: str) -> str | None:
        if given:
            if given not in names:
                raise ServerConfigError(
                    f"{key}: no folder named {given!r} on the server "
                    f"(folders: {', '.join(sorted(names))})")
            how[what] = "configured"
            return given
        for f in folders:
            if f.has(flag) and f.selectable:
                how[what] = f"SPECIAL-USE {flag}"
                return f.name
        lowered = {n.lower(): n for n in names}
        for candidate in candidates:
            if candidate.lower() in lowered:
                how[what] = "common name"
                return lowered[candidate.lower()]
        return None

    sent_name = pick(sent, "\\Sent", SENT_NAMES, "sent", "sent_folder")
    drafts_name = pick(drafts, "\\Drafts", DRAFTS_NAMES, "drafts", "drafts_folder")
    if watch:
        missing = [w for w in watch if w not in names]
        if missing:
            raise ServerConfigError(f"watch_folders: no folder named {missing[0]!r} on the server")
        watched = list(watch)
        how["watched"] = "configured"
    else:
        every = [f for f in folders if f.has("\\All") and f.selectable]
        if every:
            # Gmail: labels are views of All Mail; reading it (plus Sent) sees everything once.
            watched = [every[0].name]
            how["watched"] = "\\All folder and Sent"
        else:
            watched = [
                f.name for f in folders
                if f.selectable and f.name != drafts_name
                and not any(f.has(x) for x in ("\\Trash", "\\Junk", "\\Drafts"))
                and not _SKIP_NAMES.search(f.name)
            ]  # fmt: skip
            how["watched"] = "every folder but Drafts, Trash and Junk"
    # Sent first: a reply that lost its In-Reply-To is matched against what we sent.
    watched = [sent_name] + [w for w in watched if w != sent_name]
    # No setting for it: a server without a Trash folder just has no deleted drafts to find.
    trash = find(None, "\\Trash", TRASH_NAMES, "trash", "")
    return Layout(sent_name, drafts_name, tuple(watched), how,
                  trash if trash not in (sent_name, drafts_name) else None)


# -- the in-memory twin -------------------------------------------------------------------------


@dataclass
class _Stored:
    data: bytes
    flags: tuple[str, ...]
    internaldate: datetime


@dataclass
class _Folder:
    flags: tuple[str, ...]
    uidvalidity: int = 1
    uidnext: int = 1
    messages: dict[int, _Stored] = field(default_factory=dict)


class MemoryMailbox:
    """A mailbox in memory, with IMAP's UID semantics. Used by the demo and tests."""

    def __init__(self, folders: dict[str, tuple[str, ...]] | None = None):
        default = {"INBOX": (), "Sent": ("\\Sent",), "Drafts": ("\\Drafts",),
                   "Archive": ("\\Archive",), "Trash": ("\\Trash",), "Junk": ("\\Junk",)}
        self.folders = {name: _Folder(flags) for name, flags in (folders or default).items()}
        self.appends = 0
        self.append_limit: int | None = None  # no limit, unless a test sets one

    def add(self, folder: str, data: bytes, flags: Sequence[str] = (), when: datetime | None = None) -> int:
        box = self.folders[folder]
        uid = box.uidnext
        box.uidnext += 1
        box.messages[uid] = _Stored(data, tuple(flags), when or datetime.now(UTC))
        return uid

    def messages(self, folder: str) -> dict[int, bytes]:
        return {uid: m.data for uid, m in self.folders[folder].messages.items()}

    # Mailbox protocol
    def list_folders(self) -> list[FolderInfo]:
        return [FolderInfo(name, f.flags) for name, f in self.folders.items()]

    def status(self, folder: str) -> FolderStatus:
        box = self.folders[folder]
        return FolderStatus(box.uidvalidity, box.uidnext, None, len(box.messages))

    def examine(self, folder: str) -> FolderStatus:
        return self.status(folder)

    def search_new(self, folder: str, after_uid: int, since: date | None) -> list[int]:
        return sorted(
            uid for uid, m in self.folders[folder].messages.items()
            if uid > after_uid and (since is None or m.internaldate.date() >= since)
        )  # fmt: skip

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
        return {}  # no CONDSTORE here: flag changes are checked when they matter

    def fetch_message(self, folder: str, uid: int, limit: int) -> bytes | None:
        return self.fetch_messages(folder, [uid], limit).get(uid)

    def fetch_messages(self, folder: str, uids: Sequence[int], limit: int) -> dict[int, bytes]:
        box = self.folders[folder].messages
        return {uid: box[uid].data[:limit] for uid in uids if uid in box}

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
            del self.folders[folder].messages[uid]
            return True
        return False

    def companion(self) -> Mailbox | None:
        return None  # nothing to gain from a second connection in memory

    def close(self) -> None:
        pass
