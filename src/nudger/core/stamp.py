"""The digest nudger stamps into each draft it writes, so that a draft found on the server
can be proved untouched without the state that remembered it.

Pure. The stamp is one header, ``X-Nudger-Digest: sha256=HEX``, the last of the header,
over the message as written without that line (line endings normalised: a server may
store LF and serve CRLF). Whatever a client changes -- a word of the text, a recipient,
the subject -- or a client that re-saves the draft with a header set of its own, and the
digest no longer matches: the draft is the user's.
"""

from __future__ import annotations

import hashlib
import re

HEADER = b"X-Nudger-Digest"
_LINE = re.compile(rb"^X-Nudger-Digest:[ \t]*sha256=([0-9a-f]{64})[ \t]*\r?\n", re.I | re.M)


def _digest(data: bytes) -> str:
    return hashlib.sha256(data.replace(b"\r\n", b"\n")).hexdigest()


def _split(data: bytes) -> tuple[bytes, bytes]:
    """Header (with its last line break) and the rest, at the first empty line."""
    found = re.search(rb"\r?\n\r?\n", data)
    if found is None:
        return data, b""
    cut = found.start() + (2 if data[found.start()] == 13 else 1)  # keep the header's own EOL
    return data[:cut], data[cut:]


def stamp(data: bytes) -> bytes:
    """``data`` (a whole message, CRLF) with its digest header added last."""
    head, rest = _split(data)
    return head + HEADER + b": sha256=" + _digest(data).encode() + b"\r\n" + rest


def untouched(data: bytes) -> bool:
    """True when ``data`` is exactly what ``stamp`` produced: one stamp, and it matches."""
    head, rest = _split(data)
    lines = _LINE.findall(head)
    if len(lines) != 1:
        return False  # unstamped (written before stamps, or re-saved by a client)
    return _digest(_LINE.sub(b"", head, count=1) + rest) == lines[0].decode()
