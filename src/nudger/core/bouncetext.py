"""Who failed, read from a bounce's words: the last resort of ``bounce``.

Pure: the decoded text parts of a report in, addresses out. Two shapes that neither the
standard parts nor flufl.bounce's detectors read: RFC 3464 status fields written into a
text part (Amazon WorkMail), and a sentence announcing the list of failed recipients
followed by that list (OpenSMTPD, Exchange Online, Yahoo, qmail, Mimecast, the "Failure
Reasons" of Lotus Notes, old Sendmail and others). A wrong address here can only leave
out a recipient the report names in such a list, so only the lines right after such a
sentence are read.
"""

from __future__ import annotations

import re
from email import message_from_string

from nudger.core.headers import ADDRESS_IN_TEXT

_ANNOUNCES = re.compile(
    r"(?:the following|these|to this|to the following)\s+(?:list of\s+)?(?:\w+\s+)?"
    r"(?:recipients?|address(?:es)?|users?)\b|^\s*-+\s*(?:the following addresses|failure reasons)",
    re.IGNORECASE,
)
# The address in the sentence itself: "There was an error delivering your mail to <a@b>."
# (the DragonFly Mail Agent's)
_IN_SENTENCE = re.compile(r"error delivering your (?:mail|message) to\s+<?([\w.+'-]+@[\w-]+(?:\.[\w-]+)+)",
                          re.IGNORECASE)
_BLOCK_END = re.compile(r"^\s*(?:-{3,}|received:|return-path:|original message|below is|the problem)",
                        re.IGNORECASE)
_SENDER_LINE = re.compile(r"mail from:|\bfrom:", re.IGNORECASE)
LOOK_AHEAD = 6  # lines after the sentence in which the list must begin


def failures_in_text(texts: list[str], own: frozenset[str] = frozenset()) -> list[str]:
    """Failed recipients written in the text of a report, in either shape, or [].
    ``own`` are the report's own sender and recipients: never among them."""
    return [a for a in _status_fields(texts) or _listed(texts) if a not in own]


def _status_fields(texts: list[str]) -> list[str]:
    failed = []
    for text in texts:
        for block in re.split(r"\n\s*\n", text.replace("\r\n", "\n")):
            if not re.search(r"(?im)^final-recipient:", block):
                continue
            fields = message_from_string(block.strip() + "\n\n")
            action = str(fields.get("Action", "")).strip().lower()
            recipient = str(fields.get("Final-Recipient", "")).rpartition(";")[2].strip(" <>")
            if action.startswith("failed") and ADDRESS_IN_TEXT.fullmatch(recipient):
                failed.append(recipient.lower())
    return failed


def _listed(texts: list[str]) -> list[str]:
    for text in texts:
        said = _IN_SENTENCE.search(text)
        if said:
            return [said.group(1).lower()]
        lines = text.replace("\r\n", "\n").split("\n")
        for at, line in enumerate(lines):
            if _ANNOUNCES.search(line):
                found = _list_after(lines[at + 1:])
                if found:
                    return found
    return []


def _list_after(lines: list[str]) -> list[str]:
    """The addresses of the lines that follow an announcing sentence: from the first
    line with one (within ``LOOK_AHEAD``) to the next blank line."""
    found: list[str] = []
    for n, line in enumerate(lines):
        if _BLOCK_END.match(line) or (not line.strip() and found):
            break
        # (not the sender of an SMTP transcript quoted under the address)
        addresses = [] if _SENDER_LINE.search(line) else ADDRESS_IN_TEXT.findall(line)
        if addresses:
            found.extend(a.lower() for a in addresses)
        elif n >= LOOK_AHEAD and not found:
            break
    return list(dict.fromkeys(found))
