"""A record's row in the state file's messages table, and the links it adds (state.py).

Made where the record is made: the helper process (parse_helper.py) answers each record
with its row, so the main process of a big sync stores rows without building them.
"""

from __future__ import annotations

import json
from datetime import UTC

from nudger.core.record import DATE, MessageRecord, record_key
from nudger.core.threads import thread_links

# json.dumps(row, ensure_ascii=False), without a new encoder per call (dumps builds one for
# any non-default option); a row never refers to itself, so no check for cycles. No spaces
# after the separators: 9% less to store (json.loads reads either).
dump = json.JSONEncoder(ensure_ascii=False, check_circular=False, separators=(",", ":")).encode

# Its key, sender's address, date (UTC, ISO), topic, the record as JSON, and the ids it links to.
Row = tuple[str, str, str, str, str, tuple[str, ...]]
# Rows made already, by the id of their record: kept with it, as an id is only its while it lives.
Made = dict[int, tuple[MessageRecord, Row]]


def row_of(r: MessageRecord) -> Row:
    stored = r.to_row()
    # (A date read from a header is in UTC already: its text is the stored one's.)
    when = stored[DATE] if r.date.tzinfo is UTC else r.date.astimezone(UTC).isoformat()
    return (record_key(r), r.sender.email, when, r.topic, dump(stored), tuple(thread_links(r)))


def made_row(made: Made | None, r: MessageRecord) -> Row:
    """The row of ``r``: as made already, if it was made for this very record."""
    if made and (hit := made.get(id(r))) is not None and hit[0] is r:
        return hit[1]
    return row_of(r)
