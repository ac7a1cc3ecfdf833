"""Which folder is Sent, Drafts, Trash, and which are watched: configuration first, then
SPECIAL-USE (RFC 6154), then the usual names."""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from nudger.errors import ServerConfigError
from nudger.mail.mailbox import FolderInfo, FolderStatus

if TYPE_CHECKING:
    from nudger.config.model import Account
    from nudger.mail.mailbox import Mailbox

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

    @property
    def checked(self) -> list[str]:
        """The folders whose status a cycle asks first: the watched ones and Drafts."""
        return [*self.watched, self.drafts]


# The layout found on the server, and the statuses of the folders a cycle checks: what a
# cycle asks first, when asked already (app/connect.py).
HeadStart = tuple[Layout, dict[str, FolderStatus]]


def layout_of(mailbox: Mailbox, account: Account) -> Layout:
    """The account's folders as listed now, the configuration's names first."""
    return discover(mailbox.list_folders(), account.sent_folder, account.drafts_folder,
                    account.watch_folders)


def head_start(mailbox: Mailbox, account: Account) -> HeadStart:
    """What a cycle asks first (cycle.py), asked ahead: the layout, and its folders' statuses."""
    layout = layout_of(mailbox, account)
    return layout, mailbox.status_many(layout.checked)


def discover(
    folders: Sequence[FolderInfo],
    sent: str | None = None,
    drafts: str | None = None,
    watch: Sequence[str] | None = None,
) -> Layout:
    """Find Sent, Drafts and the folders to watch: config, then SPECIAL-USE, then names."""
    how: dict[str, str] = {}
    sent_name = _pick(folders, how, sent, "\\Sent", SENT_NAMES, "sent", "sent_folder")
    drafts_name = _pick(folders, how, drafts, "\\Drafts", DRAFTS_NAMES, "drafts", "drafts_folder")
    watched = _watched(folders, how, watch, drafts_name)
    # Sent first: a reply that lost its In-Reply-To is matched against what we sent.
    watched = [sent_name] + [w for w in watched if w != sent_name]
    # No setting for it: a server without a Trash folder just has no deleted drafts to find.
    trash = _find(folders, how, None, "\\Trash", TRASH_NAMES, "trash", "")
    return Layout(sent_name, drafts_name, tuple(watched), how,
                  trash if trash not in (sent_name, drafts_name) else None)


def _folder_list(folders: Sequence[FolderInfo]) -> str:
    return ", ".join(sorted({f.name for f in folders}))


def _pick(folders: Sequence[FolderInfo], how: dict[str, str], given: str | None, flag: str,
          candidates: Iterable[str], what: str, key: str) -> str:
    found = _find(folders, how, given, flag, candidates, what, key)
    if found is None:
        raise ServerConfigError(
            f"cannot find the {what} folder (no SPECIAL-USE {flag} and no usual name); "
            f"set {key} (folders: {_folder_list(folders)})")
    return found


def _find(folders: Sequence[FolderInfo], how: dict[str, str], given: str | None, flag: str,
          candidates: Iterable[str], what: str, key: str) -> str | None:
    """The folder the setting ``key`` names, else the one flagged ``flag``, else the
    first of ``candidates`` present (any case); ``how[what]`` says which it was."""
    names = dict.fromkeys(f.name for f in folders)  # in the server's order
    if given:
        if given not in names:
            raise ServerConfigError(f"{key}: no folder named {given!r} on the server "
                                    f"(folders: {_folder_list(folders)})")
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


def _watched(folders: Sequence[FolderInfo], how: dict[str, str], watch: Sequence[str] | None,
             drafts: str) -> list[str]:
    if watch:
        missing = [w for w in watch if w not in {f.name for f in folders}]
        if missing:
            raise ServerConfigError(f"watch_folders: no folder named {missing[0]!r} on the server")
        how["watched"] = "configured"
        return list(watch)
    every = [f for f in folders if f.has("\\All") and f.selectable]
    if every:
        # Gmail: labels are views of All Mail; reading it (plus Sent) sees everything once.
        how["watched"] = "\\All folder and Sent"
        return [every[0].name]
    how["watched"] = "every folder but Drafts, Trash and Junk"
    return [
        f.name for f in folders
        if f.selectable and f.name != drafts
        and not any(f.has(x) for x in ("\\Trash", "\\Junk", "\\Drafts"))
        and not _SKIP_NAMES.search(f.name)
    ]  # fmt: skip
