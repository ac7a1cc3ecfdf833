"""Incremental sync against Dovecot: quiet folders cost nothing, new mail is read once."""

from __future__ import annotations

import time

import pytest

from support.dovecot import Dovecot
from support.harness import Box, by_subject, make_box
from support.mail import NOW, days_ago, message

pytestmark = pytest.mark.imap


@pytest.fixture
def box(dovecot, imap_user, tmp_path, capsys, monkeypatch) -> Box:  # type: ignore[no-untyped-def]
    return make_box(dovecot, imap_user, tmp_path, capsys, monkeypatch)


def _cycle(box: Box, connections: int = 1) -> dict[str, int]:
    """One real cycle, as the service runs them at NOW; Dovecot's figures for it, summed
    over its connections."""
    before = _settled(box)
    box.cli("run", "--once", "--now", NOW.isoformat())
    deadline = time.monotonic() + 5
    while len(box.dovecot.sessions(box.user)) == before and time.monotonic() < deadline:
        time.sleep(0.05)  # logged a moment after logout
    sessions = box.dovecot.sessions(box.user)[before:_settled(box)]
    assert len(sessions) == connections, sessions
    return {key: sum(s.get(key, 0) for s in sessions) for key in sessions[0]}


def _settled(box: Box) -> int:
    """How many sessions Dovecot has logged, once earlier logouts (seeding) are written."""
    count, stable_since = -1, time.monotonic()
    while time.monotonic() - stable_since < 0.3:
        now = len(box.dovecot.sessions(box.user))
        if now != count:
            count, stable_since = now, time.monotonic()
        time.sleep(0.05)
    return count


def _seed(box: Box, n: int, start: int = 0) -> None:
    box.seed("Sent", *[message(f"inc{i}@example.com", sender=box.user, subject=f"Inc {i}",
                               date=days_ago(1)) for i in range(start, start + n)])


def test_quiet_cycle_reads_no_message_and_new_mail_is_read_once(box: Box) -> None:
    _seed(box, 30)
    box.seed("INBOX", *[message(f"in{i}@client.example", sender="bob@client.example", to=box.user,
                                subject=f"Hello {i}", date=days_ago(2)) for i in range(20)])
    first = _cycle(box)  # (one connection: the folders' searches share one round trip)
    assert first["hdr_count"] >= 50
    quiet = _cycle(box)
    assert quiet["hdr_count"] == 0 and quiet["body_count"] == 0
    assert quiet["out"] < 4096 * 4  # a few STATUS answers, not the mailbox
    box.seed("INBOX", message("new@client.example", sender="bob@client.example", to=box.user,
                              subject="Re: Inc 3", date=days_ago(0), reply_to="inc3@example.com"))
    after = _cycle(box)
    assert after["hdr_count"] == 1
    assert _cycle(box)["hdr_count"] == 0


def test_meetings_cost_a_quiet_cycle_nothing(dovecot: Dovecot, tmp_path, capsys,  # type: ignore[no-untyped-def]
                                             monkeypatch) -> None:
    (tmp_path / "off").mkdir()
    (tmp_path / "on").mkdir()
    rules = '[[rules]]\nname = "default"\nafter = "3 business days"\n'
    off = make_box(dovecot, dovecot.take_user(), tmp_path / "off", capsys, monkeypatch, rules=rules)
    on = make_box(dovecot, dovecot.take_user(), tmp_path / "on", capsys, monkeypatch,
                  rules=rules + "[meetings]\nthank_you = true\n")
    figures = {}
    for name, box in (("off", off), ("on", on)):
        monkeypatch.setenv("NUDGER_TEST_PASSWORD", box.dovecot.users[box.user])
        _seed(box, 10)
        box.seed("INBOX", *[message(f"in{i}@client.example", sender="bob@client.example", to=box.user,
                                    subject=f"Hello {i}", date=days_ago(2)) for i in range(10)])
        _cycle(box)  # (the first sync: one connection too)
        figures[name] = _cycle(box)
    assert figures["on"]["hdr_count"] == figures["on"]["body_count"] == 0
    assert figures["on"]["out"] <= figures["off"]["out"] + 64
    assert figures["on"]["in"] <= figures["off"]["in"] + 64


def test_quiet_cycle_costs_the_same_on_a_bigger_mailbox(dovecot: Dovecot, tmp_path, capsys,  # type: ignore[no-untyped-def]
                                                       monkeypatch) -> None:
    (tmp_path / "s").mkdir()
    (tmp_path / "b").mkdir()
    small = make_box(dovecot, dovecot.take_user(), tmp_path / "s", capsys, monkeypatch)
    big = make_box(dovecot, dovecot.take_user(), tmp_path / "b", capsys, monkeypatch)
    _seed(small, 10)
    _seed(big, 300)
    for box in (small, big):
        monkeypatch.setenv("NUDGER_TEST_PASSWORD", box.dovecot.users[box.user])
        _cycle(box)
    monkeypatch.setenv("NUDGER_TEST_PASSWORD", dovecot.users[small.user])
    quiet_small = _cycle(small)
    monkeypatch.setenv("NUDGER_TEST_PASSWORD", dovecot.users[big.user])
    quiet_big = _cycle(big)
    assert quiet_big["out"] <= quiet_small["out"] * 1.2 + 64
    assert quiet_big["in"] <= quiet_small["in"] * 1.2 + 64


def test_uidvalidity_change_rereads_without_duplicates(box: Box) -> None:
    # (In Sent: only there is a message provably the user's; in Archive it would not be.)
    box.seed("Sent", message("u1@example.com", sender=box.user, subject="Filed away",
                             date=days_ago(6)))
    assert by_subject(box.run())["Filed away"]["action"] == "appended"
    # The server renumbers Sent: same messages, new UIDVALIDITY.
    client = box.dovecot.client(box.user)
    client.rename_folder("Sent", "Sent-old")
    client.create_folder("Sent")
    client.select_folder("Sent-old")
    client.copy(client.search(["ALL"]), "Sent")
    client.delete_folder("Sent-old")
    client.logout()
    decisions = box.run()
    assert by_subject(decisions)["Filed away"]["status"] == "drafted"
    assert "renumbered by the server" in box.last_err
    assert len(box.drafts()) == 1


def test_flag_set_later_is_noticed_through_condstore(box: Box) -> None:
    box.seed("Sent", message("k1@example.com", sender=box.user, subject="Flag me",
                             date=days_ago(1)))
    box.cli("run", "--once", "--now", NOW.isoformat())
    client = box.dovecot.client(box.user)
    client.select_folder("Sent")
    client.add_flags(client.search(["ALL"]), [b"$NoNudge"])
    client.logout()
    code, out, err = box.cli("run", "--once", "--json", "--now", NOW.isoformat())
    assert code == 0
    assert '"status": "excluded"' in out and "$NoNudge" in out


def test_without_condstore_the_same_drafts_and_a_quiet_cycle_still_reads_nothing(
        dovecot: Dovecot, weak: Dovecot, tmp_path, capsys, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    drafts = []
    for server in (dovecot, weak):
        user = server.take_user()
        (tmp_path / str(server.port)).mkdir()
        box = make_box(server, user, tmp_path / str(server.port), capsys, monkeypatch)
        box.seed("Sent", *[message(f"c{i}@example.com", sender=user, to=f"p{i}@client.example",
                                   subject=f"Same {i}", date=days_ago(6)) for i in range(5)])
        box.seed("INBOX", message("rc@client.example", sender="p2@client.example", to=user,
                                  subject="Re: Same 2", date=days_ago(5), reply_to="c2@example.com"))
        box.run()
        drafts.append(sorted((d["Subject"], d["To"], d["In-Reply-To"]) for d in box.drafts()))
        _cycle(box)
        assert _cycle(box)["hdr_count"] == 0
    assert drafts[0] == drafts[1] and len(drafts[0]) == 4


def test_keyword_seen_only_at_write_time_is_remembered(weak: Dovecot, tmp_path, capsys, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    # Without CONDSTORE a flag change is invisible to the sync; the check before the plan
    # is final sees it, and from then on the thread is excluded instead of re-checked.
    user = weak.take_user()
    box = make_box(weak, user, tmp_path, capsys, monkeypatch)
    box.seed("Sent", message("kw@example.com", sender=user, subject="Keyword later", date=days_ago(1)))
    box.run()
    client = weak.client(user)
    client.select_folder("Sent")
    client.add_flags(client.search(["ALL"]), [b"$NoNudge"])
    client.logout()
    later = days_ago(-6)
    for _ in range(2):
        d = by_subject(box.run(now=later))["Keyword later"]
        assert d["status"] == "excluded" and "$NoNudge" in d["reason"] and d["action"] is None
    assert box.drafts() == []


def test_a_quiet_run_reports_nothing_unless_asked_for_all(box: Box) -> None:
    _seed(box, 3)
    code, first, _ = box.cli("run", "--once", "--json", "--now", NOW.isoformat())
    assert code == 0 and first.count('"status"') == 3
    code, quiet, _ = box.cli("run", "--once", "--json", "--now", NOW.isoformat())
    assert code == 0 and quiet.strip() == ""
    code, everything, _ = box.cli("run", "--once", "--json", "--all", "--now", NOW.isoformat())
    assert code == 0 and everything.count('"status": "waiting"') == 3
