"""The ledger of the follow-ups we drafted, and the Message-ID each one carries.

Pure: entries in, lookups out (the state stores them). A follow-up's Message-ID is
derived from the account, the message it follows up and the stage, so a second
attempt, or a ledger rebuilt from the server, finds the first; it is built and read
back only here.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from nudger.core.addresses import ascii_domain


class Fate(StrEnum):
    """What became of a draft we wrote (the values are stored: never change one)."""

    DRAFTED = "drafted"  # in Drafts as we wrote it
    EDITED = "edited"  # the user changed it: never touched again by us
    DISMISSED = "dismissed"  # deleted unsent: the thread is not nudged again
    SENT = "sent"  # it went out; the next stage is timed from it
    WITHDRAWN = "withdrawn"  # a reply came before the user touched it; we removed it
    APPENDING = "appending"  # recorded before the APPEND; the next cycle finds how it ended


DRAFTED, EDITED, DISMISSED = Fate.DRAFTED, Fate.EDITED, Fate.DISMISSED
SENT, WITHDRAWN, APPENDING = Fate.SENT, Fate.WITHDRAWN, Fate.APPENDING
PENDING = (DRAFTED, EDITED)  # still in Drafts, waiting for the user
CLOCK_SLACK = timedelta(minutes=5)  # a sent copy's Date may be a little before our APPEND


@dataclass(frozen=True)
class LedgerEntry:
    """One draft we wrote: which thread, stage and message it follows up, and its fate."""

    nudge_id: str
    account: str
    outbound_id: str
    thread_key: str
    stage: int
    fate: Fate
    appended_at: datetime
    fate_at: datetime | None = None
    folder: str = ""
    uid: int | None = None
    digest: str = ""  # sha256 of what we appended: "untouched" means still exactly this
    text_digest: str = ""  # of its text as a person reads it (``drafttext``): "not edited"
    # Written by this state's own APPEND, and that copy kept: the only draft nudger may send.
    # Never for one adopted from the server (state lost, another instance's): those stay.
    own: bool = False


class Ledger:
    """One account's ledger, indexed both ways a decision asks it: by the draft's
    Message-ID, and by the message it follows up (so a thread finds its drafts without
    a scan of every draft ever written)."""

    def __init__(self, entries: Iterable[LedgerEntry] = ()):
        self.entries = {e.nudge_id: e for e in entries}
        self.by_outbound: dict[str, list[LedgerEntry]] = {}
        for e in self.entries.values():
            self.by_outbound.setdefault(e.outbound_id, []).append(e)

    def get(self, nudge_id: str) -> LedgerEntry | None:
        return self.entries.get(nudge_id)

    def for_messages(self, ids: Iterable[str]) -> list[LedgerEntry]:
        if not self.by_outbound:  # (a first cycle's: nothing to look up)
            return []
        return [e for mid in ids for e in self.by_outbound.get(mid, ())]


# -- the follow-up's Message-ID ------------------------------------------------------------

NUDGE_ID_PREFIX = "<nudger."
_PLAIN_DOMAIN = re.compile(r"[A-Za-z0-9_-]+(?:\.[A-Za-z0-9_-]+)*")
_NUDGE_ID = re.compile(r"<nudger\.[0-9a-f]+\.s(\d+)@")


def nudge_message_id(account: str, outbound_id: str, stage: int, domain: str) -> str:
    """Our follow-up's Message-ID: ``<nudger.DIGEST.sSTAGE@DOMAIN>``, derived, so that a
    second attempt finds the first (stored in the state: the format never changes)."""
    digest = hashlib.sha256(f"{account}\0{outbound_id}\0{stage}".encode()).hexdigest()[:32]
    # Addresses are kept with their domain in Unicode (core.addresses): the id takes its
    # A-labels, as written in the headers it came from (an id once stored never changes).
    domain = ascii_domain(domain) or ""
    if len(domain) > 253 or not _PLAIN_DOMAIN.fullmatch(domain):
        domain = "nudger.invalid"  # a msg-id is plain ASCII, never encoded: nothing odd in it
    return f"{NUDGE_ID_PREFIX}{digest}.s{stage}@{domain}>"


def parse_nudge_id(message_id: str) -> int | None:
    """The stage a Message-ID of ours names, None when it is not in our format. Only the
    shape: whether it is really ours, ``nudge_message_id`` recomputed says."""
    found = _NUDGE_ID.match(message_id)
    return int(found.group(1)) if found else None
