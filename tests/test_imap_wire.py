"""The wire format on its own: exact bytes of an answer in, what the IMAP edge makes of
them out (no server; what a server does with them is in test_faults.py)."""

from __future__ import annotations

import io

import pytest

from nudger.mail.imap_wire import Garbled, parse_fetch, read_fetch_answer

_HEAD = b"Message-ID: <a@example.com>\r\n\r\n"
_ITEM = (b'* %d FETCH (UID %d RFC822.SIZE 10 FLAGS () INTERNALDATE "%s" '
         b"BODY[HEADER.FIELDS (MESSAGE-ID)] {%d}\r\n")


def _fetch_answer(*lines: bytes) -> dict[int, dict[bytes, object]]:
    wire = io.BytesIO(b"".join(lines) + b"A1 OK done\r\n")
    return parse_fetch(read_fetch_answer(wire.readline, wire.read, b"A1"))


def _item(seq: int, uid: int, date: bytes = b"01-Dec-2026 10:00:00 +0000") -> bytes:
    return _ITEM % (seq, uid, date, len(_HEAD)) + _HEAD + b")\r\n"


def test_a_flag_change_told_amid_a_uid_fetch_is_passed_over() -> None:
    # RFC 3501 7.4.2: a server may tell of another client's flag change, without a UID,
    # amid any answer; it is no item of this FETCH.
    got = _fetch_answer(_item(1, 5), b"* 2 FETCH (FLAGS (\\Seen \\Answered))\r\n",
                        b"* 3 FETCH (MODSEQ (12) FLAGS (\\Seen))\r\n", _item(3, 7))
    assert sorted(got) == [5, 7] and got[7][b"BODY[HEADER.FIELDS (MESSAGE-ID)]"] == _HEAD


def test_an_item_without_its_uid_that_carries_a_header_is_still_garbled() -> None:
    headless = _item(2, 6).replace(b"UID 6 ", b"")
    with pytest.raises(Garbled, match="without its UID"):
        _fetch_answer(_item(1, 5), headless)


@pytest.mark.parametrize("date", [b"99-Foo-2026 10:00:00 +0000", b"31-Feb-2026 10:00:00 +0000", b"junk"])
def test_an_unreadable_internaldate_is_a_garbled_answer(date: bytes) -> None:
    with pytest.raises(Garbled, match="INTERNALDATE"):
        _fetch_answer(_item(1, 5, date))
