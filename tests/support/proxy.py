"""A loopback TCP proxy that can cut or stall a connection at a chosen byte offset."""

from __future__ import annotations

import socket
import threading
import time


class FaultyProxy:
    """Forwards 127.0.0.1:port to a target; counts server->client bytes across connections.

    ``cut_at``: after that many server bytes (counted over the proxy's life), close both
    sides. ``stall_at``: stop forwarding at that offset (the client must time out).
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
        self.tripped = False
        self.lock = threading.Lock()
        self.closing = False
        self.sockets: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def arm(self, cut_at: int | None = None, stall_at: int | None = None) -> None:
        with self.lock:
            self.sent, self.cut_at, self.stall_at, self.tripped = 0, cut_at, stall_at, False

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

    def _pipe(self, src: socket.socket, dst: socket.socket, counted: bool) -> None:
        try:
            while True:
                data = src.recv(4096)
                if not data:
                    break
                trip = None
                if counted:
                    with self.lock:
                        start = self.sent
                        self.sent += len(data)
                        limit = self.cut_at if self.cut_at is not None else self.stall_at
                        if limit is not None and not self.tripped and self.sent > limit:
                            self.tripped = True
                            trip = ("cut" if self.cut_at is not None else "stall", limit - start)
                if trip is not None:
                    dst.sendall(data[: max(0, trip[1])])
                    if trip[0] == "stall":
                        time.sleep(10)  # silence: the client's read timeout must fire first
                    break
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

    def close(self) -> None:
        self.closing = True
        self.server.close()
        for s in self.sockets:
            try:
                s.close()
            except OSError:
                pass
