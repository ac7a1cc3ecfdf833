"""The journal of what nudger sends (all its SQL): one row per message, its step
written, in its own transaction, before the step is taken (core.sending.Step)."""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from datetime import datetime

from nudger.core.sending import Step
from nudger.cycle.state import State

NUDGE, DIGEST = "nudge", "digest"  # what a row is about


@dataclass(frozen=True)
class Row:
    account: str
    message_id: str
    kind: str
    subject: str
    step: Step
    at: datetime
    detail: str = ""
    uid: int | None = None  # the draft's UID in Drafts (a follow-up)
    # The bytes handed to the server (written with "smtp-started"; kept by later writes
    # that carry none): its Sent copy even when the draft is gone. Read by ``handed``.
    data: bytes | None = None


class Outbox:
    def __init__(self, state: State):
        self.state = state

    def _select(self, where: str, args: tuple[object, ...]) -> list[Row]:
        try:
            rows = self.state.conn.execute(
                "SELECT account, message_id, kind, subject, step, at, detail, uid FROM outbox "
                f"WHERE {where} ORDER BY at", args).fetchall()
        except sqlite3.OperationalError as exc:
            if "no such table" in str(exc):
                return []  # a state of schema 2, read as it is by status or explain
            raise
        return [Row(r[0], r[1], r[2], r[3], Step(r[4]), datetime.fromisoformat(r[5]), r[6], r[7])
                for r in rows]

    def rows(self, account: str, kind: str | None = None) -> list[Row]:
        if kind is None:
            return self._select("account=?", (account,))
        return self._select("account=? AND kind=?", (account, kind))

    def get(self, account: str, message_id: str) -> Row | None:
        found = self._select("account=? AND message_id=?", (account, message_id))
        return found[0] if found else None

    def steps(self, account: str) -> dict[str, Step]:
        return {r.message_id: r.step for r in self.rows(account, NUDGE)}

    def write(self, row: Row) -> None:
        """The step in its own transaction: on disk before the step is taken."""
        with self.state.transaction():
            self.state.conn.execute(
                "INSERT INTO outbox (account, message_id, kind, subject, step, at, detail, uid, data) "
                "VALUES (?,?,?,?,?,?,?,?,?) ON CONFLICT (account, message_id) DO UPDATE SET "
                "kind=excluded.kind, subject=excluded.subject, step=excluded.step, at=excluded.at, "
                "detail=excluded.detail, uid=excluded.uid, data=CASE WHEN excluded.step='done' THEN NULL "
                "ELSE coalesce(excluded.data, outbox.data) END",  # filed: its bytes are not needed
                (row.account, row.message_id, row.kind, row.subject, row.step, row.at.isoformat(),
                 row.detail, row.uid, row.data))

    def handed(self, account: str, message_id: str) -> bytes | None:
        """The bytes handed to the server for this message, if the journal has them."""
        found = self.state.conn.execute("SELECT data FROM outbox WHERE account=? AND message_id=?",
                                        (account, message_id)).fetchone()
        return bytes(found[0]) if found is not None and found[0] is not None else None

    def prune(self, account: str, before: datetime) -> None:
        """Forget follow-ups finished before ``before`` (the ledger's SENT fate, not this
        row, is what keeps them from being sent again); in the caller's transaction."""
        self.state.conn.execute("DELETE FROM outbox WHERE account=? AND kind=? AND step=? AND at < ?",
                                (account, NUDGE, Step.DONE, before.isoformat()))

    def drop(self, account: str, message_id: str) -> None:
        """Forget a send that never began: nothing went out, it may be tried again."""
        with self.state.transaction():
            self.state.conn.execute("DELETE FROM outbox WHERE account=? AND message_id=?",
                                    (account, message_id))
