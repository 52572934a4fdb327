"""The transport that times every request of a virtual user, as close to the wire as httpx allows.

The latency runs from the first byte of the request sent to the last byte of the
body, so client-side request building is not counted as the service's latency;
connect and pool wait before it are measured apart (``_WireClock``). The
transport also enforces the target rule, the whole-request deadline and the
body cap, and counts refusals and truncated bodies run-wide.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from time import perf_counter
from typing import TYPE_CHECKING, Any

import anyio
import httpx

from pytest_shopflow_perf.engine.marks import ERROR_EXTENSION, mark_recorded
from pytest_shopflow_perf.metrics.recorder import collapse_path
from pytest_shopflow_perf.profile.resolve import DEFAULT_MAX_BODY, DEFAULT_TIMEOUT_S
from pytest_shopflow_perf.target.refused import TargetRefused

if TYPE_CHECKING:
    from pytest_shopflow_perf.engine.user import UserContext
    from pytest_shopflow_perf.target.policy import TargetPolicy

MAX_REFUSED_HOSTS = 20
TRUNCATED_EXTENSION = "shopflow_perf.truncated"
# Set by RecordingTransport on the request for an inner transport that ``holds_deadline`` (the fast
# one): the whole-request deadline in seconds, enforced there with the timer it arms anyway, where
# a cancel scope per request cost ~15 % of the generator's CPU on the httpx path (py-spy).
DEADLINE_EXTENSION = "shopflow_perf.deadline"


class RefusedCount:
    """Requests refused by the target rule, per host (at most ``MAX_REFUSED_HOSTS`` hosts named)."""

    __slots__ = ("hosts", "requests")

    def __init__(self) -> None:
        self.requests = 0
        self.hosts: dict[str, int] = {}

    def add(self, host: str) -> None:
        self.requests += 1
        hosts = self.hosts
        if host in hosts:
            hosts[host] += 1
        elif len(hosts) < MAX_REFUSED_HOSTS:
            hosts[host] = 1

    def to_dict(self) -> dict[str, Any]:
        return {"requests": self.requests, "hosts": dict(self.hosts)}


class TransportCounters:
    """Run-wide counts the transports of every user add to (one object per run)."""

    __slots__ = ("delegated", "refused", "truncated_bodies")

    def __init__(self) -> None:
        self.truncated_bodies = 0
        self.refused = RefusedCount()
        self.delegated = 0  # requests the fast transport handed to its httpcore fallback


def _transport_error_kind(exc: BaseException) -> str:
    if isinstance(exc, TargetRefused):
        return "refused"
    if isinstance(exc, httpx.TimeoutException):
        return "timeout"
    if isinstance(exc, httpx.ConnectError):
        return "connect"
    if isinstance(exc, httpx.RemoteProtocolError):
        return "protocol"
    if isinstance(exc, (httpx.ReadError, httpx.WriteError, httpx.NetworkError)):
        return "reset"
    if isinstance(exc, httpx.TransportError):
        return "transport"
    return f"exception {type(exc).__name__}"


class _WireClock:
    """httpcore's ``trace`` hook: time from the first byte of the request to the last of the response.

    As k6's ``http_req_duration``, the wire latency leaves out what came before the
    request went out; those are measured on their own (k6's ``http_req_connecting``
    and ``http_req_blocked``): ``connect_s``, TCP connect plus TLS handshake of a new
    connection, and ``wait_s``, the rest of the time from the transport's entry to the
    first byte sent (waiting for a pooled connection, httpcore's bookkeeping).
    Transports without trace events (ASGI, mocks) keep the times taken around the call.
    """

    __slots__ = ("chained", "connect_s", "connect_start", "deadline", "done", "end", "entry", "name", "start", "wait_s")

    def __init__(self, name: str, start: float, chained: Any) -> None:
        self.name = name
        self.entry = start
        self.start = start
        self.end = 0.0
        self.deadline = 0.0  # perf_counter() by which the last byte of the body must have arrived
        self.connect_start = 0.0
        self.connect_s = 0.0
        self.wait_s = 0.0
        self.chained = chained
        self.done = False  # recorded, or written off as unfinished when the run ended

    async def __call__(self, event: str, info: dict[str, Any]) -> None:
        if event.endswith("send_request_headers.started"):
            self.send_started()
        elif event.endswith("receive_response_body.complete"):
            self.end = perf_counter()
        elif event.startswith("connection."):
            if event.endswith(("connect_tcp.started", "connect_unix_socket.started")):
                self.connect_start = perf_counter()
            elif event.endswith(("connect_tcp.complete", "connect_unix_socket.complete", "start_tls.complete")):
                self.connect_complete()
        if self.chained is not None:
            await self.chained(event, info)

    # The events as plain calls, for a transport that times the request itself (no await each).

    def connect_started(self) -> None:
        self.connect_start = perf_counter()

    def connect_complete(self) -> None:
        now = perf_counter()
        self.connect_s += now - self.connect_start  # TLS follows TCP: the sum is both
        self.connect_start = now

    def send_started(self) -> None:
        now = self.start = perf_counter()
        self.wait_s = max(0.0, now - self.entry - self.connect_s)

    def body_complete(self) -> None:
        self.end = perf_counter()

    def finish(self, context: UserContext, error: str | None) -> None:
        if self.done:
            return
        self.done = True
        context.recorder.inflight.discard(self)
        end = self.end or perf_counter()
        context.recorder.record(
            self.name,
            end - self.start,
            end,
            error,
            context.take_lateness(),
            connect_s=self.connect_s,
            wait_s=self.wait_s,
        )


def _deadline_error(request: httpx.Request | None, limit: float) -> httpx.ReadTimeout:
    """httpx's own timeout class, so a journey's ``except httpx.TimeoutException`` sees a normal timeout."""
    return httpx.ReadTimeout(f"request exceeded its {limit:g} s deadline", request=request)


class _TimedStream(httpx.AsyncByteStream):
    """Stops the clock at the last byte of the body, or at close if the body was not read.

    It also holds the request to its deadline (httpx's timeout is per read, so a body
    trickled a byte a second never times out) and keeps at most ``max_body`` bytes: the
    rest is still read and timed, then dropped, so an endless body cannot fill memory.
    """

    __slots__ = ("_clock", "_context", "_error", "_extensions", "_inner", "_limit", "_max_body", "_request")

    def __init__(
        self,
        inner: httpx.AsyncByteStream,
        context: UserContext,
        clock: _WireClock,
        error: str | None,
        *,
        request: httpx.Request,
        limit: float,
        max_body: int | None,
        extensions: dict[str, Any],
    ) -> None:
        self._inner = inner
        self._context = context
        self._clock = clock
        self._error = error
        self._request = request
        self._limit = limit
        self._max_body = max_body
        self._extensions = extensions

    async def __aiter__(self) -> AsyncIterator[bytes]:
        clock = self._clock
        room = self._max_body
        try:
            chunks = self._inner.__aiter__()
            while True:
                remaining = clock.deadline - perf_counter()
                if remaining <= 0:
                    raise _deadline_error(self._request, self._limit)
                with anyio.move_on_after(remaining) as scope:
                    try:
                        chunk = await chunks.__anext__()
                    except StopAsyncIteration:
                        break
                if scope.cancelled_caught:
                    raise _deadline_error(self._request, self._limit)
                if room is not None and len(chunk) > room:
                    if TRUNCATED_EXTENSION not in self._extensions:
                        self._extensions[TRUNCATED_EXTENSION] = True
                        self._context.counters.truncated_bodies += 1
                    chunk = chunk[:room]
                    room = 0
                    if not chunk:
                        continue  # past the cap: read to the end (timed), keep nothing
                elif room is not None:
                    room -= len(chunk)
                yield chunk
        except Exception as exc:
            if not self._clock.done:
                self._clock.finish(self._context, _transport_error_kind(exc))
                mark_recorded(exc)
            raise
        self._clock.finish(self._context, self._error)

    async def aclose(self) -> None:
        try:
            await self._inner.aclose()
        finally:
            self._clock.finish(self._context, self._error)


class RecordingTransport(httpx.AsyncBaseTransport):
    """Wraps any httpx transport (pool, ASGI, a faster one later) and records every request.

    Every request's host is checked against the target policy before the inner
    transport sees it: httpx calls the transport once per redirect hop, so
    redirects and absolute URLs in journeys are covered, whatever the transport.
    """

    def __init__(
        self,
        inner: httpx.AsyncBaseTransport,
        context: UserContext,
        policy: TargetPolicy | None = None,
        *,
        timeout: float = DEFAULT_TIMEOUT_S,
        max_body: int | None = DEFAULT_MAX_BODY,
    ) -> None:
        if policy is None:
            from pytest_shopflow_perf.target.policy import TargetPolicy

            policy = TargetPolicy()
        self._inner = inner
        self._holds_deadline = bool(getattr(inner, "holds_deadline", False))
        self._context = context
        self._policy = policy
        self._timeout = timeout
        self._max_body = max_body

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        extensions = request.extensions
        name = extensions.get("name") or f"{request.method} {collapse_path(request.url.path)}"
        context = self._context
        clock = _WireClock(name, perf_counter(), extensions.get("trace"))
        extensions["trace"] = clock
        # A deadline for the whole request, entry to last body byte: the largest of httpx's
        # per-phase timeouts (client or request ``timeout=``), else the profile's.
        limit = 0.0
        timeouts = extensions.get("timeout")
        if timeouts:
            for value in timeouts.values():
                if value is not None and value > limit:
                    limit = value
        limit = limit or self._timeout
        clock.deadline = clock.start + limit
        context.recorder.inflight.add(clock)
        try:
            url = request.url
            if not self._policy.check_host(url.host, url.port):
                raise TargetRefused(url.host)
            if self._holds_deadline:
                extensions[DEADLINE_EXTENSION] = limit
                response = await self._inner.handle_async_request(request)
            else:
                with anyio.move_on_after(limit) as scope:
                    response = await self._inner.handle_async_request(request)
                if scope.cancelled_caught:
                    raise _deadline_error(request, limit)
        except Exception as exc:
            if isinstance(exc, TargetRefused):
                context.counters.refused.add(exc.host)
            clock.finish(context, _transport_error_kind(exc))
            mark_recorded(exc)
            raise
        expect = extensions.get("expect")
        status = response.status_code
        error = None
        if (status not in expect) if expect else status >= 400:
            error = f"HTTP {status}"
            response.extensions[ERROR_EXTENSION] = error
        if isinstance(response.stream, httpx.ByteStream):  # body already in memory (mock, fast transport)
            if TRUNCATED_EXTENSION in response.extensions:  # capped by the transport that read it
                context.counters.truncated_bodies += 1
            clock.finish(context, error)
        else:
            response.stream = _TimedStream(
                response.stream,  # type: ignore[arg-type]
                context,
                clock,
                error,
                request=request,
                limit=limit,
                max_body=extensions.get("max_body", self._max_body),
                extensions=response.extensions,
            )
        return response

    async def aclose(self) -> None:
        await self._inner.aclose()
