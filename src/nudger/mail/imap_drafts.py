"""nudger's only writes on an IMAP connection, both to its own drafts in Drafts: removing
one (by UID, with UID EXPUNGE) and marking one as being sent. Each checks first that the
UID still holds nudger's Message-ID. Mixed into ``ImapMailbox``, whose connection it uses."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from imapclient import IMAPClient

from nudger.mail.mailbox import Mark
from nudger.mail.notify import Told


class OwnDrafts:
    """The writes of one connection; the rest of it is ``ImapMailbox``'s."""

    client: IMAPClient
    capabilities: set[str]
    _told: Told | None
    _selected: str | None
    _opening: str | None
    _ahead: dict[tuple[str, str], tuple[list[int], float]]  # searches asked ahead (imap_many)

    def _call(self, doing: str, fn: Any, *args: Any, folder: str | None = None, **kwargs: Any) -> Any:
        raise NotImplementedError

    def _settle(self, keep_idle: bool = False) -> None:
        raise NotImplementedError

    def _search(self, folder: str, criteria: list[Any]) -> list[int]:
        raise NotImplementedError

    def delete_own_draft(self, folder: str, uid: int, message_id: str) -> bool:
        """The one deletion nudger ever does: its own draft, by UID, with UID EXPUNGE.

        Never a bare EXPUNGE, which would also remove anything else the user marked
        deleted; without UIDPLUS we leave the draft alone.
        """
        if "UIDPLUS" not in self.capabilities:
            return False
        with self._writable(folder):
            # Check the UID still holds our Message-ID: UIDs are reused after UIDVALIDITY changes.
            if not self._holds(folder, uid, message_id):
                return False
            self._call("removing our draft", self.client.add_flags, [uid], [b"\\Deleted"], silent=True)
            self._call("removing our draft", self.client.uid_expunge, [uid])
            return True

    def mark_own_draft(self, folder: str, uid: int, message_id: str, keyword: str,
                       on: bool = True) -> Mark:
        """Set (or take off) ``keyword`` on nudger's own draft (by UID, still holding
        ``message_id``: else GONE); NOT_KEPT where the folder keeps no such keyword
        (PERMANENTFLAGS lacks it and \\*)."""
        with self._writable(folder) as selected:
            if not self._holds(folder, uid, message_id):
                return Mark.GONE
            kept = {bytes(f).lower() for f in selected.get(b"PERMANENTFLAGS", ())}
            if not kept & {b"\\*", keyword.lower().encode()}:
                return Mark.NOT_KEPT
            store = self.client.add_flags if on else self.client.remove_flags
            self._call("marking our draft", store, [uid], [keyword.encode()], silent=True)
            return Mark.SET

    def _holds(self, folder: str, uid: int, message_id: str) -> bool:
        return uid in self._search(folder, ["UID", str(uid), "HEADER", "Message-ID", message_id])

    @contextmanager
    def _writable(self, folder: str) -> Iterator[dict[bytes, Any]]:
        """``folder`` SELECTed (not examined) for one of nudger's own writes, then closed."""
        self._settle()  # (first: what is still to be read of a search_many refills _ahead)
        self._ahead.clear()  # what was asked ahead is older than this change
        self._selected = self._opening = None
        if self._told is not None:
            self._told.forget(folder)
        selected = self._call(f"opening {folder!r}", self.client.select_folder, folder, readonly=False)
        try:
            yield selected
        finally:
            self._close_writable(folder)
            if self._told is not None:
                self._told.forget(folder)  # told of as the open folder meanwhile, if at all

    def _close_writable(self, folder: str) -> None:
        """UNSELECT; without it, EXAMINE of the same folder, which closes the SELECT with
        no expunge (RFC 3501 6.4.2). Never CLOSE: it would expunge the user's \\Deleted mail."""
        if "UNSELECT" in self.capabilities:
            self._call(f"closing {folder!r}", self.client.unselect_folder)
            return
        self._call(f"closing {folder!r}", self.client.select_folder, folder, readonly=True)
        self._selected = folder  # (open again, read-only, as after any EXAMINE)
