"""Hostile mail against the drafts: no header of the sender's, no message that stops the
others, msg-ids written as they are, and a server's size limit honoured."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from email import policy
from email.parser import BytesParser
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from nudger.core.compose import DRAFT_HEADERS, ComposeError, DraftInput, draft_bytes
from nudger.core.parse import parse_record
from nudger.core.record import Addr
from nudger.core.threads import build_threads
from nudger.core.verdict import judge
from support.dovecot import Dovecot, find_dovecot
from support.harness import Box, by_subject, make_box, text
from support.mail import days_ago, message

ME = "me@example.com"
INJECTING = b"Invoice =?utf-8?q?=0D=0ABcc:=20attacker@evil.example=0D=0AX-Injected:=20yes"
UNKNOWN_CHARSET = b"=?x-unknown-\xff?q?=ZZ=?= =?utf-8?q?=E2=80?="
LONG_ID = "<" + "a" * 3000 + "@client.example>"


def outbound(subject: bytes = b"Proposal", to: bytes = b"Bob <bob@client.example>",
             extra: bytes = b"", mid: str = "<o@example.com>") -> bytes:
    return (b"Message-ID: " + mid.encode() + b"\r\nFrom: Mia Example <me@example.com>\r\nTo: " + to
            + b"\r\nSubject: " + subject + b"\r\nDate: Mon, 23 Nov 2026 10:00:00 +0100\r\n" + extra
            + b"\r\nHello,\r\n")


def draft_of(raw: bytes, quoted: str = "Hello,\n", limit: int | None = None,
             notes: list[str] | None = None) -> bytes:
    out = parse_record(raw, folder="Sent", uid=1)
    return draft_bytes(DraftInput("work", out, quoted, 1, "Hi {first_name},", Addr("Mia Example", ME),
                                  out.to, out.cc, ZoneInfo("Europe/Berlin"),
                                  datetime(2026, 11, 27, 9, tzinfo=UTC)), limit, notes)


def headers(data: bytes) -> list[tuple[str, str]]:
    return list(BytesParser(policy=policy.default).parsebytes(data).items())


# -- no header of the sender's ----------------------------------------------------------------


@pytest.mark.parametrize("raw", [
    outbound(subject=INJECTING),
    outbound(subject=b"=?utf-8?q?Hi=0D=0ABcc:=20attacker@evil.example?="),
    outbound(to=b"=?utf-8?q?Bob=0D=0ABcc:=20attacker@evil.example?= <bob@client.example>"),
    outbound(to=b'"Bob\r\n Smith" <bob@client.example>'),
    outbound(subject=b"Hi\x00\x1b[31m there =?"),
], ids=["unterminated-encoded-crlf", "encoded-crlf", "encoded-crlf-in-name", "folded-name", "controls"])
def test_a_draft_carries_only_the_headers_nudger_writes(raw: bytes) -> None:
    try:
        data = draft_of(raw)
    except ComposeError as exc:
        # Python's address parser differs between builds: Debian's 3.11.2 (strict, the
        # CVE-2023-27043 fix) reads no address at all in "=?..Bcc:..@..?= <bob@...>", where
        # 3.11.7 reads bob's. Refusing the draft is as safe as writing it without the Bcc.
        to = raw.split(b"\r\nTo: ", 1)[1].split(b"\r\n", 1)[0]
        assert b"Bcc:" in to and "no recipient address" in str(exc), exc
        return
    names = [name for name, _ in headers(data)]
    assert set(names) == DRAFT_HEADERS - {"Cc"} and len(names) == len(set(names))
    for name, value in headers(data):
        assert value.isprintable(), (name, value)


def test_the_subject_that_injected_is_written_as_the_text_it_is() -> None:
    draft = BytesParser(policy=policy.default).parsebytes(draft_of(outbound(subject=INJECTING)))
    assert draft["Subject"] == "Re: " + INJECTING.decode()
    assert draft["Thread-Topic"] == INJECTING.decode()
    assert draft["Bcc"] is None and draft["X-Injected"] is None


def test_what_once_raised_while_composing_makes_a_draft() -> None:
    draft = BytesParser(policy=policy.default).parsebytes(draft_of(outbound(subject=UNKNOWN_CHARSET)))
    assert draft["Subject"].startswith("Re: ")
    folded = BytesParser(policy=policy.default).parsebytes(
        draft_of(outbound(to=b'"Bob\r\n Smith" <bob@client.example>')))
    assert str(folded["To"]) == "Bob Smith <bob@client.example>" and text(folded).startswith("Hi Bob,")


def test_a_recipient_without_a_valid_address_is_left_out_with_a_note() -> None:
    notes: list[str] = []
    raw = outbound(to=b"Bob <bob@client.example>, =?utf-8?q?x=0D=0A?=@evil.example, "
                      b"\"Ann\" <ann@exa\x00mple.org>")
    draft = BytesParser(policy=policy.default).parsebytes(draft_of(raw, notes=notes))
    assert [a.addr_spec for a in draft["To"].addresses] == ["bob@client.example"]
    assert len(notes) == 2 and all("left out recipient" in n for n in notes)
    with pytest.raises(ComposeError, match="no recipient address"):
        draft_of(outbound(to=b"=?utf-8?q?x=0D=0A?=@evil.example"))


def test_an_unreadable_recipient_is_not_called_a_note_to_self() -> None:
    for to in (b"undisclosed-recipients:;", b"Bob"):
        record = parse_record(outbound(to=to), folder="Sent", uid=1)
        [thread] = build_threads([record], sent="Sent")
        verdict = judge(thread, lambda a: a == ME)
        assert verdict.status == "excluded"
        assert verdict.reason.startswith("no recipient address nudger can read"), verdict.reason


# -- msg-ids: written as they are, never encoded ----------------------------------------------


def _msgid_lines(data: bytes) -> list[bytes]:
    head = data.split(b"\r\n\r\n")[0].replace(b"\r\n ", b" ")
    return [line for line in head.split(b"\r\n")
            if line.split(b":")[0].lower() in (b"message-id", b"in-reply-to", b"references", b"x-nudger-for")]


def test_odd_ancestors_are_left_out_of_references_and_no_msg_id_is_encoded() -> None:
    refs = b"<root@x.example> <\xc3\xa9t\xc3\xa9@x.example> " + LONG_ID.encode() + b" <p@x.example>"
    data = draft_of(outbound(extra=b"References: " + refs + b"\r\n"))
    assert all(len(line) <= 998 for line in data.split(b"\r\n"))
    lines = _msgid_lines(data)
    assert len(lines) == 4 and not any(b"=?" in line for line in lines)
    assert b"In-Reply-To: <o@example.com>" in lines
    assert b"References: <root@x.example> <p@x.example> <o@example.com>" in lines


@pytest.mark.parametrize("mid", ["<\u00e9t\u00e9@example.com>", LONG_ID], ids=["8-bit", "3000 chars"])
def test_a_message_whose_own_id_cannot_be_written_gets_no_draft(mid: str) -> None:
    with pytest.raises(ComposeError, match="Message-ID cannot be written"):
        draft_of(outbound(mid="<x@y>").replace(b"<x@y>", mid.encode()))


# -- a server's APPENDLIMIT -------------------------------------------------------------------


def test_a_draft_over_the_append_limit_cuts_its_quote() -> None:
    quoted = "".join(f"Line {i} of a long proposal, with details.\n" for i in range(300))
    full = draft_of(outbound(), quoted)
    notes: list[str] = []
    cut = draft_of(outbound(), quoted, limit=6000, notes=notes)
    assert len(full) > 6000 >= len(cut) > 3000
    body = text(BytesParser(policy=policy.default).parsebytes(cut))
    assert "> Line 0 of a long proposal" in body and "> [...]" in body and "Line 299" not in body
    assert notes and "quote cut" in notes[0]
    with pytest.raises(ComposeError, match="APPENDLIMIT"):
        draft_of(outbound(), quoted, limit=300)


# -- against Dovecot: one message never stops the others --------------------------------------


@pytest.fixture
def box(dovecot, imap_user, tmp_path, capsys, monkeypatch) -> Box:  # type: ignore[no-untyped-def]
    return make_box(dovecot, imap_user, tmp_path, capsys, monkeypatch)


def _legit(box: Box, count: int = 10) -> None:
    box.seed("Sent", *(message(f"legit{i}@example.com", sender=f"Mia Example <{box.user}>",
                               to=f"Client {i} <c{i}@client.example>", subject=f"Offer {i}",
                               date=days_ago(6)) for i in range(count)))


def _hostile(box: Box, mid: str, subject: bytes = b"Hostile", to: bytes = b"bob@client.example") -> list[int]:
    raw = outbound(subject=subject, to=to, mid=mid).replace(b"me@example.com", box.user.encode())
    raw = raw.replace(b"Mon, 23 Nov 2026 10:00:00 +0100", b"Sat, 21 Nov 2026 10:00:00 +0100")
    return box.seed("Sent", raw)


@pytest.mark.imap
def test_hostile_subjects_and_names_get_clean_drafts_and_the_others_theirs(box: Box) -> None:
    _legit(box)
    _hostile(box, "<h1@example.com>", subject=INJECTING)
    _hostile(box, "<h2@example.com>", subject=UNKNOWN_CHARSET)
    _hostile(box, "<h3@example.com>", to=b'"Bob\r\n Smith" <bob@client.example>')
    box.run()
    assert box.last_code == 0, box.last_err
    drafts = box.drafts()
    assert len(drafts) == 13
    for draft in drafts:
        assert set(draft.keys()) <= DRAFT_HEADERS and draft["Bcc"] is None, draft.keys()


@pytest.mark.imap
def test_a_message_that_cannot_be_drafted_is_skipped_with_one_warning(box: Box) -> None:
    _legit(box)
    [uid] = _hostile(box, LONG_ID)
    decisions = box.run()
    assert box.last_code == 0, box.last_err
    assert sorted(d["Subject"] for d in box.drafts()) == sorted(f"Re: Offer {i}" for i in range(10))
    warnings = [line for line in box.last_err.splitlines() if "no follow-up" in line]
    assert len(warnings) == 1 and f"Sent UID {uid}" in warnings[0], box.last_err
    assert "Message-ID cannot be written" in warnings[0] and "Traceback" not in box.last_err
    assert by_subject(decisions)["Hostile"]["status"] == "due"  # still due: tried again next cycle


@pytest.fixture(scope="module")
def limited() -> Iterator[Dovecot]:
    """A server that says APPENDLIMIT=20000 (RFC 7889) and means it: Dovecot 2.3 enforces
    quota_max_mail_size but does not advertise it, so the capability is added by hand."""
    binary = find_dovecot()
    if binary is None:
        pytest.skip("Dovecot is not installed")
    server = Dovecot(binary, capability="+APPENDLIMIT=20000")
    conf = server.dir / "dovecot.conf"
    conf.write_text(conf.read_text() + "mail_plugins = $mail_plugins quota\nplugin {\n"
                    "  quota = count:User quota\n  quota_vsizes = yes\n  quota_max_mail_size = 20k\n}\n")
    server.pool(2)
    server.start()
    try:
        yield server
    finally:
        server.cleanup()


@pytest.mark.imap
def test_a_draft_over_the_servers_append_limit_is_written_with_a_shorter_quote(
        limited: Dovecot, tmp_path: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    box = make_box(limited, limited.take_user(), tmp_path, capsys, monkeypatch)
    # Under the limit as sent (base64), three times over it as quoted (quoted-printable).
    body = "".join(f"Zeile {i}: Größe, Übermaß, Änderungen für Öl, süß äöü ÄÖÜ ß\n" for i in range(200))
    box.seed("Sent", message("big@example.com", sender=f"Mia Example <{box.user}>",
                             to="Bob <bob@client.example>", subject="Big offer", date=days_ago(6),
                             body=body))
    box.run()
    assert box.last_code == 0, box.last_err
    [(data, _)] = box.raw("Drafts").values()
    assert len(data) <= 20000
    quote = text(BytesParser(policy=policy.default).parsebytes(data))
    assert "> Zeile 0: Größe" in quote and "> [...]" in quote and "Zeile 199" not in quote
