"""A loopback TCP proxy that can cut, stall, slow down or garble a connection."""

from __future__ import annotations

import queue
import re
import socket
import threading
import time


class FaultyProxy:
    """Forwards 127.0.0.1:port to a target; counts server->client bytes across connections.

    ``cut_at``: after that many server bytes (counted over the proxy's life), close both
    sides. ``stall_at``: stop forwarding at that offset (the client must time out).
    ``trickle_at``: from that offset on, forward one byte every ``every`` seconds.
    ``delay``: wait that long before forwarding each chunk the server sends (latency).
    ``inject``: ``(marker, payload)``: insert the payload right after the first
    occurrence of marker in what the server sends (a marker split over two reads of
    the server is missed: use short ones), or at that offset when marker is a number.
    ``rewrite``: ``(old, new)``: replaced in everything the clients send (a command the
    server should refuse); ``old`` a compiled pattern: ``new`` its substitution.
    ``rewrite_answers``: ``(old, new)``: replaced in everything the server sends (a marker
    split over two reads of the server is missed: use short ones).
    """

    def __init__(self, target_port: int):
        self.target_port = target_port
        self.server = socket.socket()
        self.server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.server.bind(("127.0.0.1", 0))
        self.server.listen(16)
        self.port = self.server.getsockname()[1]
        self.sent = 0  # server->client bytes forwarded so far
        self.cut_at: int | None = None
        self.stall_at: int | None = None
        self.trickle_at: int | None = None
        self.every = 0.0
        self.delay = 0.0
        self.inject: tuple[bytes | int, bytes] | None = None
        self.rewrite: tuple[bytes | re.Pattern[bytes], bytes] | None = None
        self.rewrite_answers: tuple[bytes, bytes] | None = None
        self.tripped = False
        self.written = bytearray()  # all the clients wrote, to count their commands
        self.lock = threading.Lock()
        self.closing = False
        self.sockets: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def arm(self, cut_at: int | None = None, stall_at: int | None = None,
            trickle_at: int | None = None, every: float = 0.5, delay: float = 0.0,
            inject: tuple[bytes | int, bytes] | None = None) -> None:
        with self.lock:
            self.sent, self.cut_at, self.stall_at, self.tripped = 0, cut_at, stall_at, False
            self.trickle_at, self.every, self.delay, self.inject = trickle_at, every, delay, inject

    def _accept(self) -> None:
        while not self.closing:
            try:
                client, _ = self.server.accept()
            except OSError:
                return
            upstream = socket.create_connection(("127.0.0.1", self.target_port))
            self.sockets += [client, upstream]
            threading.Thread(target=self._pipe, args=(upstream, client, True), daemon=True).start()
            threading.Thread(target=self._pipe, args=(client, upstream, False), daemon=True).start()

    def _garble(self, data: bytes) -> bytes:
        with self.lock:
            if self.inject is None:
                return data
            marker, payload = self.inject
            if isinstance(marker, int):
                at = marker - self.sent
                if not 0 <= at < len(data):
                    return data
            elif marker in data:
                at = data.index(marker) + len(marker)
            else:
                return data
            self.inject = None  # once
        return data[:at] + payload + data[at:]

    def _pipe(self, src: socket.socket, dst: socket.socket, counted: bool) -> None:
        try:
            while True:
                data = src.recv(4096)
                if not data:
                    break
                trip = None
                if not counted:
                    with self.lock:
                        self.written += data
                    if self.rewrite is not None:
                        old, new = self.rewrite
                        data = old.sub(new, data) if isinstance(old, re.Pattern) else data.replace(old, new)
                if counted:
                    if self.delay:
                        time.sleep(self.delay)
                    data = self._garble(data)
                    if self.rewrite_answers is not None:
                        data = data.replace(*self.rewrite_answers)
                    with self.lock:
                        start = self.sent
                        self.sent += len(data)
                        limit = next((x for x in (self.cut_at, self.stall_at, self.trickle_at)
                                      if x is not None), None)
                        if limit is not None and not self.tripped and self.sent > limit:
                            self.tripped = True
                            kind = ("cut" if self.cut_at is not None else
                                    "stall" if self.stall_at is not None else "trickle")
                            trip = (kind, limit - start)
                        trickling = self.tripped and self.trickle_at is not None
                if trip is not None and trip[0] != "trickle":
                    dst.sendall(data[: max(0, trip[1])])
                    if trip[0] == "stall":
                        time.sleep(10)  # silence: the client's read timeout must fire first
                    break
                if counted and trickling:
                    head = max(0, trip[1]) if trip is not None else 0
                    dst.sendall(data[:head])
                    for i in range(head, len(data)):  # one byte at a time, never silent long
                        time.sleep(self.every)
                        dst.sendall(data[i : i + 1])
                    continue
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                s.close()

    def commands(self) -> list[bytes]:
        """The lines the clients wrote so far (commands, and DONE ending an IDLE)."""
        with self.lock:
            return bytes(self.written).splitlines()

    def close(self) -> None:
        self.closing = True
        self.server.close()
        for s in self.sockets:
            try:
                s.close()
            except OSError:
                pass


class LatencyProxy:
    """Forwards 127.0.0.1:port to a target with ``rtt / 2`` of delay in each direction
    and no limit on bandwidth: each chunk is stamped when it arrives and sent on once its
    delay is up, while later chunks keep arriving (a real distant link, not a slow one).

    ``turns()`` tells how many times the client waited for the server: what a test
    counts for the round trips a client needs (untimed: the delay only orders events).
    """

    def __init__(self, target_port: int, rtt: float = 0.0):
        self.target_port, self.rtt = target_port, rtt
        self.server = socket.socket()
        self.server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.server.bind(("127.0.0.1", 0))
        self.server.listen(16)
        self.port = self.server.getsockname()[1]
        self.writes: list[bytes] = []  # each chunk the client sent, across connections
        self.events: list[tuple[bool, bytes]] = []  # (from the client?, chunk) as forwarded
        self.lock = threading.Lock()
        self.closing = False
        self.sockets: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def turns(self, since: int = 0) -> list[list[bytes]]:
        """The client's lines, grouped by turn: a turn is what it sent before hearing
        from the server again (one round trip, whatever the number of commands). Of the
        events from ``since`` (a length of ``events`` taken before) on."""
        turns: list[list[bytes]] = []
        heard = True
        with self.lock:
            for from_client, data in self.events[since:]:
                if not from_client:
                    heard = True
                    continue
                if heard:
                    turns.append([])
                    heard = False
                turns[-1].append(data)
        return [[line for line in b"".join(t).split(b"\r\n") if line] for t in turns]

    def _accept(self) -> None:
        while not self.closing:
            try:
                client, _ = self.server.accept()
            except OSError:
                return
            upstream = socket.create_connection(("127.0.0.1", self.target_port))
            for s in (client, upstream):
                s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self.sockets += [client, upstream]
            for src, dst, from_client in ((upstream, client, False), (client, upstream, True)):
                chunks: queue.Queue[tuple[float, bytes]] = queue.Queue()
                threading.Thread(target=self._read, args=(src, chunks, from_client),
                                 daemon=True).start()
                threading.Thread(target=self._send, args=(dst, chunks, from_client),
                                 daemon=True).start()

    def _read(self, src: socket.socket, chunks: queue.Queue[tuple[float, bytes]],
              from_client: bool) -> None:
        try:
            while data := src.recv(65536):
                if from_client:
                    with self.lock:
                        self.writes.append(data)
                        self.events.append((True, data))
                chunks.put((time.monotonic() + self.rtt / 2, data))
        except OSError:
            pass
        chunks.put((time.monotonic() + self.rtt / 2, b""))

    def _send(self, dst: socket.socket, chunks: queue.Queue[tuple[float, bytes]],
              from_client: bool) -> None:
        try:
            while True:
                due, data = chunks.get()
                wait = due - time.monotonic()
                if wait > 0:
                    time.sleep(wait)
                if not data:
                    break
                if not from_client:
                    with self.lock:
                        self.events.append((False, data))
                dst.sendall(data)
        except OSError:
            pass
        try:
            dst.shutdown(socket.SHUT_WR)
        except OSError:
            pass

    def close(self) -> None:
        self.closing = True
        self.server.close()
        for s in self.sockets:
            try:
                s.close()
            except OSError:
                pass
