"""Real-world judgement against Dovecot: out-of-office dates, per-recipient truth, broken
threading, holidays, quiet hours, working weeks, and the user's own overrides."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from support.harness import Box, by_subject, make_box
from support.mail import days_ago, message

pytestmark = pytest.mark.imap


@pytest.fixture
def box(dovecot, imap_user, tmp_path, capsys, monkeypatch) -> Box:  # type: ignore[no-untyped-def]
    return make_box(dovecot, imap_user, tmp_path, capsys, monkeypatch)


def custom(dovecot, imap_user, tmp_path, capsys, monkeypatch, extra: str = "", rules: str = "") -> Box:  # type: ignore[no-untyped-def]
    return make_box(dovecot, imap_user, tmp_path, capsys, monkeypatch, extra_account=extra, rules=rules)


def sent(box: Box, mid: str, subject: str, when: datetime, to: str = "Bob <bob@client.example>",
         **kw) -> None:  # type: ignore[no-untyped-def]
    box.seed("Sent", message(mid, sender=f"Mia <{box.user}>", to=to, subject=subject, date=when, **kw))


MON = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)  # 10:00 in Berlin


@pytest.mark.parametrize("subject,body,back", [
    ("Out of office: Offer", "I am out of the office and will be back on 14 December.", "2026-12-14"),
    ("Abwesenheitsnotiz: Offer", "Ich bin nicht im Büro und ab dem 10.12.2026 wieder erreichbar. "
     "Zurück am 10.12.2026.", "2026-12-10"),
    ("Réponse automatique : Offer", "Je suis absent, de retour le mercredi 9 décembre.", "2026-12-09"),
])
def test_out_of_office_with_a_return_date_reschedules_the_nudge(box: Box, subject: str, body: str,
                                                                back: str) -> None:
    sent(box, "o1@example.com", "Offer", MON)
    box.seed("INBOX", message("ooo1@client.example", sender="bob@client.example", to=box.user,
                              subject=subject, date=MON.replace(hour=10), reply_to="o1@example.com",
                              body=body, headers={"Auto-Submitted": "auto-replied"}))
    d = by_subject(box.run(now=datetime(2026, 11, 30, 12, tzinfo=UTC)))["Offer"]
    # Without the out-of-office it would be due on Thursday 26 Nov; now one business day
    # after the return date.
    assert d["status"] == "waiting", d
    assert d["due_at"] > f"{back}T" and "out of office until" in d["reason"]
    assert box.drafts() == []
    code, out, _ = box.cli("explain", "o1@example.com", "--now", "2026-11-30T12:00:00+00:00")
    assert "back on" in out and "out of office until" in out


def test_out_of_office_without_a_date_does_not_delay(box: Box) -> None:
    sent(box, "o2@example.com", "Quote", MON)
    box.seed("INBOX", message("ooo2@client.example", sender="bob@client.example", to=box.user,
                              subject="Automatic reply: Quote", date=MON, reply_to="o2@example.com",
                              body="I am travelling with limited access to email."))
    d = by_subject(box.run(now=datetime(2026, 11, 30, 12, tzinfo=UTC)))["Quote"]
    assert d["action"] == "appended"


def test_non_repliers_rule_nudges_only_those_who_did_not_answer(dovecot, imap_user, tmp_path, capsys,  # type: ignore[no-untyped-def]
                                                                 monkeypatch) -> None:
    rules = '[[rules]]\nname = "team"\nafter = "2d"\nrecipients = "non-repliers"'
    box = custom(dovecot, imap_user, tmp_path, capsys, monkeypatch, rules=rules)
    sent(box, "n1@example.com", "Survey", days_ago(6), to="ann@x.example, ben@x.example, cy@x.example")
    box.seed("INBOX", message("n1r@x.example", sender="ben@x.example", to=box.user,
                              subject="Re: Survey", date=days_ago(5), reply_to="n1@example.com"))
    d = by_subject(box.run())["Survey"]
    assert d["action"] == "appended" and "answered by ben@x.example" in d["reason"]
    [draft] = box.drafts()
    assert sorted(a.addr_spec for a in draft["To"].addresses) == ["ann@x.example", "cy@x.example"]
    assert draft["Cc"] is None


def test_by_default_any_reply_answers_the_thread(box: Box) -> None:
    sent(box, "n2@example.com", "Survey two", days_ago(6), to="ann@x.example, ben@x.example")
    box.seed("INBOX", message("n2r@x.example", sender="ben@x.example", to=box.user,
                              subject="Re: Survey two", date=days_ago(5), reply_to="n2@example.com"))
    assert by_subject(box.run())["Survey two"]["status"] == "replied"


def test_reply_without_threading_headers_is_matched_by_subject_and_people(box: Box) -> None:
    sent(box, "s1@example.com", "Project kickoff", days_ago(6))
    # A phone client drops In-Reply-To/References; subject and people still say it answers.
    box.seed("INBOX", message("s1r@client.example", sender="bob@client.example", to=box.user,
                              subject="RE: Project kickoff", date=days_ago(5)))
    # Same subject from someone we did not write to: not an answer to us.
    sent(box, "s2@example.com", "Status", days_ago(6), to="carol@client.example")
    box.seed("INBOX", message("s2r@other.example", sender="dave@other.example", to=box.user,
                              subject="Re: Status", date=days_ago(5)))
    decisions = by_subject(box.run())
    assert decisions["Project kickoff"]["status"] == "replied"
    assert decisions["Status"]["action"] == "appended"


def test_a_reply_without_threading_headers_finds_its_message_among_many_on_one_subject(
        box: Box) -> None:
    # A weekly subject, each week to someone else (more than a sync keeps per subject):
    # the answer is linked to the message to its author, the latest before it.
    box.seed("Sent", *[message(f"w{i}@example.com", sender=f"Mia <{box.user}>",
                              to=f"p{i % 7}@client.example", subject="Weekly report",
                              date=days_ago(28 - i * 0.3)) for i in range(80)])
    box.seed("INBOX", message("w-re@client.example", sender="p3@client.example", to=box.user,
                              subject="Re: Weekly report", date=days_ago(28 - 10 * 0.3 - 0.1)))
    decisions = box.run()
    replied = [d for d in decisions if d["status"] == "replied"]
    assert [d["outbound"] for d in replied] == ["<w10@example.com>"], replied


def test_reply_without_threading_headers_in_a_later_cycle_is_matched_too(box: Box) -> None:
    sent(box, "s4@example.com", "Quarterly numbers", days_ago(6))
    assert by_subject(box.run())["Quarterly numbers"]["action"] == "appended"
    box.seed("INBOX", message("s4r@client.example", sender="bob@client.example", to=box.user,
                              subject="AW: Quarterly numbers", date=days_ago(0)))
    assert by_subject(box.run())["Quarterly numbers"]["status"] == "replied"


def test_subject_threading_can_be_switched_off(dovecot, imap_user, tmp_path, capsys, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    box = custom(dovecot, imap_user, tmp_path, capsys, monkeypatch, extra="subject_threading = false")
    sent(box, "s3@example.com", "Kickoff", days_ago(6))
    box.seed("INBOX", message("s3r@client.example", sender="bob@client.example", to=box.user,
                              subject="Re: Kickoff", date=days_ago(5)))
    assert by_subject(box.run())["Kickoff"]["action"] == "appended"


def test_public_holidays_are_not_business_days(dovecot, imap_user, tmp_path, capsys, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    box = custom(dovecot, imap_user, tmp_path, capsys, monkeypatch, extra='holidays = "DE-BY"')
    # Tuesday 22 Dec 2026 + 3 business days: 23, then 24th? no: 25 and 26 Dec are holidays
    # in Bavaria (Christmas), 24th is a working day -> 23, 24, 28 -> Monday 28 Dec.
    sent(box, "h1@example.com", "Year end", datetime(2026, 12, 22, 9, tzinfo=UTC))
    d = by_subject(box.run(now=datetime(2026, 12, 25, 12, tzinfo=UTC)))["Year end"]
    assert d["status"] == "waiting" and d["due_at"].startswith("2026-12-28T10:00")
    code, out, _ = box.cli("explain", "h1@example.com", "--now", "2026-12-25T12:00:00+00:00")
    assert "skipped Fri 25 Dec (Christmas Day), Sat 26 Dec (not a working day)" in out


def test_quiet_hours_move_a_nightly_due_time_to_the_morning(dovecot, imap_user, tmp_path, capsys,  # type: ignore[no-untyped-def]
                                                            monkeypatch) -> None:
    box = custom(dovecot, imap_user, tmp_path, capsys, monkeypatch, extra='quiet_hours = "20:00-08:00"')
    sent(box, "q1@example.com", "Late note", datetime(2026, 11, 23, 22, 30, tzinfo=UTC))  # 23:30 Berlin
    d = by_subject(box.run(now=datetime(2026, 11, 26, 23, 0, tzinfo=UTC)))["Late note"]
    assert d["status"] == "waiting" and d["due_at"].startswith("2026-11-27T08:00:00+01:00")
    _, out, _ = box.cli("explain", "q1@example.com", "--now", "2026-11-26T23:00:00+00:00")
    assert "moved out of quiet hours 20:00-08:00 to Fri 08:00" in out
    d = by_subject(box.run(now=datetime(2026, 11, 27, 7, 1, tzinfo=UTC)))["Late note"]
    assert d["action"] == "appended"


def test_sunday_to_thursday_week(dovecot, imap_user, tmp_path, capsys, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    box = custom(dovecot, imap_user, tmp_path, capsys, monkeypatch,
                 extra='workdays = ["sun", "mon", "tue", "wed", "thu"]\ntimezone = "Asia/Jerusalem"')
    box.config.write_text(box.config.read_text().replace('timezone = "Europe/Berlin"\n', "", 1))
    # Thursday 26 Nov + 1 business day: Friday and Saturday are the weekend -> Sunday.
    sent(box, "w1@example.com", "Week", datetime(2026, 11, 26, 8, tzinfo=UTC))
    rules = '[[rules]]\nname = "one"\nafter = "1 business day"'
    box.config.write_text(box.config.read_text().split("[[rules]]")[0] + rules)
    d = by_subject(box.run(now=datetime(2026, 11, 27, 12, tzinfo=UTC)))["Week"]
    assert d["due_at"].startswith("2026-11-29T10:00")


@pytest.mark.parametrize("how,expected", [
    ({"flags": ("\\Seen", "$Nudge1d")}, "2026-11-24T10:00"),
    ({"flags": ("\\Seen", "$Nudge5bd")}, "2026-11-30T10:00"),
    ({"bcc": "mia+nudge-2d@{domain}"}, "2026-11-25T10:00"),
])
def test_per_message_overrides(box: Box, how: dict, expected: str) -> None:  # type: ignore[type-arg]
    domain = box.user.split("@")[1]
    headers = {"Bcc": how["bcc"].replace("mia", box.user.split("@")[0]).format(domain=domain)} \
        if "bcc" in how else None
    box.seed("Sent", message("v1@example.com", sender=box.user, subject="Override", date=MON,
                             headers=headers), flags=how.get("flags", ("\\Seen",)))
    d = by_subject(box.run(now=datetime(2026, 11, 23, 12, tzinfo=UTC)))["Override"]
    assert d["due_at"].startswith(expected), d
    assert "set by" in d["reason"]


def test_plus_address_nonudge_excludes(box: Box) -> None:
    local, domain = box.user.split("@")
    box.seed("Sent", message("v2@example.com", sender=box.user, subject="Leave it", date=days_ago(9),
                             headers={"Bcc": f"{local}+nonudge@{domain}"}))
    d = by_subject(box.run())["Leave it"]
    assert d["status"] == "excluded" and "+nonudge" in d["reason"]
    assert box.drafts() == []
