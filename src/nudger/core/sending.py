"""What sending a follow-up for the user means, decided on plain data.

Pure. When an untouched draft of ours may go out (``send_after``, in the account's
calendar: never on a day off, never in the quiet hours), the steps of the journal that
makes a send happen at most once, which journal rows hold a send back, and the message
as it goes out: the draft exactly as the user saw it, without nudger's private headers,
with a fresh Date.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from email.utils import format_datetime, getaddresses
from enum import StrEnum
from zoneinfo import ZoneInfo

from nudger.config.model import Account, Smtp
from nudger.core.durations import Delay
from nudger.core.ledger import LedgerEntry
from nudger.core.rules import after_quiet_hours, due_at, is_working_day


class Step(StrEnum):
    """Where a send stands in the journal (stored values: never change one). Each is
    written before the step it names is taken."""

    INTENT = "intent"  # about to check the draft and the thread; nothing has gone out
    STARTED = "smtp-started"  # the message is being handed to the SMTP server
    ACCEPTED = "accepted"  # the server took it (250 after DATA)
    FILED = "sent-copy"  # its copy is in Sent (or the server files it itself)
    DONE = "done"  # the draft is gone from Drafts: finished
    DOUBT = "doubt"  # stopped while handing it over, and Sent does not show it: never resent
    REFUSED = "refused"  # the server refused it for good: the draft stays for the user


# A row at any of these holds the message back: it went out, may have, or was refused.
HOLDS = frozenset(Step) - {Step.INTENT}
SAYS = {
    Step.DOUBT: "nudger stopped while sending it and cannot tell whether it went out; it will "
                "not send it again: look in your Sent folder, and send the draft yourself if "
                "it is not there",
    Step.REFUSED: "the mail server refused it; the draft is still in Drafts for you",
}

# Only the instance whose own APPEND wrote a draft sends it: a draft adopted from the
# server (the state was lost, or another nudger on the same mailbox wrote it) may have
# gone out already, so it is the user's to send.
NOT_WRITTEN_HERE = "found in Drafts, not written by this state: nudger leaves it for you to send"
# Without a copy in Sent nothing on the server shows that a follow-up went out: a lost
# state, or a second instance, would draft it again as its own and send it again.
NO_SENT_COPY = ("smtp.save_sent is false, so nothing on the server would show it went out (a "
                "lost state could send it twice): nudger leaves it for you to send; set "
                'save_sent to "auto" or true to have it sent')
# Set on the draft right before SMTP (where Drafts takes keywords): a state rebuilt after
# a crash there knows the draft was being sent, and never sends it again.
SENDING_KEYWORD = "$NudgerSending"

# Hosts that put what they send into Sent themselves: a copy of ours would be a second one.
SELF_FILING = ("gmail.com", "googlemail.com", "office365.com", "outlook.com", "office.com")
PRIVATE_HEADERS = ("x-nudger-digest", "x-nudger-for")  # nudger's own; never sent


@dataclass(frozen=True)
class SendDraft:
    """Send our follow-up ``entry`` (still in Drafts as written), due since ``send_at``."""

    entry: LedgerEntry
    send_at: datetime


def send_time(appended_at: datetime, delay: Delay, account: Account) -> datetime:
    """When a draft written at ``appended_at`` may go out: ``delay`` later in the account's
    calendar, moved to a working day (same time of day) and out of the quiet hours."""
    when = due_at(appended_at, delay, account)
    for _ in range(366):  # a year of days off cannot be meant; stop looking there
        local = when.astimezone(account.timezone)
        day = local.date()
        if is_working_day(day, account):
            break
        when = datetime.combine(day + timedelta(days=1), local.time().replace(tzinfo=None),
                                tzinfo=account.timezone)
        when = after_quiet_hours(when, account)
    return when.astimezone(account.timezone)


def saves_copy(smtp: Smtp) -> bool:
    """Whether nudger puts the sent message in Sent ("auto": unless the host does)."""
    if smtp.save_sent is not None:
        return smtp.save_sent
    host = smtp.host.lower().rstrip(".")
    return not any(host == d or host.endswith("." + d) for d in SELF_FILING)


def outgoing(draft: bytes, now: datetime, tz: ZoneInfo) -> EmailMessage:
    """The message to send: the draft as the user saw it, without nudger's private
    headers, dated now."""
    msg = BytesParser(policy=policy.SMTP).parsebytes(draft)
    assert isinstance(msg, EmailMessage)
    for name in PRIVATE_HEADERS:
        del msg[name]
    del msg["Date"]
    msg["Date"] = format_datetime(now.astimezone(tz))
    return msg


def envelope(msg: EmailMessage) -> tuple[str, list[str]]:
    """MAIL FROM and RCPT TO of ``msg``: its From, and every To and Cc (Bcc too, if a
    client added one: it is taken out of the header by the SMTP edge)."""
    sender = getaddresses([str(msg.get("From", ""))])
    recipients = [addr for _, addr in getaddresses([str(v) for k in ("To", "Cc", "Bcc")
                                                    for v in msg.get_all(k, [])]) if addr]
    return (sender[0][1] if sender else ""), list(dict.fromkeys(recipients))


def hold_reason(step: Step | None) -> str | None:
    """Why a journal row at ``step`` keeps a follow-up from being sent now, or None."""
    if step is None or step not in HOLDS:
        return None
    if step in SAYS:
        return SAYS[step]
    return "it is being sent (a step is left from a stopped run; this cycle finishes it)"
