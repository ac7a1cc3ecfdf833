"""What every step of one account's cycle works with, built once per cycle."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

from nudger.config.model import Account, Config
from nudger.cycle.state import State
from nudger.mail.layout import Layout
from nudger.mail.mailbox import FolderStatus, Mailbox


@dataclass(frozen=True)
class Cycle:
    """One cycle of one account: its settings, its server, its state, the folders found
    on the server this cycle, and the instant it runs at. ``dry_run``: the state is a
    scratch copy and nothing is written to the server."""

    config: Config
    account: Account
    mailbox: Mailbox
    state: State
    layout: Layout
    now: datetime
    dry_run: bool = False
    sender: Any = None  # cycle.send.Sender: the account's SMTP server, when it may send
    # Statuses asked for all known folders at once (status_many), each used once.
    statuses: dict[str, FolderStatus] = field(default_factory=dict)
    # When this cycle's sync read each message's headers and flags (time.monotonic()),
    # by (folder, UID).
    read: dict[tuple[str, int], float] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return self.account.name

    @property
    def since(self) -> date:
        """The first day of the look-back window: what a first sync reads."""
        return (self.now - self.account.lookback).date()

    def check_all(self, folders: list[str]) -> None:
        """Ask the status of every folder a cycle will check, in one round trip (those
        not known already: asked with the listing, app/connect.py)."""
        if missing := [f for f in folders if f not in self.statuses]:
            self.statuses.update(self.mailbox.status_many(missing))

    def status(self, folder: str) -> FolderStatus:
        """The folder's status: the one asked with the others, else a STATUS of its own
        (which names the reason when the server refuses it)."""
        found = self.statuses.pop(folder, None)
        return found if found is not None else self.mailbox.status(folder)
