"""HTTP/1.1 message framing for the fault proxy, strict where a lenient reading would be exploitable.

The proxy forwards raw bytes and must find where each message ends exactly as
a strict peer (h11, the engine's client) does: reading a Content-Length or a
Transfer-Encoding differently from the next hop is a request-smuggling
primitive. No HTTP library is used because the proxy sits in the measured path;
this module is the small part of HTTP/1.1 it needs, kept apart from the fault
logic so those rules can be read (and reviewed) on their own.
"""

from __future__ import annotations

import asyncio
import http
import json
import re
from collections.abc import Awaitable, Callable
from typing import Any

_END_OF_HEAD = b"\r\n\r\n"
_READ_SIZE = 1 << 16

_NONE, _LENGTH, _CHUNKED, _EOF = range(4)
_DIGITS = re.compile(rb"[0-9]{1,20}")  # h11's Content-Length rule (and its 20-digit cap)

Send = Callable[[bytes], Awaitable[None]]


class _ProtocolError(Exception):
    """A peer broke HTTP/1.1 framing mid-message (a bad chunk size): the connection cannot be reused."""


class _Head:
    """The parts of a request or response head the proxy acts on; the raw lines are forwarded as they are."""

    __slots__ = ("chunked", "close", "expect_index", "host_index", "keep_alive", "length", "lines")

    def __init__(self, raw: bytes) -> None:
        lines = raw[:-4].split(b"\r\n")
        self.lines = lines
        self.length: int | None = None
        self.chunked = False
        self.close = False
        self.keep_alive = False
        self.expect_index = -1
        self.host_index = -1
        length_text: bytes | None = None
        encoding = False
        for index in range(1, len(lines)):
            name, _, value = lines[index].partition(b":")
            key = name.strip().lower()
            if key == b"content-length":
                length_text = _content_length(value, length_text)
                self.length = int(length_text)
            elif key == b"transfer-encoding":
                # as h11: exactly "chunked", once; anything else frames differently at a strict peer
                if encoding or value.strip().lower() != b"chunked":
                    raise ValueError(f"unsupported Transfer-Encoding {value.strip()[:40]!r}")
                encoding = self.chunked = True
            elif key == b"connection":
                tokens = value.lower()
                self.close = self.close or b"close" in tokens
                self.keep_alive = self.keep_alive or b"keep-alive" in tokens
            elif key == b"host":
                self.host_index = index
            elif key == b"expect" and value.strip().lower() == b"100-continue":
                self.expect_index = index
        if self.chunked and length_text is not None:
            raise ValueError("both Transfer-Encoding and Content-Length: the framing is ambiguous")


def _content_length(value: bytes, seen: bytes | None) -> bytes:
    """Strict as h11: digits only (``int()`` would take ``1_0``, ``+10``, `` 1 0``...), repeats must agree.

    A lenient parse frames a message differently from a strict peer: a request-smuggling primitive.
    """
    lengths = {part.strip() for part in value.split(b",")}
    if len(lengths) != 1:
        raise ValueError("conflicting Content-Length values")
    text = lengths.pop()
    if not _DIGITS.fullmatch(text):
        raise ValueError(f"bad Content-Length {text[:40]!r}")
    if seen is not None and seen != text:  # h11 compares the text: 10 and 010 conflict
        raise ValueError("conflicting Content-Length headers")
    return text


def _send_to(writer: asyncio.StreamWriter) -> Send:
    async def send(data: bytes) -> None:
        writer.write(data)
        await writer.drain()

    return send


async def _pump(reader: asyncio.StreamReader, framing: int, length: int, send: Send) -> None:
    """Copy one message body as framed on the wire (chunk sizes and trailers included)."""
    if framing == _LENGTH:
        remaining = length
        while remaining:
            data = await reader.read(min(remaining, _READ_SIZE))
            if not data:
                raise asyncio.IncompleteReadError(b"", remaining)
            remaining -= len(data)
            await send(data)
    elif framing == _CHUNKED:
        while True:
            line = await reader.readuntil(b"\r\n")
            try:
                size = int(line.split(b";", 1)[0], 16)
            except ValueError:
                raise _ProtocolError(f"bad chunk size line {line[:40]!r}") from None
            if size == 0:
                while True:  # trailers, then the empty line
                    trailer = await reader.readuntil(b"\r\n")
                    line += trailer
                    if trailer == b"\r\n":
                        break
                await send(line)
                return
            if size + 2 <= _READ_SIZE:
                await send(line + await reader.readexactly(size + 2))
            else:
                await send(line)
                await _pump(reader, _LENGTH, size + 2, send)
    elif framing == _EOF:
        while data := await reader.read(_READ_SIZE):
            await send(data)


async def _read_whole(reader: asyncio.StreamReader, framing: int) -> bytes:
    """A whole body of unknown length (chunked, or longer than one read), as framed on the wire."""
    parts: list[bytes] = []

    async def keep(data: bytes) -> None:
        parts.append(data)

    await _pump(reader, framing, 0, keep)
    return b"".join(parts)


async def _discard(_data: bytes) -> None:
    return None


def _local_response(status: int, payload: dict[str, Any], *, close: bool, kind: str = "") -> bytes:
    body = json.dumps(payload, separators=(",", ":")).encode()
    try:
        reason = http.HTTPStatus(status).phrase
    except ValueError:
        reason = "Error"
    extra = (f"X-Fault-Injected: {kind}\r\n" if kind else "") + ("Connection: close\r\n" if close else "")
    return (
        f"HTTP/1.1 {status} {reason}\r\nContent-Type: application/json\r\nContent-Length: {len(body)}\r\n{extra}\r\n"
    ).encode("latin-1") + body


def _request_framing(request: _Head, version: bytes) -> tuple[int, bool]:
    """How a request body is framed, and whether the client asked to close after the answer."""
    framing = _CHUNKED if request.chunked else _LENGTH if request.length else _NONE
    return framing, request.close or (version == b"HTTP/1.0" and not request.keep_alive)


def _response_framing(method: bytes, status: int, response: _Head) -> tuple[int, int, bool]:
    """How a response body is framed, its length (when framed by one), and whether the upstream closes after it."""
    if method == b"HEAD" or status in (204, 304):
        framing, length = _NONE, 0
    elif response.chunked:
        framing, length = _CHUNKED, 0
    elif response.length is not None:
        framing, length = _LENGTH, response.length
    else:
        framing, length = _EOF, 0
    close = response.close or framing == _EOF or (response.lines[0].startswith(b"HTTP/1.0") and not response.keep_alive)
    return framing, length, close


async def _read_response_head(
    reader: asyncio.StreamReader, interim: Callable[[bytes], object]
) -> tuple[bytes, _Head, int]:
    """The final response head (raw, parsed, status); interim 1xx heads (not 101) go to ``interim`` as they come."""
    raw = await reader.readuntil(_END_OF_HEAD)
    response = _Head(raw)
    status = int(response.lines[0][9:12])
    while 100 <= status < 200 and status != 101:
        interim(raw)  # interim answers go through; the real answer follows
        raw = await reader.readuntil(_END_OF_HEAD)
        response = _Head(raw)
        status = int(response.lines[0][9:12])
    return raw, response, status


def _upstream_head(request: _Head, host_line: bytes) -> bytes:
    """The request head for the upstream: its ``host_line``, and no ``Expect`` (the proxy answered 100 itself)."""
    lines = request.lines
    if request.expect_index > 0:
        lines = [line for index, line in enumerate(lines) if index != request.expect_index]
        host_index = request.host_index - (request.expect_index < request.host_index)
    else:
        host_index = request.host_index
    if host_index > 0:
        lines[host_index] = host_line  # the lines are not used again after this
    else:
        lines.insert(1, host_line)
    return b"\r\n".join(lines) + _END_OF_HEAD
