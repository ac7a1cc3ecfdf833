"""What nudger remembers between cycles, in one SQLite file in ``state_dir``.

Sync checkpoints per folder, the header records read so far, and the ledger of the
drafts we wrote and their fate. Every change is written in a transaction, so a kill
at any instant leaves the file consistent.
"""

from __future__ import annotations

import json
import logging
import sqlite3
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path

from nudger.core.ledger import LedgerEntry
from nudger.core.record import MessageRecord, record_key
from nudger.cycle.history import History
from nudger.cycle.kept import Kept, hold, seed_groups
from nudger.cycle.rows import Made, made_row
from nudger.cycle.statefile import (
    FILE_NAME,
    close,
    columns,
    connect,
    inode,
    open_for_reading,
    open_for_run,
    prepare,
    set_aside,
)
from nudger.errors import StateError

log = logging.getLogger(__name__)


def _load(row: str) -> MessageRecord:
    return MessageRecord.from_row(json.loads(row))


@dataclass(frozen=True)
class Checkpoint:
    uidvalidity: int
    uidnext: int
    last_uid: int
    highestmodseq: int | None
    messages: int | None = None


@dataclass
class _Writes:
    """A sync's writes of one account, in order: written as they come (``write``), or a
    first sync's, held back until it ends (``State.deferring``) and written at once."""

    account: str
    rows: list[tuple[object, ...]] = field(default_factory=list)
    links: list[tuple[str, str, str]] = field(default_factory=list)
    calendar: list[tuple[str, str, int, str]] = field(default_factory=list)
    checkpoints: list[tuple[object, ...]] = field(default_factory=list)

    def write(self, conn: sqlite3.Connection) -> None:
        for sql, rows in (("INSERT OR REPLACE INTO messages VALUES (?,?,?,?,?,?,?,?)", self.rows),
                          ("INSERT OR IGNORE INTO links VALUES (?,?,?)", self.links),
                          ("INSERT OR REPLACE INTO calendar VALUES (?,?,?,?)", self.calendar),
                          ("INSERT OR REPLACE INTO folders VALUES (?,?,?,?,?,?,?,?)", self.checkpoints)):
            if rows:
                conn.executemany(sql, rows)

    def add(self, more: _Writes) -> None:
        self.rows += more.rows
        self.links += more.links
        self.calendar += more.calendar
        self.checkpoints += more.checkpoints

    def mark(self) -> tuple[int, int, int, int]:
        return len(self.rows), len(self.links), len(self.calendar), len(self.checkpoints)

    def undo(self, mark: tuple[int, int, int, int]) -> None:
        """Forget what was held since ``mark`` (its transaction failed)."""
        del self.rows[mark[0]:], self.links[mark[1]:], self.calendar[mark[2]:]
        del self.checkpoints[mark[3]:]


class State(History):
    def __init__(self, conn: sqlite3.Connection, path: Path | None = None, writes: bool = False):
        """``conn``: a connection to a prepared file (``statefile``), or to memory;
        ``writes``: one of ``statefile.connect`` (closed through it)."""
        self._conn, self.path, self.writes = conn, path, writes
        self.inode = inode(path) if path is not None else None  # which file we opened
        self.kept: Kept | None = None  # a first cycle's records, in memory (``keeping_records``)
        self._release: Callable[[], None] | None = None  # gives the keeper's place back
        self.held: _Writes | None = None  # a first sync's writes, not in the file yet (``deferring``)
        self._in_held = False  # inside a transaction() whose writes are held
        self._held_begun = False  # ...in which the held writes were written: its end commits

    @property
    def conn(self) -> sqlite3.Connection:
        """The file's connection; the writes a first sync holds back are written before
        anything else reads or writes it (``deferring``)."""
        if self.held is not None:
            self._settle()
        return self._conn

    @conn.setter
    def conn(self, conn: sqlite3.Connection) -> None:
        self._conn = conn

    @classmethod
    def open(cls, state_dir: Path, rebuild: bool = True) -> State:
        """The state for a run: written, and a damaged file is set aside and rebuilt
        (unless not ``rebuild``: a dry run changes nothing, so it stops there)."""
        return cls(open_for_run(state_dir, rebuild), state_dir / FILE_NAME, writes=True)

    @classmethod
    def open_for_reading(cls, state_dir: Path) -> State:
        """The state for ``status``/``explain``: never written, never renamed."""
        return cls(open_for_reading(state_dir), state_dir / FILE_NAME)

    def rebuild(self, problem: StateError) -> None:
        """Set a file found damaged mid-cycle aside and start again from an empty state.

        Another account's worker may have done so already (the daemon has one connection
        per account): then the file at the path is a new one, and only needs opening.
        """
        assert self.path is not None
        self.held = None  # (not into a damaged file: the new one is synced afresh)
        self._in_held = self._held_begun = False
        self.stop_keeping()
        close(self._conn, self.path, sound=False)
        if inode(self.path) == self.inode:
            aside = set_aside(self.path)
            log.warning("%s; set it aside as %s and rebuilding the state from the server",
                        problem, aside.name)
        self.conn = connect(self.path)
        self.inode = inode(self.path)

    @classmethod
    def memory(cls) -> State:
        conn = sqlite3.connect(":memory:", isolation_level=None)
        prepare(conn, None, readonly=False)
        return cls(conn)

    def scratch_copy(self) -> State:
        """An in-memory copy, for --dry-run: it syncs and decides but writes nothing here."""
        mem = sqlite3.connect(":memory:", isolation_level=None)
        self.conn.backup(mem)
        prepare(mem, None, readonly=False)
        return State(mem)

    @contextmanager
    def transaction(self) -> Iterator[None]:
        held = self.held
        if held is not None:  # (its writes are held, and undone here if it fails)
            yield from self._held_transaction(held)
            return
        self.conn.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            self.stop_keeping()  # (what it kept of the writes undone is not in the file)
            self.conn.execute("ROLLBACK")
            raise
        self.conn.execute("COMMIT")

    def _held_transaction(self, held: _Writes) -> Iterator[None]:
        mark, self._in_held = held.mark(), True
        try:
            yield
        except BaseException:
            self._in_held = False
            if self.held is held:
                held.undo(mark)
            elif self._held_begun:  # (written meanwhile, in a transaction left open for it)
                self._held_begun = False
                self._conn.execute("ROLLBACK")
            self.stop_keeping()  # (its records kept are not all in the file; the rest is written)
            raise
        self._in_held = False
        if self._held_begun:
            self._held_begun = False
            self._conn.execute("COMMIT")

    @contextmanager
    def deferring(self, account: str) -> Iterator[None]:
        """While inside, the records and checkpoints a first cycle's sync stores (its
        records kept: ``keeping_records``) are held back, and written once, as it ends, in
        one transaction: written a chunk at a time, they held up the read of the next
        chunk (0.34 s of the heavy account's sync; 0.22 s in one go). Anything else that
        reads or writes the file first has them written before it (``conn``); so does the
        end of the keeping, over its cap. The sync's queries of the user's stored messages
        are answered from the records kept. A sync that fails still writes what it held
        (but the failed chunk's); a kill loses it all, and the next cycle reads it again."""
        if self._kept(account) is None or self.held is not None:
            yield
            return
        self.held = _Writes(account)
        try:
            yield
        finally:
            self._settle()

    def _settle(self) -> None:
        """Write the held writes, in one transaction (inside a transaction of the sync's:
        left open for the rest of it, which ends it)."""
        held, self.held = self.held, None
        if held is None:
            return
        conn = self._conn
        conn.execute("BEGIN IMMEDIATE")
        try:
            held.write(conn)
        except BaseException:
            conn.execute("ROLLBACK")
            self._in_held = False
            self.stop_keeping()
            raise
        if self._in_held:
            self._held_begun = True
        else:
            conn.execute("COMMIT")

    def close(self) -> None:
        close(self.conn, self.path if self.writes else None)

    # -- folders and records -----------------------------------------------------------------

    def checkpoint(self, account: str, folder: str) -> Checkpoint | None:
        held = self.held
        if held is not None and held.account == account:  # (the latest held, else the file's)
            mine = [cp for cp in held.checkpoints if cp[1] == folder]
            if mine:
                return Checkpoint(*mine[-1][2:7])  # type: ignore[arg-type]
        row = self._conn.execute(
            "SELECT uidvalidity, uidnext, last_uid, highestmodseq, messages FROM folders "
            "WHERE account=? AND folder=?", (account, folder)).fetchone()
        return Checkpoint(*row) if row else None

    def save_checkpoint(self, account: str, folder: str, cp: Checkpoint, now: datetime) -> None:
        self._store(_Writes(account, checkpoints=[(
            account, folder, cp.uidvalidity, cp.uidnext, cp.last_uid, cp.highestmodseq,
            cp.messages, now.isoformat())]))  # (held: after its folder's records, as they are)

    def _store(self, writes: _Writes) -> None:
        """Write them, or hold them with the first sync's of their account (``deferring``)."""
        if self.held is not None and self.held.account == writes.account:
            self.held.add(writes)
        else:
            writes.write(self.conn)

    @contextmanager
    def keeping_records(self, account: str) -> Iterator[None]:
        """While inside, an account with no stored mail yet (a first cycle) keeps what it
        stores in memory too, and ``linked_groups`` reads it there (see ``kept``)."""
        empty = not any(self.conn.execute(
            f"SELECT 1 FROM {table} WHERE account=? LIMIT 1", (account,)).fetchone()
            for table in ("messages", "links"))
        self._release = hold() if empty else None
        self.kept = Kept(account) if self._release else None
        try:
            yield
        finally:
            self.stop_keeping()

    def stop_keeping(self) -> None:
        """The records kept are let go (the rest of the cycle reads the file, so the writes
        held back are written first)."""
        self._settle()
        self.kept = None
        release, self._release = self._release, None
        if release is not None:
            release()

    def _kept(self, account: str) -> Kept | None:
        return self.kept if self.kept is not None and self.kept.account == account else None

    def forget_folder(self, account: str, folder: str) -> None:
        if kept := self._kept(account):
            kept.forget(folder)
        self.conn.execute("DELETE FROM messages WHERE account=? AND folder=?", (account, folder))
        self.conn.execute("DELETE FROM folders WHERE account=? AND folder=?", (account, folder))

    def put_records(self, account: str, records: Iterable[MessageRecord], made: Made | None = None) -> None:
        """Store the records (``made``: rows made already for some of them, rows.py)."""
        writes = _Writes(account)
        records_list = list(records)
        if kept := self._kept(account):
            self.kept = None  # (kept again once the file has them: a failed write ends it)
        for r in records_list:
            key, sender, date, topic, text, parents = made_row(made, r)
            writes.rows.append((account, r.folder, r.uid, key, sender, date, topic, text))
            writes.links += [(account, key, p) for p in parents]
        writes.calendar = [(account, r.folder, r.uid, json.loads(r.calendar).get("uid", ""))
                           for r in records_list if r.calendar]
        self._store(writes)  # (held only while kept: the end of the keeping writes them)
        if kept is not None:
            if kept.put(records_list, writes.links):
                self.kept = kept
            else:  # (over the cap: the file is read, and the collector is itself again)
                self.stop_keeping()

    def calendar_records(self, account: str, folders: Iterable[str]) -> list[MessageRecord]:
        """The calendar messages (invitations, answers) stored in ``folders``."""
        folders = tuple(folders)
        marks = ",".join("?" * len(folders))
        try:
            rows = self.conn.execute(
                "SELECT m.record FROM calendar c JOIN messages m ON m.account=c.account AND "
                f"m.folder=c.folder AND m.uid=c.uid WHERE c.account=? AND c.folder IN ({marks})",
                (account, *folders)).fetchall()
        except sqlite3.OperationalError:  # a state of schema 2 opened for reading: none yet
            return []
        return [_load(rec) for (rec,) in rows]

    def drop_records(self, account: str, folder: str, uids: Iterable[int]) -> None:
        # Links stay: they describe messages, not copies, and a stale one only widens a search.
        uids = list(uids)
        if kept := self._kept(account):
            kept.drop(folder, uids)
        self.conn.executemany(
            "DELETE FROM messages WHERE account=? AND folder=? AND uid=?",
            [(account, folder, uid) for uid in uids])

    def set_keywords(self, account: str, folder: str, flags: dict[int, tuple[str, ...]]) -> list[str]:
        """Update the flags of known messages; returns the keys of those that changed."""
        changed = []
        for uid, keywords in flags.items():
            row = self.conn.execute("SELECT record FROM messages WHERE account=? AND folder=? AND uid=?",
                                    (account, folder, uid)).fetchone()
            if row is None:
                continue
            record = _load(row[0])
            if tuple(sorted(record.keywords)) != tuple(sorted(keywords)):
                record = replace(record, keywords=tuple(keywords))
                self.put_records(account, [record])
                changed.append(record_key(record))
        return changed

    def thread_ids(self, account: str, seeds: Iterable[str], limit: int = 5000) -> set[str]:
        """Every message id linked to the seeds, walking the links both ways."""
        seen = set(seeds)
        frontier = list(seen)
        while frontier and len(seen) < limit:
            batch, frontier = frontier[:400], frontier[400:]
            marks = ",".join("?" * len(batch))
            found = self.conn.execute(
                f"SELECT parent FROM links WHERE account=? AND child IN ({marks}) "
                f"UNION SELECT child FROM links WHERE account=? AND parent IN ({marks})",
                (account, *batch, account, *batch))
            for (other,) in found:
                if other not in seen:
                    seen.add(other)
                    frontier.append(other)
        return seen

    def records_for(self, account: str, ids: Iterable[str], folders: Iterable[str]) -> list[MessageRecord]:
        wanted = list(ids)
        allowed = set(folders)
        result = []
        for start in range(0, len(wanted), 400):
            batch = wanted[start : start + 400]
            rows = self.conn.execute(
                f"SELECT folder, record FROM messages WHERE account=? AND message_id IN "
                f"({','.join('?' * len(batch))})", (account, *batch))
            result += [_load(rec) for folder, rec in rows if folder in allowed]
        return result

    def linked_groups(self, account: str, seeds: Iterable[str],
                      folders: Iterable[str]) -> Iterator[list[MessageRecord]]:
        """The records linked to the seeds, one connected group at a time.

        For many seeds at once (a first cycle, ``status``): every link is read in one query
        and grouped here, then the records are read a few hundred at a time, whole groups
        per query -- one walk per seed would cost a few queries each. Memory: the links
        of the window. A first cycle's records, kept in memory, are not read back at all.
        """
        if kept := self._kept(account):
            yield from kept.groups(seeds, folders)
            return
        links = self.conn.execute("SELECT child, parent FROM links WHERE account=?", (account,))
        # (In the index's order: by Message-ID, as ``Kept`` sorts them.)
        stored = self.conn.execute("SELECT DISTINCT message_id FROM messages WHERE account=?",
                                   (account,))
        groups = seed_groups(links, seeds, (mid for (mid,) in stored))
        allowed = set(folders)
        batch: list[list[str]] = []
        for ids in [*groups, []]:  # (the empty one flushes the last batch)
            if batch and (not ids or sum(map(len, batch)) + len(ids) > 400):
                yield from self._records_of_groups(account, batch, allowed)
                batch = []
            batch.append(ids)

    def _records_of_groups(self, account: str, groups: list[list[str]],
                           allowed: set[str]) -> Iterator[list[MessageRecord]]:
        """The records of a few groups of ids, read together, given back group by group."""
        by_key: dict[str, list[MessageRecord]] = {}
        for r in self.records_for(account, [mid for group in groups for mid in group], allowed):
            by_key.setdefault(record_key(r), []).append(r)
        for group in groups:
            records = [r for mid in group for r in by_key.get(mid, ())]
            if records:
                yield records

    def ours_since(self, account: str, identities: Iterable[str], since: datetime) -> list[str]:
        idents = list(identities)
        rows = self.conn.execute(
            f"SELECT DISTINCT message_id FROM messages WHERE account=? AND date >= ? "
            f"AND sender IN ({','.join('?' * len(idents))})",
            (account, since.astimezone(UTC).isoformat(), *idents))
        return [mid for (mid,) in rows]

    # The user's messages are those in Sent (``sent``): a From elsewhere is only a claim.

    def topics_of(self, account: str, identities: Iterable[str], sent: str) -> set[str]:
        if self.held is not None and (kept := self._kept(account)):
            return kept.topics_of(set(identities), sent)  # (what the file would hold: see deferring)
        idents = list(identities)
        rows = self.conn.execute(
            f"SELECT DISTINCT topic FROM messages WHERE account=? AND folder=? "
            f"AND sender IN ({','.join('?' * len(idents))})", (account, sent, *idents))
        return {topic for (topic,) in rows}

    def ours_by_topic(self, account: str, topic: str, identities: Iterable[str], before: datetime,
                      since: datetime, sent: str, limit: int = 20) -> list[MessageRecord]:
        """The user's messages on a subject topic, newest first: candidates for a reply
        that lost its In-Reply-To."""
        if self.held is not None and (kept := self._kept(account)):
            return kept.ours_by_topic(topic, set(identities), before.astimezone(UTC).isoformat(),
                                      since.astimezone(UTC).isoformat(), sent, limit)
        idents = list(identities)
        rows = self.conn.execute(
            f"SELECT record FROM messages WHERE account=? AND topic=? AND date < ? AND date >= ? "
            f"AND folder=? AND sender IN ({','.join('?' * len(idents))}) ORDER BY date DESC LIMIT ?",
            (account, topic, before.astimezone(UTC).isoformat(), since.astimezone(UTC).isoformat(),
             sent, *idents, limit))
        return [_load(rec) for (rec,) in rows]

    def answers_to(self, account: str, message_id: str) -> list[MessageRecord]:
        rows = self.conn.execute(
            "SELECT m.record FROM links l JOIN messages m ON m.account=l.account AND m.message_id=l.child "
            "WHERE l.account=? AND l.parent=?", (account, message_id))
        return [_load(rec) for (rec,) in rows]

    def prune(self, account: str, before: datetime) -> int:
        """Forget messages dated before ``before`` (and the links they made): the state
        keeps a window of mail, not the account's history. A follow-up waiting in Drafts
        and the message it follows up stay, however old: it is still drafted."""
        self.stop_keeping()  # (its deletes are queries the kept records cannot follow)
        cutoff = before.astimezone(UTC).isoformat()
        old = ("SELECT message_id FROM messages WHERE account=? AND date < ? AND message_id NOT IN "
               "(SELECT nudge_id FROM nudges WHERE account=? AND fate IN ('drafted', 'edited') "
               "UNION SELECT outbound_id FROM nudges WHERE account=? AND fate IN ('drafted', 'edited'))")
        args = (account, cutoff, account, account)
        self.conn.execute(f"DELETE FROM links WHERE account=? AND child IN ({old})", (account, *args))
        gone = self.conn.execute(f"DELETE FROM messages WHERE account=? AND message_id IN ({old})",
                                 (account, *args))
        self.conn.execute("DELETE FROM decided WHERE account=? AND sent_at < ?", (account, cutoff))
        self.conn.execute("DELETE FROM calendar WHERE account=? AND NOT EXISTS (SELECT 1 FROM messages m "
                          "WHERE m.account=calendar.account AND m.folder=calendar.folder AND "
                          "m.uid=calendar.uid)", (account,))
        return gone.rowcount

    # -- the agenda: when an awaiting thread must be looked at again ----------------------------

    def set_agenda(self, account: str, due: dict[str, datetime | None]) -> None:
        """When each outbound needs a look again; None takes it off the agenda."""
        self.conn.executemany("DELETE FROM agenda WHERE account=? AND outbound_id=?",
                              [(account, mid) for mid, when in due.items() if when is None])
        self.conn.executemany("INSERT OR REPLACE INTO agenda VALUES (?,?,?)",
                              [(account, mid, when.astimezone(UTC).isoformat())
                               for mid, when in due.items() if when is not None])

    def due_agenda(self, account: str, now: datetime) -> list[str]:
        rows = self.conn.execute("SELECT outbound_id FROM agenda WHERE account=? AND due_at <= ?",
                                 (account, now.astimezone(UTC).isoformat()))
        return [mid for (mid,) in rows]

    def clear_agenda(self, account: str) -> None:
        self.conn.execute("DELETE FROM agenda WHERE account=?", (account,))
        self.conn.execute("DELETE FROM decided WHERE account=?", (account,))

    def set_decided(self, account: str, decided: dict[str, tuple[str, datetime] | None]) -> None:
        """Each outbound's status and date; None: no decision stands on it any more."""
        self.conn.executemany("DELETE FROM decided WHERE account=? AND outbound_id=?",
                              [(account, mid) for mid, d in decided.items() if d is None])
        self.conn.executemany("INSERT OR REPLACE INTO decided VALUES (?,?,?,?)",
                              [(account, mid, d[0], d[1].astimezone(UTC).isoformat())
                               for mid, d in decided.items() if d is not None])

    def decided_counts(self, account: str, since: datetime) -> dict[str, int]:
        rows = self.conn.execute("SELECT status, COUNT(*) FROM decided WHERE account=? AND sent_at >= ? "
                                 "GROUP BY status", (account, since.astimezone(UTC).isoformat()))
        return dict(rows.fetchall())

    def uids(self, account: str, folder: str) -> set[int]:
        rows = self.conn.execute(
            "SELECT uid FROM messages WHERE account=? AND folder=?", (account, folder))
        return {uid for (uid,) in rows}

    def records(self, account: str, folder: str) -> list[MessageRecord]:
        rows = self.conn.execute("SELECT record FROM messages WHERE account=? AND folder=?",
                                 (account, folder))
        return [_load(rec) for (rec,) in rows]

    # -- the ledger of our drafts ---------------------------------------------------------------

    def ledger(self, account: str) -> dict[str, LedgerEntry]:
        # (A file of schema 2, read as it is by ``status``, has no text digests yet.)
        # (Nor, before schema 4, a mark of our own APPENDs: read as not ours, never sent.)
        have = columns(self.conn, "nudges")
        text = "text_digest" if "text_digest" in have else "''"
        own = "own" if "own" in have else "0"
        rows = self.conn.execute(
            "SELECT nudge_id, account, outbound_id, thread_key, stage, fate, appended_at, fate_at, "
            f"folder, uid, digest, {text}, {own} FROM nudges WHERE account=?", (account,))
        result = {}
        for row in rows:
            appended = datetime.fromisoformat(row[6])
            fate_at = datetime.fromisoformat(row[7]) if row[7] else None
            result[row[0]] = LedgerEntry(row[0], row[1], row[2], row[3], row[4], row[5],
                                         appended, fate_at, row[8] or "", row[9], row[10] or "",
                                         row[11] or "", bool(row[12]))
        return result

    def record_nudge(self, entry: LedgerEntry) -> None:
        self.conn.execute(
            "INSERT OR REPLACE INTO nudges (nudge_id, account, outbound_id, thread_key, stage, "
            "fate, appended_at, fate_at, folder, uid, digest, text_digest, own) "
            "VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)",
            (entry.nudge_id, entry.account, entry.outbound_id, entry.thread_key, entry.stage,
             entry.fate, entry.appended_at.isoformat(),
             entry.fate_at.isoformat() if entry.fate_at else None, entry.folder, entry.uid,
             entry.digest, entry.text_digest, int(entry.own)))

    def forget_nudge(self, nudge_id: str) -> None:
        self.conn.execute("DELETE FROM nudges WHERE nudge_id=?", (nudge_id,))

    def pending_outbounds(self, account: str) -> list[str]:
        """The messages whose follow-up waits in Drafts: decided however old they are."""
        rows = self.conn.execute("SELECT DISTINCT outbound_id FROM nudges WHERE account=? AND "
                                 "fate IN ('drafted', 'edited')", (account,))
        return [mid for (mid,) in rows]

    def has_fate(self, account: str, fate: str) -> bool:
        return self.conn.execute("SELECT 1 FROM nudges WHERE account=? AND fate=? LIMIT 1",
                                 (account, fate)).fetchone() is not None

    def nudges_in(self, account: str, folder: str) -> list[MessageRecord]:
        """The records of a folder whose Message-ID is one of ours (a range of the index)."""
        rows = self.conn.execute(
            "SELECT folder, record FROM messages WHERE account=? AND message_id >= '<nudger.' "
            "AND message_id < '<nudger/'", (account,))
        return [_load(rec) for where, rec in rows if where == folder]

    def set_fate(self, nudge_id: str, fate: str, when: datetime) -> None:
        self.conn.execute("UPDATE nudges SET fate=?, fate_at=? WHERE nudge_id=?",
                          (fate, when.isoformat(), nudge_id))
        self.note_outcome(nudge_id, fate, when)

    # -- meta -------------------------------------------------------------------------------------

    def set_meta(self, account: str, key: str, value: str) -> None:
        self.conn.execute("INSERT OR REPLACE INTO meta VALUES (?,?,?)", (account, key, value))

    def meta(self, account: str, key: str) -> str | None:
        row = self.conn.execute(
            "SELECT value FROM meta WHERE account=? AND key=?", (account, key)).fetchone()
        return row[0] if row else None
