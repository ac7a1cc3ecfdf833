"""Reading invitations: the calendar part of the few messages that carry one.

The sync reads headers only. A calendar part hides in a multipart message, so for
the new multipart (or text/calendar) messages of a chunk one FETCH asks their
BODYSTRUCTURE, and only those with a text/calendar part are read, up to
CALENDAR_LIMIT. Only with ``[meetings] thank_you``; a quiet folder costs nothing more.
"""

from __future__ import annotations

import logging
import re
from dataclasses import replace

from nudger.config.model import Account
from nudger.core.calendar import calendar_part, parse_calendar
from nudger.core.record import CALENDAR, HUMAN, MessageRecord
from nudger.mail.mailbox import Fetched, Mailbox

log = logging.getLogger(__name__)

CALENDAR_LIMIT = 1024 * 1024  # an invitation with its description; attachments come after
_MAY_HOLD = re.compile(rb"(?im)^content-type:[ \t]*(?:multipart/|text/calendar|application/ics)")


def read_calendars(account: Account, mailbox: Mailbox, folder: str,
                   parsed: list[tuple[Fetched, MessageRecord]]) -> dict[int, MessageRecord]:
    """The records of ``parsed`` that carry a calendar part, with its facts."""
    candidates = [item.uid for item, r in parsed
                  if r.kind in (HUMAN, CALENDAR) and not r.list_traffic and _MAY_HOLD.search(item.header)]
    if not candidates:
        return {}
    uids = sorted(mailbox.calendar_uids(folder, candidates))
    records = {item.uid: r for item, r in parsed}
    found: dict[int, MessageRecord] = {}
    for uid, body in (mailbox.fetch_messages(folder, uids, CALENDAR_LIMIT) if uids else {}).items():
        try:
            part = calendar_part(body)
            facts = parse_calendar(part) if part is not None else None
        except Exception as exc:  # noqa: BLE001 - a broken invitation only gets no thank-you
            log.warning("%s: %s UID %s: cannot read its calendar part (%s)", account.name, folder,
                        uid, type(exc).__name__)
            continue
        if facts is not None and facts.refused:
            log.info("%s: %s UID %s: its meeting series is not followed (%s)", account.name, folder,
                     uid, facts.refused)
        if facts is not None and facts.uid:
            found[uid] = replace(records[uid], calendar=facts.to_json())
    return found
