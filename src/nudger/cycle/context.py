"""What every step of one account's cycle works with, built once per cycle."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from nudger.config.model import Account, Config
from nudger.cycle.state import State
from nudger.mail.layout import Layout
from nudger.mail.mailbox import Mailbox


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

    @property
    def name(self) -> str:
        return self.account.name

    @property
    def since(self) -> date:
        """The first day of the look-back window: what a first sync reads."""
        return (self.now - self.account.lookback).date()
