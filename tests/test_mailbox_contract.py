"""One contract for every ``Mailbox``: the same assertions against the in-memory twin and
against ``ImapMailbox`` on the suite's Dovecot (vdirsyncer's StorageTests are the model).

Each store seeds the same messages its own way (``MemoryMailbox.add``, an APPEND from a
separate client) and reads them back from outside the mailbox under test, so a read that
changed a message would show.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from email.message import EmailMessage
from email.parser import BytesHeaderParser
from pathlib import Path
from typing import Any

import pytest

from nudger.config.load import parse_config
from nudger.mail.imap import connect
from nudger.mail.layout import discover
from nudger.mail.mailbox import Mailbox, Mark
from nudger.mail.memory import MemoryMailbox
from support.dovecot import Dovecot
from support.mail import config_text, message

Seed = tuple[bytes, tuple[str, ...], datetime]


def _flags(flags: Iterable[str | bytes]) -> frozenset[str]:
    """Flags as a set, without \\Recent: a flag of the session, not of the message."""
    text = (f.decode() if isinstance(f, bytes) else f for f in flags)
    return frozenset(f for f in text if f.lower() != "\\recent")


@dataclass
class MemoryStore:
    mailbox: MemoryMailbox

    def seed(self, folder: str, items: Iterable[Seed]) -> list[int]:
        return [self.mailbox.add(folder, data, flags, when) for data, flags, when in items]

    def set_flags(self, folder: str, uid: int, flags: tuple[str, ...]) -> None:
        self.mailbox.set_flags(folder, uid, flags)

    def stored(self, folder: str) -> dict[int, tuple[bytes, frozenset[str]]]:
        return {uid: (m.data, _flags(m.flags)) for uid, m in self.mailbox.folders[folder].messages.items()}


@dataclass
class DovecotStore:
    mailbox: Mailbox
    dovecot: Dovecot
    user: str

    def seed(self, folder: str, items: Iterable[Seed]) -> list[int]:
        return self.dovecot.seed(self.user, folder, list(items))

    def set_flags(self, folder: str, uid: int, flags: tuple[str, ...]) -> None:
        """STORE FLAGS from another client, as the user's mail program would."""
        client = self.dovecot.client(self.user)
        try:
            client.select_folder(folder)
            client.set_flags([uid], [f.encode() for f in flags])
        finally:
            client.logout()

    def stored(self, folder: str) -> dict[int, tuple[bytes, frozenset[str]]]:
        client = self.dovecot.client(self.user)
        try:
            client.select_folder(folder, readonly=True)
            uids = client.search(["ALL"])
            got = client.fetch(uids, ["BODY.PEEK[]", "FLAGS"]) if uids else {}
            return {uid: (d[b"BODY[]"], _flags(d[b"FLAGS"])) for uid, d in got.items()}
        finally:
            client.logout()


Store = MemoryStore | DovecotStore


@pytest.fixture(params=["memory", pytest.param("dovecot", marks=pytest.mark.imap)])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    if request.param == "memory":
        yield MemoryStore(MemoryMailbox())
        return
    dovecot: Dovecot = request.getfixturevalue("dovecot")
    user = dovecot.take_user()
    text = config_text(dovecot.port, user, tmp_path / "state")
    account = parse_config(text.encode(), tmp_path / "config.toml").accounts[0]
    mailbox = connect(account, dovecot.users[user])
    try:
        yield DovecotStore(mailbox, dovecot, user)
    finally:
        mailbox.close()


def _later(seconds: float, fn: Any, *args: Any) -> threading.Thread:
    thread = threading.Thread(target=lambda: (time.sleep(seconds), fn(*args)))
    thread.start()
    return thread


def _looked(store: Store, *folders: str) -> None:
    """What a cycle does before the service waits: list, and ask each folder's status
    (news is what changed since)."""
    store.mailbox.list_folders()
    for folder in folders:
        store.mailbox.status(folder)


def _crlf(data: bytes) -> bytes:
    """Line ends as on the wire: a server stores and counts them so."""
    return data.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")


WHEN = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
# Three messages a day apart at noon UTC (the server's time zone here), so SINCE reads alike.
INBOX = [
    (_crlf(message("first@example.com", subject="First")), ("\\Seen",), WHEN - timedelta(days=2)),
    (_crlf(message("second@example.com", subject="Second", body="A longer body.\n" * 40)), (), WHEN),
    (_crlf(message("third@example.com", subject="Third")), ("\\Flagged", "$NoNudge"),
     WHEN + timedelta(days=2)),
]


def _draft(mid: str) -> bytes:
    return _crlf(message(mid, subject="Re: Proposal", headers={"X-Nudger-For": "<s1@example.com>"}))


class TestMailboxContract:
    def test_waiting_without_news_answers_no_news(self, store: Store) -> None:
        _looked(store, "INBOX")
        assert store.mailbox.wait_for_news(["INBOX"], 0.5, threading.Event()) == set()

    def test_a_message_arriving_while_waiting_is_news(self, store: Store) -> None:
        _looked(store, "INBOX")
        arriving = _later(0.3, store.seed, "INBOX", [(_crlf(message("new@example.com")), (), WHEN)])
        try:
            assert store.mailbox.wait_for_news(["INBOX"], 5, threading.Event()) == {"INBOX"}
        finally:
            arriving.join()

    def test_a_message_that_came_after_the_cycle_looked_is_news_at_once(self, store: Store) -> None:
        # (between the cycle's last look and the wait: no IDLE or NOTIFY would tell of it)
        _looked(store, "INBOX")
        store.seed("INBOX", [(_crlf(message("early@example.com")), (), WHEN)])
        assert store.mailbox.wait_for_news(["INBOX"], 3, threading.Event()) == {"INBOX"}

    def test_news_in_any_watched_folder_ends_the_wait_at_once(self, store: Store) -> None:
        # NOTIFY (RFC 5465) on the suite's Dovecot; the twin is told of every change.
        _looked(store, "INBOX", "Archive", "Drafts")
        arriving = _later(0.3, store.seed, "Archive", [(_crlf(message("new@example.com")), (), WHEN)])
        started = time.monotonic()
        try:
            news = store.mailbox.wait_for_news(["INBOX", "Archive", "Drafts"], 30, threading.Event())
        finally:
            arriving.join()
        assert news == {"Archive"} and time.monotonic() - started < 10
        assert store.mailbox.status("Archive").messages == 1  # what it was told, or asked
        assert store.mailbox.wait_for_news(["INBOX", "Archive", "Drafts"], 0.5, threading.Event()) == set()

    def test_a_flag_set_while_waiting_is_news(self, store: Store) -> None:
        [uid] = store.seed("Archive", INBOX[:1])
        _looked(store, "Archive")
        marking = _later(0.3, store.set_flags, "Archive", uid, ("\\Seen", "$NoNudge"))
        try:
            assert store.mailbox.wait_for_news(["Archive"], 30, threading.Event()) == {"Archive"}
        finally:
            marking.join()

    def test_a_wait_ends_soon_once_told_to_stop(self, store: Store) -> None:
        stop = threading.Event()
        stop.set()
        started = time.monotonic()
        assert store.mailbox.wait_for_news(["INBOX"], 30, stop) == set()
        assert time.monotonic() - started < 5

    def test_the_folders_name_sent_drafts_and_trash(self, store: Store) -> None:
        layout = discover(store.mailbox.list_folders())
        assert (layout.sent, layout.drafts, layout.trash) == ("Sent", "Drafts", "Trash")
        assert set(layout.watched) == {"Sent", "INBOX", "Archive"}
        assert store.mailbox.append_limit is None  # neither says it has one

    def test_status_and_examine_count_what_was_seeded(self, store: Store) -> None:
        empty = store.mailbox.status("INBOX")
        assert (empty.uidnext, empty.messages) == (1, 0)
        assert empty.uidvalidity > 0 and empty.highestmodseq is not None
        assert store.seed("INBOX", INBOX) == [1, 2, 3]
        status = store.mailbox.status("INBOX")
        assert (status.uidvalidity, status.uidnext, status.messages) == (empty.uidvalidity, 4, 3)
        assert status.highestmodseq is not None and status.highestmodseq > empty.highestmodseq
        assert store.mailbox.examine("INBOX") == status == store.mailbox.status("INBOX")

    def test_calendar_parts_are_found_by_structure(self, store: Store) -> None:
        invite = EmailMessage()
        invite["Message-ID"], invite["Subject"] = "<invite@example.com>", "Invitation: Review"
        invite.set_content("You are invited.")
        invite.add_alternative("BEGIN:VCALENDAR\r\nMETHOD:REQUEST\r\nEND:VCALENDAR\r\n",
                               subtype="calendar", params={"method": "REQUEST"})
        ics = EmailMessage()
        ics["Message-ID"] = "<ics@example.com>"
        ics.set_content("Agenda attached.")
        ics.add_attachment(b"BEGIN:VCALENDAR\r\nEND:VCALENDAR\r\n", maintype="application",
                           subtype="ics", filename="invite.ics")
        seeded = [(_crlf(bytes(m)), (), WHEN) for m in (invite, ics)]
        uids = store.seed("INBOX", INBOX + seeded)
        assert store.mailbox.calendar_uids("INBOX", uids + [99]) == {4, 5}  # (99: no such UID)
        assert store.mailbox.calendar_uids("INBOX", [1, 2]) == set()

    def test_the_status_of_many_folders_is_what_status_answers_each(self, store: Store) -> None:
        store.seed("INBOX", INBOX)
        store.seed("Sent", INBOX[:1])
        folders = ["INBOX", "Sent", "Archive", "Drafts"]
        one_by_one = {f: store.mailbox.status(f) for f in folders}
        assert store.mailbox.status_many([*folders, "No such folder"]) == one_by_one
        store.mailbox.list_folders()  # (with LIST-STATUS the listing brings the statuses)
        assert store.mailbox.status_many(folders) == one_by_one
        store.seed("Archive", INBOX[1:])  # then asked anew: the listing's are spent
        assert store.mailbox.status_many(["Archive"]) == {"Archive": store.mailbox.status("Archive")}
        assert store.mailbox.status_many(["Archive"])["Archive"].messages == 2

    def test_many_folders_are_searched_and_read_as_each_alone(self, store: Store) -> None:
        store.seed("INBOX", INBOX)
        store.seed("Archive", INBOX[1:])
        alone = {f: (store.mailbox.examine(f), store.mailbox.search_new(f, 1, WHEN.date()))
                 for f in ("INBOX", "Archive", "Sent")}
        asks = [("INBOX", 1), ("Nowhere", 0), ("Archive", 1), ("Sent", 1)]
        assert store.mailbox.search_many(asks, WHEN.date()) == alone
        wanted = [("INBOX", [1, 2, 3]), ("Archive", [1, 2])]
        headers = {f: list(store.mailbox.fetch_headers(f, uids)) for f, uids in wanted}
        got: list[tuple[str, int]] = []
        for folder, items in store.mailbox.fetch_headers_many(wanted):
            assert items == [h for h in headers[folder] if h in items]
            got += [(folder, i.uid) for i in items]
            # A read between two batches is of the folder it names (not of one opened ahead).
            assert store.mailbox.fetch_message(folder, items[0].uid, 10_000) == \
                store.stored(folder)[items[0].uid][0]
        assert got == [(f, h.uid) for f, hs in headers.items() for h in hs]

    def test_a_uid_gone_from_one_folder_read_with_others_is_looked_for_there(self, store: Store) -> None:
        # INBOX has no UID 4, Archive has: the check of what INBOX's answer left out must
        # search INBOX, not Archive (opened ahead for its own FETCH).
        store.seed("INBOX", INBOX)
        store.seed("Archive", INBOX + INBOX[:1])
        got = [(folder, i.uid) for folder, items in
               store.mailbox.fetch_headers_many([("INBOX", [1, 2, 3, 4]), ("Archive", [1, 2, 3, 4])])
               for i in items]
        assert got == [("INBOX", 1), ("INBOX", 2), ("INBOX", 3)] + [("Archive", u) for u in (1, 2, 3, 4)]

    def test_searches_find_new_uids_and_dates(self, store: Store) -> None:
        store.seed("INBOX", INBOX)
        box = store.mailbox
        assert box.search_new("INBOX", 0, None) == [1, 2, 3]
        assert box.search_new("INBOX", 1, None) == [2, 3]
        assert box.search_new("INBOX", 3, None) == []  # "UID 4:*" matches 3 on a server
        assert box.search_new("INBOX", 0, WHEN.date()) == [2, 3]
        assert box.search_new("INBOX", 2, date(2026, 11, 21)) == [3]
        assert box.all_uids("INBOX") == {1, 2, 3}
        assert box.all_uids("Drafts") == set()

    def test_searches_asked_ahead_answer_as_asked_alone_and_once(self, store: Store) -> None:
        store.seed("INBOX", INBOX)
        store.seed("Drafts", [(_draft("someone-elses@example.com"), ("\\Draft",), WHEN)])
        store.seed("Trash", [(_draft("<nudger.0123abcd.s1@example.com>"), (), WHEN)])
        box = store.mailbox
        box.status_many(["INBOX", "Drafts"])
        for folder, kind in (("Drafts", "all"), ("Nowhere", "all"), ("Trash", "marked")):
            box.search_ahead(folder, kind)
        # (A folder refused ahead spoils nothing: its own call asks it, and tells why.)
        assert box.search_many([("INBOX", 0)], None) == {"INBOX": (box.status("INBOX"), [1, 2, 3])}
        store.seed("Drafts", [(_draft("later@example.com"), ("\\Draft",), WHEN)])
        assert box.find_marked("Trash") == [1]
        assert box.all_uids("Drafts") in ({1}, {1, 2})  # (asked ahead: from before the seed)
        assert box.all_uids("Drafts") == {1, 2}  # (once: then asked anew)
        # A cycle starts with its statuses: what an earlier cycle asked ahead is dropped.
        box.search_ahead("Drafts", "all")
        box.search_ahead("Trash", "marked")  # (Drafts is then no longer the open folder)
        box.search_many([("INBOX", 0)], None)
        box.status_many(["Drafts"])
        store.seed("Drafts", [(_draft("third@example.com"), ("\\Draft",), WHEN)])
        assert box.all_uids("Drafts") == {1, 2, 3}

    def test_a_search_asked_ahead_is_never_older_than_our_own_writes(self, store: Store) -> None:
        ours = "<nudger.0123abcd.s1@example.com>"
        store.seed("INBOX", INBOX)
        store.seed("Drafts", [(_draft("someone-elses@example.com"), ("\\Draft",), WHEN)])
        box = store.mailbox
        box.status_many(["INBOX", "Drafts"])
        box.search_ahead("Drafts", "all")
        box.search_many([("INBOX", 0)], None)  # (its answers not read yet)
        uid = box.append("Drafts", _draft(ours), ("\\Draft", "\\Seen"), WHEN)
        assert uid is not None and box.all_uids("Drafts") == {1, uid}
        box.search_ahead("Drafts", "all")
        box.search_many([("INBOX", 0)], None)
        assert box.delete_own_draft("Drafts", uid, ours) is True
        assert box.all_uids("Drafts") == {1}

    def test_every_search_sees_what_another_client_added_while_the_folder_was_open(
            self, store: Store) -> None:
        # A server shows an open folder's changes from other sessions only when it syncs
        # it (RFC 3501 5.2): a search of the folder nudger still has open must not miss them.
        box, ours = store.mailbox, "<nudger.0123abcd.s1@example.com>"
        assert box.find_message_id("Drafts", ours) == []  # (Drafts is now the open folder)
        store.seed("Drafts", [(_draft(ours), ("\\Draft",), WHEN)])
        assert box.find_message_id("Drafts", ours) == [1]
        store.seed("Drafts", [(_draft("<nudger.0123abcd.s2@example.com>"), ("\\Draft",), WHEN)])
        assert box.find_marked("Drafts") == [1, 2]
        store.seed("Drafts", [(_draft("someone-elses@example.com"), ("\\Draft",), WHEN)])
        assert box.all_uids("Drafts") == {1, 2, 3}
        store.seed("Drafts", [(_draft("fourth@example.com"), ("\\Draft",), WHEN)])
        assert box.search_new("Drafts", 3, None) == [4]

    def test_headers_come_with_their_date_flags_and_size(self, store: Store) -> None:
        store.seed("INBOX", INBOX)
        fetched = list(store.mailbox.fetch_headers("INBOX", [1, 2, 3, 99]))  # 99: no such UID
        assert [f.uid for f in fetched] == [1, 2, 3]
        for item, (data, flags, when) in zip(fetched, INBOX, strict=True):
            header, seeded = BytesHeaderParser().parsebytes(item.header), BytesHeaderParser().parsebytes(data)
            assert (header["Message-ID"], header["Subject"]) == (seeded["Message-ID"], seeded["Subject"])
            assert item.header.endswith(b"\r\n\r\n")
            assert (item.internaldate, _flags(item.flags), item.size) == (when, _flags(flags), len(data))

    def test_each_message_comes_with_its_own_flags(self, store: Store) -> None:
        # Alike and unlike sets of the same size, in turn: none is another message's.
        flags = [("\\Seen",), ("\\Flagged",), ("\\Seen",), ("$NoNudge",), (), ("\\Seen", "$NoNudge"),
                 ("\\Answered", "\\Seen")]
        store.seed("INBOX", [(_crlf(message(f"f{i}@example.com")), f, WHEN) for i, f in enumerate(flags)])
        fetched = list(store.mailbox.fetch_headers("INBOX", range(1, len(flags) + 1)))
        assert [_flags(item.flags) for item in fetched] == [_flags(f) for f in flags]

    def test_flags_are_read_and_changes_found_by_modseq(self, store: Store) -> None:
        store.seed("INBOX", INBOX)
        box = store.mailbox
        flags = {uid: _flags(f) for uid, f in box.fetch_flags("INBOX", [1, 2, 3, 99]).items()}
        assert flags == {1: {"\\Seen"}, 2: set(), 3: {"\\Flagged", "$NoNudge"}}
        before = box.status("INBOX").highestmodseq
        assert before is not None and box.changed_flags("INBOX", before) == {}
        store.set_flags("INBOX", 2, ("$NoNudge",))  # the user marks it, in another program
        # Opened anew: Dovecot answers STATUS on the folder a session has open from that
        # session's view, which learns of another client's change only with a later command.
        after = box.examine("INBOX").highestmodseq
        assert after is not None and after > before
        changed = box.changed_flags("INBOX", before)
        assert {uid: _flags(f) for uid, f in changed.items()} == {2: {"$NoNudge"}}
        assert box.changed_flags("INBOX", after) == {}
        assert {uid: _flags(f) for uid, f in box.changed_flags("INBOX", 0).items()} == {
            1: {"\\Seen"}, 2: {"$NoNudge"}, 3: {"\\Flagged", "$NoNudge"}}

    def test_messages_are_read_up_to_a_limit(self, store: Store) -> None:
        store.seed("INBOX", INBOX)
        box = store.mailbox
        second = INBOX[1][0]
        assert box.fetch_message("INBOX", 2, 100) == second[:100]
        assert box.fetch_message("INBOX", 2, 10**6) == second
        assert box.fetch_message("INBOX", 99, 100) is None
        assert box.fetch_messages("INBOX", [1, 2, 99], 10**6) == {1: INBOX[0][0], 2: second}
        assert box.fetch_messages("INBOX", [3], 50) == {3: INBOX[2][0][:50]}

    def test_messages_are_found_by_message_id(self, store: Store) -> None:
        store.seed("INBOX", INBOX)
        assert store.mailbox.find_message_id("INBOX", "<second@example.com>") == [2]
        assert store.mailbox.find_message_id("INBOX", "<nobody@example.com>") == []

    def test_messages_carrying_nudgers_marks_are_found(self, store: Store) -> None:
        store.seed("Trash", [(_crlf(data), (), WHEN) for data in [
            message("<nudger.0123abcd.s1@example.com>", subject="ours by id"),
            message("plain@example.com", subject="ours by header", headers={"X-Nudger-For": "<x@y>"}),
            message("other@example.com", subject="only mentions it",
                    references=["nudger.0123abcd.s1@example.com"]),
            message("unrelated@example.com", subject="nudger. in the subject"),
        ]])
        assert store.mailbox.find_marked("Trash") == [1, 2]
        assert store.mailbox.find_marked("INBOX") == []

    def test_an_appended_draft_gets_its_uid_and_is_found(self, store: Store) -> None:
        store.seed("Drafts", [(_draft("someone-elses@example.com"), ("\\Draft",), WHEN)])
        draft = _draft("<nudger.0123abcd.s1@example.com>")
        uid = store.mailbox.append("Drafts", draft, ("\\Draft", "\\Seen"), WHEN)
        assert uid == 2
        assert store.mailbox.find_message_id("Drafts", "<nudger.0123abcd.s1@example.com>") == [2]
        assert store.mailbox.fetch_message("Drafts", 2, 10**6) == draft
        assert store.stored("Drafts")[2] == (draft, {"\\Draft", "\\Seen"})
        assert store.mailbox.status("Drafts").uidnext == 3

    def test_only_a_draft_whose_uid_holds_our_message_id_is_removed(self, store: Store) -> None:
        ours, theirs = "<nudger.0123abcd.s1@example.com>", "<mine@example.com>"
        store.seed("Drafts", [(_draft(ours), ("\\Draft",), WHEN), (_draft(theirs), ("\\Draft",), WHEN)])
        kept = store.stored("Drafts")[2]
        assert store.mailbox.delete_own_draft("Drafts", 2, ours) is False  # UID 2 is theirs
        assert store.mailbox.delete_own_draft("Drafts", 1, theirs) is False
        assert store.mailbox.all_uids("Drafts") == {1, 2}
        assert store.mailbox.delete_own_draft("Drafts", 1, ours) is True
        assert store.stored("Drafts") == {2: kept}
        assert store.mailbox.all_uids("Drafts") == {2}

    def test_only_our_own_draft_is_marked_and_the_mark_taken_off_again(self, store: Store) -> None:
        ours, theirs = "<nudger.0123abcd.s1@example.com>", "<mine@example.com>"
        store.seed("Drafts", [(_draft(ours), ("\\Draft",), WHEN), (_draft(theirs), ("\\Draft",), WHEN)])
        before = store.stored("Drafts")
        assert store.mailbox.mark_own_draft("Drafts", 2, ours, "$NudgerSending") == Mark.GONE
        assert store.stored("Drafts") == before
        assert store.mailbox.mark_own_draft("Drafts", 1, ours, "$NudgerSending") == Mark.SET
        assert store.stored("Drafts") == {1: (before[1][0], {"\\Draft", "$NudgerSending"}), 2: before[2]}
        assert store.mailbox.mark_own_draft("Drafts", 1, ours, "$NudgerSending", on=False) == Mark.SET
        assert store.stored("Drafts") == before

    def test_reads_never_change_a_message(self, store: Store) -> None:
        store.seed("INBOX", INBOX)
        before = store.stored("INBOX")
        box = store.mailbox
        box.list_folders()
        box.status("INBOX")
        box.examine("INBOX")
        box.search_new("INBOX", 0, None)
        box.all_uids("INBOX")
        list(box.fetch_headers("INBOX", [1, 2, 3]))
        box.fetch_flags("INBOX", [1, 2, 3])
        box.changed_flags("INBOX", 0)
        box.fetch_message("INBOX", 2, 100)
        box.fetch_messages("INBOX", [1, 2, 3], 10**6)
        box.find_message_id("INBOX", "<second@example.com>")
        box.find_marked("INBOX")
        assert store.stored("INBOX") == before
        assert "\\Seen" not in before[2][1]  # the one unread message is still unread


def test_a_cycle_on_the_twin_sees_a_mark_set_between_cycles() -> None:
    """The engine learns of a flag change from the twin as from a CONDSTORE server: a
    thread marked $NoNudge after the first cycle is planned as excluded, never as due."""
    from nudger.app.demo import DEMO_CONFIG, sample_mailbox
    from nudger.cycle.cycle import run_cycle
    from nudger.cycle.state import State

    now = datetime(2026, 11, 27, 9, tzinfo=UTC)
    config = parse_config(DEMO_CONFIG.encode(), Path("demo.toml"))
    account, box, state = config.accounts[0], sample_mailbox(now), State.memory()
    first = run_cycle(config, account, box, state, now)
    assert [d.status for d in first.decisions if d.subject == "Lunch next week?"] == ["waiting"]
    uid, stored = next((uid, m) for uid, m in box.folders["Sent"].messages.items()
                       if BytesHeaderParser().parsebytes(m.data)["Subject"] == "Lunch next week?")
    box.set_flags("Sent", uid, (*stored.flags, "$NoNudge"))
    later = run_cycle(config, account, box, state, now + timedelta(days=7), dry_run=True)
    lunch = [d for d in later.decisions if d.subject == "Lunch next week?"]
    assert [(d.status, d.reason, d.action) for d in lunch] == [
        ("excluded", "marked $NoNudge (Sent)", None)]


@pytest.mark.imap
def test_without_notify_a_message_that_came_before_the_wait_is_news_at_once(
        weak: Dovecot, tmp_path: Path) -> None:
    """IDLE on INBOX (no NOTIFY, as on Office 365) tells only of what arrives during it:
    a message delivered after the cycle's STATUS and before the IDLE is seen by the
    EXAMINE that precedes it, and ends the wait at once (not at the next poll)."""
    user = weak.take_user()
    account = parse_config(config_text(weak.port, user, tmp_path / "state").encode(),
                           tmp_path / "config.toml").accounts[0]
    mailbox = connect(account, weak.users[user])
    try:
        store = DovecotStore(mailbox, weak, user)
        _looked(store, "INBOX")
        store.seed("INBOX", [(_crlf(message("early@example.com")), (), WHEN)])
        assert mailbox.wait_for_news(["INBOX"], 3, threading.Event()) == {"INBOX"}
        assert mailbox.wait_for_news(["INBOX"], 0.5, threading.Event()) == set()
    finally:
        mailbox.close()
