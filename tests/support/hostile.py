"""Hostile raw servers on 127.0.0.1 and a recorder of every connection attempt, for the target-rule tests."""

from __future__ import annotations

import asyncio
import ipaddress
import socket
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import pytest

Handler = Callable[[bytes], bytes]  # request head -> raw response


@dataclass
class Served:
    url: str
    port: int
    accepts: int = 0
    heads: list[bytes] = field(default_factory=list)


@contextmanager
def raw_server(handler: Handler) -> Iterator[Served]:
    """A keep-alive HTTP/1.1 server answering each request head with ``handler(head)`` (bodies are not read)."""
    served = Served(url="", port=0)
    ready = threading.Event()
    state: dict[str, asyncio.AbstractEventLoop | asyncio.Event] = {}

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        served.accepts += 1
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                served.heads.append(head)
                writer.write(handler(head))
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    async def main() -> None:
        stop = asyncio.Event()
        state["loop"], state["stop"] = asyncio.get_running_loop(), stop
        server = await asyncio.start_server(handle, "127.0.0.1", 0)
        served.port = server.sockets[0].getsockname()[1]
        served.url = f"http://127.0.0.1:{served.port}"
        ready.set()
        async with server:
            await stop.wait()

    thread = threading.Thread(target=asyncio.run, args=(main(),), daemon=True)
    thread.start()
    ready.wait(10)
    try:
        yield served
    finally:
        loop, stop = state["loop"], state["stop"]
        assert isinstance(loop, asyncio.AbstractEventLoop)
        assert isinstance(stop, asyncio.Event)
        loop.call_soon_threadsafe(stop.set)
        thread.join(10)


def response(status: str = "200 OK", body: bytes = b"ok", headers: str = "") -> bytes:
    return f"HTTP/1.1 {status}\r\nContent-Length: {len(body)}\r\n{headers}\r\n".encode() + body


def redirect_to(location: str) -> Handler:
    """``302 Location: location`` for ``/start``, 200 for anything else."""

    def handler(head: bytes) -> bytes:
        if head.split(b" ", 2)[1] == b"/start":
            return response("302 Found", b"", f"Location: {location}\r\n")
        return response()

    return handler


def _loopback(host: object) -> bool:
    if host in (None, "", b"", "localhost"):
        return True
    text = host.decode() if isinstance(host, bytes) else str(host)
    try:
        return ipaddress.ip_address(text.strip("[]").split("%")[0]).is_loopback
    except ValueError:
        return False


class Attempts:
    """Every getaddrinfo and connect of this process while installed: names asked for, addresses dialled."""

    def __init__(self, names: dict[str, str]) -> None:
        self.names = names  # a private resolver: name -> IP, never a real DNS lookup
        self.lookups: list[str] = []
        self.connects: list[str] = []

    @property
    def off_loopback(self) -> list[str]:
        return [h for h in self.lookups if not _loopback(h) and h not in self.names] + [
            h for h in self.connects if not _loopback(h)
        ]


@pytest.fixture
def attempts(monkeypatch: pytest.MonkeyPatch) -> Attempts:
    """Record (and stop) connection attempts; ``attempts.names[...] = ip`` maps a name like /etc/hosts would."""
    record = Attempts({})
    real_getaddrinfo = socket.getaddrinfo
    real_connect = socket.socket.connect
    real_connect_ex = socket.socket.connect_ex

    def getaddrinfo(host, port, *args, **kwargs):
        name = host.decode() if isinstance(host, bytes) else host
        record.lookups.append(name)
        if name in record.names:
            return real_getaddrinfo(record.names[name], port, *args, **kwargs)
        if not _loopback(name):
            raise socket.gaierror(socket.EAI_NONAME, f"test resolver: {name!r} is not resolved")
        return real_getaddrinfo(host, port, *args, **kwargs)

    def checked(real):
        def connect(self, address):
            if self.family in (socket.AF_INET, socket.AF_INET6):
                record.connects.append(address[0])
                if not _loopback(address[0]):
                    raise ConnectionRefusedError(f"test guard: connect to {address!r} refused")
            return real(self, address)

        return connect

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    monkeypatch.setattr(socket.socket, "connect", checked(real_connect))
    monkeypatch.setattr(socket.socket, "connect_ex", checked(real_connect_ex))
    return record
