"""One HTTP/1.1 connection of the fast transport: an asyncio ``Protocol`` feeding ``httptools``.

``Connection.exchange`` writes one request's bytes and waits until the parser has the whole
response (status, headers, body capped at ``max_body``; no pipelining). A lazy timer enforces
the read timeout (no byte for ``read`` seconds) and, for the lean client, the whole-request
deadline. Closes are classified as httpx does: before any byte (``Stale``: a reused connection
may be retried), mid-head or mid-body (``httpx.RemoteProtocolError``), reset (``httpx.ReadError``).
The pool and the request core that use it are ``engine/fast_transport.py``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping
from typing import TYPE_CHECKING, Any, cast

import httptools
import httpx

from pytest_shopflow_perf.engine.transport import _deadline_error

if TYPE_CHECKING:
    from pytest_shopflow_perf.engine.transport import _WireClock

__all__ = ["Connection", "Stale"]

Trace = Callable[[str, dict[str, Any]], Awaitable[None]]

# The httpcore trace events RecordingTransport's _WireClock reads, and no others.
CONNECT_STARTED = "connection.connect_tcp.started"
CONNECT_COMPLETE = "connection.connect_tcp.complete"
SEND_STARTED = "http11.send_request_headers.started"
BODY_COMPLETE = "http11.receive_response_body.complete"

HTTP_VERSIONS = {"1.1": b"HTTP/1.1", "1.0": b"HTTP/1.0"}


class Stale(Exception):
    """The connection closed before any byte of the response arrived: a reused one may be retried."""


class Connection(asyncio.Protocol):
    """One TCP connection and its response parser; reads one response at a time (no pipelining)."""

    __slots__ = (
        "chunks",
        "closed",
        "complete",
        "deadline",
        "head",
        "headers",
        "headers_done",
        "idle_since",
        "keep_alive",
        "last_read",
        "limit",
        "live",
        "loop",
        "parser",
        "parser_spent",
        "paused",
        "pool_key",
        "read_timeout",
        "reason",
        "received",
        "request",
        "room",
        "status",
        "timer",
        "transport",
        "truncated",
        "waiter",
        "write_waiter",
    )

    def __init__(self, loop: asyncio.AbstractEventLoop, live: dict[Connection, None]) -> None:
        self.loop = loop
        self.live = live
        self.pool_key: tuple[str, str, int] | None = None  # set while it waits, idle, in its pool
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpResponseParser(self)
        self.parser_spent = False  # after a HEAD response the parser still expects its body
        self.closed = False
        self.paused = False
        self.idle_since = 0.0
        self.waiter: asyncio.Future[None] | None = None
        self.write_waiter: asyncio.Future[None] | None = None
        self.timer: asyncio.TimerHandle | None = None
        self.request: httpx.Request | None = None
        self.read_timeout: float | None = None
        self.deadline: float | None = None  # loop time by which the whole response must be in (lean client)
        self.limit = 0.0  # the deadline's length, for its error message
        self.last_read = 0.0
        self._reset(False, None)

    def _reset(self, head: bool, max_body: int | None) -> None:
        self.status = 0
        self.reason = b""
        self.headers: list[tuple[bytes, bytes]] = []
        self.chunks: list[bytes] = []
        self.room = max_body
        self.truncated = False
        self.received = False
        self.headers_done = False
        self.complete = False
        self.keep_alive = False
        self.head = head

    # ---- asyncio.Protocol ----------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is no asyncio.Transport subclass

    def data_received(self, data: bytes) -> None:
        waiter = self.waiter
        if waiter is None or waiter.done():  # bytes nobody asked for (idle, or after the response)
            self.close()
            return
        self.received = True
        if self.read_timeout is not None:
            self.last_read = self.loop.time()
        try:
            self.parser.feed_data(data)
        except (httptools.HttpParserError, httptools.HttpParserUpgrade) as exc:
            self._fail(httpx.RemoteProtocolError(f"invalid HTTP response: {exc}", request=self.request))
            self.close()

    def connection_lost(self, exc: Exception | None) -> None:
        self._forget()
        write_waiter = self.write_waiter
        if write_waiter is not None and not write_waiter.done():
            write_waiter.set_exception(httpx.WriteError(str(exc or "connection closed"), request=self.request))
        waiter = self.waiter
        if waiter is None or waiter.done():
            return
        if not self.received:
            waiter.set_exception(Stale())
        elif self.headers_done and not self.head and not self._framed():
            self.keep_alive = False
            self._done()  # no Content-Length, not chunked: the body ends with the connection
        elif isinstance(exc, OSError):
            waiter.set_exception(
                httpx.ReadError(f"connection reset while reading the response: {exc}", request=self.request)
            )
        elif self.headers_done:
            waiter.set_exception(
                httpx.RemoteProtocolError(
                    "peer closed connection without sending the complete message body", request=self.request
                )
            )
        else:
            waiter.set_exception(
                httpx.RemoteProtocolError(
                    "server disconnected in the middle of the response head", request=self.request
                )
            )

    def pause_writing(self) -> None:
        self.paused = True

    def resume_writing(self) -> None:
        self.paused = False
        write_waiter = self.write_waiter
        if write_waiter is not None and not write_waiter.done():
            write_waiter.set_result(None)

    # ---- httptools callbacks -------------------------------------------------

    def on_status(self, status: bytes) -> None:
        self.reason += status  # may arrive in pieces

    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers.append((name, value))

    def on_headers_complete(self) -> None:
        self.headers_done = True
        self.status = self.parser.get_status_code()
        if self.head and self.status >= 200:
            # The parser cannot be told that a HEAD response has no body: finish here, new parser next time.
            self.parser_spent = True
            self.keep_alive = self.parser.should_keep_alive()
            self._done()

    def on_body(self, body: bytes) -> None:
        if self.complete:  # bytes after a HEAD response's head: a broken server, never reuse the connection
            self.keep_alive = False
            return
        room = self.room
        if room is None:
            self.chunks.append(body)
        elif len(body) <= room:
            self.room = room - len(body)
            self.chunks.append(body)
        else:  # past the cap: keep what fits, read the rest (timed), keep nothing of it
            if room:
                self.chunks.append(body[:room])
                self.room = 0
            self.truncated = True

    def on_message_complete(self) -> None:
        if self.complete:
            return  # HEAD, already finished at its headers
        if self.status < 200:  # an interim response (100, 103): the real one follows
            self.reason = b""
            self.headers = []
            self.headers_done = False
            return
        self.keep_alive = self.parser.should_keep_alive()
        self._done()

    # ---- the connection's side of a request ------------------------------------

    def _framed(self) -> bool:
        """The response said where its body ends (Content-Length or chunked)."""
        for name, _ in self.headers:
            if name.lower() in (b"content-length", b"transfer-encoding"):
                return True
        return self.status in (204, 304)

    def _done(self) -> None:
        self.complete = True
        waiter = self.waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def _fail(self, exc: BaseException) -> None:
        waiter = self.waiter
        if waiter is not None and not waiter.done():
            waiter.set_exception(exc)

    def _due(self) -> float:
        """Loop time at which the request in flight times out: read idle or whole-request deadline."""
        timeout = self.read_timeout
        deadline = self.deadline
        if timeout is None:
            assert deadline is not None
            return deadline
        due = self.last_read + timeout
        return deadline if deadline is not None and deadline < due else due

    def _on_read_timer(self) -> None:
        # A lazy timer: it stays armed between requests (re-arming it per request costs a TimerHandle
        # each) and, on firing, times out the request in flight or re-arms for its due time.
        self.timer = None
        waiter = self.waiter
        if waiter is None or waiter.done() or (self.read_timeout is None and self.deadline is None):
            return
        now = self.loop.time()
        deadline = self.deadline
        if deadline is not None and now >= deadline:
            waiter.set_exception(_deadline_error(self.request, self.limit))
            return
        timeout = self.read_timeout
        if timeout is not None and now - self.last_read >= timeout:
            waiter.set_exception(httpx.ReadTimeout(f"no response bytes for {timeout:g} s", request=self.request))
            return
        self.timer = self.loop.call_at(self._due(), self._on_read_timer)

    def usable(self) -> bool:
        transport = self.transport
        return not self.closed and transport is not None and not transport.is_closing()

    async def exchange(
        self,
        data: bytes,
        request: httpx.Request | None,
        head: bool,
        max_body: int | None,
        timeouts: Mapping[str, float | None],
        trace: Trace | None,
        clock: _WireClock | None,
        deadline: float | None,
    ) -> None:
        """Send one request and read its whole response; ``Stale`` if nothing at all came back."""
        if not self.usable():
            raise Stale
        if self.parser_spent:
            self.parser = httptools.HttpResponseParser(self)
            self.parser_spent = False
        self._reset(head, max_body)
        self.request = request
        loop = self.loop
        waiter = self.waiter = loop.create_future()
        try:
            if trace is not None:
                await trace(SEND_STARTED, {"request": request})
            elif clock is not None:
                clock.send_started()
            transport = self.transport
            assert transport is not None
            transport.write(data)
            if self.paused:
                await self._drain(timeouts.get("write"), request)
            read_timeout = self.read_timeout = timeouts.get("read")
            self.deadline = deadline
            if (read_timeout is not None or deadline is not None) and not waiter.done():
                self.last_read = loop.time()
                due = self._due()
                timer = self.timer
                if timer is None or timer.when() > due:
                    if timer is not None:
                        timer.cancel()
                    self.timer = loop.call_at(due, self._on_read_timer)
            await waiter
        finally:
            self.waiter = None
            self.request = None

    async def _drain(self, timeout: float | None, request: httpx.Request | None) -> None:
        """Wait until the socket takes the rest of a large request (the transport paused writing)."""
        write_waiter = self.write_waiter = self.loop.create_future()
        try:
            if self.paused and not self.closed:
                await asyncio.wait_for(write_waiter, timeout)
        except asyncio.TimeoutError:
            raise httpx.WriteTimeout(f"could not send the request within {timeout:g} s", request=request) from None
        finally:
            self.write_waiter = None

    def _forget(self) -> None:
        self.closed = True
        self.live.pop(self, None)
        timer = self.timer
        if timer is not None:
            timer.cancel()
            self.timer = None

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()
        self._forget()
