"""A raw asyncio HTTP/1.1 server on 127.0.0.1 whose every answer a test writes byte for byte.

For the fast transport and the lean client: ``with http_server(reply) as server:`` calls
``reply(head, body, index on the connection)`` per request and sends what it returns (with
``(bytes, True)``: and closes the connection). ``tls=`` (a trustme server context) serves https.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import ssl
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from support.slow_servers import read_head, serve

# reply(head, body, index of the request on its connection) -> bytes to send, optionally "and close"
Reply = Callable[[bytes, bytes, int], "bytes | tuple[bytes, bool]"]


@dataclass
class Server:
    url: str = ""
    connections: int = 0
    requests: list[tuple[bytes, bytes]] = field(default_factory=list)

    def target(self, index: int = -1) -> bytes:
        """The request target of a request as it went over the wire."""
        return self.requests[index][0].split(b" ", 2)[1]


@contextlib.contextmanager
def http_server(reply: Reply, tls: ssl.SSLContext | None = None) -> Iterator[Server]:
    server = Server()

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        server.connections += 1
        index = 0
        while True:
            head = await read_head(reader)
            length = re.search(rb"(?i)\r\ncontent-length:\s*(\d+)", head)
            body = await reader.readexactly(int(length.group(1))) if length else b""
            server.requests.append((head, body))
            out = reply(head, body, index)
            index += 1
            data, close = out if isinstance(out, tuple) else (out, False)
            writer.write(data)
            await writer.drain()
            if close:
                return

    with serve(handler, tls=tls) as url:
        server.url = url
        yield server


def ok(body: bytes = b"hello", status: str = "200 OK", headers: str = "") -> bytes:
    return f"HTTP/1.1 {status}\r\nContent-Length: {len(body)}\r\n{headers}\r\n".encode() + body


def chunked(*chunks: bytes) -> bytes:
    out = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
    for chunk in chunks:
        out += b"%x\r\n%s\r\n" % (len(chunk), chunk)
    return out + b"0\r\n\r\n"


def echo(head: bytes, body: bytes, index: int) -> bytes:
    kind = re.search(rb"(?i)\r\ncontent-type: ([^\r]*)", head)
    return ok(body, headers=f"X-Type: {kind.group(1).decode() if kind else ''}\r\n")
