"""The virtual user a journey receives, and the transport that times its requests.

Timing happens in the transport, as close to the wire as httpx allows: the
clock starts after httpx has built the request and stops when the last byte of
the body has arrived, so client-side request building is not counted as the
service's latency.
"""

from __future__ import annotations

import random as _random
from collections.abc import AsyncIterator, Callable
from time import perf_counter
from typing import TYPE_CHECKING, Any

import httpx

from .metrics import CHECK_ROW_PREFIX, collapse_path
from .units import parse_duration

if TYPE_CHECKING:
    from .metrics import Recorder
    from .target import TargetPolicy

RECORDED = "__shopflow_perf_recorded__"
MAX_CHECKS = 200  # distinct check names; more share one row, as endpoint names do
OVERFLOW_CHECK = "(other checks)"
ERROR_EXTENSION = "shopflow_perf.error"
MAX_REFUSED_HOSTS = 20


class StopUser(BaseException):
    """Raised inside a journey when its virtual user must stop (ramp-down, end of run).

    A BaseException so that a journey's own ``except Exception`` does not swallow it.
    """


def mark_recorded(exc: BaseException) -> None:
    setattr(exc, RECORDED, True)


def is_recorded(exc: BaseException) -> bool:
    if getattr(exc, RECORDED, False):
        return True
    if isinstance(exc, httpx.HTTPStatusError):
        return ERROR_EXTENSION in exc.response.extensions
    return False


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


class UserContext:
    """Per-user state shared between the ``User`` and its transport."""

    __slots__ = ("checks", "last_endpoint", "pending_lateness", "recorder", "refused", "should_stop", "wake")

    def __init__(self, recorder: Recorder, checks: dict[str, list[int]], refused: RefusedCount | None = None) -> None:
        self.recorder = recorder
        self.checks = checks
        self.refused = RefusedCount() if refused is None else refused  # shared by the users of a run
        self.last_endpoint: str | None = None
        self.pending_lateness = 0.0
        self.should_stop: Callable[[], bool] = lambda: False
        self.wake: Any = None  # an anyio.Event set when the user must stop

    def take_lateness(self) -> float:
        lateness = self.pending_lateness
        self.pending_lateness = 0.0
        return lateness


class TargetRefused(httpx.TransportError):
    """A request or connection to a host the target rule refuses: it is never sent."""

    def __init__(self, host: str, detail: str | None = None) -> None:
        self.host = host
        super().__init__(
            detail
            or f"refused to send a request to {host!r}: not loopback and not allowed; "
            f"allow it with `--perf-allow-host {host}` if it is a test environment you own"
        )


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

    This leaves out httpcore's pool bookkeeping (~0.4 ms here) and, as k6's
    ``http_req_duration`` does, the connect of a new connection. Transports
    without trace events (ASGI, mocks) keep the times taken around the call.
    """

    __slots__ = ("chained", "done", "end", "name", "start")

    def __init__(self, name: str, start: float, chained: Any) -> None:
        self.name = name
        self.start = start
        self.end = 0.0
        self.chained = chained
        self.done = False  # recorded, or written off as unfinished when the run ended

    async def __call__(self, event: str, info: dict[str, Any]) -> None:
        if event.endswith("send_request_headers.started"):
            self.start = perf_counter()
        elif event.endswith("receive_response_body.complete"):
            self.end = perf_counter()
        if self.chained is not None:
            await self.chained(event, info)

    def finish(self, context: UserContext, error: str | None) -> None:
        if self.done:
            return
        self.done = True
        context.recorder.inflight.discard(self)
        end = self.end or perf_counter()
        context.recorder.record(self.name, end - self.start, end, error, context.take_lateness())


class _TimedStream(httpx.AsyncByteStream):
    """Stops the clock at the last byte of the body, or at close if the body was not read."""

    __slots__ = ("_clock", "_context", "_error", "_inner")

    def __init__(
        self, inner: httpx.AsyncByteStream, context: UserContext, clock: _WireClock, error: str | None
    ) -> None:
        self._inner = inner
        self._context = context
        self._clock = clock
        self._error = error

    async def __aiter__(self) -> AsyncIterator[bytes]:
        try:
            async for chunk in self._inner:
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
        self, inner: httpx.AsyncBaseTransport, context: UserContext, policy: TargetPolicy | None = None
    ) -> None:
        if policy is None:
            from .target import TargetPolicy

            policy = TargetPolicy()
        self._inner = inner
        self._context = context
        self._policy = policy

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        extensions = request.extensions
        name = extensions.get("name") or f"{request.method} {collapse_path(request.url.path)}"
        context = self._context
        context.last_endpoint = name
        clock = _WireClock(name, perf_counter(), extensions.get("trace"))
        extensions["trace"] = clock
        context.recorder.inflight.add(clock)
        try:
            url = request.url
            if not self._policy.check_host(url.host, url.port):
                raise TargetRefused(url.host)
            response = await self._inner.handle_async_request(request)
        except Exception as exc:
            if isinstance(exc, TargetRefused):
                context.refused.add(exc.host)
            clock.finish(context, _transport_error_kind(exc))
            mark_recorded(exc)
            raise
        expect = extensions.get("expect")
        status = response.status_code
        error = None
        if (status not in expect) if expect else status >= 400:
            error = f"HTTP {status}"
            response.extensions[ERROR_EXTENSION] = error
        if isinstance(response.stream, httpx.ByteStream):  # body already in memory (mock transports)
            clock.finish(context, error)
        else:
            response.stream = _TimedStream(response.stream, context, clock, error)  # type: ignore[arg-type]
        return response

    async def aclose(self) -> None:
        await self._inner.aclose()


class User:
    """One virtual user: its own client (cookies, pool), id, state and seeded random.

    :param id: 0-based index, for partitioning test data (``customer{user.id}``).
    """

    def __init__(self, *, id: int, client: httpx.AsyncClient, rng: _random.Random, context: UserContext) -> None:
        self.id = id
        self.client = client
        self.random = rng
        self.state: dict[str, Any] = {}
        self.iteration = 0
        self._context = context

    def __repr__(self) -> str:
        return f"<User id={self.id} iteration={self.iteration}>"

    @property
    def stopping(self) -> bool:
        return self._context.should_stop()

    async def think(self, low: float | str, high: float | str | None = None) -> None:
        """Pause like a person would: uniform between ``low`` and ``high`` seconds.

        Returns early, by raising ``StopUser``, when the user is told to stop.
        """
        import anyio

        low_s = parse_duration(low, what="think low")
        high_s = low_s if high is None else parse_duration(high, what="think high")
        delay = self.random.uniform(low_s, high_s) if high_s > low_s else low_s
        context = self._context
        if context.should_stop():
            raise StopUser
        if delay <= 0:
            return
        with anyio.move_on_after(delay):
            await context.wake.wait()
        if context.should_stop():
            raise StopUser

    def check(self, condition: object, name: str) -> bool:
        """Count a pass or fail for ``name`` (k6 ``check``); a failure is an error, never raised.

        Failures count in the run's errors on a row of their own (``check: <name>``), not on the
        endpoint that answered: the request itself succeeded. Names are capped like endpoints.
        """
        checks = self._context.checks
        counts = checks.get(name)
        if counts is None:
            if len(checks) >= MAX_CHECKS:
                name = OVERFLOW_CHECK
                counts = checks.get(name)
            if counts is None:
                counts = checks[name] = [0, 0]
        ok = bool(condition)
        if ok:
            counts[0] += 1
        else:
            counts[1] += 1
            row = f"{CHECK_ROW_PREFIX}{name}"
            self._context.recorder.record_error(row, row, perf_counter())
        return ok
