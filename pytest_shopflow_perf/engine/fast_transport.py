"""A lean HTTP/1.1 keep-alive transport for httpx: an asyncio ``Protocol`` and ``httptools``, no httpcore.

Why: with the stock transport the generator, not the service, is the bottleneck (issue 13:
the engine did 1,873 req/s where Locust FastHttpUser did 7,387 against the same nginx, and a
crude Protocol + httptools transport already reached 4,413). httpcore's pool bookkeeping, h11
and the anyio stream layers are most of that per-request cost; this transport does the one
thing load tests send most (plain ``http://`` HTTP/1.1 with keep-alive, bodies of known length)
with as little work per request as it can, and keeps the httpx API of journeys unchanged.

``https`` is sent natively too when the transport is given an ``ssl_context`` (asyncio's TLS,
``server_hostname`` the URL's host, to the address the target rule returned). What it does not
handle it hands, per request, to the fallback transport it is given (the engine's guarded
httpcore transport) and counts in ``delegated``: ``https`` without an ``ssl_context`` (or with
an ``sni_hostname`` extension), upgrades, ``CONNECT``, ``Expect: 100-continue``, request bodies
of unknown length (``Transfer-Encoding`` or a stream without ``Content-Length``), and any event
loop that is not asyncio (trio). HTTP/2 and proxies never reach it (httpx picks a proxy's
transport by URL; the fast transport offers no ALPN).

The request core, ``FastTransport.roundtrip`` (request bytes in; status, headers and body out),
is shared with the lean client (``engine/fast_client.py``, ``client="fast"``), which calls it
with its ``_WireClock`` (timed by plain calls, no trace awaits) and a whole-request deadline.

The rules of the stock transport hold here too:

- target rule: every connect first asks ``TargetPolicy.connect_address`` (as
  ``target/guarded.py``'s ``GuardedBackend`` does) and connects to exactly the address it
  returns, so a refused host raises ``TargetRefused`` before any packet;
- timing: if the request has a ``trace`` extension (``RecordingTransport``'s ``_WireClock``)
  it gets the httpcore events the clock reads, under httpcore's names:
  ``connection.connect_tcp.started``/``complete`` around a new connection (name check
  included, as in httpcore), ``http11.send_request_headers.started`` just before the first
  byte is written and ``http11.receive_response_body.complete`` after the last byte is read;
  no other events are sent (each costs an await per request);
- bodies are read fully into memory before the response is returned (an ``httpx.ByteStream``,
  so ``RecordingTransport`` stops the clock at once), keeping at most ``max_body`` bytes (the
  ``max_body`` request extension first): the rest is still read, then dropped, and the response
  carries ``TRUNCATED_EXTENSION``, as ``_TimedStream`` does for streamed bodies;
- timeouts come from the request's ``timeout`` extension: ``connect``, ``read`` (between two
  reads, as httpcore), ``write`` and ``pool`` (``max_connections`` requests in flight at most),
  raising httpx's own ``ConnectTimeout``, ``ReadTimeout``, ``WriteTimeout`` and ``PoolTimeout``.

A reused keep-alive connection that the server closed before sending a single byte of the
response is retried once on a fresh connection (the server's idle close racing the request);
any other close raises ``httpx.RemoteProtocolError`` (``httpx.ReadError`` for a reset).

The connection protocol (one TCP or TLS connection, its response parser and read timer) is
``engine/fast_wire.py``; its pool, the request core, connecting and delegation are here.
"""

from __future__ import annotations

import asyncio
import collections
import ipaddress
import socket
import ssl
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, cast

import anyio
import httpx

from pytest_shopflow_perf.engine.fast_wire import (
    BODY_COMPLETE,
    CONNECT_COMPLETE,
    CONNECT_STARTED,
    HTTP_VERSIONS,
    Connection,
    Stale,
    Trace,
)
from pytest_shopflow_perf.engine.transport import (
    DEADLINE_EXTENSION,
    TRUNCATED_EXTENSION,
    TransportCounters,
    _deadline_error,
)
from pytest_shopflow_perf.profile.resolve import DEFAULT_MAX_BODY
from pytest_shopflow_perf.target.policy import TargetPolicy

if TYPE_CHECKING:
    from pytest_shopflow_perf.engine.transport import _WireClock

__all__ = ["FastTransport", "Reply"]

Fallback = httpx.AsyncBaseTransport | Callable[[], httpx.AsyncBaseTransport]
PoolKey = tuple[str, str, int]  # (scheme, host, port)
# What roundtrip returns: status, reason, raw headers, body (at most max_body bytes), truncated, HTTP version.
Reply = tuple[int, bytes, list[tuple[bytes, bytes]], bytes, bool, bytes]


# httpx's defaults (httpx.AsyncHTTPTransport() without limits=), as target/guarded.py
MAX_CONNECTIONS = 100
MAX_KEEPALIVE_CONNECTIONS = 20
KEEPALIVE_EXPIRY_S = 5.0

_NO_TIMEOUTS: Mapping[str, float | None] = {}
DEFAULT_PORTS = {"http": 80, "https": 443}
# Request headers that send the request to the fallback (lower-case names).
_DELEGATED_HEADERS = frozenset((b"transfer-encoding", b"upgrade", b"expect"))


def _is_ip(address: str) -> bool:
    try:
        ipaddress.ip_address(address)
    except ValueError:
        return False
    return True


# Methods whose request may be sent again on a fresh connection when a reused one closed unanswered.
IDEMPOTENT = frozenset(("GET", "HEAD", "OPTIONS", "PUT", "DELETE", "TRACE"))


# What an idle connection holds instead of its last response's lists (tuples: nothing can append to them).
_IDLE_HEADERS = cast("list[tuple[bytes, bytes]]", ())
_IDLE_CHUNKS = cast("list[bytes]", ())


def _within(timeout: float | None, deadline: float | None, loop: asyncio.AbstractEventLoop) -> float | None:
    """A phase's timeout, cut to what is left of the whole-request deadline (loop time)."""
    if deadline is None:
        return timeout
    left = max(0.0, deadline - loop.time())
    return left if timeout is None or left < timeout else timeout


class FastTransport(httpx.AsyncBaseTransport):
    """HTTP/1.1 keep-alive transport on asyncio + httptools; what it cannot send goes to ``fallback``.

    :param fallback: the transport (or a zero-argument factory of it, built on first use)
        that sends what this one does not handle: the engine passes its guarded httpcore transport.
    :param policy: the target rule every new connection is checked against (loopback only if None).
    :param max_body: bytes of a response body kept (the ``max_body`` request extension first).
    :param counters: run-wide counters; ``delegated`` is added to.
    :param ssl_context: sends ``https`` natively with it (verification as the context says);
        without one, ``https`` goes to the fallback.
    """

    def __init__(
        self,
        fallback: Fallback,
        policy: TargetPolicy | None = None,
        *,
        max_body: int | None = DEFAULT_MAX_BODY,
        max_connections: int = MAX_CONNECTIONS,
        max_keepalive_connections: int = MAX_KEEPALIVE_CONNECTIONS,
        keepalive_expiry: float = KEEPALIVE_EXPIRY_S,
        counters: TransportCounters | None = None,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        self._fallback_spec = fallback
        self._fallback: httpx.AsyncBaseTransport | None = (
            fallback if isinstance(fallback, httpx.AsyncBaseTransport) else None
        )
        self._policy = policy if policy is not None else TargetPolicy()
        self._max_body = max_body
        self._max_connections = max_connections
        self._max_keepalive = max_keepalive_connections
        self._keepalive_expiry = keepalive_expiry
        self._counters = counters
        self._ssl_context = ssl_context
        # Idle keep-alive connections, newest last, each with its pool_key: one flat list (most users
        # talk to one origin; a dict of lists cost ~300 B more per user).
        self._idle: list[Connection] = []
        self._live: dict[Connection, None] = {}  # open connections (a dict: 64 B empty, a set 216)
        self._active = 0  # requests holding a connection slot
        self._slot_waiters: collections.deque[asyncio.Future[None]] | None = None  # built on first wait (memory)
        self.delegated = 0  # requests sent by the fallback
        self.connects = 0  # connections opened through the policy
        self.retries = 0  # requests resent on a fresh connection after a reused one closed

    holds_deadline = True  # RecordingTransport's whole-request deadline is kept here (DEADLINE_EXTENSION)

    # ---- httpx.AsyncBaseTransport ------------------------------------------------

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        url = request.url
        method = request.method
        scheme = url.scheme
        extensions = request.extensions
        if (
            method == "CONNECT"
            or (scheme != "http" and (scheme != "https" or self._ssl_context is None))
            or "sni_hostname" in extensions
        ):
            return await self._delegate(request)
        try:
            asyncio.get_running_loop()
        except RuntimeError:  # trio: no asyncio loop to run a Protocol on
            return await self._delegate(request)
        length: int | None = None
        parts = [method.encode("ascii"), b" ", url.raw_path, b" HTTP/1.1\r\n"]
        for name, value in request.headers.raw:
            lower = name.lower()
            if lower in _DELEGATED_HEADERS:
                if lower != b"expect" or value.lower().strip() == b"100-continue":
                    return await self._delegate(request)
            elif lower == b"content-length":
                try:
                    length = int(value)
                except ValueError:
                    raise httpx.LocalProtocolError(f"invalid Content-Length {value!r}", request=request) from None
            if b"\r" in value or b"\n" in value or b"\r" in name or b"\n" in name:
                raise httpx.LocalProtocolError(f"invalid header {name!r}: CR or LF in it", request=request)
            parts += (name, b": ", value, b"\r\n")
        parts.append(b"\r\n")
        stream = request.stream
        if isinstance(stream, httpx.ByteStream):
            body = request.read()  # in memory already: read() only returns it
        elif length is None:
            return await self._delegate(request)  # a stream of unknown length: httpcore sends it chunked
        else:
            body = b"".join([chunk async for chunk in cast(httpx.AsyncByteStream, stream)])
        if body:
            if length is None:
                parts.insert(-1, b"Content-Length: %d\r\n" % len(body))
            elif length != len(body):
                raise httpx.LocalProtocolError(
                    f"request body is {len(body)} bytes, its Content-Length says {length}", request=request
                )
            parts.append(body)

        limit: float | None = extensions.get(DEADLINE_EXTENSION)
        status, reason, headers, content, truncated, version = await self.roundtrip(
            (scheme, url.host, url.port or DEFAULT_PORTS[scheme]),
            b"".join(parts),
            head=method == "HEAD",
            retry=method in IDEMPOTENT,
            max_body=extensions.get("max_body", self._max_body),
            timeouts=extensions.get("timeout") or _NO_TIMEOUTS,
            trace=extensions.get("trace"),
            deadline=None if limit is None else asyncio.get_running_loop().time() + limit,
            limit=limit or 0.0,
            request=request,
        )
        response_extensions: dict[str, Any] = {"http_version": version, "reason_phrase": reason}
        if truncated:
            response_extensions[TRUNCATED_EXTENSION] = True
        return httpx.Response(status, headers=headers, stream=httpx.ByteStream(content), extensions=response_extensions)

    async def aclose(self) -> None:
        for conn in list(self._live):
            conn.close()
        self._idle.clear()
        if self._fallback is not None:
            await self._fallback.aclose()

    # ---- the request core (httpx transport and lean client) -------------------------

    async def roundtrip(
        self,
        key: PoolKey,
        data: bytes,
        *,
        head: bool,
        max_body: int | None,
        timeouts: Mapping[str, float | None],
        retry: bool = True,
        trace: Trace | None = None,
        clock: _WireClock | None = None,
        deadline: float | None = None,
        limit: float = 0.0,
        request: httpx.Request | None = None,
    ) -> Reply:
        """Send the request bytes ``data`` to ``key`` = (scheme, host, port) on a pooled connection.

        Timed by ``trace`` (awaited httpcore events) or ``clock`` (plain calls); ``deadline``
        (loop time, ``limit`` seconds after the start) bounds the read of the response as a whole.
        httpx's exceptions carry ``request`` (None: the caller attaches one if it needs to).
        """
        loop = asyncio.get_running_loop()
        if self._active < self._max_connections:
            self._active += 1
        else:
            await self._wait_for_slot(loop, _within(timeouts.get("pool"), deadline, loop), request)
        try:
            conn = self._take_idle(key, loop.time())
            reused = conn is not None
            while True:
                if conn is None:
                    connect_timeout = _within(timeouts.get("connect"), deadline, loop)
                    conn = await self._connect(loop, key, connect_timeout, trace, clock, request)
                conn.limit = limit
                try:
                    await conn.exchange(data, request, head, max_body, timeouts, trace, clock, deadline)
                except Stale:
                    conn.close()
                    # Resent only when sending twice is harmless: a POST the server may have taken
                    # before it closed is an error, never a second order (as urllib3 and aiohttp).
                    if not reused or not retry:
                        raise httpx.RemoteProtocolError(
                            "server disconnected without sending a response", request=request
                        ) from None
                    conn, reused = None, False  # the server closed an idle connection as we sent: once more
                    self.retries += 1
                    continue
                except BaseException:
                    conn.close()  # cancelled, timed out or broken mid-response: never reused
                    if conn.truncated and self._counters is not None:
                        self._counters.truncated_bodies += 1  # capped, then the deadline came: no response
                    raise
                break
            if trace is not None:
                await trace(BODY_COMPLETE, {"request": request})
            elif clock is not None:
                clock.body_complete()
            chunks = conn.chunks
            body = chunks[0] if len(chunks) == 1 else b"".join(chunks)
            reply = (
                conn.status,
                conn.reason.strip(),
                conn.headers,
                body,
                conn.truncated,
                HTTP_VERSIONS.get(conn.parser.get_http_version(), b"HTTP/1.1"),
            )
            if conn.keep_alive and conn.usable():
                self._put_idle(key, conn, loop.time())
            else:
                conn.close()
            return reply
        finally:
            self._release_slot()

    # ---- delegation --------------------------------------------------------------

    async def _delegate(self, request: httpx.Request) -> httpx.Response:
        self.delegated += 1
        if self._counters is not None:
            self._counters.delegated += 1
        fallback = self._fallback
        if fallback is None:
            spec = self._fallback_spec
            assert not isinstance(spec, httpx.AsyncBaseTransport)
            fallback = self._fallback = spec()
        limit: float | None = request.extensions.get(DEADLINE_EXTENSION)
        if limit is None:
            return await fallback.handle_async_request(request)
        with anyio.move_on_after(limit):  # the deadline RecordingTransport left to this transport
            return await fallback.handle_async_request(request)
        raise _deadline_error(request, limit)

    # ---- connections -------------------------------------------------------------

    async def _connect(
        self,
        loop: asyncio.AbstractEventLoop,
        key: PoolKey,
        timeout: float | None,
        trace: Trace | None,
        clock: _WireClock | None,
        request: httpx.Request | None,
    ) -> Connection:
        """A new connection to the address the target policy returns for ``host`` (and only there)."""
        scheme, host, port = key
        if trace is not None:
            await trace(CONNECT_STARTED, {"host": host, "port": port, "timeout": timeout})
        elif clock is not None:
            clock.connect_started()
        try:
            address = await self._policy.connect_address(host, port)  # TargetRefused: before any packet
        except OSError as exc:  # the name did not resolve
            raise httpx.ConnectError(str(exc), request=request) from exc
        self.connects += 1
        if _is_ip(address):
            candidates: tuple[str, ...] = (address, *self._policy.other_addresses(host, port, address))
        else:  # a host the user allowed by name: resolved as any client would, every address tried
            try:
                infos = await loop.getaddrinfo(address, port, type=socket.SOCK_STREAM)
            except OSError as exc:
                raise httpx.ConnectError(str(exc), request=request) from exc
            candidates = tuple(dict.fromkeys(str(info[4][0]) for info in infos))
        tls = self._ssl_context if scheme == "https" else None
        conn = None
        failure: OSError | None = None
        for candidate in candidates:  # the other addresses of a localhost-family name are checked too
            conn = Connection(loop, self._live)
            failure = await self._open(loop, conn, candidate, port, timeout, tls, host, request)
            if failure is None:
                break
            if isinstance(failure, ssl.SSLError):  # the server answered: another address would not help
                break
        if failure is not None or conn is None:
            why = f": {failure}" if failure is not None else ""
            raise httpx.ConnectError(f"could not connect to {host}:{port}{why}", request=request)
        if trace is not None:
            await trace(CONNECT_COMPLETE, {"return_value": None})
        elif clock is not None:
            clock.connect_complete()
        return conn

    async def _open(
        self,
        loop: asyncio.AbstractEventLoop,
        conn: Connection,
        address: str,
        port: int,
        timeout: float | None,
        tls: ssl.SSLContext | None,
        host: str,
        request: httpx.Request | None,
    ) -> OSError | None:
        """Connect ``conn`` (TLS with SNI and verification for ``host`` when ``tls``); the error if it failed."""
        try:
            connecting = loop.create_connection(
                lambda: conn, address, port, ssl=tls, server_hostname=host if tls is not None else None
            )
            await asyncio.wait_for(connecting, timeout)
        except asyncio.TimeoutError:
            conn.close()
            raise httpx.ConnectTimeout(
                f"connect to {address}:{port} took over {timeout:g} s", request=request
            ) from None
        except OSError as exc:
            conn.close()
            return exc
        self._live[conn] = None
        return None

    def _take_idle(self, key: PoolKey, now: float) -> Connection | None:
        idle = self._idle
        index = len(idle) - 1
        while index >= 0:
            conn = idle[index]
            if conn.pool_key == key:
                del idle[index]
                conn.pool_key = None
                if conn.usable() and now - conn.idle_since <= self._keepalive_expiry:
                    return conn
                conn.close()
                del conn.parser  # it refers back to the connection: free both now, not at a full collection
            index -= 1
        return None

    def _put_idle(self, key: PoolKey, conn: Connection, now: float) -> None:
        if len(self._idle) >= self._max_keepalive:
            conn.close()
            return
        conn.idle_since = now
        # The response took these lists: an idle connection keeps no reference to its last response.
        conn.headers = _IDLE_HEADERS  # immutable: exchange() gives it new lists before any byte is read
        conn.chunks = _IDLE_CHUNKS
        conn.pool_key = key
        self._idle.append(conn)

    # ---- the limit of requests in flight -------------------------------------------

    async def _wait_for_slot(
        self, loop: asyncio.AbstractEventLoop, timeout: float | None, request: httpx.Request | None
    ) -> None:
        waiter: asyncio.Future[None] = loop.create_future()
        if self._slot_waiters is None:
            self._slot_waiters = collections.deque()
        self._slot_waiters.append(waiter)

        def expire() -> None:
            if not waiter.done():
                waiter.set_exception(httpx.PoolTimeout(f"no free connection within {timeout:g} s", request=request))

        timer = loop.call_later(timeout, expire) if timeout is not None else None
        try:
            await waiter
        except BaseException:
            if waiter.done() and not waiter.cancelled() and waiter.exception() is None:
                self._release_slot()  # handed a slot just as we were cancelled: pass it on
            else:
                waiter.cancel()
            raise
        finally:
            if timer is not None:
                timer.cancel()

    def _release_slot(self) -> None:
        waiters = self._slot_waiters
        while waiters:  # None: nobody ever waited
            waiter = waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)  # the slot goes straight to the next request
                return
        self._active -= 1
