"""The token endpoint's HTTP answers that are not answers: cut short, or no HTTP at all,
from a real peer on loopback. Each is temporary trouble (75) that names the host, never
a crash reported as nudger's bug, and never shows the form (it holds the secret)."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from nudger.errors import TemporaryError
from nudger.oauth import endpoint

SECRET = "s3cret-in-the-form"


@contextmanager
def answering(sent: bytes) -> Iterator[str]:
    """The token URL of a one-shot HTTP peer that reads a request, sends ``sent`` and closes
    the connection (so a Content-Length larger than what came is cut short)."""
    listener = socket.create_server(("127.0.0.1", 0))

    def serve() -> None:
        conn, _ = listener.accept()
        with conn:
            got = b""
            while b"\r\n\r\n" not in got:
                got += conn.recv(4096)
            head, _, body = got.partition(b"\r\n\r\n")
            length = next(int(line.split(b":")[1]) for line in head.split(b"\r\n")
                          if line.lower().startswith(b"content-length:"))
            while len(body) < length:
                body += conn.recv(4096)
            conn.sendall(sent)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{listener.getsockname()[1]}/token"
    finally:
        thread.join(timeout=10)
        listener.close()


CUT_401 = (b"HTTP/1.1 401 Unauthorized\r\nContent-Type: application/json\r\n"
           b"Content-Length: 200\r\nConnection: close\r\n\r\n{\"error\": \"invalid_cl")
CUT_200 = (b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
           b"Content-Length: 500\r\nConnection: close\r\n\r\n{\"access_token\": \"at-")
NOT_HTTP = b"* OK IMAP4rev1 ready\r\n"


@pytest.mark.parametrize(("sent", "said"), [
    (CUT_401, "answered 401 Unauthorized, but the answer was cut short (IncompleteRead)"),
    (CUT_200, "gave a broken HTTP answer (IncompleteRead)"),
    (NOT_HTTP, "gave a broken HTTP answer (BadStatusLine)"),
], ids=["error-cut-short", "answer-cut-short", "not-http"])
def test_a_broken_answer_is_temporary_trouble_that_names_the_host(sent: bytes, said: str) -> None:
    with answering(sent) as url, pytest.raises(TemporaryError) as caught:
        endpoint.post(url, {"grant_type": "refresh_token", "client_secret": SECRET},
                      "work: refreshing the access token")
    text = str(caught.value)
    host = url.split("/")[2]
    assert text == f"work: refreshing the access token: {host} {said}; trying again later"
    assert SECRET not in text
    assert caught.value.exit_code == 75
