"""A TCP proxy a test can cut: between dtf and a server (PostgreSQL), forwarding bytes
both ways until ``cut``, which drops every connection and then, until ``restore``, refuses
new ones (``mode="refuse"``: a server that is down), accepts and resets them at once
(``"reset"``), or accepts them and never answers (``"hold"``: a network that went silent).

The port stays the proxy's for its whole life: while cut, a socket bound to it without
listening holds it (SO_REUSEPORT), so nothing else can take it and connections to it are
refused, as to a server that is down.
"""

from __future__ import annotations

import contextlib
import socket
import struct
import threading
from typing import Literal


class TcpProxy:
    """Forwards ``127.0.0.1:port`` to ``target``; usable as a context manager."""

    def __init__(self, target: tuple[str, int] = ("127.0.0.1", 5432)) -> None:
        self.target = target
        self.lock = threading.Lock()
        self.connections: list[socket.socket] = []
        self.mode: Literal["open", "refuse", "reset", "hold"] = "open"
        self.listener = self._socket()
        self.listener.bind(("127.0.0.1", 0))
        self.port: int = self.listener.getsockname()[1]
        self.holder: socket.socket | None = None
        self._listen(self.listener)

    def url(self, url: str) -> str:
        """``url`` (to the target) made to go through the proxy."""
        host, port = self.target
        return url.replace(f"{host}:{port}", f"127.0.0.1:{self.port}", 1)

    def cut(self, mode: Literal["refuse", "reset", "hold"] = "refuse") -> None:
        """Drop every connection; then refuse new ones, reset them, or hold them silent."""
        with self.lock:
            self.mode = mode
            if mode == "refuse" and self.listener is not None:
                self.holder = self._socket()
                self.holder.bind(("127.0.0.1", self.port))  # not listening: refuses
                _close(self.listener)
                self.listener = None
            for sock in self.connections:
                _close(sock)
            self.connections.clear()

    def restore(self) -> None:
        """Forward new connections again."""
        with self.lock:
            if self.mode == "hold":
                for sock in self.connections:
                    _close(sock)
                self.connections.clear()
            self.mode = "open"
            if self.listener is None:
                self.listener = self._socket()
                self.listener.bind(("127.0.0.1", self.port))
                self._listen(self.listener)
            if self.holder is not None:
                _close(self.holder)
                self.holder = None

    def close(self) -> None:
        """Stop forwarding for good."""
        self.cut("refuse")
        with self.lock:
            if self.holder is not None:
                _close(self.holder)

    def __enter__(self) -> TcpProxy:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @staticmethod
    def _socket() -> socket.socket:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        return sock

    def _listen(self, listener: socket.socket) -> None:
        listener.listen(128)
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return  # the listener was closed: cut() or close()
            if self.mode == "hold":
                with self.lock:
                    self.connections.append(client)  # closed by restore() or close()
                continue
            if self.mode != "open":
                _reset(client)
                continue
            try:
                upstream = socket.create_connection(self.target)
            except OSError:
                _reset(client)
                continue
            with self.lock:
                if self.mode != "open":
                    _reset(client)
                    _close(upstream)
                    continue
                self.connections += [client, upstream]
            for source, sink in ((client, upstream), (upstream, client)):
                threading.Thread(target=_pump, args=(source, sink), daemon=True).start()


def _pump(source: socket.socket, sink: socket.socket) -> None:
    with contextlib.suppress(OSError):
        while data := source.recv(65536):
            sink.sendall(data)
    for sock in (source, sink):
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)


def _reset(sock: socket.socket) -> None:
    # Linger 0: close sends RST, the peer reads "connection reset".
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()


def _close(sock: socket.socket) -> None:
    # shutdown first: it wakes a thread blocked in accept() or recv() on the socket.
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)
    sock.close()
