"""Thank-you drafts after meetings: real invitations (Outlook/Exchange, Google Calendar,
Thunderbird's test invitations) delivered to Dovecot, their times moved next to a pinned
now; a thank-you only where a person would write one, at the right time, to the right
people, in the invitation's thread."""

from __future__ import annotations

import contextlib
import re
import sqlite3
from datetime import UTC, date, datetime, timedelta
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from email.utils import format_datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from nudger.core.calendar import calendar_part, parse_calendar
from nudger.cycle.statefile import SCHEMA_VERSION
from support.harness import Box, make_box, text
from support.mail import NOW

pytestmark = pytest.mark.imap

HELSINKI = ZoneInfo("Europe/Helsinki")  # Exchange's "FLE Standard Time"
BERLIN = ZoneInfo("Europe/Berlin")  # the account's zone (support.mail.config_text)
MEETINGS = '''[[rules]]
name = "default"
after = "3 business days"

[meetings]
thank_you = true
after = "2h"
'''


def box_for(dovecot, imap_user, tmp_path, capsys, monkeypatch, identities: list[str],  # type: ignore[no-untyped-def]
            extra: str = "", meetings: str = MEETINGS) -> Box:
    return make_box(dovecot, imap_user, tmp_path, capsys, monkeypatch,
                    identities=[imap_user, *identities], rules=meetings, extra_account=extra)


def invitation(corpus: Path, name: str, start: datetime, end: datetime | date, *,
               mid: str | None = None, sequence: int | None = None, extra: str = "",
               method: str | None = None, sent: datetime | None = None) -> bytes:
    """A corpus invitation with its event moved to ``start``-``end``. A TZID stays as the
    client wrote it: the times are written in its own zone, which the test names."""
    msg = BytesParser(policy=policy.default).parsebytes((corpus / "calendar" / name).read_bytes())
    assert isinstance(msg, EmailMessage)
    part = next(p for p in msg.walk() if p.get_content_type() == "text/calendar")
    ics = part.get_payload(decode=True).decode("utf-8").replace("\r\n", "\n").replace("\n ", "")

    def moved(match: re.Match[str]) -> str:
        name, params, value = match.group(1), match.group(2), match.group(3)
        when = start if name == "DTSTART" else end
        if isinstance(when, datetime):
            text = f"{when:%Y%m%dT%H%M%S}" + ("Z" if value.endswith("Z") else "")
            return f"{name}{params}:{text}"
        return f"{name};VALUE=DATE:{when:%Y%m%d}"

    head, event = ics.split("BEGIN:VEVENT", 1)  # (a VTIMEZONE's DTSTART stays as it is)
    ics = head + "BEGIN:VEVENT" + re.sub(r"(?m)^(DTSTART|DTEND)((?:;[^:\n]*)?):(\w+)$", moved, event)
    if isinstance(end, date) and not isinstance(end, datetime):
        ics = re.sub(r"(?m)^DURATION:.*\n", "", ics)
    if sequence is not None:
        ics = re.sub(r"(?m)^SEQUENCE:\d+$", f"SEQUENCE:{sequence}", ics)
    if method is not None:
        ics = re.sub(r"(?m)^METHOD:\w+$", f"METHOD:{method}", ics)
    if extra:
        ics = ics.replace("END:VEVENT", extra.strip() + "\nEND:VEVENT", 1)
    part.set_content(ics.replace("\n", "\r\n"), subtype="calendar", charset="utf-8",
                     params={"method": method or "REQUEST"}, cte="quoted-printable")
    if mid is not None:
        del msg["Message-ID"]
        msg["Message-ID"] = mid
    del msg["Date"]  # sent a few days before, as invitations are
    msg["Date"] = format_datetime(sent or NOW - timedelta(days=4))
    return msg.as_bytes()


def answer(uid: str, me: str, organizer: str, partstat: str, when: datetime,
           mid: str, subject: str, parent: str | None = None) -> bytes:
    """An attendee's answer (METHOD:REPLY), as a calendar client sends it."""
    msg = EmailMessage()
    msg["From"], msg["To"] = me, organizer
    msg["Subject"] = f"{partstat.capitalize()}: {subject}"
    msg["Date"] = format_datetime(when)
    msg["Message-ID"] = mid
    if parent:
        msg["In-Reply-To"] = msg["References"] = parent
    msg.set_content("\r\n".join([
        "BEGIN:VCALENDAR", "VERSION:2.0", "PRODID:-//test//answer//EN", "METHOD:REPLY",
        "BEGIN:VEVENT", f"UID:{uid}", f"DTSTAMP:{when.astimezone(UTC):%Y%m%dT%H%M%SZ}",
        f"ORGANIZER:mailto:{organizer}", f"ATTENDEE;PARTSTAT={partstat}:mailto:{me}",
        "END:VEVENT", "END:VCALENDAR", ""]), subtype="calendar", params={"method": "REPLY"})
    return bytes(msg)


def uid_of(raw: bytes) -> str:
    facts = parse_calendar(calendar_part(raw) or b"")
    assert facts is not None
    return facts.uid


# -- an Exchange invitation, accepted, in its own time zone ---------------------------------

OUTLOOK_ID = "<HE1P190MB0540579ABA18FCE320901B31E39C9@HE1P190MB0540.EURP190.PROD.OUTLOOK.COM>"


def accepted_outlook(box: Box, corpus: Path, start_local: datetime) -> None:
    """Marge's Exchange invitation (TZID "FLE Standard Time", with its VTIMEZONE) to
    Homer, who is the user and accepted it from his client (the answer is in Sent)."""
    raw = invitation(corpus, "outlook_exchange_invite.eml", start_local, start_local + timedelta(minutes=30))
    box.seed("INBOX", raw)
    box.seed("Sent", answer(uid_of(raw), "homer@example.org", "marge@example.org", "ACCEPTED",
                            NOW - timedelta(days=2), "<accept-1@example.org>", "Testaus", OUTLOOK_ID))


def test_accepted_exchange_meeting_gets_a_thank_you_in_its_own_zone(
        dovecot, imap_user, tmp_path, capsys, monkeypatch, corpus) -> None:  # type: ignore[no-untyped-def]
    box = box_for(dovecot, imap_user, tmp_path, capsys, monkeypatch, ["homer@example.org"])
    # 08:00-08:30 in Helsinki is 06:00-06:30 UTC: with "2h", due 08:30 UTC, 09:30 in Berlin.
    # Read as UTC it would end at 08:30 UTC and be due at 10:30, after NOW (09:00 UTC).
    accepted_outlook(box, corpus, datetime(2026, 11, 27, 8, 0))
    early = box.run("--dry-run", now=NOW - timedelta(hours=1))
    [waiting] = [d for d in early if d["subject"] == "Testaus"]
    assert waiting["status"] == "waiting"
    assert "thank-you due at Fri 2026-11-27 09:30" in waiting["reason"]
    assert box.drafts() == []

    planned = box.run("--dry-run")
    [due] = [d for d in planned if d["subject"] == "Testaus"]
    assert due["status"] == "due" and due["action"] == "append-draft"
    assert box.drafts() == []  # a dry run writes nothing

    box.run()
    [draft] = box.drafts()
    assert draft["From"].addresses[0].addr_spec == "homer@example.org"
    assert [a.addr_spec for a in draft["To"].addresses] == ["marge@example.org"]
    assert draft["Cc"] is None
    assert draft["Subject"] == "Re: Testaus"
    assert draft["In-Reply-To"] == OUTLOOK_ID
    assert OUTLOOK_ID in draft["References"]
    assert draft["X-Nudger-For"].lower() == f"{OUTLOOK_ID.lower()}; stage=0"
    body = text(draft)
    assert body.startswith("Hi Marge,\n\nThank you for taking the time to meet.")
    assert "wrote:" not in body  # the invitation is not quoted under a thank-you

    # One draft ever: the next cycle finds it, and deleting it dismisses the meeting.
    box.run(now=NOW + timedelta(hours=1))
    assert len(box.drafts()) == 1
    box.delete_drafts()
    later = box.run(now=NOW + timedelta(hours=2))
    assert box.drafts() == []
    assert [d["status"] for d in later if d["subject"] == "Testaus"] == ["dismissed"]


def test_check_config_names_the_thank_yous(dovecot, imap_user, tmp_path, capsys, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    box = box_for(dovecot, imap_user, tmp_path, capsys, monkeypatch, [])
    code, out, _ = box.cli("check-config")
    assert code == 0
    assert "meetings: a thank-you draft 2:00:00 after each meeting you organised or accepted" in out


def test_a_thank_you_later_than_a_day_is_refused(dovecot, imap_user, tmp_path, capsys,  # type: ignore[no-untyped-def]
                                                 monkeypatch) -> None:
    box = box_for(dovecot, imap_user, tmp_path, capsys, monkeypatch, [],
                  meetings=MEETINGS.replace('after = "2h"', 'after = "2d"'))
    code, _, err = box.cli("check-config")
    assert code == 78 and 'meetings.after: "2d" is too late' in err


def test_no_thank_you_unless_asked_for(dovecot, imap_user, tmp_path, capsys, monkeypatch,  # type: ignore[no-untyped-def]
                                       corpus) -> None:
    box = box_for(dovecot, imap_user, tmp_path, capsys, monkeypatch, ["homer@example.org"],
                  meetings="")
    accepted_outlook(box, corpus, datetime(2026, 11, 27, 8, 0))
    box.run()
    assert box.drafts() == []


def test_someone_who_wrote_first_withdraws_the_thank_you(
        dovecot, imap_user, tmp_path, capsys, monkeypatch, corpus) -> None:  # type: ignore[no-untyped-def]
    box = box_for(dovecot, imap_user, tmp_path, capsys, monkeypatch, ["homer@example.org"])
    accepted_outlook(box, corpus, datetime(2026, 11, 27, 8, 0))
    box.run()
    assert len(box.drafts()) == 1
    # (Written out: the email package would encode an id this long in a header of its own.)
    box.seed("INBOX", "\r\n".join([
        "From: Marge <marge@example.org>", "To: Homer <homer@example.org>", "Subject: RE: Testaus",
        f"Date: {format_datetime(NOW + timedelta(minutes=20))}", "Message-ID: <thanks-marge@example.org>",
        f"In-Reply-To: {OUTLOOK_ID}", f"References: {OUTLOOK_ID}", "",
        "Thanks for your time this morning, Homer!", ""]).encode())
    decisions = box.run(now=NOW + timedelta(minutes=30))
    assert box.drafts() == []
    [d] = [d for d in decisions if d["subject"] == "Testaus"]
    assert d["action"] == "withdrawn" and "marge@example.org wrote first" in d["reason"]


# -- Google Calendar, organised by the user: who gets it ------------------------------------

GOOGLE_ID = "<0000000000008c6d7005be1c767c@google.com>"


def test_organised_google_meeting_thanks_people_never_rooms(
        dovecot, imap_user, tmp_path, capsys, monkeypatch, corpus) -> None:  # type: ignore[no-untyped-def]
    box = box_for(dovecot, imap_user, tmp_path, capsys, monkeypatch, ["example@gmail.com"])
    extra = "\n".join([
        "ATTENDEE;CUTYPE=INDIVIDUAL;ROLE=OPT-PARTICIPANT;PARTSTAT=ACCEPTED;CN=Lisa Simpson:mailto:lisa@example.com",
        "ATTENDEE;CUTYPE=ROOM;ROLE=NON-PARTICIPANT;PARTSTAT=ACCEPTED;CN=Room 4:mailto:room4@resource.calendar.google.com",
        "ATTENDEE;CUTYPE=RESOURCE;ROLE=REQ-PARTICIPANT;CN=Projector:mailto:projector@resource.example.com",
        "ATTENDEE;CUTYPE=INDIVIDUAL;ROLE=REQ-PARTICIPANT;PARTSTAT=DECLINED;CN=Bart:mailto:bart@example.com",
    ])
    # UTC times (Google writes Z): ended 07:00 UTC, due 09:00 UTC = NOW.
    raw = invitation(corpus, "google_calendar_meet_invite.eml", datetime(2026, 11, 27, 6, 0),
                     datetime(2026, 11, 27, 7, 0), extra=extra)
    box.seed("Sent", raw)  # the organiser's copy of the invitation
    decisions = box.run()
    # Sent four days ago, answered only by calendars: never nudged, thanked instead.
    [thread] = [d for d in decisions if not d["thread"].startswith("meeting ")]
    assert thread["status"] == "excluded" and "a meeting invitation's thread" in thread["reason"]
    [draft] = box.drafts()
    assert draft["From"].addresses[0].addr_spec == "example@gmail.com"
    assert [a.addr_spec for a in draft["To"].addresses] == ["homer@example.com"]
    assert [a.addr_spec for a in draft["Cc"].addresses] == ["lisa@example.com"]
    assert draft["Subject"] == "Re: Meeeeet me HTML"  # the event's summary, not "Invitation: ..."
    assert draft["In-Reply-To"] == GOOGLE_ID
    # The invitation's text is Google's Swedish one (the organiser's, the user's, calendar
    # speaks Swedish): the thank-you follows it, greeting the first in To.
    assert text(draft).startswith("Hej Homer,")


def test_organised_meeting_with_only_yourself_gets_none(
        dovecot, imap_user, tmp_path, capsys, monkeypatch, corpus) -> None:  # type: ignore[no-untyped-def]
    box = box_for(dovecot, imap_user, tmp_path, capsys, monkeypatch,
                  ["example@gmail.com", "homer@example.com"])
    raw = invitation(corpus, "google_calendar_meet_invite.eml", datetime(2026, 11, 27, 6, 0),
                     datetime(2026, 11, 27, 7, 0))
    box.seed("Sent", raw)
    [d] = [d for d in box.run() if d["subject"] == "Meeeeet me HTML"]
    assert box.drafts() == []
    assert d["status"] == "excluded" and d["reason"].endswith("no one but you attends")


# -- what a person would not thank for ---------------------------------------------------------

SINGLE_UID = "02e79b96"


def thunderbird_box(dovecot, imap_user, tmp_path, capsys, monkeypatch, **kw) -> Box:  # type: ignore[no-untyped-def]
    return box_for(dovecot, imap_user, tmp_path, capsys, monkeypatch, ["receiver@example.com"], **kw)


def seed_single(box: Box, corpus: Path, start: datetime, end: datetime | date, partstat: str | None,
                name: str = "single_event_request.eml", **kw) -> None:
    # (These test invitations carry no Message-ID, which a reply needs: added here.)
    box.seed("INBOX", invitation(corpus, name, start, end, mid="<single@example.com>", **kw))
    if partstat:
        box.seed("Sent", answer(SINGLE_UID, "receiver@example.com", "sender@example.com", partstat,
                                NOW - timedelta(days=3), f"<answer-{partstat}@example.com>",
                                "Single Event"))


def decision(box: Box, now: datetime = NOW) -> dict[str, object]:
    [d] = [d for d in box.run(now=now) if d["thread"].startswith("meeting ")]
    return d


@pytest.mark.parametrize(("partstat", "why"), [
    ("DECLINED", "you declined it"),
    ("TENTATIVE", "you answered tentatively"),
    (None, "you did not accept it"),
])
def test_declined_or_unanswered_meeting_gets_none(dovecot, imap_user, tmp_path, capsys, monkeypatch,  # type: ignore[no-untyped-def]
                                                  corpus, partstat, why) -> None:
    box = thunderbird_box(dovecot, imap_user, tmp_path, capsys, monkeypatch)
    seed_single(box, corpus, datetime(2026, 11, 27, 5, 0), datetime(2026, 11, 27, 6, 0), partstat)
    d = decision(box)
    assert box.drafts() == []
    assert d["status"] == "excluded" and why in str(d["reason"])


def test_accepted_thunderbird_meeting_gets_one(dovecot, imap_user, tmp_path, capsys, monkeypatch,  # type: ignore[no-untyped-def]
                                               corpus) -> None:
    box = thunderbird_box(dovecot, imap_user, tmp_path, capsys, monkeypatch)
    seed_single(box, corpus, datetime(2026, 11, 27, 5, 0), datetime(2026, 11, 27, 6, 0), "ACCEPTED")
    assert decision(box)["status"] == "due"
    [draft] = box.drafts()
    assert [a.addr_spec for a in draft["To"].addresses] == ["sender@example.com", "other@example.com"]
    assert draft["Subject"] == "Re: Single Event"


def test_cancelled_meeting_gets_none(dovecot, imap_user, tmp_path, capsys, monkeypatch, corpus) -> None:  # type: ignore[no-untyped-def]
    box = thunderbird_box(dovecot, imap_user, tmp_path, capsys, monkeypatch)
    start, end = datetime(2026, 11, 27, 5, 0), datetime(2026, 11, 27, 6, 0)
    seed_single(box, corpus, start, end, "ACCEPTED")
    box.seed("INBOX", invitation(corpus, "single_event_cancel.eml", start, end,
                                 mid="<cancel@example.com>", method="CANCEL"))
    d = decision(box)
    assert box.drafts() == []
    assert str(d["reason"]).endswith("it was cancelled")


def test_an_update_moves_the_thank_you(dovecot, imap_user, tmp_path, capsys, monkeypatch, corpus) -> None:  # type: ignore[no-untyped-def]
    box = thunderbird_box(dovecot, imap_user, tmp_path, capsys, monkeypatch)
    seed_single(box, corpus, datetime(2026, 11, 27, 5, 0), datetime(2026, 11, 27, 6, 0), "ACCEPTED")
    # Moved to the afternoon (SEQUENCE 1): ends 15:00 UTC, 16:00 in Berlin; due at 18:00.
    box.seed("INBOX", invitation(corpus, "single_event_update_minor.eml", datetime(2026, 11, 27, 14, 0),
                                 datetime(2026, 11, 27, 15, 0), mid="<update@example.com>", sequence=1))
    d = decision(box)
    assert box.drafts() == []
    assert d["status"] == "waiting" and "thank-you due at Fri 2026-11-27 18:00" in str(d["reason"])
    assert decision(box, now=datetime(2026, 11, 27, 17, 0, tzinfo=UTC))["status"] == "due"
    [draft] = box.drafts()
    assert draft["In-Reply-To"] == "<single@example.com>"  # the thread's first invitation
    assert draft["Subject"] == "Re: Updated Event"


def test_recurring_meeting_gets_none(dovecot, imap_user, tmp_path, capsys, monkeypatch, corpus) -> None:  # type: ignore[no-untyped-def]
    box = thunderbird_box(dovecot, imap_user, tmp_path, capsys, monkeypatch)
    seed_single(box, corpus, datetime(2026, 11, 27, 5, 0), datetime(2026, 11, 27, 6, 0), "ACCEPTED",
                name="repeat_event_request.eml")
    d = decision(box)
    assert box.drafts() == []
    assert "a recurring meeting" in str(d["reason"])


def test_all_day_event_is_thanked_the_next_working_morning(
        dovecot, imap_user, tmp_path, capsys, monkeypatch, corpus) -> None:  # type: ignore[no-untyped-def]
    box = thunderbird_box(dovecot, imap_user, tmp_path, capsys, monkeypatch)
    # All of Friday 27 November: its end is midnight; the next working morning is Monday.
    seed_single(box, corpus, date(2026, 11, 27), date(2026, 11, 28), "ACCEPTED")
    d = decision(box)
    assert d["status"] == "waiting" and "thank-you due at Mon 2026-11-30 09:00" in str(d["reason"])
    assert decision(box, now=datetime(2026, 11, 30, 8, 5, tzinfo=UTC))["status"] == "due"
    assert len(box.drafts()) == 1


def test_quiet_hours_hold_and_a_late_one_is_never_written(
        dovecot, imap_user, tmp_path, capsys, monkeypatch, corpus) -> None:  # type: ignore[no-untyped-def]
    box = thunderbird_box(dovecot, imap_user, tmp_path, capsys, monkeypatch,
                          extra='quiet_hours = "20:00-08:00"')
    # Ends 18:00 UTC (19:00 Berlin): +2h is 21:00, in quiet hours: due 08:00 the next morning.
    seed_single(box, corpus, datetime(2026, 11, 26, 17, 0), datetime(2026, 11, 26, 18, 0), "ACCEPTED")
    d = decision(box, now=datetime(2026, 11, 26, 21, 0, tzinfo=UTC))
    assert d["status"] == "waiting" and "thank-you due at Fri 2026-11-27 08:00" in str(d["reason"])
    assert box.drafts() == []
    # A first look more than 24 hours after the end: too late to thank.
    d = decision(box, now=datetime(2026, 11, 27, 18, 30, tzinfo=UTC))
    assert box.drafts() == [] and str(d["reason"]).endswith("it ended more than 24 hours ago")


def test_status_and_explain_show_meetings(dovecot, imap_user, tmp_path, capsys, monkeypatch,  # type: ignore[no-untyped-def]
                                          corpus) -> None:
    box = box_for(dovecot, imap_user, tmp_path, capsys, monkeypatch, ["homer@example.org"])
    accepted_outlook(box, corpus, datetime(2026, 11, 27, 14, 0))  # ends 12:30 UTC, 13:30 in Berlin
    box.run()
    code, out, _ = box.cli("status", "--now", NOW.isoformat())
    assert code == 0 and "meetings" in out and "Testaus" in out and "thank-you due at" in out
    code, out, _ = box.cli("explain", OUTLOOK_ID, "--now", NOW.isoformat())
    assert code == 0 and "Meeting 'Testaus'" in out and "thank-you due at Fri 2026-11-27 15:30" in out


def test_a_state_of_schema_2_gains_the_calendar_and_reads_as_it_is(
        dovecot, imap_user, tmp_path, capsys, monkeypatch, corpus) -> None:  # type: ignore[no-untyped-def]
    box = box_for(dovecot, imap_user, tmp_path, capsys, monkeypatch, ["homer@example.org"])
    box.run(now=NOW - timedelta(days=1))  # a state, then made one of nudger before meetings
    path = tmp_path / "state" / "state.sqlite3"
    with contextlib.closing(sqlite3.connect(path)) as conn:
        conn.execute("DROP TABLE calendar")
        conn.execute("PRAGMA user_version=2")
        conn.commit()
    assert box.cli("status", "--now", NOW.isoformat())[0] == 0  # read as it is: no meetings yet
    accepted_outlook(box, corpus, datetime(2026, 11, 27, 8, 0))
    box.run()
    assert box.last_code == 0 and len(box.drafts()) == 1
    with contextlib.closing(sqlite3.connect(path)) as conn:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION


# -- recurring = true: one thank-you per series, after the occurrence that just ended --------

SERIES = MEETINGS + "recurring = true\n"


def test_a_series_gets_one_thank_you_after_the_occurrence_that_just_ended(
        dovecot, imap_user, tmp_path, capsys, monkeypatch, corpus) -> None:  # type: ignore[no-untyped-def]
    box = thunderbird_box(dovecot, imap_user, tmp_path, capsys, monkeypatch, meetings=SERIES)
    # Daily, three times (COUNT=3) from Wednesday 05:00-05:30 UTC: Friday's ended at 05:30.
    seed_single(box, corpus, datetime(2026, 11, 25, 5, 0), datetime(2026, 11, 25, 5, 30), "ACCEPTED",
                name="repeat_event_request.eml")
    d = decision(box)
    assert d["status"] == "due" and "Fri 2026-11-27 06:00-06:30, one of a series" in str(d["reason"])
    [draft] = box.drafts()
    assert draft["Subject"] == "Re: Repeat Event" and draft["In-Reply-To"] == "<single@example.com>"
    box.delete_drafts()
    assert decision(box, now=NOW + timedelta(hours=1))["status"] == "dismissed"
    assert box.drafts() == []  # and never another one for this series


def test_an_exchange_series_in_its_own_zone(dovecot, imap_user, tmp_path, capsys, monkeypatch,  # type: ignore[no-untyped-def]
                                            corpus) -> None:
    box = box_for(dovecot, imap_user, tmp_path, capsys, monkeypatch, ["david@tethera.net"],
                  meetings=SERIES)
    # Daily at 14:00-14:30 "Atlantic Standard Time" (its VTIMEZONE: -04:00 in November), so
    # Thursday's ended at 18:30 UTC: due at 20:30 UTC, 21:30 in Berlin.
    raw = invitation(corpus, "text_calendar_attachment_notmuch.eml", datetime(2026, 11, 2, 14, 0),
                     datetime(2026, 11, 2, 14, 30)).replace(b"UNTIL=3D20240827", b"UNTIL=3D20270827")
    box.seed("INBOX", raw)
    box.seed("Sent", answer(uid_of(raw), "david@tethera.net", "bremner@example.com", "ACCEPTED",
                            NOW - timedelta(days=3), "<yes@tethera.net>", "test [In-person]"))
    d = decision(box, now=datetime(2026, 11, 26, 20, 0, tzinfo=UTC))
    assert d["status"] == "waiting" and "thank-you due at Thu 2026-11-26 21:30" in str(d["reason"])
    assert decision(box)["status"] == "due"
    [draft] = box.drafts()
    assert [a.addr_spec for a in draft["To"].addresses] == ["bremner@example.com"]


# -- a series nudger does not expand: no thank-you, the reason said, the cycle unbroken -----


@pytest.mark.parametrize(("rule", "why"), [
    ("RRULE:FREQ=BOGUS", "its repeat rule (RRULE) cannot be read"),
    ("RDATE:not-a-date", "its RDATE dates cannot be read"),
    ("RRULE:FREQ=SECONDLY;COUNT=5", "it repeats more often than once an hour"),
])
def test_a_series_that_cannot_be_worked_out_is_skipped_and_explained(
        dovecot, imap_user, tmp_path, capsys, monkeypatch, corpus, rule, why) -> None:  # type: ignore[no-untyped-def]
    box = box_for(dovecot, imap_user, tmp_path, capsys, monkeypatch,
                  ["receiver@example.com", "homer@example.org"], meetings=SERIES)
    seed_single(box, corpus, datetime(2026, 11, 27, 5, 0), datetime(2026, 11, 27, 6, 0), "ACCEPTED",
                extra=rule)
    accepted_outlook(box, corpus, datetime(2026, 11, 27, 8, 0))  # an ordinary meeting beside it
    found = {d["thread"]: d for d in box.run() if d["thread"].startswith("meeting ")}
    assert box.last_code == 0, box.last_err
    [hostile] = [d for thread, d in found.items() if SINGLE_UID in thread]
    assert hostile["status"] == "excluded"
    assert str(hostile["reason"]).endswith(f"nudger does not work out this series: {why}")
    assert [d["Subject"] for d in box.drafts()] == ["Re: Testaus"]  # the other one is thanked
    code, out, _ = box.cli("explain", "<single@example.com>", "--now", NOW.isoformat())
    assert code == 0 and why in out


# -- stats: a thank-you is a follow-up too ---------------------------------------------------


def test_stats_count_a_thank_you_that_was_answered(dovecot, imap_user, tmp_path, capsys, monkeypatch,  # type: ignore[no-untyped-def]
                                                   corpus) -> None:
    import json

    from support.mail import message

    box = box_for(dovecot, imap_user, tmp_path, capsys, monkeypatch, ["homer@example.org"])
    accepted_outlook(box, corpus, datetime(2026, 11, 27, 8, 0))  # ended 06:30 UTC: due 08:30
    box.run()
    [(uid, (data, _))] = box.raw("Drafts").items()
    box.seed("Sent", data)  # the user sends it
    box.delete_drafts([uid])
    thanks_id = data.split(b"Message-ID: ", 1)[1].split(b"\r\n", 1)[0].decode()
    box.seed("INBOX", message("thanks-back@example.org", sender="Marge <marge@example.org>",
                              to="homer@example.org", subject="Re: Testaus", date=NOW + timedelta(hours=3),
                              reply_to=thanks_id.strip("<>")), flags=())  # (References: the thank-you alone)
    box.run(now=NOW + timedelta(hours=4))
    assert box.last_code == 0, box.last_err
    code, out, _ = box.cli("stats", "--json", "--now", (NOW + timedelta(days=1)).isoformat())
    assert code == 0
    [account] = json.loads(out)["accounts"]
    [rule] = account["rules"]
    assert (rule["nudged"], rule["answered"]) == (1, 1)
    assert rule["stages"] == [{"stage": 0, "label": "thank-you", "sent": 1, "answered": 1,
                               "median_to_answer_seconds": 3 * 3600}]  # written at 09:00
    code, out, _ = box.cli("stats", "--now", (NOW + timedelta(days=1)).isoformat())
    row = next(line for line in out.splitlines() if "thank-you" in line)
    assert row.split("│")[1:5] == [" meetings ", " thank-you ", "    1 ", "        1 "]
    assert "100%" in row and "3h" in row
