"""Timing any operation, not only HTTP: ``user.measure(name)`` and ``user.record(name, seconds)``.

A measured name is a row like an HTTP endpoint: the same per-endpoint and per-window HDR
histograms, so thresholds (``p95{queue publish}<50ms``), the regression gate and every report
treat it as they treat ``GET /api/products``.
"""

from __future__ import annotations

import math
from time import perf_counter
from types import TracebackType
from typing import TYPE_CHECKING

from pytest_shopflow_perf._errors import ShopflowPerfError
from pytest_shopflow_perf.engine.marks import is_recorded, mark_measured

if TYPE_CHECKING:
    from pytest_shopflow_perf.engine.user import UserContext


class MeasureError(ShopflowPerfError, ValueError):
    """A measured name or a recorded duration that cannot be a row of the results."""


def check_name(name: object) -> str:
    if not isinstance(name, str) or not name.strip():
        raise MeasureError(
            f"user.measure/user.record need a non-empty name, got {name!r}: name the operation, "
            'e.g. user.measure("queue publish")'
        )
    return name


def exception_kind(exc: BaseException) -> str:
    return f"exception {type(exc).__name__}"


class Measure:
    """Times the block it wraps into the row ``name``; ``with`` and ``async with`` alike.

    An exception inside is an error of kind ``exception <Type>`` on that row and propagates,
    marked as counted so the journey's row does not count it again. A user being stopped
    (``StopUser``, cancellation at the end of the run) is no outcome: nothing is recorded.
    In the open model the first operation of an iteration carries how late the iteration
    started, as the first HTTP request does (no coordinated omission).
    """

    __slots__ = ("_context", "_lateness", "_start", "name")

    def __init__(self, context: UserContext, name: str) -> None:
        self._context = context
        self.name = check_name(name)
        self._start = 0.0
        self._lateness = 0.0

    def __enter__(self) -> Measure:
        self._lateness = self._context.take_lateness()
        self._start = perf_counter()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        now = perf_counter()
        if exc is None:
            self._context.recorder.record(self.name, now - self._start, now, None, self._lateness)
            return
        if not isinstance(exc, Exception):
            return  # StopUser, CancelledError, KeyboardInterrupt: the run ends, the operation did not fail
        if is_recorded(exc):
            return  # an inner measure (or a request) counted it already: once, on the innermost name
        self._context.recorder.record(self.name, now - self._start, now, exception_kind(exc), self._lateness)
        mark_measured(exc, self.name)

    async def __aenter__(self) -> Measure:
        return self.__enter__()

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.__exit__(exc_type, exc, tb)


def record_duration(context: UserContext, name: str, seconds: float, error: str | None) -> None:
    """A duration the journey measured itself (publish-to-consume latency carried in a message)."""
    name = check_name(name)
    if isinstance(seconds, bool) or not isinstance(seconds, (int, float)) or not math.isfinite(seconds):
        raise MeasureError(f"user.record({name!r}, ...) needs a duration in seconds (a finite number), got {seconds!r}")
    if error is not None and (not isinstance(error, str) or not error.strip()):
        raise MeasureError(
            f"user.record({name!r}, ..., error=...) takes the error's kind as text (e.g. 'timeout'), got {error!r}"
        )
    # Clocks of two processes (publisher and consumer) can disagree by a few microseconds: never negative.
    context.recorder.record(name, max(0.0, float(seconds)), perf_counter(), error)
