"""The history of follow-ups the state keeps for ``stats``: what became of each one and
when its thread was answered, a year long (the mail window is much shorter). Part of
``State``, whose connection it writes in the caller's transaction."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime

from nudger.core.ledger import LedgerEntry
from nudger.core.stats import NudgeOutcome
from nudger.cycle.statefile import tables

# The fates whose time the history keeps, and the column it keeps it in.
_OUTCOMES = {"sent": "sent_at", "dismissed": "dismissed_at", "withdrawn": "withdrawn_at"}


class History:
    conn: sqlite3.Connection

    def note_outcome(self, nudge_id: str, fate: str, when: datetime) -> None:
        """The first time each outcome was seen (a fate the history does not keep: nothing)."""
        if fate in _OUTCOMES:
            column = _OUTCOMES[fate]
            self.conn.execute(f"UPDATE history SET {column}=? WHERE nudge_id=? AND {column} IS NULL",
                              (when.astimezone(UTC).isoformat(), nudge_id))

    def note_drafted(self, entry: LedgerEntry, rule: str) -> None:
        """A follow-up written: its thread is that of the follow-up it follows, if any."""
        self.conn.execute(
            "INSERT OR IGNORE INTO history (nudge_id, account, outbound_id, thread_id, rule, stage, "
            "drafted_at) VALUES (?, ?, ?, COALESCE((SELECT thread_id FROM history WHERE "
            "nudge_id=?), ?), ?, ?, ?)",
            (entry.nudge_id, entry.account, entry.outbound_id, entry.outbound_id,
             entry.outbound_id, rule, entry.stage, entry.appended_at.astimezone(UTC).isoformat()))

    def note_answered(self, answered: dict[str, datetime]) -> list[str]:
        """The time each follow-up's thread was answered (the reply's date); returns the
        follow-ups for which this is news."""
        news = []
        for nudge_id, when in answered.items():
            done = self.conn.execute(
                "UPDATE history SET answered_at=? WHERE nudge_id=? AND answered_at IS NULL",
                (when.astimezone(UTC).isoformat(), nudge_id))
            if done.rowcount:
                news.append(nudge_id)
        return news

    def history(self, account: str) -> list[NudgeOutcome]:
        if "history" not in tables(self.conn):  # an older file, read as it is
            return []
        rows = self.conn.execute(
            "SELECT nudge_id, account, thread_id, rule, stage, drafted_at, sent_at, dismissed_at, "
            "withdrawn_at, answered_at FROM history WHERE account=? ORDER BY drafted_at", (account,))
        return [NudgeOutcome(*row[:5], *(datetime.fromisoformat(t) if t else None for t in row[5:]))
                for row in rows]

    def prune_history(self, account: str, before: datetime) -> int:
        """Forget the threads whose latest follow-up was drafted before ``before``, whole."""
        return self.conn.execute(
            "DELETE FROM history WHERE account=? AND thread_id IN (SELECT thread_id FROM history "
            "WHERE account=? GROUP BY thread_id HAVING max(drafted_at) < ?)",
            (account, account, before.astimezone(UTC).isoformat())).rowcount

