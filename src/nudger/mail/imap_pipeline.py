"""Pipelined IMAP: several tagged commands in one write, their answers read in order.

RFC 3501 5.5 lets a client send commands without waiting for each answer; over a
distant server that is the difference between one round trip and one per folder.
imapclient waits for every answer, so this drives imaplib's connection underneath it
(its tag counter, its buffered reads), as imapclient itself does for commands imaplib
lacks. Bytes in, answers out: each untagged response in imaplib's shape (lines, and
``(line, literal)`` pairs), which imapclient's parser reads.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from imapclient.imap_utf7 import decode as decode_utf7
from imapclient.response_parser import parse_response
from imapclient.util import to_bytes

from nudger.mail.imap_wire import Garbled, read_literal

Response = list[Any]  # one untagged response: bytes lines and (line, literal) pairs


@dataclass
class Answer:
    """The answer to one tagged command: its result and the untagged responses the
    server sent while it ran."""

    tag: bytes
    result: bytes = b""  # OK, NO or BAD
    text: str = ""  # the tagged line, for a message
    untagged: list[Response] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.result == b"OK"

    def responses(self, kind: bytes) -> list[Response]:
        """The untagged responses of one kind ("STATUS", "LIST"), without that word."""
        return [rest for word, rest in map(split_word, self.untagged) if word == kind]


def split_word(parts: Response) -> tuple[bytes, Response]:
    """An untagged response's first word (upper case) and the response without it."""
    first = parts[0][0] if isinstance(parts[0], tuple) else parts[0]
    word, _, rest = first.partition(b" ")
    head = (rest, parts[0][1]) if isinstance(parts[0], tuple) else rest
    return word.upper(), [head, *parts[1:]]


def send(imap: Any, commands: Sequence[bytes], before: bytes = b"") -> list[bytes]:
    """Send ``commands`` (without tags) in one write, after ``before`` (a line that is no
    command: DONE ending an IDLE); returns their tags."""
    tags = [imap._new_tag() for _ in commands]
    imap.send(before + b"".join(tag + b" " + command + b"\r\n"
                                for tag, command in zip(tags, commands, strict=True)))
    return tags


def read_answers(readline: Callable[[], bytes], read: Callable[[int], bytes],
                 tags: Sequence[bytes],
                 heard: Callable[[bytes, Response], bool] | None = None) -> list[Answer]:
    """The answers to the commands sent with ``tags``, in order. An untagged response
    belongs to the first command not yet done (servers answer pipelined commands in
    order). Raises EOFError for a closed connection (or BYE), Garbled for a line that is
    no IMAP answer.

    ``heard``: shown each untagged response first (its word, the rest), as what NOTIFY
    tells comes unasked amid any answer (RFC 5465); it says whether the answer keeps it."""
    answers = [Answer(tag) for tag in tags]
    waiting = {tag: i for i, tag in enumerate(tags)}
    current = 0
    while current < len(answers):
        line = _line(readline)
        if line.startswith(b"* "):
            parts = _response(line[2:], readline, read)
            first = parts[0][0] if isinstance(parts[0], tuple) else parts[0]
            if first[:3].upper() == b"BYE":
                raise EOFError(f"server closed the connection: {first.strip()!r}")
            if heard is None or heard(*split_word(parts)):
                answers[current].untagged.append(parts)
            continue
        tag, _, rest = line.partition(b" ")
        if tag not in waiting:
            raise Garbled(f"unexpected answer: {line[:80]!r}")
        i = waiting.pop(tag)
        result = rest.split(b" ", 1)[0].rstrip(b"\r\n").upper()
        if result not in (b"OK", b"NO", b"BAD"):
            raise Garbled(f"unexpected end of a command: {line[:80]!r}")
        answers[i].result, answers[i].text = result, line.strip().decode("ascii", "replace")
        while current < len(answers) and answers[current].result:
            current += 1
    return answers


def _response(line: bytes, readline: Callable[[], bytes], read: Callable[[int], bytes]) -> Response:
    """One untagged response with its literals, as imaplib hands them to imapclient."""
    parts: Response = []
    chunk = line
    while chunk.endswith(b"}\r\n"):
        literal = read_literal(chunk, read, "an answer")
        parts.append((chunk[:-2], literal))
        chunk = _line(readline)
    parts.append(chunk.rstrip(b"\r\n"))
    return parts


def _line(readline: Callable[[], bytes]) -> bytes:
    line = readline()
    if not line.endswith(b"\n"):
        raise EOFError("connection closed amid an answer")
    return line


# The shapes nearly every server gives a folder's LIST and STATUS line, read with one
# regex each (a poll of 200 folders reads 400 of them, in the time of a round trip
# without it); any other shape (a literal, extended data, NIL...) goes to imapclient's parser.
_NAME = rb'(?:"((?:[^"\\\r\n]|\\["\\])*)"|([^\s(){}"\\%*\x00-\x1f\x7f]+))'
_STATUS_LINE = re.compile(_NAME + rb" \(((?:[A-Za-z][A-Za-z0-9-]* \d+ ?)*)\)\s*")
_LIST_LINE = re.compile(rb'\(([^()"{}]*)\) (?:NIL|"([^"\\]|\\["\\])") ' + _NAME + rb"\s*")
_ESCAPED = re.compile(rb'\\(["\\])')


def _name(quoted: bytes | None, atom: bytes | None) -> bytes:
    return _ESCAPED.sub(rb"\1", quoted) if quoted is not None else atom or b""


def folder_name(name: Any, encoded: bool = True) -> str:
    """A mailbox name as imapclient gives it from LIST: modified UTF-7 decoded; a
    number-like name (parsed as an int) back to text."""
    if isinstance(name, int):
        return str(name)
    if encoded:
        if isinstance(name, bytes) and name.isascii() and b"&" not in name:
            return name.decode("ascii")  # (what decode_utf7 makes of it, at once)
        return str(decode_utf7(name))
    return name.decode("utf-8", "replace") if isinstance(name, bytes) else str(name)


def read_status(parts: Response, encoded: bool = True) -> tuple[str, dict[bytes, Any]]:
    """A STATUS response (without its word): the folder and its items by name."""
    if len(parts) == 1 and isinstance(parts[0], bytes) and (
            plain := _STATUS_LINE.fullmatch(parts[0])) is not None:
        words = plain.group(3).split()
        return (folder_name(_name(plain.group(1), plain.group(2)), encoded),
                {words[i].upper(): int(words[i + 1]) for i in range(0, len(words) - 1, 2)})
    try:
        parsed = parse_response(parts)
        name, items = parsed[0], parsed[-1]
        pairs = {to_bytes(items[i]).upper(): items[i + 1] for i in range(0, len(items) - 1, 2)}
    except Exception as exc:  # noqa: BLE001 - the parser's errors (ProtocolError, ValueError...)
        raise Garbled(f"an unreadable STATUS answer ({type(exc).__name__})") from exc
    return folder_name(name, encoded), pairs


def read_listing(responses: list[Response], encoded: bool,
                 parse: Callable[[Response], list[tuple[Any, Any, str]]]) -> list[tuple[Any, Any, str]]:
    """LIST responses (without their word) as imapclient's ``_proc_folder_list`` gives
    them, (flags, delimiter, name), in order; ``parse``: that, for the other shapes."""
    listed: list[tuple[Any, Any, str]] = []
    for parts in responses:
        if len(parts) == 1 and isinstance(parts[0], bytes) and (
                plain := _LIST_LINE.fullmatch(parts[0])) is not None:
            flags, delimiter = plain.group(1), plain.group(2)
            listed.append((tuple(flags.split()), _name(delimiter, None) if delimiter else None,
                           folder_name(_name(plain.group(3), plain.group(4)), encoded)))
        else:
            listed += parse(parts)
    return listed
