"""Records of fetched headers: parsed (here, or by the helper process: parsing.py), with
the few bodies they need read right away, or once their folder's headers are read."""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace

from nudger.config.model import Account
from nudger.core.bodytext import text_of
from nudger.core.classify import is_noreply
from nudger.core.parse import parse_record
from nudger.core.record import AUTO_REPLY, MessageRecord
from nudger.cycle.invitations import read_calendars
from nudger.cycle.parse_helper import Outcome, fields_of, parse_fetched
from nudger.mail.mailbox import Fetched, Mailbox

log = logging.getLogger(__name__)

REPORT_LIMIT = 256 * 1024  # enough of a bounce to find what it reports on
AUTO_REPLY_LIMIT = 32 * 1024  # the return date is in the first lines of an out-of-office
BODIES_AT_ONCE = 2000  # bodies read in one go: as many as a chunk of headers


@dataclass
class SyncCounts:
    fetched: int = 0  # header records read from the server
    skipped: int = 0  # malformed messages passed over


def _record(account: Account, folder: str, item: Fetched, counts: SyncCounts,
            outcome: Outcome | None = None) -> MessageRecord | None:
    """The record of one fetched message (``outcome``: its parse, done elsewhere)."""
    if outcome is None:
        outcome = parse_fetched(folder, fields_of(item))
    if isinstance(outcome, str):  # (the name of what parsing it raised)
        counts.skipped += 1
        log.warning("%s: skipped %s UID %s: cannot parse it (%s)", account.name, folder,
                    item.uid, outcome)
        return None
    for warning in outcome.warnings:
        log.warning("%s: %s UID %s: %s", account.name, folder, item.uid, warning)
    return outcome


def _body_needs(parsed: list[tuple[Fetched, MessageRecord]]
                ) -> dict[int, list[tuple[Fetched, MessageRecord]]]:
    """Which messages' bodies to read, by byte limit: bounces and receipts name the original
    message in their body; an out-of-office answering a message may say when its sender
    is back (robots don't)."""
    reports = [(i, r) for i, r in parsed if r.needs_report_body and i.size < 10 * REPORT_LIMIT]
    absences = [(i, r) for i, r in parsed if r.kind == AUTO_REPLY and r.parents
                and i.size < 10 * REPORT_LIMIT and not is_noreply(r.sender.email)]
    return {limit: kind for limit, kind in ((REPORT_LIMIT, reports), (AUTO_REPLY_LIMIT, absences)) if kind}


def _enrich(account: Account, folder: str, item: Fetched, record: MessageRecord, body: bytes,
            limit: int) -> MessageRecord:
    """The record with what its body adds: a report's original and failed recipients, or
    an out-of-office's return date."""
    try:
        if limit == REPORT_LIMIT:
            return parse_record(item.header, folder=folder, uid=item.uid,
                                internaldate=item.internaldate, keywords=item.flags,
                                gm_thrid=item.gm_thrid, size=item.size, report_bytes=body)
        # (Here: its many languages' patterns are compiled only by a cycle that reads an
        # out-of-office, not at every start.)
        from nudger.core.ooo import return_date

        back = return_date(text_of(body), record.date)
        if back is not None:
            return replace(record, back_on=back.isoformat())
    except Exception as exc:  # noqa: BLE001 - a strange body only loses its extra facts
        log.warning("%s: %s UID %s: cannot read its body (%s)", account.name, folder, item.uid,
                    type(exc).__name__)
    return record


# A message whose body is still to be read: its fetched headers, its record, the bytes to read.
Later = tuple[Fetched, MessageRecord, int]


def read_records(account: Account, mailbox: Mailbox, folder: str, items: list[Fetched],
                 counts: SyncCounts, calendars: bool = False,
                 outcomes: list[Outcome] | None = None, later: list[Later] | None = None
                 ) -> list[MessageRecord]:
    """Records of fetched headers, reading the few bodies they need right away (with
    ``later``: those records are left out, added to it for ``read_bodies``), and, with
    ``calendars``, the invitations' calendar parts. ``outcomes``: the items' parses, done
    by the helper process (parsing.py)."""
    parses = outcomes if outcomes is not None else [None] * len(items)
    parsed = [(item, r) for item, o in zip(items, parses, strict=True)
              if (r := _record(account, folder, item, counts, o)) is not None]
    records = {item.uid: r for item, r in parsed}
    needs = [(item, record, limit) for limit, kind in _body_needs(parsed).items()
             for item, record in kind]
    if later is None:
        records.update((r.uid, r) for r in read_bodies(account, mailbox, folder, needs))
    else:
        later += needs
        for item, _, _ in needs:
            del records[item.uid]
    if calendars:
        records.update(read_calendars(account, mailbox, folder,
                                      [(i, r) for i, r in parsed if i.uid in records]))
    return list(records.values())


def read_bodies(account: Account, mailbox: Mailbox, folder: str, needs: list[Later]) -> list[MessageRecord]:
    """The records of ``needs``, with what their bodies add; read BODIES_AT_ONCE at a time
    (memory: a report's body may be read up to REPORT_LIMIT)."""
    done = []
    for limit in sorted({limit for _, _, limit in needs}):
        group = [(item, record) for item, record, each in needs if each == limit]
        for start in range(0, len(group), BODIES_AT_ONCE):
            part = group[start:start + BODIES_AT_ONCE]
            bodies = mailbox.fetch_messages(folder, [item.uid for item, _ in part], limit)
            done += [record if (body := bodies.get(item.uid)) is None
                     else _enrich(account, folder, item, record, body, limit)
                     for item, record in part]
    return done
