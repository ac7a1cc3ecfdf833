"""The wire format on its own: exact bytes of an answer in, what the IMAP edge makes of
them out (no server; what a server does with them is in test_faults.py)."""

from __future__ import annotations

import io
from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from nudger.mail.imap_wire import (
    Garbled,
    parse_fetch,
    parse_header_fetch,
    parse_internaldate,
    read_fetch_answer,
)

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


# What the general parser makes of an item, as parse_fetch keeps it: the fast reader must
# give the same for every shape it takes (it drops MODSEQ, which no header FETCH asks).
def _general(data: list[object]) -> dict[int, dict[bytes, object]]:
    from imapclient.response_parser import parse_fetch_response

    got = {}
    for item in parse_fetch_response(data, normalise_times=False, uid_is_key=False).values():
        item.pop(b"SEQ"), item.pop(b"MODSEQ", None)
        got[item.pop(b"UID")] = item
    return got


_FLAGS = st.lists(st.sampled_from([b"\\Seen", b"\\Answered", b"$NoNudge", b"$Forwarded", b"Junk"]),
                  max_size=3, unique=True)
_ZONES = st.integers(min_value=-(23 * 60 + 59), max_value=23 * 60 + 59)


@st.composite
def _fetch_items(draw: st.DrawFn) -> tuple[bytes, bytes, bytes]:
    """One header FETCH item as a server may shape it: the items in any order, some after
    the literal, spaces doubled, the day padded or not: (head, literal, trailer)."""
    when = draw(st.datetimes(min_value=datetime(1990, 1, 1), max_value=datetime(2199, 12, 31)))
    zone = draw(_ZONES)
    stamp = when.replace(microsecond=0, tzinfo=timezone(timedelta(minutes=zone))).strftime(
        "%d-%b-%Y %H:%M:%S %z").encode()
    if stamp.startswith(b"0"):
        stamp = draw(st.sampled_from([b" ", b""])) + stamp[1:]
    items = [b"UID %d" % draw(st.integers(1, 2**32 - 1)), b'INTERNALDATE "%s"' % stamp,
             b"FLAGS (%s)" % b" ".join(draw(_FLAGS)), b"RFC822.SIZE %d" % draw(st.integers(0, 10**9))]
    items += draw(st.lists(st.sampled_from([b"X-GM-THRID 1781234567890123456", b"MODSEQ (42)"]),
                           max_size=2, unique=True))
    items = draw(st.permutations(items))
    cut = draw(st.integers(0, len(items)))
    gap = draw(st.sampled_from([b" ", b"  "]))
    key = draw(st.sampled_from([b"BODY[HEADER.FIELDS (MESSAGE-ID FROM)]", b"BODY[HEADER]", b"BODY[]<0>"]))
    literal = draw(st.binary(max_size=40))
    head = b"(" + gap.join(items[:cut] + [key + b" {%d}" % len(literal)])  # (its number: in the test)
    trailer = b"".join(gap + part for part in items[cut:]) + b")"
    return head, literal, trailer


@settings(max_examples=300, deadline=None)
@given(st.lists(_fetch_items(), min_size=1, max_size=4))
def test_the_fast_fetch_reader_gives_what_the_general_parser_does(items: list[tuple[bytes, bytes, bytes]]) -> None:
    data: list[object] = []
    for seq, (head, literal, trailer) in enumerate(items, 1):
        data += [(b"%d %s" % (seq, head), literal), trailer]
    fast = parse_header_fetch(data)
    assert fast is not None and fast == _general(data)
    assert all(a.utcoffset() == b.utcoffset() for a, b in zip(
        (i[b"INTERNALDATE"] for i in fast.values()), (i[b"INTERNALDATE"] for i in _general(data).values()),
        strict=True))


@pytest.mark.parametrize("head, trailer", [
    (b"1 (UID 5 FLAGS (\\Seen) BODY[HEADER] {2}", b" FLAGS (\\Answered) UID 6)"),
    (b"1 (UID 5 RFC822.SIZE 9 UID 7 BODY[HEADER] {2}", b" RFC822.SIZE 10)"),
])
def test_an_item_given_twice_is_read_as_the_general_parser_reads_it(head: bytes, trailer: bytes) -> None:
    data: list[object] = [(head, b"\r\n"), trailer]
    assert parse_header_fetch(data) == _general(data)  # (the last: it overrides the first)


@pytest.mark.parametrize("head, trailer", [
    (b"1 (UID 5FLAGS () BODY[HEADER] {2}", b")"),  # no space between two items
    (b"1 (UID 5 ENVELOPE NIL BODY[HEADER] {2}", b")"),  # an item it does not know
    (b"1 (UID 5 BODY[HEADER] {2}", b" BODY[TEXT] {2}"),  # a second literal
    (b"1 (UID 5 BODY[HEADER] {2}", b" FLAGS (\\Seen"),  # cut short
    (b"(UID 5 BODY[HEADER] {2}", b")"),  # no number
])
def test_the_fast_fetch_reader_leaves_other_shapes_to_the_general_parser(head: bytes, trailer: bytes) -> None:
    assert parse_header_fetch([(head, b"\r\n"), trailer]) is None


@pytest.mark.parametrize("stamp, expected", [
    (b"01-Dec-2026 10:00:00 +0000", datetime(2026, 12, 1, 10, tzinfo=UTC)),
    (b" 1-Dec-2026 10:00:00 -0000", datetime(2026, 12, 1, 10, tzinfo=UTC)),  # padded; "-0000"
    (b"1-Jan-2027 00:00:00 +0530", datetime(2027, 1, 1, tzinfo=timezone(timedelta(hours=5, minutes=30)))),
    (b"29-Feb-2028 23:59:59 -1130", datetime(2028, 2, 29, 23, 59, 59,
                                             tzinfo=timezone(-timedelta(hours=11, minutes=30)))),
    (b"31-Oct-2026 12:34:56 +2359", datetime(2026, 10, 31, 12, 34, 56,
                                             tzinfo=timezone(timedelta(hours=23, minutes=59)))),
    (b"07-Mar-2026 08:09:10 +0099", datetime(2026, 3, 7, 8, 9, 10, tzinfo=timezone(timedelta(minutes=99)))),
])
def test_internaldates_of_odd_days_and_zones_read_to_the_second_and_the_offset(
        stamp: bytes, expected: datetime, monkeypatch: pytest.MonkeyPatch) -> None:
    # Read by the quick path alone: the slower readers behind it are taken away.
    import imapclient.datetime_util

    from nudger.mail import imap_wire

    for module, name in ((imap_wire, "datetime_of"), (imapclient.datetime_util, "parse_to_datetime")):
        monkeypatch.setattr(module, name, lambda *_, **__: pytest.fail("not the quick path"))
    got = parse_internaldate(stamp)
    assert got == expected and got.utcoffset() == expected.utcoffset()


@pytest.mark.parametrize("stamp", [b"29-Feb-2026 10:00:00 +0000", b"01-Dec-2026 24:00:00 +0000",
                                   b"01-dec-2026 10:00:00 +0000", b"01-Dec-2026 10:00:00 +2400"])
def test_an_internaldate_of_no_such_time_is_garbled_or_what_the_general_parser_reads(stamp: bytes) -> None:
    from imapclient.datetime_util import parse_to_datetime

    try:
        expected = parse_to_datetime(stamp, normalise=False)
    except ValueError:
        with pytest.raises(Garbled):
            parse_internaldate(stamp)
    else:  # (a zone of a day or more: imapclient's own tzinfo, which datetime cannot compare)
        got = parse_internaldate(stamp)
        assert (got.replace(tzinfo=None), type(got.tzinfo)) == (expected.replace(tzinfo=None), type(expected.tzinfo))


def test_messages_of_a_later_fetch_answered_amid_an_earlier_one_go_to_the_later() -> None:
    """Dovecot runs FETCHes of one folder side by side (RFC 3501 5.5) and may answer a
    later one's message before an earlier one ends: the stream gives each FETCH the
    messages it asked for (a message nobody asked for stays where it came, as news)."""
    from types import SimpleNamespace

    from nudger.mail.imap_stream import HeaderStream

    wire = io.BytesIO(_item(1, 1) + _item(3, 3) + _item(9, 9) + _item(2, 2) + b"A1 OK done\r\n"
                      + _item(4, 4) + b"A2 OK done\r\n")
    imap = SimpleNamespace(readline=wire.readline, read=wire.read)
    box = SimpleNamespace(client=SimpleNamespace(_imap=imap), _fetch_heard=lambda: None)
    stream = HeaderStream(box, [("INBOX", "1:2"), ("INBOX", "3:4")])  # type: ignore[arg-type]
    stream.flight.extend([(0, None, b"A1"), (1, None, b"A2")])  # (as _send_ahead leaves them)
    stream.sent = 2
    assert [(batch, sorted(got)) for _, batch, got in stream] == [("1:2", [1, 2, 9]), ("3:4", [3, 4])]


@pytest.mark.parametrize("lines, expected", [
    ([b"* 12 FETCH (UID 5 BODY[HEADER] {3}\r\n", b"abc", b")\r\n"], [(b"12 (UID 5 BODY[HEADER] {3}", b"abc"), b")"]),
    ([b"* 12 fetch (UID 5 BODY[HEADER] {3}\r\n", b"abc", b")\r\n"], [(b"12 (UID 5 BODY[HEADER] {3}", b"abc"), b")"]),
    ([b"* 4 FETCH (UID 9 FLAGS ())\r\n", b"* 3 EXISTS\r\n"], [b"4 (UID 9 FLAGS ())"]),
    ([b"* 1 FETCH (UID 2 BODY[HEADER] {2}\r\n", b"\r\n", b" BODY[TEXT] {1}\r\n", b"x", b")\r\n"],
     [(b"1 (UID 2 BODY[HEADER] {2}", b"\r\n"), (b" BODY[TEXT] {1}", b"x"), b")"]),
    ([b"* 7 FETCH (UID 8 BODY[HEADER] {0}\r\n", b"", b" FLAGS (\\Seen))\r\n"],
     [(b"7 (UID 8 BODY[HEADER] {0}", b""), b" FLAGS (\\Seen))"]),
])
def test_a_fetch_answer_is_read_line_by_line_in_imaplibs_shape(lines: list[bytes], expected: list[object]) -> None:
    wire = io.BytesIO(b"".join(lines) + b"A1 OK done\r\n")
    assert read_fetch_answer(wire.readline, wire.read, b"A1") == expected


@pytest.mark.parametrize("line", [b"* 1x FETCH (UID 2)\r\n", b"* FETCH 1 (UID 2)\r\n", b"A2 OK done\r\n"])
def test_a_line_no_fetch_answer_holds_is_garbled(line: bytes) -> None:
    wire = io.BytesIO(line + b"A1 OK done\r\n")
    with pytest.raises(Garbled):
        read_fetch_answer(wire.readline, wire.read, b"A1")


def test_a_literal_cut_by_a_closed_connection_is_no_answer() -> None:
    wire = io.BytesIO(b"* 1 FETCH (UID 2 BODY[HEADER] {30}\r\nMessage-ID: <a@b>")
    with pytest.raises(EOFError):
        read_fetch_answer(wire.readline, wire.read, b"A1")


def test_a_literal_split_across_reads_is_read_whole() -> None:
    """Over a socket the answer comes in pieces, a literal's bytes in several: each is
    read to its announced length, then the line after it."""
    import socket
    import threading

    answer = _item(1, 5) + _item(2, 6) + b"A1 OK done\r\n"
    ours, theirs = socket.socketpair()

    def send() -> None:
        for at in range(0, len(answer), 7):  # (7 bytes a write: every line and literal split)
            theirs.sendall(answer[at:at + 7])
        theirs.close()

    sender = threading.Thread(target=send)
    sender.start()
    with ours, ours.makefile("rb", buffering=16) as file:  # (as imaplib reads, buffer smaller than a line)
        got = parse_fetch(read_fetch_answer(file.readline, file.read, b"A1"))
    sender.join()
    assert sorted(got) == [5, 6] and all(v[b"BODY[HEADER.FIELDS (MESSAGE-ID)]"] == _HEAD for v in got.values())


# -- LIST and STATUS lines -----------------------------------------------------------------

def _general_listing(lines: list[bytes]) -> list[tuple[object, object, str]]:
    from imapclient import IMAPClient

    class Client:  # imapclient's own reading of LIST lines, without a connection
        folder_encode = True
        _proc_folder_list = IMAPClient._proc_folder_list

    return Client()._proc_folder_list(lines)


def _wire_name(name: str, quoted: bool) -> bytes:
    from imapclient.imap_utf7 import encode

    encoded = encode(name)
    if not quoted:
        return encoded
    return b'"' + encoded.replace(b"\\", b"\\\\").replace(b'"', b'\\"') + b'"'


# Names of every kind a user gives folders: spaces, quotes, backslashes, "&", accents,
# brackets (Gmail's), numbers; quoted as a server would (an atom only where one may be).
_NAMES = st.text(st.characters(blacklist_categories=("Cs", "Cc")), min_size=1, max_size=20)
_ATOM = st.from_regex(r"(\[[A-Za-z]+\]/)?[A-Za-z][A-Za-z0-9._/-]{0,15}", fullmatch=True)
_LIST_FLAGS = st.lists(st.sampled_from([b"\\HasNoChildren", b"\\HasChildren", b"\\Sent", b"\\Noselect",
                                        b"\\Drafts", b"\\UnMarked"]), max_size=3, unique=True)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(st.one_of(_NAMES.map(lambda n: (n, True)), _ATOM.map(lambda n: (n, False))),
                          _LIST_FLAGS, st.sampled_from([b'"/"', b'"."', b'"\\\\"', b"NIL"])),
                min_size=1, max_size=5))
def test_the_fast_listing_reader_gives_what_imapclient_does(
        folders: list[tuple[tuple[str, bool], list[bytes], bytes]]) -> None:
    from nudger.mail.imap_pipeline import read_listing

    lines = [b"(%s) %s %s" % (b" ".join(flags), delimiter, _wire_name(*name))
             for name, flags, delimiter in folders]
    unread: list[object] = []
    fast = read_listing([[line] for line in lines], True, lambda parts: unread.append(parts) or [])
    assert unread == []  # (every one of these shapes read by the fast path)
    general = _general_listing(lines)
    for (name, _), got, theirs in zip((f[0] for f in folders), fast, general, strict=True):
        assert got[2] == name  # (imapclient makes a quoted "007" the number 7: not us)
        if not name.isdigit():
            assert got == theirs


@pytest.mark.parametrize("line", [
    b'(\\HasNoChildren) "/" {5}',  # a literal name
    b'(\\HasNoChildren) "/" "Sent" ("CHILDINFO" ("SUBSCRIBED"))',  # extended data
    b'(\\HasNoChildren) "/"',  # no name
])
def test_other_listing_shapes_go_to_imapclients_reader(line: bytes) -> None:
    from nudger.mail.imap_pipeline import read_listing

    unread: list[object] = []
    assert read_listing([[line]], True, lambda parts: unread.append(parts) or []) == []
    assert unread == [[line]]


@settings(max_examples=200, deadline=None)
@given(st.one_of(_NAMES.map(lambda n: (n, True)), _ATOM.map(lambda n: (n, False))),
       st.lists(st.tuples(st.sampled_from([b"MESSAGES", b"UIDNEXT", b"UIDVALIDITY", b"HIGHESTMODSEQ",
                                           b"UNSEEN"]), st.integers(0, 2**63 - 1)),
                max_size=5, unique_by=lambda item: item[0]))
def test_the_fast_status_reader_gives_what_the_general_parser_does(
        name: tuple[str, bool], items: list[tuple[bytes, int]]) -> None:
    from imapclient.response_parser import parse_response

    from nudger.mail.imap_pipeline import _STATUS_LINE, folder_name, read_status

    line = _wire_name(*name) + b" (" + b" ".join(b"%s %d" % item for item in items) + b")"
    assert _STATUS_LINE.fullmatch(line) is not None
    got = read_status([line])
    assert got == (name[0], dict(items))
    parsed = parse_response([line])
    if not name[0].isdigit():
        assert got == (folder_name(parsed[0]), {bytes(parsed[-1][i]): parsed[-1][i + 1]
                                                for i in range(0, len(parsed[-1]) - 1, 2)})
