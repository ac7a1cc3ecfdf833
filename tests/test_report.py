"""What nudger tells a person: true totals, what changed, and times in the account's zone.

The account is in Europe/Berlin (UTC+1 in November); NOW is Fri 2026-11-27 09:00 UTC,
10:00 in Berlin.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from email import message_from_bytes
from pathlib import Path

import pytest

from nudger.cycle.state import State
from support.harness import Box, by_subject, make_box
from support.mail import NOW, days_ago, message

pytestmark = pytest.mark.imap


@pytest.fixture
def box(dovecot, imap_user, tmp_path, capsys, monkeypatch) -> Box:  # type: ignore[no-untyped-def]
    return make_box(dovecot, imap_user, tmp_path, capsys, monkeypatch)


def sent(box: Box, mid: str, subject: str, when: datetime | float,
         to: str = "Bob <bob@client.example>") -> None:
    date = days_ago(when) if isinstance(when, (int, float)) else when
    box.seed("Sent", message(mid, sender=f"Mia <{box.user}>", to=to, subject=subject, date=date))


def answer(box: Box, to_mid: str, subject: str, when: datetime, **kw) -> None:  # type: ignore[no-untyped-def]
    box.seed("INBOX", message(f"re-{to_mid}", sender="bob@client.example", to=box.user,
                              subject=f"Re: {subject}", date=when, reply_to=to_mid, **kw))


def once(box: Box, *args: str) -> tuple[int, str, str]:
    """A plain `nudger run --once` (no --all): what a cron job or a user sees."""
    return box.cli("run", "--once", "--now", NOW.isoformat(), *args)


def summary(err: str) -> str:
    return next(line for line in err.splitlines() if line.startswith("test: "))


def _mailbox(box: Box) -> None:
    for i in range(3):
        sent(box, f"due{i}@example.com", f"Due {i}", 6 + i)
    sent(box, "wait@example.com", "Waiting", 1)
    sent(box, "done@example.com", "Answered", 6)
    answer(box, "done@example.com", "Answered", days_ago(5))


def test_each_cycle_reports_the_accounts_totals_and_what_changed_apart(box: Box) -> None:
    _mailbox(box)
    _, _, err = once(box)
    assert summary(err) == ("test: 4 awaiting a reply (3 in Drafts, 1 waiting); 1 replied; "
                            "this cycle: looked at all 5 threads, wrote 3 drafts")
    # A quiet cycle still says what the account waits on; nothing changed.
    _, _, err = once(box)
    assert summary(err) == ("test: 4 awaiting a reply (3 in Drafts, 1 waiting); 1 replied; "
                            "this cycle: 0 changed, wrote 0 drafts")
    # The user deletes one draft: that thread changed, and only that one is reported.
    [uid] = [uid for uid, (raw, _) in box.raw("Drafts").items()
             if message_from_bytes(raw)["Subject"] == "Re: Due 1"]
    box.delete_drafts([uid])
    code, out, err = once(box, "--json")
    assert code == 0
    assert summary(err) == ("test: 3 awaiting a reply (2 in Drafts, 1 waiting); 1 replied, "
                            "1 dismissed; this cycle: 1 changed, wrote 0 drafts")
    assert "xx dismissed 'Due 1'" in err and "Due 0" not in err and "Due 2" not in err
    assert [json.loads(line)["subject"] for line in out.splitlines()] == ["Due 1"]
    # `status` counts the same account the same way.
    _, out, _ = box.cli("status", "--now", NOW.isoformat())
    assert out.startswith("test: 3 awaiting a reply (2 in Drafts, 1 waiting); 1 replied, "
                          "1 dismissed; last synced 2026-11-27 10:00 CET")


def test_a_dry_run_counts_what_is_due_and_keeps_nothing(box: Box, tmp_path: Path) -> None:
    _mailbox(box)
    code, _, err = box.cli("run", "--once", "--dry-run", "--now", NOW.isoformat())
    assert code == 0
    assert summary(err) == ("test: 4 awaiting a reply (3 due, 1 waiting); 1 replied; "
                            "this dry run: looked at all 5 threads, would write 3 drafts")
    assert not (tmp_path / "state").exists()  # not even an empty state file
    for command in (["explain", "due0@example.com"], ["status"]):
        code, _, err = box.cli(*command, "--now", NOW.isoformat())
        assert code == 1 and "a dry run keeps nothing; run `nudger run --once` first" in err, err
        assert "look-back window" not in err
    State.open(tmp_path / "state").close()  # what an older nudger's dry run left: an empty state
    code, _, err = box.cli("explain", "due0@example.com", "--now", NOW.isoformat())
    assert code == 1 and "no cycle has run on this state yet (a dry run keeps nothing)" in err


def test_times_a_person_reads_are_in_the_accounts_zone(box: Box) -> None:
    sent(box, "late@example.com", "Late", datetime(2026, 11, 19, 22, 30, tzinfo=UTC))  # Thu 23:30
    answer(box, "late@example.com", "Late", datetime(2026, 11, 24, 23, 30, tzinfo=UTC))  # Wed 00:30
    sent(box, "tz@example.com", "Zoned", 6)
    sent(box, "ooo@example.com", "Away", datetime(2026, 11, 24, 9, tzinfo=UTC))
    box.seed("INBOX", message("auto@client.example", sender="bob@client.example", to=box.user,
                              subject="Out of office: Away", reply_to="ooo@example.com",
                              date=datetime(2026, 11, 25, 23, 15, tzinfo=UTC),  # Thu 00:15
                              headers={"Auto-Submitted": "auto-replied"},
                              body="I am out of the office."))
    decisions = by_subject(box.run())
    late = decisions["Late"]
    assert late["reason"] == "replied by bob@client.example on 2026-11-25 (INBOX)"
    assert late["sent_at"] == "2026-11-19T23:30:00+01:00"
    zoned = decisions["Zoned"]
    assert zoned["sent_at"] == "2026-11-21T10:00:00+01:00"
    assert zoned["due_at"] == "2026-11-25T10:00:00+01:00"
    assert "out-of-office/auto-reply from bob@client.example on 2026-11-26" in decisions["Away"]["reason"]
    code, out, _ = box.cli("explain", "tz@example.com", "--now", NOW.isoformat())
    assert code == 0
    assert "follow-up 1 is in Drafts since Fri 2026-11-27 10:00" in out  # appended at NOW
    assert "now is Fri 2026-11-27 10:00" in out and "last synced 2026-11-27 10:00 CET" in out


def test_explain_shows_what_the_plan_decided_not_a_second_judgement(dovecot, imap_user, tmp_path,  # type: ignore[no-untyped-def]
                                                                     capsys, monkeypatch) -> None:
    rules = '[[rules]]\nname = "team"\nafter = "2d"\nrecipients = "non-repliers"'
    box = make_box(dovecot, imap_user, tmp_path, capsys, monkeypatch, rules=rules)
    sent(box, "team@example.com", "Survey", 6, to="ann@x.example, ben@x.example")
    box.seed("INBOX", message("ben@x.example", sender="ben@x.example", to=box.user,
                              subject="Re: Survey", date=days_ago(5), reply_to="team@example.com"))
    box.cli("run", "--once", "--dry-run", "--now", NOW.isoformat())  # (keeps nothing)
    once(box)
    code, out, _ = box.cli("explain", "team@example.com", "--now", NOW.isoformat())
    assert code == 0
    assert "replied" not in out  # ben answered, but the rule waits on ann: nothing says otherwise
    assert "Rule: team (first match of 1)" in out
    [decision] = [line for line in out.splitlines() if line.startswith("Decision:")]
    assert decision.startswith("Decision: .. drafted   'Survey' to ann@x.example [follow-up 1]")


def test_status_json_is_one_document_naming_each_draft(box: Box) -> None:
    sent(box, "j1@example.com", "Drafted", 6)
    sent(box, "j2@example.com", "Waiting", 1)
    once(box)
    [draft] = box.drafts()
    code, out, _ = box.cli("status", "--json", "--now", NOW.isoformat())
    assert code == 0
    [account] = json.loads(out)["accounts"]
    assert account["account"] == "test" and account["timezone"] == "Europe/Berlin"
    assert account["last_synced"] == "2026-11-27T10:00:00+01:00"
    assert account["awaiting"] == 2 and account["totals"] == {"drafted": 1, "waiting": 1}
    threads = {t["subject"]: t for t in account["threads"]}
    assert threads["Drafted"]["status"] == "drafted" and "state" not in threads["Drafted"]
    assert threads["Drafted"]["draft"] == draft["Message-ID"]
    assert threads["Waiting"]["draft"] is None and threads["Waiting"]["follow_ups_sent"] == 0


def test_a_connection_error_names_the_account_once(box: Box, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NUDGER_TEST_PASSWORD", "wrong")
    code, _, err = once(box)
    assert code == 77
    assert err.startswith(f"nudger: test (127.0.0.1:{box.dovecot.port}): the server refused the login")
