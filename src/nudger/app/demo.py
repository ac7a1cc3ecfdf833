"""``nudger demo``: the real engine on a built-in sample mailbox, no account needed.

The mailbox is a ``MemoryMailbox`` filled with a dozen threads a user would recognise
(dated relative to today); the cycle writes its drafts there, and we show them.
"""

from __future__ import annotations

import sys
from datetime import UTC, datetime, timedelta
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from email.utils import format_datetime
from pathlib import Path

from nudger.app.report import print_cycle, print_json
from nudger.config.load import parse_config
from nudger.core.words import counted
from nudger.cycle.cycle import run_cycle
from nudger.cycle.state import State
from nudger.mail.memory import MemoryMailbox

DEMO_CONFIG = """
[daemon]
state_dir = "/nonexistent/nudger-demo"   # the demo keeps its state in memory

[accounts.demo]
host = "imap.example.com"
username = "jane@example.com"
password_env = "NUDGER_DEMO_UNUSED"       # the demo never connects
identities = ["jane@example.com", "jane.doe@example.org"]
name = "Jane Doe"
timezone = "Europe/Berlin"
lookback = "30d"

[[rules]]
name = "clients"
match = { to = ["*@acme.example"] }
stages = [ { after = "2 business days", template = "gentle" },
           { after = "5 business days", template = "gentle" } ]

[[rules]]
name = "default"
after = "3 business days"
template = "gentle"

[meetings]
thank_you = true                         # a thank-you draft after the meetings you attended
after = "2h"
"""

ME = "Jane Doe <jane@example.com>"


def _msg(mid: str, sender: str, to: str, subject: str, when: datetime, body: str = "",
         extra: str = "", reply_to: str = "") -> bytes:
    head = [f"Message-ID: <{mid}@demo.example>", f"From: {sender}", f"To: {to}",
            f"Subject: {subject}", f"Date: {format_datetime(when)}", "MIME-Version: 1.0",
            "Content-Type: text/plain; charset=utf-8"]
    if reply_to:
        head += [f"In-Reply-To: <{reply_to}@demo.example>", f"References: <{reply_to}@demo.example>"]
    head += [h for h in extra.split("\n") if h]
    return ("\r\n".join(head) + "\r\n\r\n" + (body or "Hello,\r\n\r\nsee below.\r\n")).encode()


def sample_mailbox(now: datetime) -> MemoryMailbox:
    box = MemoryMailbox()
    d = lambda days, hours=0: now - timedelta(days=days, hours=hours)  # noqa: E731

    def sent(mid: str, to: str, subject: str, when: datetime, body: str = "", extra: str = "",
             flags: tuple[str, ...] = ("\\Seen",), sender: str = ME) -> None:
        box.add("Sent", _msg(mid, sender, to, subject, when, body, extra), flags, when)

    def got(folder: str, mid: str, sender: str, subject: str, when: datetime, reply_to: str,
            extra: str = "") -> None:
        box.add(folder, _msg(mid, sender, ME, subject, when, "Thanks!", extra, reply_to),
                ("\\Seen",), when)

    sent("proposal", "Bob Miller <bob@acme.example>", "Proposal for the Q1 rollout", d(6),
         "Hi Bob,\n\nattached is the proposal we discussed. Could you confirm the dates?\n\nJane")
    sent("invoice", "Carla Ruiz <carla@shop.example>", "Invoice 2026-118", d(9))
    got("INBOX", "invoice-re", "Carla Ruiz <carla@shop.example>", "Re: Invoice 2026-118", d(8),
        "invoice")
    sent("contract", "Dan Okafor <dan@law.example>", "Contract draft v2", d(12))
    got("Archive", "contract-re", "Dan Okafor <dan@law.example>", "RE: Contract draft v2", d(11),
        "contract")
    sent("intro", "Eve Laurent <eve@studio.example>", "Introduction: Jane <> Eve", d(7))
    got("INBOX", "intro-ooo", "Eve Laurent <eve@studio.example>",
        "Automatic reply: Introduction: Jane <> Eve", d(7, -1), "intro", "Auto-Submitted: auto-replied")
    sent("typo", "frank@nowhere.example", "Meeting notes", d(5))
    box.add("INBOX", _msg("bounce", "Mail Delivery System <MAILER-DAEMON@mx.example.com>", ME,
                          "Undelivered Mail Returned to Sender", d(5, -1),
                          "The address frank@nowhere.example does not exist.",
                          "X-Failed-Recipients: frank@nowhere.example", "typo"), (), d(5, -1))
    sent("support", "no-reply@saas.example", "Cancel my subscription", d(10))
    sent("list", "dev-list@lists.project.example", "[dev] Release 2.0 plan", d(8),
         extra="List-Id: <dev.lists.project.example>")
    sent("self", ME, "Reminder: renew passport", d(6))
    sent("quick", "Gina Park <gina@partner.example>", "Lunch next week?", d(1))
    sent("private", "Hal Meyer <hal@friends.example>", "Photos from the trip", d(9),
         flags=("\\Seen", "$NoNudge"))
    sent("skew", "Ida Novak <ida@vendor.example>", "Delivery date", d(6))
    got("INBOX", "skew-re", "Ida Novak <ida@vendor.example>", "Re: Delivery date", d(7), "skew")
    sent("umlaut", "Jörg Müller <joerg@kunde.example>, Kai Brandt <kai@kunde.example>",
         "Angebot für Ihre Anfrage – Übersicht", d(8), sender="Jane Doe <jane.doe@example.org>",
         body="Hallo Jörg,\n\nanbei unser Angebot für die Wartung Ihrer Anlagen. Bei Fragen "
              "melden Sie sich gern.\n\nViele Grüße\nJane")
    _meeting(box, now)
    return box


def _meeting(box: MemoryMailbox, now: datetime) -> None:
    """Bob's workshop invitation (as Google Calendar writes one), accepted by Jane; it
    ended three hours ago, so its thank-you is due."""
    end = now - timedelta(hours=3)
    stamp = lambda t: f"{t.astimezone(UTC):%Y%m%dT%H%M%SZ}"  # noqa: E731
    event = ["BEGIN:VEVENT", f"DTSTART:{stamp(end - timedelta(hours=1))}", f"DTEND:{stamp(end)}",
             f"DTSTAMP:{stamp(now - timedelta(days=5))}", "UID:rollout-workshop@demo.example",
             "SEQUENCE:0", "STATUS:CONFIRMED", "SUMMARY:Q1 rollout workshop",
             "ORGANIZER;CN=Bob Miller:mailto:bob@acme.example",
             "ATTENDEE;CUTYPE=INDIVIDUAL;ROLE=REQ-PARTICIPANT;PARTSTAT=ACCEPTED;CN=Bob Miller:"
             "mailto:bob@acme.example",
             "ATTENDEE;CUTYPE=INDIVIDUAL;ROLE=REQ-PARTICIPANT;PARTSTAT=NEEDS-ACTION;CN=Jane Doe:"
             "mailto:jane@example.com",
             "ATTENDEE;CUTYPE=INDIVIDUAL;ROLE=OPT-PARTICIPANT;PARTSTAT=ACCEPTED;CN=Lena Fischer:"
             "mailto:lena@acme.example",
             "ATTENDEE;CUTYPE=ROOM;ROLE=NON-PARTICIPANT;CN=Room Elbe:mailto:elbe@rooms.acme.example",
             "END:VEVENT"]

    def calendar(method: str, lines: list[str]) -> str:
        return "\r\n".join(["BEGIN:VCALENDAR", "VERSION:2.0", "PRODID:-//demo//EN",
                             f"METHOD:{method}", *lines, "END:VCALENDAR", ""])

    invite = calendar("REQUEST", event)
    head = (f"Message-ID: <workshop@demo.example>\r\nFrom: Bob Miller <bob@acme.example>\r\n"
            f"To: {ME}\r\nSubject: Invitation: Q1 rollout workshop\r\n"
            f"Date: {format_datetime(now - timedelta(days=5))}\r\nMIME-Version: 1.0\r\n"
            'Content-Type: multipart/alternative; boundary="b"\r\n\r\n')
    body = ("--b\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nYou have been invited.\r\n"
            '--b\r\nContent-Type: text/calendar; charset=utf-8; method=REQUEST\r\n\r\n'
            f"{invite}--b--\r\n")
    box.add("INBOX", (head + body).encode(), ("\\Seen",), now - timedelta(days=5))
    accepted = [line.replace("PARTSTAT=NEEDS-ACTION", "PARTSTAT=ACCEPTED") for line in event
                if "jane@" in line or not line.startswith("ATTENDEE")]
    box.add("Sent", (f"Message-ID: <workshop-yes@demo.example>\r\nFrom: {ME}\r\n"
                     "To: Bob Miller <bob@acme.example>\r\nSubject: Accepted: Q1 rollout workshop\r\n"
                     f"Date: {format_datetime(now - timedelta(days=4))}\r\n"
                     "In-Reply-To: <workshop@demo.example>\r\nMIME-Version: 1.0\r\n"
                     "Content-Type: text/calendar; charset=utf-8; method=REPLY\r\n\r\n"
                     + calendar("REPLY", accepted)).encode(), ("\\Seen",), now - timedelta(days=4))


def readable(raw: bytes) -> str:
    """A draft as a mail client would show it: decoded headers, then the text."""
    msg = BytesParser(policy=policy.default).parsebytes(raw)
    names = ("From", "To", "Cc", "Subject", "Date", "Message-ID", "In-Reply-To", "References",
             "X-Nudger-For")
    head = [f"{name}: {msg[name]}" for name in names if msg[name] is not None]
    body = msg.get_body(("plain",))
    text = body.get_content() if isinstance(body, EmailMessage) else ""
    return "\n".join(head) + "\n\n" + text.rstrip()


SHOWCASE = "<proposal@demo.example>"  # the draft shown in full: a client thread, two stages
GERMAN = "<umlaut@demo.example>"  # and the one to a German offer: written in German


def _for(raw: bytes) -> str:
    return str(BytesParser(policy=policy.default).parsebytes(raw)["X-Nudger-For"] or "")


def run_demo(as_json: bool = False, now: datetime | None = None) -> int:
    """Run the engine on the sample mailbox, dated relative to ``now`` (default: the clock)."""
    now = (now or datetime.now(UTC)).replace(microsecond=0)
    config = parse_config(DEMO_CONFIG.encode(), Path("demo-config.toml"))
    account = config.accounts[0]
    box = sample_mailbox(now)
    state = State.memory()
    print("nudger demo: the real engine on a sample mailbox of 12 threads for "
          "jane@example.com\n(in memory: nothing is sent, nothing leaves this machine)\n")
    result = run_cycle(config, account, box, state, now)
    print_cycle(result, dry_run=False, verbose=True, out=sys.stdout)
    if as_json:
        print_json(result, dry_run=False)
        return 0
    drafts = list(box.messages("Drafts").values())
    print(f"\nDrafts folder now holds {counted(len(drafts), 'follow-up')}:")
    for raw in drafts:
        draft = BytesParser(policy=policy.default).parsebytes(raw)
        print(f"  - {draft['Subject']} (to {draft['To']})")
    # A chosen draft, not "the first": the order they are written in depends on the weekday.
    shown = next((raw for raw in drafts if SHOWCASE in _for(raw)), None)
    if shown is not None:
        print("\nThe follow-up to Bob, as your mail client will show it:\n")
        print("    " + "\n    ".join(readable(shown).splitlines()))
    german = next((raw for raw in drafts if GERMAN in _for(raw)), None)
    if german is not None:
        print("\nThe follow-up to Jörg, in German like your offer to him:\n")
        print("    " + "\n    ".join(readable(german).splitlines()))
    thanks = next((raw for raw in drafts if "<workshop@demo.example>" in _for(raw)), None)
    if thanks is not None:
        print("\nThe thank-you after Bob's workshop (it ended three hours ago):\n")
        print("    " + "\n    ".join(readable(thanks).splitlines()))
    again = run_cycle(config, account, box, state, now)
    print(f"\nRunning the cycle again writes {len(again.written)} more: one draft per thread "
          "and stage, ever.\nTry it on your mailbox: copy config.example.toml to "
          "~/.config/nudger/config.toml, then `nudger check-config` and "
          "`nudger run --once --dry-run`.")
    return 0
