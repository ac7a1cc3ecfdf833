"""Shared by the fuzz test and bench/fuzz.py: mutations, and the properties checked."""

from __future__ import annotations

import random
import re
from datetime import UTC, datetime
from email import policy
from email.parser import BytesHeaderParser
from pathlib import Path
from zoneinfo import ZoneInfo

from nudger.core.parse import parse_record
from nudger.core.record import Addr
from nudger.core.threads import build_threads
from nudger.core.verdict import judge

_TOKENS = [b"\r\n", b"\n", b"<", b">", b"@", b":", b"=?utf-8?q?", b"?=", b"\xff", b"\x00",
           b"References: <", b"In-Reply-To: ", b"Content-Type: multipart/report; boundary=",
           b"--", b"Date: ", b" " * 200, b"A" * 3000, b"\t", b"\xe4\xf6", b"Message-ID: "]


def CORPUS_FILES(corpus: Path) -> list[Path]:  # noqa: N802 - reads as a constant at call sites
    return sorted(corpus.rglob("*.eml"))


def mutate(raw: bytes, seed: int) -> bytes:
    """Cut, splice, flip and inject: what broken MTAs and truncated downloads produce."""
    rng = random.Random(seed)
    data = bytearray(raw[: rng.randrange(1, len(raw) + 1)] if rng.random() < 0.3 else raw)
    for _ in range(rng.randrange(1, 8)):
        if not data:
            data += rng.choice(_TOKENS)
            continue
        at = rng.randrange(len(data))
        choice = rng.random()
        if choice < 0.3:
            data[at : at] = rng.choice(_TOKENS)
        elif choice < 0.5:
            data[at] = rng.randrange(256)
        elif choice < 0.7:
            end = min(len(data), at + rng.randrange(1, 200))
            del data[at:end]
        else:
            end = min(len(data), at + rng.randrange(1, 400))
            data[at:at] = data[at:end]
    return bytes(data)


def check_messages(blobs: list[bytes], me: str = "me@example.com") -> int:
    """Parse each blob as a header block and as a whole report; thread them; judge each
    thread. Raises AssertionError on a broken property; returns verdicts checked."""
    records = []
    for i, blob in enumerate(blobs):
        record = parse_record(blob, folder="INBOX" if i % 2 else "Sent", uid=i + 1,
                              internaldate=datetime(2026, 11, 1, tzinfo=UTC), report_bytes=blob)
        assert record.date.tzinfo is not None
        records.append(record)
    checked = 0
    for thread in build_threads(records, sent="Sent"):
        verdict = judge(thread, lambda a: a in (me,) or bool(records) and a == records[0].sender.email)
        assert verdict.reason, verdict
        checked += 1
    return checked


# -- hostile header sets through compose: no header of the sender's in a draft -------------

_EVIL = [
    "Invoice ", "=?utf-8?q?=0D=0ABcc:=20attacker@evil.example=0D=0AX-Injected:=20yes",
    "=?utf-8?q?=0D=0ABcc:=20attacker@evil.example?=", "=?utf-8?b?DQpCY2M6IGFAZXZpbC5leGFtcGxlDQo=?=",
    "=?x-unknown-\xff?q?=ZZ=?=", "=?utf-8?q?=E2=80?=", "=?iso-8859-1?q?caf=E9?=", "=?utf-8?q?=00?=",
    "=?utf-8?b?4oCu?=", "=?utf-8?q?a=0Ab?=", "=?", "?=", "\r\nBcc: a@evil.example", "\nX-Injected: yes",
    "\r\n X-Folded: yes", "\r\n\tfolded", "\x00", "\r", "\x1b[31m", "\xe4\xf6", "\u00e9t\u00e9",
    "\u2028X-Sep: 1", '"', "\\", "<", ">", ",", ";", ":", "@", "   ", "A" * 80, "A" * 1200,
    "Re: ", "Proposal", "Jörg Müller", "Smith, Bob",
]  # fmt: skip
_EVIL_ADDRESSES = [
    "bob@client.example", "ann@client.example", "=?utf-8?q?=0D=0ABcc:=20x@y?=@evil.example",
    "a\x00b@x.example", "\u00e9@x.example", "bob@exa mple", "bob@[127.0.0.1]", "no-at-sign",
    "x@" + "d" * 300 + ".example", "bob@client.example\r\nBcc: a@evil.example", "",
]  # fmt: skip
_EVIL_IDS = [
    "<ok1@x.example>", "<ok2@x.example>", "<\u00e9t\u00e9@x.example>", "<" + "a" * 3000 + "@x.example>",
    "<=?utf-8?q?=0D=0ABcc:=20x?=@x.example>", "<a\x00b@x.example>", "<a\x1b@x.example>", "<>",
    "<a b@x.example>", "ok3@x.example",
]  # fmt: skip
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]")
_MSGID_HEADERS = ("message-id", "in-reply-to", "references", "x-nudger-for")
QUOTED = "Hello,\n\x00 a line\udcff\n"  # what the outbound's text could hold, controls too
_REQUIRED = {"From", "To", "Subject", "Date", "Message-ID", "In-Reply-To", "References", "X-Nudger-For"}


def _text(rng: random.Random, most: int = 5) -> str:
    return "".join(rng.choice(_EVIL) for _ in range(rng.randrange(0, most + 1)))


def _mailbox(rng: random.Random) -> str:
    address = rng.choice(_EVIL_ADDRESSES[:2] if rng.random() < 0.5 else _EVIL_ADDRESSES)
    shape = rng.randrange(4)
    name = _text(rng, 3)
    return (address if shape == 0 else f'"{name}" <{address}>' if shape == 1
            else f"{name} <{address}>" if shape == 2 else f"{address} ({name})")


def hostile_message(rng: random.Random) -> bytes:
    """A message of the user's with hostile headers: encoded words that decode into line
    breaks, folded names, 8-bit and control bytes, odd and huge msg-ids."""
    ids = [rng.choice(_EVIL_IDS) for _ in range(rng.choice((0, 1, 3, 8, 300)))]
    headers = {
        "Message-ID": rng.choice(_EVIL_IDS[:2]) if rng.random() < 0.7 else rng.choice(_EVIL_IDS),
        "From": f"{_text(rng, 2)} <me@example.com>",
        "To": ", ".join(_mailbox(rng) for _ in range(rng.randrange(1, 4))),
        "Cc": ", ".join(_mailbox(rng) for _ in range(rng.randrange(0, 3))),
        "Subject": _text(rng),
        "References": rng.choice((" ", "\r\n ", "")).join(ids),
        "In-Reply-To": rng.choice(_EVIL_IDS),
        "Date": "Mon, 23 Nov 2026 10:00:00 +0100",
    }
    lines = [f"{name}: {value}" for name, value in headers.items() if value or rng.random() < 0.5]
    rng.shuffle(lines)
    data = "\r\n".join(lines).encode("utf-8", "surrogateescape") + b"\r\n\r\n"
    if rng.random() < 0.3:
        data = data.replace(b"\xc3\xa9", b"\xe9")  # Latin-1 where UTF-8 was: 8-bit junk
    return data


def _only_eai_addresses(head: bytes) -> bool:
    """8-bit only where RFC 6532 puts it: UTF-8, in the <addr-spec> of an address header."""
    text = head.decode("utf-8")  # (UnicodeDecodeError: not UTF-8, the test fails)
    for line in text.replace("\r\n ", " ").split("\r\n"):
        if not line.isascii() and (line.split(":", 1)[0].lower() not in ("from", "to", "cc")
                                   or not re.sub(r"<[^<>\s]*>", "", line).isascii()):
            return False
    return True


def check_draft(raw: bytes, me: str = "me@example.com") -> str:
    """Compose a follow-up for ``raw`` as an outbound of the user's. "written" or "refused"
    (ComposeError); AssertionError "injected: ..." when the draft carries a header nudger did
    not write, another AssertionError for any other broken property."""
    from nudger.core.compose import DRAFT_HEADERS, ComposeError, DraftInput, draft_bytes

    out = parse_record(raw, folder="Sent", uid=1)
    body = QUOTED + "B" * 3000 * (len(raw) % 2)  # and every other one with a 3,000-char line
    draft = DraftInput("acct", out, body, 1, "Hi {first_name},\n{subject}",
                       Addr(out.sender.name, me), out.to, out.cc, ZoneInfo("Europe/Berlin"),
                       datetime(2026, 11, 27, 9, tzinfo=UTC))
    try:
        data = draft_bytes(draft, notes=[])
    except ComposeError:
        return "refused"
    head = data[: data.index(b"\r\n\r\n") + 2]
    parsed = BytesHeaderParser(policy=policy.default).parsebytes(head)
    names = list(parsed.keys())
    if len(set(names)) != len(names) or not set(names) <= DRAFT_HEADERS or not _REQUIRED <= set(names):
        raise AssertionError(f"injected: {names}")
    assert all(len(line) <= 998 for line in head.split(b"\r\n")), head[:300]
    assert head.isascii() or _only_eai_addresses(head), head[:300]
    for name in names:
        assert not _CONTROL.search(str(parsed[name])), (name, str(parsed[name])[:200])
    for line in head.decode().replace("\r\n ", " ").split("\r\n"):
        if line.split(":", 1)[0].lower() in _MSGID_HEADERS:
            assert "=?" not in line, line[:200]
    again = parse_record(data, folder="Drafts", uid=1)
    assert again.in_reply_to == (out.message_id,) and again.nudge_for == out.message_id, again
    known = {a.email for a in out.to + out.cc}
    assert {a.email for a in again.to + again.cc} <= known, (again.to, again.cc, known)
    return "written"
