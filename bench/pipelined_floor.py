"""The floor for a distant server: a minimal client that pipelines everything it can.

    pipelined_floor.py MODE PORT USER PASSWORD

MODE ``noop``: log in, then every folder's status in one round trip (LIST-STATUS where
the server offers it, else LIST and then every STATUS in one write), log out.
MODE ``first``: log in, LIST, then EXAMINE + UID FETCH of the header fields of every
message of every watched folder in one write; answers read and dropped. Plain sockets,
nothing parsed beyond what tells where an answer ends.
"""

from __future__ import annotations

import re
import socket
import sys

sys.path.insert(0, __file__.rsplit("/bench/", 1)[0] + "/src")
from nudger.core.headers import HEADER_FIELDS  # noqa: E402

SKIP = {"Drafts", "Trash", "Junk"}
_LITERAL = re.compile(rb"\{(\d+)\}\r\n$")
_LIST = re.compile(rb'^\* LIST \(([^)]*)\) (?:"[^"]*"|NIL) (.*)\r\n$')


class Wire:
    def __init__(self, port: int):
        self.sock = socket.create_connection(("127.0.0.1", port))
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.file = self.sock.makefile("rb")
        self.tag = 0
        self.file.readline()  # greeting

    def send(self, *commands: str) -> list[bytes]:
        tags = []
        out = b""
        for command in commands:
            self.tag += 1
            tags.append(b"f%d" % self.tag)
            out += tags[-1] + b" " + command.encode() + b"\r\n"
        self.sock.sendall(out)
        return tags

    def wait(self, tags: list[bytes]) -> list[bytes]:
        """Every line up to and with the last tag's answer (literals skipped)."""
        lines, last = [], tags[-1] + b" "
        while True:
            line = self.file.readline()
            while (literal := _LITERAL.search(line)) is not None:
                self.file.read(int(literal.group(1)))
                line = self.file.readline()
            lines.append(line)
            if line.startswith(last):
                return lines


def folders(lines: list[bytes]) -> list[str]:
    names = []
    for line in lines:
        found = _LIST.match(line)
        if found and b"\\Noselect" not in found.group(1) and b"\\NonExistent" not in found.group(1):
            name = found.group(2).decode()
            name = name[1:-1] if name.startswith('"') else name
            if name not in SKIP:
                names.append(name)
    return names


def main() -> None:
    mode, port, user, password = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
    wire = Wire(port)
    # (Dovecot's answer to LOGIN names its capabilities: no CAPABILITY command.)
    capabilities = b" ".join(wire.wait(wire.send(f'LOGIN "{user}" "{password}"')))
    if mode == "noop":
        if b"LIST-STATUS" in capabilities:
            wire.wait(wire.send('LIST "" "*" RETURN (STATUS (UIDVALIDITY UIDNEXT MESSAGES))'))
        else:
            names = folders(wire.wait(wire.send('LIST "" "*"')))
            wire.wait(wire.send(*(f'STATUS "{n}" (UIDVALIDITY UIDNEXT MESSAGES)' for n in names)))
    else:
        names = folders(wire.wait(wire.send('LIST "" "*"')))
        item = "BODY.PEEK[HEADER.FIELDS (" + " ".join(HEADER_FIELDS) + ")]"
        commands = []
        for name in names:
            commands += [f'EXAMINE "{name}"', f"UID FETCH 1:* ({item} INTERNALDATE FLAGS)"]
        wire.wait(wire.send(*commands))
    wire.wait(wire.send("LOGOUT"))


if __name__ == "__main__":
    main()
