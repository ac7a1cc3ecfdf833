"""The header parser on the second core: what the helper process runs (``python -m``).

It imports only the core's parser and the standard library: started fresh (not forked:
the daemon has threads), it is ready in a fraction of the first FETCH. It reads
length-prefixed pickled batches ``(folder, [fields, ...])`` on stdin and answers each,
in order, with the pickled outcomes and rows: an outcome is a ``MessageRecord``, or the
name of the exception the message raised (the caller warns and skips it, as
in-process); a record's row is the one the state stores for it (rows.py), None for the
others. It ends at the end of its input: when the sync closes it, or when its parent is
gone.
"""

from __future__ import annotations

import pickle
import signal
import struct
import sys
import zlib
from datetime import datetime
from typing import TYPE_CHECKING, BinaryIO

from nudger import __version__
from nudger.core.parse import parse_record
from nudger.core.record import Addr, MessageRecord
from nudger.cycle.rows import Row, row_of

if TYPE_CHECKING:
    from nudger.mail.mailbox import Fetched  # (not imported here: only the core's parser is)

# uid, header bytes, internaldate, flags, gm_thrid, size: what a Fetched carries
Fields = tuple[int, bytes, datetime | None, tuple[str, ...], int | None, int]
Outcome = MessageRecord | str
FRAME = struct.Struct(">Q")  # each message's length, then its pickle


ANSWER = 2  # the shape of an answer: 2, (outcomes, rows); 1 (0.x before rows): outcomes
READY = "ready"  # the first answer, once imported: batches are sent from then on


def stamp() -> str:
    """Which records and answers this code makes: a helper started after an upgrade in
    place, under a service still running the old code, would answer in another shape."""
    fields = " ".join(MessageRecord.__dataclass_fields__)
    return f"{__version__}.{ANSWER}.{zlib.crc32(fields.encode()):08x}"


def fields_of(item: Fetched) -> Fields:
    return (item.uid, item.header, item.internaldate, item.flags, item.gm_thrid, item.size)


def parse_fetched(folder: str, fields: Fields) -> Outcome:
    """One message's record, or the name of what it raised (never raises)."""
    uid, header, internaldate, flags, gm_thrid, size = fields
    try:
        return parse_record(header, folder=folder, uid=uid, internaldate=internaldate,
                            keywords=flags, gm_thrid=gm_thrid, size=size)
    except Exception as exc:  # noqa: BLE001 - one bad message must not stop the others
        return type(exc).__name__


def answer(folder: str, batch: list[Fields]) -> tuple[list[Outcome], list[Row | None]]:
    outcomes = [parse_fetched(folder, fields) for fields in batch]
    _share_addresses(outcomes)
    return outcomes, [row_of(o) if isinstance(o, MessageRecord) else None for o in outcomes]


def _share_addresses(outcomes: list[Outcome]) -> None:
    """One Addr object for each address of the batch (the user's own, in every message
    sent): pickled once, and rebuilt once by the parent. (These records are new, and
    nobody else's yet: equal values in place of equal values.)"""
    shared: dict[tuple[str, str], Addr] = {}

    def one(a: Addr) -> Addr:
        return shared.setdefault((a.name, a.email), a)

    for r in outcomes:
        if isinstance(r, MessageRecord):
            fields = r.__dict__
            fields["sender"] = one(r.sender)
            for name in ("to", "cc", "bcc"):
                if addrs := fields[name]:
                    fields[name] = tuple([one(a) for a in addrs])


def frame(obj: object) -> bytes:
    data = pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL)
    return FRAME.pack(len(data)) + data


def serve(inp: BinaryIO, out: BinaryIO) -> None:
    """Say READY, then parse batches until the input ends. (No threads: the parent reads
    our answers as it writes the next batches, so neither pipe stays full.)"""
    out.write(frame(READY))
    out.flush()
    while len(head := inp.read(FRAME.size)) == FRAME.size:
        data = inp.read(FRAME.unpack(head)[0])
        folder, batch = pickle.loads(data)
        out.write(frame(answer(folder, batch)))
        out.flush()


if __name__ == "__main__":
    # Ctrl-C in a terminal, or systemd stopping the service, reaches every process of
    # the group or unit: the parent decides, and closes our input (or is gone, which
    # closes it too); it stops us with SIGKILL.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    if sys.argv[1:] != [stamp()]:
        sys.exit(3)  # (the parent's code is not ours: it parses in-process, with a warning)
    serve(sys.stdin.buffer, sys.stdout.buffer)
