"""Mail facts from header bytes: normalisation, and the kind of each real-world message."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from nudger.core.headers import message_ids, normalise_message_id
from nudger.core.parse import parse_record
from nudger.core.record import AUTO_REPLY, BOUNCE, DELAY, HUMAN, READ_RECEIPT
from nudger.core.subjects import normalise_subject, strip_reply_prefixes
from support.corpus import classify_corpus


@pytest.mark.parametrize("raw,expected", [
    ("<abc@Example.COM>", "<abc@example.com>"),
    ("  <ABC@host>  ", "<ABC@host>"),  # the local part keeps its case
    ("<abc@\r\n example.com>", "<abc@example.com>"),
    ("abc@example.com", "<abc@example.com>"),  # brackets forgotten
    ("<abc@example.com> (Lars's message of Monday)", "<abc@example.com>"),
    ("", ""),
])
def test_message_ids_are_normalised(raw: str, expected: str) -> None:
    assert normalise_message_id(raw) == expected


def test_references_are_split_unfolded_and_deduplicated() -> None:
    value = "<a@x.org>\r\n\t<b@X.org> <a@x.org>   <c@y.org>"
    assert message_ids(value) == ("<a@x.org>", "<b@x.org>", "<c@y.org>")


@pytest.mark.parametrize("subject,topic", [
    ("Re: Proposal", "Proposal"), ("RE: RE: Proposal", "Proposal"), ("AW: Re: Proposal", "Proposal"),
    ("SV: Proposal", "Proposal"), ("Antw: Proposal", "Proposal"), ("回复: Proposal", "Proposal"),
    ("Fwd: Proposal", "Proposal"), ("[dev] Re: [PATCH] Proposal", "Proposal"),
    ("Re[2]: Proposal", "Proposal"), ("R: R: I: Proposal", "Proposal"),
    ("Proposal:  Re-thinking   it", "Proposal: Re-thinking it"),
])
def test_subject_topic(subject: str, topic: str) -> None:
    assert normalise_subject(subject) == topic


def test_reply_prefixes_stripped_but_forward_kept() -> None:
    assert strip_reply_prefixes("Re: AW: Fwd: Stuff") == "Fwd: Stuff"


def test_identity_addresses_compare_case_insensitively() -> None:
    r = parse_record(b"From: Jane <Jane.Doe@Example.COM>\r\nTo: BOB@X.org\r\n\r\n", folder="f", uid=1)
    assert r.sender.email == "jane.doe@example.com" and r.to[0].email == "bob@x.org"


def test_broken_date_falls_back_to_internaldate() -> None:
    from datetime import UTC, datetime

    arrived = datetime(2026, 11, 2, 8, 0, tzinfo=UTC)
    for date in (b"yesterday", b"Mon, 99 Foo 2026", b"Thu, 01 Jan 1970 00:00:00 +0000"):
        r = parse_record(b"Date: " + date + b"\r\nFrom: a@b.c\r\n\r\n", folder="f", uid=1,
                         internaldate=arrived)
        assert r.date == arrived


def test_header_text_of_a_read_block_is_that_of_its_value() -> None:
    # Headers.text skips compat32's escape check: a value it decoded (UTF-8, Latin-1)
    # reads the same as through header_text, 8-bit, encoded, folded or absent.
    from nudger.core.headers import Headers, header_text

    block = ("Subject: Grüße =?utf-8?q?und_=C3=A9t=C3=A9?=\r\n"
             "From: =?iso-8859-1?q?Ren=E9?= <r@x.org>\r\nTo: a@b.c,\r\n\tQ <q@r.s>\r\n"
             "X-Nudger-For: <a@B.C>\x00\r\n\r\n").encode() + b"Cc: Andr\xe9 <a@b.c>\r\n"
    latin = b"Subject: Caf\xe9 cr\xe8me\r\n\r\n"
    for data in (block, latin, block.replace(b"\r\n\r\n", b"\r\nCc: Andr\xe9 <a@b.c>\r\n\r\n")):
        msg = Headers(data)
        for name in ("subject", "from", "to", "cc", "x-nudger-for", "sender"):
            assert msg.text(name) == header_text(msg.first(name))
    assert Headers(latin).text("subject") == "Café crème"


def test_record_survives_json_round_trip() -> None:
    from nudger.core.record import MessageRecord

    r = parse_record(b"Message-ID: <a@b>\r\nFrom: A <a@b.c>\r\nTo: x@y.z, Q <q@r.s>\r\n"
                     b"References: <r@s>\r\nSubject: =?utf-8?q?Gr=C3=BC=C3=9Fe?=\r\n\r\n",
                     folder="INBOX", uid=7, keywords=("$NoNudge",))
    assert MessageRecord.from_row(json.loads(json.dumps(r.to_row()))) == r
    assert r.subject == "Grüße"
    # A state written by nudger 0.1.0 stored each record as an object; it still reads.
    legacy = {"folder": "INBOX", "uid": 7, "message_id": "<a@b>", "in_reply_to": [],
              "references": ["<r@s>"], "sender": {"name": "A", "email": "a@b.c"},
              "to": [{"name": "", "email": "x@y.z"}, {"name": "Q", "email": "q@r.s"}], "cc": [],
              "bcc": [], "date": r.date.isoformat(), "subject": "Grüße", "kind": "human",
              "kind_reason": "", "list_traffic": False, "failed_recipients": [], "original_ids": [],
              "keywords": ["$NoNudge"], "gm_thrid": None, "thread_index": "", "nudge_for": "",
              "size": 0, "written_id": "<a@b>", "written_references": ["<r@s>"], "back_on": ""}
    assert MessageRecord.from_row(json.loads(json.dumps(legacy))) == r


# -- the shared corpus: every category, judged by what a user expects ------------------------

EXPECTED = {
    "replies_threaded": {HUMAN},  # but for the Bugzilla robot's notification, below
    "replies_broken_threading": {HUMAN},
    "auto_replies": {AUTO_REPLY},
    "bounces": {BOUNCE, DELAY},
    "read_receipts": None,  # originals requesting a receipt are human; the receipts are not
}

# Known misses, each explained; the test fails if one is fixed (so the list stays honest)
# or if anything else is missed.
KNOWN_MISSES = {
    # A qmail/Verizon bounce that looks like a reply: "Re:Test message" from post_master@,
    # no report, no daemon address; only the body says "Invalid user address".
    "bounces/apache_james_bounce.eml",
}


def test_corpus_messages_are_classified_as_a_user_expects(corpus: Path) -> None:
    kinds = classify_corpus(corpus)
    assert len(kinds) >= 180
    misses = set()
    for name, (category, kind) in kinds.items():
        expected = EXPECTED.get(category)
        if category == "read_receipts":
            expected = {HUMAN} if "request" in name else {READ_RECEIPT}
        if "bugzilla_notification" in name:
            expected = {AUTO_REPLY}  # from bugzilla-daemon@: threaded, but no person wrote it
        if expected is not None and kind not in expected:
            misses.add(name)
    assert misses == KNOWN_MISSES, sorted(misses ^ KNOWN_MISSES)


def test_every_corpus_message_parses_without_exception(corpus: Path) -> None:
    for path in corpus.rglob("*.eml"):
        raw = path.read_bytes()
        record = parse_record(raw, folder="c", uid=1, report_bytes=raw)
        assert record.date.tzinfo is not None


def test_bounces_name_the_failed_recipient_and_the_original(corpus: Path) -> None:
    raw = (corpus / "bounces" / "postfix_dsn.eml").read_bytes()
    record = parse_record(raw, folder="c", uid=1, report_bytes=raw)
    assert record.kind == BOUNCE and record.failed_recipients


def test_most_bounces_name_the_recipient_that_failed(corpus: Path) -> None:
    # RFC 3464 reports by our parser, the rest by flufl.bounce's per-MTA detectors.
    named = total = 0
    for path in (corpus / "bounces").glob("*.eml"):
        raw = path.read_bytes()
        record = parse_record(raw, folder="c", uid=1, report_bytes=raw)
        if record.kind == BOUNCE:
            total += 1
            named += bool(record.failed_recipients)
    assert total >= 40 and named / total >= 0.8, (named, total)


def test_success_notice_is_not_a_bounce(corpus: Path) -> None:
    raw = (corpus / "bounces" / "success_dsn_relayed.eml").read_bytes()
    assert parse_record(raw, folder="c", uid=1, report_bytes=raw).kind == DELAY


def test_delay_notice_is_not_a_bounce(corpus: Path) -> None:
    raw = (corpus / "bounces" / "delay_sendmail_warning.eml").read_bytes()
    assert parse_record(raw, folder="c", uid=1, report_bytes=raw).kind == DELAY


def test_x_auto_response_suppress_alone_is_not_an_auto_reply() -> None:
    r = parse_record(b"From: bob@x.org\r\nSubject: Re: hi\r\nX-Auto-Response-Suppress: All\r\n\r\n",
                     folder="f", uid=1)
    assert r.kind == HUMAN


def test_precedence_bulk_alone_is_not_an_auto_reply() -> None:
    # Lists stamp it on human replies; calling those machine mail would cause false nudges.
    r = parse_record(b"From: bob@x.org\r\nSubject: Re: hi\r\nPrecedence: bulk\r\n\r\n",
                     folder="f", uid=1)
    assert r.kind == HUMAN


@pytest.mark.parametrize("subject", [
    "Automatic reply: Offer", "Out of Office: Offer", "Automatische Antwort: Angebot",
    "Abwesenheitsnotiz", "Réponse automatique : Offre", "Respuesta automática: Oferta",
    "Risposta automatica: Offerta", "Automatisch antwoord: Offerte", "Resposta automática: Oferta",
    "Autosvar: Offert", "自動応答: お見積り", "[support #4711] AutoReply: printer broken",
    "We have received your request", "Ihre Anfrage ist eingegangen (Ticket 12345)",
    "Accusé de réception de votre message", "Your ticket #8812 has been created",
])
def test_auto_reply_subjects_in_many_languages(subject: str) -> None:
    raw = f"From: help@vendor.example\r\nSubject: {subject}\r\n\r\n".encode()
    assert parse_record(raw, folder="f", uid=1).kind == AUTO_REPLY


@pytest.mark.parametrize("subject", [
    "Re: Offer", "RE: [Ticket #4711] printer broken", "Re: out of scope items",
    "AW: Angebot", "Re: We received your proposal, thanks", "Accepted offer: next steps?",
])
def test_human_replies_are_not_mistaken_for_machines(subject: str) -> None:
    raw = f"From: bob@client.example\r\nSubject: {subject}\r\n\r\n".encode()
    assert parse_record(raw, folder="f", uid=1).kind == HUMAN


def test_records_built_fast_are_the_dataclass_s_own() -> None:
    import dataclasses

    from nudger.core.record import MessageRecord, new_record

    r = parse_record(b"Message-ID: <a@b>\r\nFrom: a@b.c\r\nSubject: Re: x\r\n\r\n", folder="f", uid=1)
    fields = {name: getattr(r, name) for name in MessageRecord.__dataclass_fields__}
    assert MessageRecord(**fields) == r and hash(MessageRecord(**fields)) == hash(r)
    with pytest.raises(dataclasses.FrozenInstanceError):
        r.uid = 2  # type: ignore[misc]
    del fields["uid"]
    with pytest.raises(TypeError, match="uid"):
        new_record(**fields)
    with pytest.raises(TypeError, match="colour"):
        new_record(**fields, uid=1, colour="red")


# -- hostile headers ---------------------------------------------------------------------------


def test_a_huge_references_header_keeps_its_first_and_its_last_ids() -> None:
    # 200,000 ids (7.5 MB) once held a cycle for minutes; the first (the thread's root) and
    # the last 99 (the nearest ancestors) link a message to its thread just as well.
    from nudger.core.headers import MAX_IDS

    ids = [f"<id{i}@Host{i % 50}.example>" for i in range(200_000)]
    raw = ("Message-ID: <m@x>\r\nFrom: a@b.c\r\nReferences: " + "\r\n ".join(ids)
           + "\r\nIn-Reply-To: " + " ".join(ids[:300]) + "\r\n\r\n").encode()
    record = parse_record(raw, folder="f", uid=1)
    kept = ids[:1] + ids[1 - MAX_IDS:]
    assert MAX_IDS == 100 and record.written_references == tuple(kept)
    assert record.references == tuple(i.replace("@Host", "@host") for i in kept)
    assert len(record.in_reply_to) == MAX_IDS and len(record.parents) <= 2 * MAX_IDS
    # Repeated ids count once, in the order first seen, before the cap.
    assert message_ids("<a@x> <b@x> <a@x> " * 1000) == ("<a@x>", "<b@x>")


@pytest.mark.parametrize("raw,subject,name", [
    (b"Subject: =?utf-8?q?Hi=0D=0ABcc:=20a@evil.example=00?=\r\nTo: bob@x.org\r\n", "Hi Bcc: a@evil.example", ""),
    (b"Subject: a\tb\x00c\x1bd\r\nTo: \"Bob\r\n Smith\" <bob@x.org>\r\n", "a b c d", "Bob Smith"),
    (b"Subject: =?x-unknown-\xff?q?=ZZ=?= =?utf-8?q?=E2=80?=\r\nTo: =?utf-8?q?B=0Aob?= <bob@x.org>\r\n",
     None, "B ob"),
])
def test_header_text_carries_no_control_characters(raw: bytes, subject: str | None, name: str) -> None:
    record = parse_record(raw + b"\r\n", folder="f", uid=1)
    assert record.subject.isprintable() and record.to[0].name.isprintable()
    assert subject is None or record.subject == subject
    assert record.to[0].name == name and record.to[0].email == "bob@x.org"


def test_a_bounce_names_the_failed_recipients_of_its_header_and_its_report_each_once() -> None:
    raw = (b"From: Mail Delivery System <mailer-daemon@mx.example.org>\r\nTo: me@example.com\r\n"
           b"Subject: Mail delivery failed\r\nMessage-ID: <b1@mx.example.org>\r\n"
           b"X-Failed-Recipients: Ann@Example.org, bob@example.net\r\n"
           b"Date: Mon, 30 Nov 2026 10:00:00 +0000\r\nMIME-Version: 1.0\r\n"
           b'Content-Type: multipart/report; report-type=delivery-status; boundary="b"\r\n\r\n'
           b"--b\r\nContent-Type: text/plain\r\n\r\nIt failed.\r\n"
           b"--b\r\nContent-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; mx.example.org\r\n\r\n"
           b"Final-Recipient: rfc822; bob@example.net\r\nAction: failed\r\nStatus: 5.1.1\r\n\r\n"
           b"Final-Recipient: rfc822; cy@example.com\r\nAction: failed\r\nStatus: 5.1.1\r\n"
           b"--b--\r\n")
    headers_only = parse_record(raw, folder="INBOX", uid=1)
    assert headers_only.kind == BOUNCE
    assert headers_only.failed_recipients == ("ann@example.org", "bob@example.net")
    whole = parse_record(raw, folder="INBOX", uid=1, report_bytes=raw)
    assert whole.failed_recipients == ("ann@example.org", "bob@example.net", "cy@example.com")
