"""Threads, verdicts, rules and due times, on plain data: no server, no clock."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from nudger.core.durations import Delay
from nudger.core.parse import parse_record
from nudger.core.rules import add_delay
from nudger.core.threads import build_threads
from nudger.core.verdict import AWAITING, REPLIED, judge
from support.mail import days_ago, message

ME = "me@example.com"
BERLIN = ZoneInfo("Europe/Berlin")


def me(address: str) -> bool:
    return address in (ME, "alias@example.org")


def rec(raw: bytes, folder: str = "INBOX", uid: int = 1, flags: tuple[str, ...] = ()):  # type: ignore[no-untyped-def]
    return parse_record(raw, folder=folder, uid=uid, keywords=flags)


def verdict(*records):  # type: ignore[no-untyped-def]
    [thread] = build_threads(records, sent="Sent")
    return judge(thread, me)


def test_same_message_in_several_folders_counts_once() -> None:
    out = message("o@x", sender=ME, date=days_ago(5))
    threads = build_threads([rec(out, "Sent", 1), rec(out, "INBOX", 2), rec(out, "Archive", 3)], sent="Sent")
    assert len(threads) == 1 and len(threads[0].messages) == 1
    assert threads[0].found_in(threads[0].messages[0]) == "Sent, INBOX, Archive"


def test_keyword_on_any_copy_counts() -> None:
    out = message("o@x", sender=ME, date=days_ago(5))
    v = verdict(rec(out, "Sent", 1), rec(out, "Archive", 2, ("$NoNudge",)))
    assert v.status == "excluded" and "$NoNudge" in v.reason


def test_missing_middle_message_still_links_by_references() -> None:
    out = message("o@x", sender=ME, date=days_ago(5))
    # Their reply answers a message we never saw, but its References name ours.
    reply = message("r@y", sender="bob@client.example", to=ME, date=days_ago(3),
                    reply_to="missing@z", references=["o@x", "missing@z"])
    assert verdict(rec(out, "Sent"), rec(reply)).status == REPLIED


def test_our_later_message_after_their_reply_is_awaiting_again() -> None:
    out = message("o@x", sender=ME, date=days_ago(9))
    reply = message("r@y", sender="bob@client.example", to=ME, date=days_ago(8), reply_to="o@x")
    again = message("o2@x", sender=ME, date=days_ago(7), reply_to="r@y", references=["o@x", "r@y"])
    v = verdict(rec(out, "Sent", 1), rec(reply), rec(again, "Sent", 2))
    assert v.status == AWAITING and v.outbound is not None and v.outbound.message_id == "<o2@x>"


def test_reply_to_an_earlier_message_of_ours_arriving_later_counts() -> None:
    first = message("o1@x", sender=ME, date=days_ago(9))
    second = message("o2@x", sender=ME, date=days_ago(7), reply_to="o1@x")
    reply = message("r@y", sender="bob@client.example", to=ME, date=days_ago(6), reply_to="o1@x")
    assert verdict(rec(first, "Sent", 1), rec(second, "Sent", 2), rec(reply)).status == REPLIED


def test_their_message_before_ours_is_not_a_reply() -> None:
    theirs = message("t@y", sender="bob@client.example", to=ME, date=days_ago(9))
    ours = message("o@x", sender=ME, date=days_ago(8), reply_to="t@y")
    assert verdict(rec(theirs), rec(ours, "Sent")).status == AWAITING


def test_thread_started_by_someone_else_uses_our_answer() -> None:
    theirs = message("t@y", sender="bob@client.example", to=ME, subject="Question", date=days_ago(9))
    ours = message("o@x", sender=ME, subject="Re: Question", date=days_ago(8), reply_to="t@y")
    v = verdict(rec(theirs), rec(ours, "Sent"))
    assert v.status == AWAITING and [a.email for a in v.to] == ["bob@client.example"]


def test_cc_only_recipients_are_nudged_in_to() -> None:
    out = message("o@x", sender=ME, to=ME, cc="bob@client.example", date=days_ago(5))
    v = verdict(rec(out, "Sent"))
    assert [a.email for a in v.to] == ["bob@client.example"] and v.cc == ()


def test_outlook_thread_index_links_a_reply_without_references() -> None:
    import base64

    conversation = bytes(range(22))
    ours = message("o@x", sender=ME, date=days_ago(5),
                   headers={"Thread-Index": base64.b64encode(conversation).decode()})
    theirs = message("r@y", sender="bob@client.example", to=ME, subject="AW: Proposal", date=days_ago(4),
                     headers={"Thread-Index": base64.b64encode(conversation + b"\x01" * 5).decode()})
    assert verdict(rec(ours, "Sent"), rec(theirs)).status == REPLIED


def test_list_address_recipient_is_excluded() -> None:
    out = message("o@x", sender=ME, to="project-devel@example.net", date=days_ago(5))
    assert verdict(rec(out, "Sent")).status == "excluded"



# -- whose message it is: the server's record, not the From header ---------------------------


def test_a_forged_from_you_in_inbox_is_not_your_message() -> None:
    forged = message("f@evil.example", sender=ME, to="attacker@evil.example", subject="Payment",
                     date=days_ago(5), body="New bank details: IBAN XX00 0000")
    v = verdict(rec(forged, "INBOX"))
    assert v.status == "not-ours" and v.outbound is None
    assert "claims to be from you, but is not in Sent" in v.reason


def test_a_forged_from_you_after_your_message_answers_it_and_is_never_the_outbound() -> None:
    out = message("o@x", sender=ME, to="bob@client.example", date=days_ago(6))
    forged = message("f@evil.example", sender=ME, to="attacker@evil.example", subject="Re: Proposal",
                     date=days_ago(5), reply_to="o@x", body="New bank details: IBAN XX00 0000")
    v = verdict(rec(out, "Sent"), rec(forged, "INBOX", 2))
    assert v.status == REPLIED and v.outbound is not None and v.outbound.message_id == "<o@x>"
    assert v.reason.startswith(f"replied by someone claiming to be you ({ME}, not in Sent)")
    assert v.repliers == ()  # it answers no recipient


def test_a_copy_in_inbox_is_yours_only_when_its_message_id_is_in_sent() -> None:
    bcc = message("b@x", sender=ME, to="bob@client.example", date=days_ago(5))
    # A Bcc to self (or a list's echo): the INBOX copy comes first, the Sent copy decides.
    v = verdict(rec(bcc, "INBOX", 7), rec(bcc, "Sent", 3))
    assert v.status == AWAITING and v.outbound is not None and v.outbound.folder == "Sent"
    assert [a.email for a in v.to] == ["bob@client.example"]
    # The same copy with nothing in Sent: a claim, not the user's.
    assert verdict(rec(bcc, "INBOX", 7)).status == "not-ours"


def test_nudger_markers_count_only_on_messages_in_sent() -> None:
    out = message("o@x", sender=ME, date=days_ago(12))
    # Someone forged our follow-up header into a message in INBOX (before our real one).
    forged = message("f@evil.example", sender=ME, subject="Re: Proposal", date=days_ago(9),
                     reply_to="o@x", headers={"X-Nudger-For": "<o@x>; stage=2"})
    ours = "<nudger.0123456789abcdef0123456789abcdef.s1@example.com>"
    real = message(ours, sender=ME,
                   subject="Re: Proposal", date=days_ago(6), reply_to="o@x",
                   headers={"X-Nudger-For": "<o@x>; stage=1"})
    v = verdict(rec(out, "Sent", 1), rec(forged, "INBOX", 1), rec(real, "Sent", 2))
    assert v.status == AWAITING and v.nudges_sent == 1
    assert v.outbound is not None and v.outbound.message_id == ours

# -- business days --------------------------------------------------------------------------


@pytest.mark.parametrize("start,days,expected", [
    ("2026-11-20T15:00", 3, "2026-11-25T15:00"),  # Fri + 3 -> Wed
    ("2026-11-23T09:00", 2, "2026-11-25T09:00"),  # Mon + 2 -> Wed
    ("2026-11-21T10:00", 1, "2026-11-23T10:00"),  # Sat + 1 -> Mon
    ("2026-11-27T18:00", 1, "2026-11-30T18:00"),  # Fri + 1 -> Mon
])
def test_business_days_in_the_accounts_time_zone(start: str, days: int, expected: str) -> None:
    begin = datetime.fromisoformat(start).replace(tzinfo=BERLIN)
    due = add_delay(begin, Delay(business_days=days), BERLIN)
    assert due.replace(tzinfo=None).isoformat(timespec="minutes") == expected


def test_business_days_keep_the_time_of_day_across_dst() -> None:
    friday = datetime(2026, 10, 23, 9, 0, tzinfo=BERLIN)  # CEST; clocks go back on Sunday
    due = add_delay(friday, Delay(business_days=1), BERLIN)
    assert (due.hour, due.utcoffset()) == (9, timedelta(hours=1))


def test_the_local_date_decides_the_weekday() -> None:
    # 23:30 UTC on Friday is already Saturday in Tokyo: one business day is Monday.
    late = datetime(2026, 11, 27, 23, 30, tzinfo=UTC)
    tokyo = ZoneInfo("Asia/Tokyo")
    assert add_delay(late, Delay(business_days=1), tokyo).astimezone(tokyo).date().isoformat() == "2026-11-30"


@settings(max_examples=200, deadline=None)
@given(st.datetimes(min_value=datetime(2020, 1, 1), max_value=datetime(2030, 1, 1)),
       st.integers(min_value=1, max_value=30))
def test_business_days_never_land_on_a_weekend(start: datetime, days: int) -> None:
    due = add_delay(start.replace(tzinfo=UTC), Delay(business_days=days), BERLIN)
    local = due.astimezone(BERLIN)
    assert local.weekday() < 5
    assert local.date() > start.date() - timedelta(days=1)


# -- properties of the whole decision ---------------------------------------------------------

_senders = st.sampled_from([ME, "bob@client.example", "ann@client.example"])


@settings(max_examples=150, deadline=None)
@given(st.lists(st.tuples(_senders, st.integers(0, 20), st.integers(-1, 10)), min_size=1, max_size=8))
def test_every_verdict_has_a_reason_and_never_raises(spec: list[tuple[str, int, int]]) -> None:
    records = []
    for i, (sender, age, parent) in enumerate(spec):
        reply_to = f"m{parent}@x" if 0 <= parent < i else None
        raw = message(f"m{i}@x", sender=sender, to=ME if sender != ME else "bob@client.example",
                      date=days_ago(age), reply_to=reply_to)
        records.append(rec(raw, "Sent" if sender == ME else "INBOX", i + 1))
    for thread in build_threads(records, sent="Sent"):
        v = judge(thread, me)
        assert v.reason
        if v.status == AWAITING:
            assert v.outbound is not None and v.to


@settings(max_examples=30, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 40), st.integers(0, 40), st.sampled_from(["INBOX", "Sent", "Archive"]),
                          st.booleans(), st.integers(0, 3)), min_size=1, max_size=60))
def test_whole_window_grouping_finds_the_threads_a_walk_per_seed_finds(msgs) -> None:  # type: ignore[no-untyped-def]
    """A first cycle groups every link at once; it must give the threads (and only the
    messages of the watched folders) that walking the links from each seed gives."""
    from nudger.cycle.cycle import threads_of
    from nudger.cycle.state import State

    state = State.memory()
    records = []
    for uid, (n, parent, folder, mine, extra) in enumerate(msgs, start=1):
        headers = {}
        if extra == 1:
            headers["Thread-Index"] = "AdkAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"  # one Outlook conversation
        raw = message(f"m{n}@x", sender=ME if mine else "bob@client.example", date=days_ago(n % 9),
                      reply_to=f"m{parent}@x" if parent != n else None,
                      references=[f"m{parent}@x", "outside@window"] if extra == 2 else None,
                      headers=headers)
        records.append(parse_record(raw, folder=folder, uid=uid, gm_thrid=7 if extra == 3 else None))
    with state.transaction():
        state.put_records("a", records)
    seeds = state.ours_since("a", [ME], days_ago(30))
    folders = ("INBOX", "Sent")  # Archive not watched: its copies stay out of every thread

    def shape(whole: bool) -> set[tuple[tuple[str, str], ...]]:
        return {tuple(sorted((m.message_id, m.folder) for m in t.messages))
                for t in threads_of(state, "a", seeds, folders, "Sent", whole_window=whole)}

    assert shape(True) == shape(False)


def test_a_thread_bigger_than_a_query_stays_one_thread() -> None:
    from nudger.cycle.cycle import threads_of
    from nudger.cycle.state import State

    state = State.memory()
    records = [parse_record(message(f"long{i}@x", sender=ME if i % 2 else "bob@client.example",
                                    date=days_ago(5), reply_to=f"long{i - 1}@x" if i else None),
                            folder="INBOX", uid=i + 1) for i in range(1200)]
    records += [parse_record(message(f"small{i}@x", sender=ME, date=days_ago(3)), folder="Sent",
                             uid=i + 1) for i in range(30)]
    with state.transaction():
        state.put_records("a", records)
    seeds = state.ours_since("a", [ME], days_ago(30))
    threads = list(threads_of(state, "a", seeds, ("INBOX", "Sent"), "Sent", whole_window=True))
    assert sorted(len(t.messages) for t in threads) == [1] * 30 + [1200]


def test_a_message_sharing_anothers_id_keeps_its_own_id_wherever_it_is_read() -> None:
    # Two messages of the user's with one Message-ID (a broken client): the second is a
    # message of its own, and stays the same one when its folder is renumbered (other
    # UIDs) or a copy is in another folder, so it never gets a second follow-up.
    first = message("dup@x", sender=ME, subject="Offer", date=days_ago(9))
    second = message("dup@x", sender=ME, subject="Invoice", date=days_ago(5))

    def ids(uid: int) -> set[str]:
        threads = build_threads([rec(first, "Sent", 1), rec(second, "Sent", uid)], sent="Sent")
        return {m.message_id for t in threads for m in t.messages}

    assert len(ids(2)) == 2 and ids(2) == ids(70)
    threads = build_threads([rec(first, "Sent", 1), rec(second, "Sent", 2), rec(second, "Archive", 9)],
                            sent="Sent")
    assert len(threads) == 2 and sorted(len(t.messages) for t in threads) == [1, 1]
