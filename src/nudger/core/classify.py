"""What kind of message this is: a person's, or a machine's answer (auto-reply, bounce,
delay notice, read receipt, calendar answer), judged from its headers, standards first.

Pure: a ``Headers`` in, a kind (see ``record``) and the reason for it out. Only a
human's message answers a thread, so a false "machine" is the costly mistake: each
rule here errs towards "human".
"""

from __future__ import annotations

import functools
import re

from nudger.core.headers import Headers
from nudger.core.record import AUTO_REPLY, BOUNCE, CALENDAR, DELAY, HUMAN, READ_RECEIPT, Addr
from nudger.core.subjects import normalise_subject

# Written in lower case and matched against the lower-cased subject: IGNORECASE on this
# many alternatives is much slower, and it runs for every message of a first sync.
_AUTO_SUBJECT = re.compile(
    r"^\s*(?:automatic reply|auto(?:matic)?[- ]?(?:reply|response)|auto:|out of (?:the )?office"
    r"|autoreply|automatische antwort|abwesenheitsnotiz|réponse automatique|absence du bureau"
    r"|respuesta automática|fuera de la oficina|risposta automatica|fuori sede"
    r"|automatisch antwoord|afwezig|resposta automática|ausente|autosvar|frånvaro|自動応答|不在)"
    r"|\bauto-?reply\b|automatic reply|automatiska atbilde|out of (?:the )?office|on vacation\b"
    r"|afwezigheidsbericht|fora do escritório|frånvarande|自動返信|不在通知"
    # help desks acknowledging a request: no person has read it yet
    r"|we(?:'ve| have)? received your (?:message|request|e-?mail|inquiry|enquiry)"
    r"|thank you for contacting|your (?:request|ticket|case) (?:#\s*)?\d*\s*(?:has been )?"
    r"(?:received|created|opened|logged)|\bautoreply:"
    r"|ihre anfrage (?:ist )?eingegangen|eingangsbestätigung|wir haben ihre (?:nachricht|anfrage) erhalten"
    r"|accusé de réception|nous avons bien reçu|hemos recibido su|abbiamo ricevuto la sua"
    r"|wij hebben uw (?:bericht|aanvraag) ontvangen|recebemos (?:a )?sua|vi har tagit emot"
    r"|お問い合わせを受け付けました",
)
_CALENDAR_SUBJECT = re.compile(
    r"^\s*(?:accepted|declined|tentative|tentatively accepted|angenommen|abgelehnt|mit vorbehalt"
    r"|accepté|refusé|aceptado|rechazado|accettato|rifiutato|geaccepteerd|geweigerd)\s*:",
    re.IGNORECASE,
)
_BOUNCE_SUBJECT = re.compile(
    r"undeliver|delivery status notification|delivery failure|failure notice|returned mail"
    r"|mail delivery (?:failed|system)|non[- ]?delivery|unzustellbar|nicht zustellbar"
    r"|non remis|rejected:|could not be delivered|delivery has failed|delivery problem",
    re.IGNORECASE,
)
_DELAY_SUBJECT = re.compile(r"delay|warning: could not send|still being retried|verzögert", re.I)
_NOREPLY = re.compile(
    r"^(?:no[-_.]?reply|do[-_.]?not[-_.]?reply|donotreply|mailer-daemon|postmaster|bounces?"
    r"|notifications?|notify|alerts?|automated|auto[-_.]?confirm)(?:[-+_.].*)?$|-daemon$",
    re.IGNORECASE,
)
_REPORT_TYPE = re.compile(r'report-type\s*=\s*"?([\w-]+)', re.IGNORECASE)
_DAEMON_NAMES = ("mailer-daemon", "postmaster", "post_master", "mail-daemon", "mailerdaemon",
                 "mail delivery system", "mail delivery subsystem")


@functools.lru_cache(maxsize=4096)  # (a thread's messages share a subject)
def _auto_subject(lowered: str) -> bool:
    """An automatic reply's subject ("Out of office", "Abwesenheitsnotiz: ..."), also
    behind a "Re:"."""
    topic = normalise_subject(lowered)
    return bool(_AUTO_SUBJECT.search(lowered) or (topic != lowered and _AUTO_SUBJECT.search(topic)))


@functools.lru_cache(maxsize=4096)  # (a mailbox's senders are a few, each met many times)
def is_noreply(address: str) -> bool:
    """An address no person reads: no-reply senders, daemons, notification robots."""
    return bool(_NOREPLY.search(address.partition("@")[0]))


def is_list(msg: Headers) -> bool:
    """Mailing-list traffic, by the headers list servers add."""
    return "list-id" in msg.index or "list-post" in msg.index


def classify(msg: Headers, sender: Addr, subject: str) -> tuple[str, str]:
    """What kind of message this is and why: delivery reports first, then automatic
    answers by their headers, then by their subject or sender."""
    return _report_kind(msg, sender, subject) or _auto_kind(msg, sender, subject) or (HUMAN, "")


def _report_kind(msg: Headers, sender: Addr, subject: str) -> tuple[str, str] | None:
    """A read receipt, bounce or delay notice: by its MIME report type (RFC 8098, 3464),
    else by X-Failed-Recipients or a mail daemon's sender and subject."""
    content_type = msg.first("content-type")
    ctype = content_type.split(";", 1)[0].strip().lower()
    found = _REPORT_TYPE.search(content_type) if ctype == "multipart/report" else None
    report = found.group(1).lower() if found else ""
    if ctype == "multipart/report" and report == "disposition-notification":
        return READ_RECEIPT, "read receipt (RFC 8098 disposition notification)"
    if ctype == "multipart/report" and report == "delivery-status":
        if _DELAY_SUBJECT.search(subject) and not _BOUNCE_SUBJECT.search(subject):
            return DELAY, "delivery delay notice"
        return BOUNCE, "delivery status report (RFC 3464)"
    local = sender.email.partition("@")[0]
    # (the display name alone when the address is empty: "From: MAILER-DAEMON <>", the
    # DragonFly Mail Agent's)
    name = sender.name.lower() or msg.text("from").partition("<")[0].strip(' "').lower()
    daemon = local in _DAEMON_NAMES or name in _DAEMON_NAMES
    if ctype == "multipart/report" and not report and _BOUNCE_SUBJECT.search(subject):
        return BOUNCE, "delivery report (multipart/report, no report-type)"
    if msg.text("x-failed-recipients") or (daemon and _BOUNCE_SUBJECT.search(subject)):
        return BOUNCE, "bounce from " + (sender.email or "the mail system")
    if daemon and _DELAY_SUBJECT.search(subject):
        return DELAY, "delivery delay notice"
    return None


def _auto_kind(msg: Headers, sender: Addr, subject: str) -> tuple[str, str] | None:
    """An automatic reply or a calendar answer: by Auto-Submitted (RFC 3834) and its
    older cousins, else by the subject, else by a no-reply sender."""
    auto = msg.text("auto-submitted").lower()
    if auto and auto.split(";")[0].strip() != "no":
        return AUTO_REPLY, f"Auto-Submitted: {auto.split(';')[0].strip()}"
    for name in ("X-Autoreply", "X-Autorespond"):
        if name.lower() in msg.index:
            return AUTO_REPLY, f"{name} header"
    precedence = msg.text("precedence").lower()
    # "bulk" alone is not enough: list servers stamp it on human replies, and calling
    # a real reply a machine's would cause the one mistake users never forgive.
    if precedence in ("auto_reply", "junk"):
        return AUTO_REPLY, f"Precedence: {precedence}"
    if _auto_subject(subject.lower()):
        return AUTO_REPLY, f'subject "{subject[:60]}"'
    if _CALENDAR_SUBJECT.search(subject):
        return CALENDAR, "calendar answer"
    if sender.email and is_noreply(sender.email):
        return AUTO_REPLY, f"sent by an automated address ({sender.email})"
    return None
