"""The pure core: what it may import, what a draft looks like, and plans that settle."""

from __future__ import annotations

import ast
import re
from datetime import UTC, datetime
from email import policy
from email.parser import BytesParser
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from nudger.app.demo import DEMO_CONFIG, sample_mailbox
from nudger.config.load import parse_config
from nudger.core.compose import DraftInput, compose_nudge, first_name, to_bytes
from nudger.core.ledger import Fate, nudge_message_id, parse_nudge_id
from nudger.core.parse import parse_record
from nudger.core.plan import Status
from nudger.core.record import Addr
from nudger.core.rules import holidays_for
from nudger.core.threads import is_no_nudge
from nudger.cycle.cycle import run_cycle
from nudger.cycle.state import State

ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT / "src" / "nudger"
# The pure rooms: every module of core/, and the configuration's model that they read.
PURE = sorted(".".join(p.relative_to(SRC.parent).with_suffix("").parts)
              for p in [*(SRC / "core").glob("*.py"), SRC / "config" / "model.py"])
# What does I/O, reads the environment or the clock (pathlib.Path is allowed as a value in
# config.model, where it names the state directory; nothing in core opens it).
FORBIDDEN = {"imapclient", "sqlite3", "socket", "ssl", "aiosmtplib", "subprocess", "time", "os",
             "threading", "asyncio", "shutil", "tempfile", "fcntl", "signal", "rich", "urllib"}


def _tree(module: str) -> ast.Module:
    return ast.parse((SRC.parent / (module.replace(".", "/") + ".py")).read_text())


def _imports(module: str) -> set[str]:
    names = set()
    for node in ast.walk(_tree(module)):
        if isinstance(node, ast.Import):
            names |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


def test_the_core_imports_only_the_core_and_the_config_model() -> None:
    assert "nudger.core.plan" in PURE and "nudger.config.model" in PURE  # (the listing works)
    for module in PURE:
        imports = _imports(module)
        assert not {i.split(".")[0] for i in imports} & FORBIDDEN, module
        if module.startswith("nudger.core."):
            assert "pathlib" not in imports, module
        ours = {i for i in imports if i.startswith("nudger.")}
        assert all(i.startswith("nudger.core.") or i == "nudger.config.model" for i in ours), (
            module, ours)


def test_the_core_never_reads_the_clock() -> None:
    for module in PURE:
        calls = {node.func.attr for node in ast.walk(_tree(module))
                 if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)}
        assert not calls & {"now", "today", "utcnow", "getenv", "monotonic"}, module


def test_nudge_message_id_is_deterministic_and_distinct() -> None:
    a = nudge_message_id("work", "<o@x>", 1, "example.com")
    assert a == nudge_message_id("work", "<o@x>", 1, "example.com")
    assert len({a, nudge_message_id("work", "<o@x>", 2, "example.com"),
                nudge_message_id("home", "<o@x>", 1, "example.com"),
                nudge_message_id("work", "<p@x>", 1, "example.com")}) == 4
    assert a.startswith("<nudger.") and a.endswith(".s1@example.com>")
    # An IDN domain in its A-labels, whichever form it comes in (a msg-id is plain ASCII).
    idn = nudge_message_id("work", "<o@x>", 1, "xn--bcher-kva.example")
    assert idn.endswith(".s1@xn--bcher-kva.example>")
    assert nudge_message_id("work", "<o@x>", 1, "bücher.example") == idn


def test_greeting_names() -> None:
    assert first_name(Addr("Bob Smith", "bob@x")) == "Bob"
    assert first_name(Addr("Smith, Bob", "bob@x")) == "Bob"
    assert first_name(Addr("", "anna.berg@x")) == "Anna"
    assert first_name(Addr("", "info@x")) == "there"
    assert first_name(Addr("", "j2k@x")) == "there"



def test_a_nudge_id_is_read_back_where_it_is_built() -> None:
    import hashlib

    digest = hashlib.sha256(b"work\x00<o@x>\x00" + b"2").hexdigest()[:32]
    built = nudge_message_id("work", "<o@x>", 2, "example.com")
    assert built == f"<nudger.{digest}.s2@example.com>"  # the stored format, unchanged
    assert parse_nudge_id(built) == 2
    assert parse_nudge_id(nudge_message_id("work", "<o@x>", 12, "bad domain!")) == 12
    for other in ("<o@x>", "", "<nudger.XYZ.s1@example.com>", "<nudger-missing.7@INBOX>"):
        assert parse_nudge_id(other) is None


def test_statuses_and_fates_are_the_words_the_state_and_json_carry() -> None:
    assert {str(s) for s in Status} == {"due", "waiting", "drafted", "replied", "excluded", "bounced",
                                        "dismissed", "limit", "no-rule", "sent", "withdrawn", "appending"}
    assert {str(f) for f in Fate} == {"drafted", "edited", "dismissed", "sent", "withdrawn", "appending"}
    assert Status.NO_RULE == "no-rule" and f"{Status.NO_RULE:<8}|" == "no-rule |"


def test_no_nudge_is_one_keyword_in_any_case() -> None:
    assert is_no_nudge(("\\Seen", "$NoNudge")) and is_no_nudge(["$nonudge"])
    assert not is_no_nudge(("$NoNudgeX", "NoNudge", "\\Flagged")) and not is_no_nudge(())


def test_the_holidays_table_is_built_once_per_spec_and_year() -> None:
    from datetime import date

    holidays_for.cache_clear()
    assert holidays_for("DE-BY", 2026)[date(2026, 12, 25)]  # a name: the same table explains
    assert date(2026, 12, 25) in holidays_for("DE-BY", 2026) and not holidays_for("", 2026)
    assert holidays_for("DE-BY", 2026) is holidays_for("DE-BY", 2026)
    config = DEMO_CONFIG.replace('timezone = ', 'holidays = "DE-BY"\ntimezone = ', 1)
    before = holidays_for.cache_info().misses
    parse_config(config.encode(), Path("demo.toml"))
    holidays_for("DE-BY", 2000)
    assert holidays_for.cache_info().misses == before + 1  # the config's check built it

def test_draft_from_an_html_only_message_quotes_its_text() -> None:
    from nudger.core.bodytext import text_of

    raw = (b"Message-ID: <h@x>\r\nFrom: me@example.com\r\nTo: bob@y.example\r\nSubject: Hi\r\n"
           b"MIME-Version: 1.0\r\nContent-Type: text/html; charset=utf-8\r\n\r\n"
           b"<html><head><style>p{}</style></head><body><p>Hello <b>Bob</b></p><p>Bye</p></body></html>")
    assert text_of(raw).split() == ["Hello", "Bob", "Bye"]


def test_quoted_text_is_the_body_a_client_shows(corpus: Path) -> None:
    from nudger.core.bodytext import text_of

    # ISO-2022-JP decoded, not left as escape sequences
    japanese = text_of((corpus / "odd_encodings" / "japanese_iso2022jp.eml").read_bytes())
    assert japanese.strip() == "すみません。"
    # the list's MIME footer is a second part: not part of what the sender wrote
    footer = text_of((corpus / "replies_threaded" / "mailinglist_reply_with_mime_footer.eml").read_bytes())
    assert "content text" in footer and "footer text" not in footer
    # a text/plain attachment is not the body
    attached = text_of((corpus / "replies_broken_threading" / "re_subject_no_headers_2001.eml").read_bytes())
    assert attached.split() == ["part", "1"]


def test_draft_placeholders_are_filled() -> None:
    raw = b"Message-ID: <o@x>\r\nFrom: Me <me@example.com>\r\nTo: Bob <bob@y.example>\r\nSubject: Re: Plan\r\nDate: Mon, 23 Nov 2026 10:00:00 +0100\r\n\r\n"
    out = parse_record(raw, folder="Sent", uid=1)
    template = "{first_name}|{name}|{email}|{my_name}|{my_first_name}|{my_email}|{subject}|{days}|{date}|{weekday}|{stage}"
    msg = compose_nudge(DraftInput("a", out, "text", 2, template, Addr("Mia Example", "me@example.com"),
                                   out.to, (), ZoneInfo("Europe/Berlin"),
                                   datetime(2026, 11, 27, 9, tzinfo=UTC)))
    parsed = BytesParser(policy=policy.default).parsebytes(to_bytes(msg))
    first_line = parsed.get_body(("plain",)).get_content().splitlines()[0]
    assert first_line == "Bob|Bob|bob@y.example|Mia Example|Mia|me@example.com|Plan|4|23 November|Monday|2"


def _demo(now: datetime):  # type: ignore[no-untyped-def]
    config = parse_config(DEMO_CONFIG.encode(), Path("demo.toml"))
    return config, config.accounts[0], sample_mailbox(now), State.memory()


def test_after_applying_a_plan_planning_again_yields_nothing() -> None:
    now = datetime(2026, 11, 27, 9, tzinfo=UTC)
    config, account, box, state = _demo(now)
    first = run_cycle(config, account, box, state, now)
    assert first.written, "the sample mailbox has due threads"
    again = run_cycle(config, account, box, state, now)
    assert again.written == [] and not [d for d in again.decisions if d.action is not None]
    # A fresh state finds the drafts already there: still nothing new.
    fresh = run_cycle(config, account, box, State.memory(), now)
    assert fresh.written == []
    assert box.appends == len(first.written)


def test_dry_run_on_the_memory_mailbox_writes_nothing() -> None:
    now = datetime(2026, 11, 27, 9, tzinfo=UTC)
    config, account, box, state = _demo(now)
    result = run_cycle(config, account, box, state, now, dry_run=True)
    assert [d for d in result.decisions if d.action is not None] and box.appends == 0


@settings(max_examples=200, deadline=None)
@given(st.sets(st.integers(min_value=1, max_value=50_000), max_size=3000))
def test_uid_sets_cover_exactly_the_uids_within_the_limits(uids: set[int]) -> None:
    from nudger.mail.imap_wire import MAX_SET, uid_batches

    seen: list[int] = []
    for batch in uid_batches(sorted(uids), size=700):
        assert len(batch) <= MAX_SET
        got = []
        for part in batch.split(","):
            first, _, last = part.partition(":")
            got += range(int(first), int(last or first) + 1)
        assert len(got) <= 700
        seen += got
    assert seen == sorted(uids)


def test_fast_fetch_parser_reads_the_common_shape_and_declines_others() -> None:
    from nudger.mail.imap_wire import parse_header_fetch

    data = [
        (b'1 (UID 7 RFC822.SIZE 512 FLAGS (\\Seen $NoNudge) INTERNALDATE "28-Nov-2026 05:39:28 +0100" '
         b'BODY[HEADER.FIELDS (MESSAGE-ID)] {24}', b"Message-ID: <a@b.c>\r\n\r\n"),
        b")",
        (b'2 (UID 9 BODY[HEADER.FIELDS (MESSAGE-ID)] {2}', b"\r\n"),
        b" FLAGS () RFC822.SIZE 3)",
    ]
    got = parse_header_fetch(data)
    assert got is not None and sorted(got) == [7, 9]
    assert got[7][b"FLAGS"] == (b"\\Seen", b"$NoNudge") and got[7][b"RFC822.SIZE"] == 512
    assert got[7][b"INTERNALDATE"].utcoffset().total_seconds() == 3600
    assert got[7][b"BODY[HEADER.FIELDS (MESSAGE-ID)]"] == b"Message-ID: <a@b.c>\r\n\r\n"
    assert got[9][b"FLAGS"] == () and got[9][b"RFC822.SIZE"] == 3
    # A header given as a quoted string, not a literal: left to imapclient's parser.
    assert parse_header_fetch([b'3 (UID 4 BODY[HEADER.FIELDS (MESSAGE-ID)] "")']) is None


@settings(max_examples=300, deadline=None)
@given(st.datetimes(min_value=datetime(1981, 1, 1), max_value=datetime(2199, 12, 31)),
       st.integers(min_value=-23 * 60 - 59, max_value=23 * 60 + 59), st.booleans())
def test_dates_read_by_pattern_equal_the_general_parsers(when: datetime, minutes: int, padded: bool) -> None:
    """Date headers and INTERNALDATE have fast readers for their usual shape; they must
    agree with email.utils and imapclient to the second and the offset."""
    import email.utils
    from datetime import timedelta, timezone

    from imapclient.datetime_util import parse_to_datetime

    from nudger.core.headers import parse_date
    from nudger.mail.imap_wire import parse_internaldate

    aware = when.replace(microsecond=0, tzinfo=timezone(timedelta(minutes=minutes)))
    header = email.utils.format_datetime(aware)
    assert parse_date(header) == email.utils.parsedate_to_datetime(header)
    stamp = aware.strftime("%d-%b-%Y %H:%M:%S %z").encode()
    if padded and stamp.startswith(b"0"):
        stamp = b" " + stamp[1:]  # servers may pad the day with a space
    got = parse_internaldate(stamp)
    assert got == parse_to_datetime(stamp, normalise=False) and got.utcoffset() == aware.utcoffset()


def test_odd_dates_still_go_to_the_general_parsers() -> None:
    from nudger.core.headers import parse_date
    from nudger.mail.imap_wire import parse_internaldate

    assert parse_date("Mon, 29 Feb 2021 10:00:00 +0000") is None  # no such day
    assert parse_date("Tue, 1 Dec 2026 10:00:00 +0000 (UTC)").hour == 10  # a comment after it
    assert parse_date("1 Dec 26 10:00 EST").utcoffset().total_seconds() == 0  # (UTC from then on)
    assert parse_internaldate(b"01-Dec-2026 10:00:00 +0100").utcoffset().total_seconds() == 3600


def test_plan_on_plain_data_decides_each_thread_with_a_reason() -> None:
    from nudger.core.ledger import Ledger
    from nudger.core.plan import AppendDraft, plan
    from nudger.core.threads import build_threads
    from support.mail import days_ago, message

    config = parse_config(DEMO_CONFIG.encode(), Path("demo.toml"))
    account = config.accounts[0]
    now = datetime(2026, 11, 27, 9, tzinfo=UTC)
    records = [
        parse_record(message("a@x", sender="jane@example.com", to="bob@y.example", subject="One",
                             date=days_ago(6, now)), folder="Sent", uid=1),
        parse_record(message("b@x", sender="jane@example.com", to="ann@y.example", subject="Two",
                             date=days_ago(6, now)), folder="Sent", uid=2),
        parse_record(message("c@y", sender="ann@y.example", to="jane@example.com", subject="Re: Two",
                             date=days_ago(5, now), reply_to="b@x"), folder="INBOX", uid=1),
    ]
    decisions = {d.subject: d for d in plan(build_threads(records, sent="Sent"), account, config.rules, Ledger(), now)}
    assert isinstance(decisions["One"].action, AppendDraft) and decisions["One"].status == "due"
    assert decisions["Two"].status == "replied" and decisions["Two"].action is None
    assert all(d.reason for d in decisions.values())


def test_the_state_keeps_a_window_of_mail_not_the_history() -> None:
    from datetime import timedelta

    now = datetime(2026, 11, 27, 9, tzinfo=UTC)
    config, account, box, state = _demo(now)
    run_cycle(config, account, box, state, now)
    assert state.ours_since(account.name, account.identities, now - timedelta(days=30))
    # Two months later, nothing of that mail can decide a nudge: it is forgotten, but for
    # the messages whose follow-up still waits in Drafts (it is still drafted).
    later = now + timedelta(days=2 * account.lookback.days + 1)
    result = run_cycle(config, account, box, state, later)
    kept = state.ours_since(account.name, account.identities, now - timedelta(days=365))
    waiting = [e for e in state.ledger(account.name).values() if e.fate == "drafted"]
    # (kept: the user's own; a thank-you follows up someone else's invitation, kept too)
    assert waiting and set(kept) <= {m for e in waiting for m in (e.outbound_id, e.nudge_id)}
    assert {e.nudge_id for e in waiting} | {e.outbound_id for e in waiting if e.stage} <= set(kept)
    assert result.written == [] and state.due_agenda(account.name, later) == []


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=300), st.text(max_size=80))
def test_any_subject_and_name_read_back_from_a_draft_as_written(subject: str, name: str) -> None:
    """Whatever the text (controls, "=?", 8-bit, huge words), the draft's Subject and From
    read back as that text without its control characters: nothing lost, nothing added."""
    import re
    from dataclasses import replace

    from nudger.core.compose import DRAFT_HEADERS, draft_bytes, reply_subject
    from nudger.core.headers import without_controls

    raw = (b"Message-ID: <o@x>\r\nFrom: me@example.com\r\nTo: Bob <bob@y.example>\r\n"
           b"Date: Mon, 23 Nov 2026 10:00:00 +0100\r\n\r\n")
    out = replace(parse_record(raw, folder="Sent", uid=1), subject=subject)
    data = draft_bytes(DraftInput("a", out, "text", 1, "Hi", Addr(name, "me@example.com"), out.to, (),
                                  ZoneInfo("Europe/Berlin"), datetime(2026, 11, 27, 9, tzinfo=UTC)))
    draft = BytesParser(policy=policy.default).parsebytes(data)
    assert set(draft.keys()) == DRAFT_HEADERS - {"Cc"}
    assert draft["Subject"] == without_controls(reply_subject(subject)).strip()[:1000].strip()
    written = without_controls(name).strip()[:200].strip()
    if written.isascii() and "=?" not in written:
        written = re.sub(" +", " ", written)  # (a plain phrase: its runs of spaces are one)
    assert draft["From"].addresses[0].display_name == written


def test_the_dry_run_plan_is_the_plan_the_run_carries_out() -> None:
    # The memory mailbox, like a server without CONDSTORE, never tells the sync of a
    # keyword set later: only the flags read before the plan is final can see it.
    from dataclasses import replace

    now = datetime(2026, 11, 27, 9, tzinfo=UTC)
    config, account, box, state = _demo(now)
    account = replace(account, max_new_drafts=1)
    run_cycle(config, account, box, state, datetime(2026, 11, 21, 9, tzinfo=UTC))
    sent = box.folders["Sent"].messages
    [uid] = [u for u, m in sent.items() if b"<proposal@" in m.data]
    sent[uid] = replace(sent[uid], flags=("\\Seen", "$NoNudge"))

    def plan(dry_run: bool) -> dict[str, tuple[str, bool]]:
        """Each thread's status, and whether a draft is written for it (would be, dry)."""
        work = state.scratch_copy() if dry_run else state
        result = run_cycle(config, account, box, work, now, dry_run=dry_run, full=True)
        return {d.subject: (d.status, d.action is not None if dry_run else
                            d.draft_id in result.written + result.withdrawn)
                for d in result.decisions}

    dry = plan(dry_run=True)
    assert box.appends == 0
    assert dry == plan(dry_run=False)
    assert dry["Proposal for the Q1 rollout"][0] == "excluded"
    assert sum(1 for _, act in dry.values() if act) == box.appends == 1
    assert [s for s, (status, act) in dry.items() if status == "due" and not act]


def test_every_invitation_of_the_corpus_reads_as_its_client_wrote_it(corpus: Path) -> None:
    from nudger.core.calendar import calendar_part, parse_calendar

    found = {}
    for path in sorted((corpus / "calendar").glob("*.eml")):
        part = calendar_part(path.read_bytes())
        assert part is not None, path.name
        facts = parse_calendar(part)
        assert facts is not None and facts.uid and facts.start and facts.end, path.name
        found[path.stem] = facts
    outlook = found["outlook_exchange_invite"]  # TZID "FLE Standard Time" through its VTIMEZONE
    assert (outlook.method, outlook.start, outlook.end) == (
        "REQUEST", "2021-11-27T07:00:00+00:00", "2021-11-27T07:30:00+00:00")
    assert outlook.organizer is not None and outlook.organizer.email == "marge@example.org"
    assert [(a.email, a.role) for a in outlook.attendees] == [("homer@example.org", "REQ-PARTICIPANT")]
    teams = found["teams_meeting_invite"]
    assert teams.end == "2020-12-02T19:00:00+00:00" and not teams.recurring
    assert found["text_calendar_attachment_notmuch"].recurring  # RRULE: a series
    assert found["repeat_event_request"].recurring
    assert found["single_event_cancel"].method == "CANCEL" and found["single_event_cancel"].sequence == 1
    assert found["publish_booking_confirmation"].method == "PUBLISH"  # a booking, not an invitation
    google = found["google_calendar_meet_invite"]
    assert google.summary == "Meeeeet me HTML" and google.organizer is not None
    assert [a.partstat for a in google.attendees] == ["ACCEPTED", "NEEDS-ACTION"]


def _series(rule: str, start: str = "20261125T050000Z") -> bytes:
    return ("BEGIN:VCALENDAR\r\nVERSION:2.0\r\nMETHOD:REQUEST\r\nBEGIN:VEVENT\r\nUID:s1\r\n"
            f"DTSTART:{start}\r\nDURATION:PT30M\r\n{rule}\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n").encode()


@pytest.mark.parametrize(("rule", "why"), [
    ("RRULE:FREQ=BOGUS", "its repeat rule (RRULE) cannot be read"),
    ("RRULE:FREQ=DAILY;INTERVAL=0", "its repeat rule (RRULE) cannot be read"),  # dateutil: forever
    ("RRULE:FREQ=DAILY;BYDAY=XX", "its repeat rule (RRULE) cannot be read"),
    ("RRULE:FREQ=DAILY;UNTIL=someday", "its repeat rule (RRULE) cannot be read"),
    ("RRULE:FREQ=DAILY;BYMONTHDAY=40", "its repeat rule (RRULE) cannot be read"),
    ("RRULE:FREQ=HOURLY;BYMONTH=2;BYMONTHDAY=30", "its repeat rule (RRULE) names a day no month has"),
    ("RRULE:FREQ=DAILY;COUNT=1000000", "it repeats more than 10000 times"),
    ("RDATE:not-a-date", "its RDATE dates cannot be read"),
    ("EXDATE:not-a-date\r\nRRULE:FREQ=DAILY", "its EXDATE dates cannot be read"),
    ("RRULE:FREQ=SECONDLY", "it repeats more often than once an hour"),
    ("RRULE:FREQ=MINUTELY;INTERVAL=30", "it repeats more often than once an hour"),
    ("RRULE:FREQ=HOURLY;BYMINUTE=0,15,30,45", "it repeats more often than once an hour"),
    ("RRULE:FREQ=YEARLY;BYMONTH=1;BYYEARDAY=200", "its repeat rule (RRULE) never happens"),
    ("RRULE:FREQ=YEARLY;BYMONTH=3;BYMONTHDAY=1;BYSETPOS=2", "its repeat rule (RRULE) never happens"),
    ("RRULE:FREQ=YEARLY;BYMONTH=2;BYMONTHDAY=29", ""),  # leap years only: it does happen
    ("RRULE:FREQ=DAILY", ""),
    ("RRULE:FREQ=WEEKLY;UNTIL=20270101T000000Z;BYDAY=MO,WE", ""),
    ("RDATE:20261126T050000Z,20261127T050000Z", ""),
])
def test_the_calendar_reader_refuses_a_series_it_cannot_or_should_not_expand(rule: str, why: str) -> None:
    from nudger.core.calendar import occurrences, parse_calendar
    from nudger.core.series import SeriesError

    facts = parse_calendar(_series(rule))
    assert facts is not None and facts.recurring and facts.refused == why
    since, until = datetime(2026, 11, 24, tzinfo=UTC), datetime(2027, 1, 24, tzinfo=UTC)
    if why:
        assert facts.ics == ""  # nothing kept to expand later
        with pytest.raises(SeriesError, match=re.escape(why)):
            occurrences(facts, since, until)
    else:
        assert occurrences(facts, since, until)


def test_a_series_is_expanded_only_over_a_bounded_span() -> None:
    from nudger.core.calendar import occurrences, parse_calendar
    from nudger.core.series import SeriesError

    since, until = datetime(2026, 11, 24, tzinfo=UTC), datetime(2027, 1, 24, tzinfo=UTC)
    hourly = parse_calendar(_series("RRULE:FREQ=HOURLY", start="19700101T000000Z"))
    assert hourly is not None and hourly.refused == ""  # read as it is: the span is the window's
    with pytest.raises(SeriesError, match=r"began too long ago to count its occurrences \(1970-01-01\)"):
        occurrences(hourly, since, until)  # half a million steps from 1970: not walked
    weekly = parse_calendar(_series("RRULE:FREQ=WEEKLY", start="19900101T050000Z"))
    assert weekly is not None and len(occurrences(weekly, since, until)) == 8  # the Mondays
    # A state written before these checks kept the text of a series they refuse.
    from dataclasses import replace
    old = replace(weekly, ics=_series("RRULE:FREQ=BOGUS").decode())
    with pytest.raises(SeriesError, match=r"RRULE\) cannot be read"):
        occurrences(old, since, until)


def test_an_invitation_is_told_from_its_stored_facts() -> None:
    from nudger.core.calendar import CalendarFacts, parse_calendar

    request = parse_calendar(_series("RRULE:FREQ=DAILY"))
    cancel = parse_calendar(_series("RRULE:FREQ=DAILY").replace(b"METHOD:REQUEST", b"METHOD:CANCEL"))
    assert request is not None and cancel is not None
    assert CalendarFacts.is_request(request.to_json()) and not CalendarFacts.is_request(cancel.to_json())


def test_a_record_replaced_fast_is_the_record_dataclasses_would_make_and_threads_anew() -> None:
    from dataclasses import replace

    from nudger.core.record import replaced

    record = parse_record(b"Message-ID: <r@x>\r\nFrom: Ann <ann@x>\r\nSubject: Re: Plan\r\n"
                          b"References: <a@x>\r\n\r\n", folder="INBOX", uid=3)
    assert record.parents == ("<a@x>",) and record.topic == "plan"  # (worked out, kept)
    fast = replaced(record, inferred_parent="<mine@me>")
    assert fast == replace(record, inferred_parent="<mine@me>") and fast is not record
    assert fast.parents == ("<a@x>", "<mine@me>") and record.parents == ("<a@x>",)
    assert replaced(fast, subject="Other").topic == "other"
    with pytest.raises(TypeError, match="no_such_field"):
        replaced(record, no_such_field=1)
