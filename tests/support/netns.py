"""Test hosts: network namespaces joined to this machine by veth pairs (Linux, root)."""

from __future__ import annotations

import socket
import subprocess
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True)


@dataclass(frozen=True)
class TestHost:
    """A namespace ``name`` at ``address``, reaching this machine at ``gateway``."""

    __test__ = False

    name: str
    address: str
    gateway: str

    def command(self, *argv: str) -> list[str]:
        """``argv`` run inside the namespace."""
        return ["ip", "netns", "exec", self.name, *argv]

    def netns_id(self) -> str:
        """The namespace's identity as a process inside it sees it (``net:[inode]``)."""
        out = subprocess.run(self.command("readlink", "/proc/self/ns/net"), capture_output=True,
                             text=True, check=True)  # fmt: skip
        return out.stdout.strip()


@contextmanager
def namespace_host(subnet: int) -> Iterator[TestHost]:
    """A namespace on 10.231.<subnet>.2/30 with the host side at .1; removed afterwards."""
    tag = uuid.uuid4().hex[:6]
    name, outside, inside = f"dtf-{tag}", f"vd{tag}h", f"vd{tag}n"
    gateway, address = f"10.231.{subnet}.1", f"10.231.{subnet}.2"
    try:
        _ip("netns", "add", name)
        _ip("link", "add", outside, "type", "veth", "peer", "name", inside)
        _ip("link", "set", inside, "netns", name)
        _ip("addr", "add", f"{gateway}/30", "dev", outside)
        _ip("link", "set", outside, "up")
        _ip("netns", "exec", name, "ip", "addr", "add", f"{address}/30", "dev", inside)
        _ip("netns", "exec", name, "ip", "link", "set", inside, "up")
        _ip("netns", "exec", name, "ip", "link", "set", "lo", "up")
        yield TestHost(name, address, gateway)
    finally:
        with suppress(subprocess.CalledProcessError):
            _ip("link", "del", outside)  # removes its peer too
        with suppress(subprocess.CalledProcessError):
            _ip("netns", "del", name)


class TcpForwarder:
    """Forwards ``listen`` addresses to ``target`` (PostgreSQL listens on loopback only)."""

    def __init__(self, hosts: list[str], target: tuple[str, int]) -> None:
        self.target = target
        self.servers = []
        for host in hosts:
            server = socket.create_server((host, 0))
            self.servers.append(server)
        self._stop = threading.Event()

    def ports(self) -> dict[str, int]:
        return {s.getsockname()[0]: s.getsockname()[1] for s in self.servers}

    def start(self) -> TcpForwarder:
        for server in self.servers:
            threading.Thread(target=self._accept, args=(server,), daemon=True).start()
        return self

    def _accept(self, server: socket.socket) -> None:
        while not self._stop.is_set():
            try:
                client, _ = server.accept()
            except OSError:
                return
            upstream = socket.create_connection(self.target)
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    @staticmethod
    def _pipe(source: socket.socket, sink: socket.socket) -> None:
        with suppress(OSError):
            while data := source.recv(65536):
                sink.sendall(data)
        with suppress(OSError):
            sink.shutdown(socket.SHUT_WR)

    def stop(self) -> None:
        self._stop.set()
        for server in self.servers:
            with suppress(OSError):
                server.close()
