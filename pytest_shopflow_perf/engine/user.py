"""The virtual user a journey receives: its client, state, seeded random, think time and checks.

Also the per-user context it shares with its transport (``engine/transport.py``),
``StopUser``, and the mark that an exception was already counted where it happened.
"""

from __future__ import annotations

import random as _random
from collections.abc import Callable
from time import perf_counter
from typing import TYPE_CHECKING, Any

import anyio
import httpx

from pytest_shopflow_perf.metrics.recorder import CHECK_ROW_PREFIX
from pytest_shopflow_perf.profile.units import parse_duration

if TYPE_CHECKING:
    from pytest_shopflow_perf.engine.fast_client import FastClient
    from pytest_shopflow_perf.engine.transport import TransportCounters
    from pytest_shopflow_perf.metrics.recorder import Recorder

RECORDED = "__shopflow_perf_recorded__"
MAX_CHECKS = 200  # distinct check names; more share one row, as endpoint names do
OVERFLOW_CHECK = "(other checks)"
ERROR_EXTENSION = "shopflow_perf.error"


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


class UserContext:
    """Per-user state shared between the ``User`` and its transport."""

    __slots__ = ("checks", "counters", "last_endpoint", "pending_lateness", "recorder", "should_stop", "wake")

    def __init__(
        self, recorder: Recorder, checks: dict[str, list[int]], counters: TransportCounters | None = None
    ) -> None:
        self.recorder = recorder
        self.checks = checks
        if counters is None:
            from pytest_shopflow_perf.engine.transport import TransportCounters  # the transport imports this module

            counters = TransportCounters()
        self.counters = counters
        self.last_endpoint: str | None = None
        self.pending_lateness = 0.0
        self.should_stop: Callable[[], bool] = lambda: False
        self.wake: Any = None  # an anyio.Event set when the user must stop

    def take_lateness(self) -> float:
        lateness = self.pending_lateness
        self.pending_lateness = 0.0
        return lateness


class User:
    """One virtual user: its own client (cookies, pool), id, state and seeded random.

    ``client`` is an ``httpx.AsyncClient`` (``client="httpx"``, the default) or the lean
    ``FastClient`` (``client="fast"``: httpx's request methods, more load per core).

    :param id: 0-based index, for partitioning test data (``customer{user.id}``).
    """

    def __init__(
        self, *, id: int, client: httpx.AsyncClient | FastClient, rng: _random.Random, context: UserContext
    ) -> None:
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
