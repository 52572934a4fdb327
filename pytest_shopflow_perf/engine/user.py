"""The virtual user a journey receives: its client, state, seeded random, think time and checks.

Also the per-user context it shares with its transport (``engine/transport.py``) and
``StopUser``. ``user.measure``/``user.record`` time any operation (``engine/measure.py``).
"""

from __future__ import annotations

import asyncio
import random as _random
from collections.abc import Callable
from time import perf_counter
from typing import TYPE_CHECKING, Any

import anyio
import httpx

from pytest_shopflow_perf.engine.measure import Measure, record_duration
from pytest_shopflow_perf.metrics.recorder import CHECK_ROW_PREFIX
from pytest_shopflow_perf.profile.units import parse_duration

if TYPE_CHECKING:
    from pytest_shopflow_perf.engine.fast_client import FastClient
    from pytest_shopflow_perf.engine.transport import TransportCounters
    from pytest_shopflow_perf.metrics.recorder import Recorder

MAX_CHECKS = 200  # distinct check names; more share one row, as endpoint names do
OVERFLOW_CHECK = "(other checks)"


class StopUser(BaseException):
    """Raised inside a journey when its virtual user must stop (ramp-down, end of run).

    A BaseException so that a journey's own ``except Exception`` does not swallow it.
    """


def _never_stop() -> bool:
    return False


def _resolve(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_result(None)


def wake(context: UserContext) -> None:
    """End the think time the user is in now, if any (it then sees ``should_stop()`` and stops)."""
    waiter = context.wake
    if waiter is None:
        return
    if isinstance(waiter, anyio.CancelScope):
        waiter.cancel()
    else:
        _resolve(waiter)


class UserContext:
    """Per-user state shared between the ``User`` and its transport.

    ``should_stop`` is shared, never a closure per user (the engine passes its slot, which is
    callable); ``wake`` is what the current think time waits on (None outside one), so a
    thinking user costs one future and one timer, not an Event of its own (issue 13: memory).
    """

    __slots__ = ("checks", "counters", "pending_lateness", "recorder", "should_stop", "wake")

    def __init__(
        self, recorder: Recorder, checks: dict[str, list[int]], counters: TransportCounters | None = None
    ) -> None:
        self.recorder = recorder
        self.checks = checks
        if counters is None:
            from pytest_shopflow_perf.engine.transport import TransportCounters  # the transport imports this module

            counters = TransportCounters()
        self.counters = counters
        self.pending_lateness = 0.0
        self.should_stop: Callable[[], bool] = _never_stop
        # While the user thinks: the asyncio future its think time waits on (an anyio.CancelScope
        # on trio); ``wake(context)`` ends it early. None otherwise.
        self.wake: asyncio.Future[None] | anyio.CancelScope | None = None

    def take_lateness(self) -> float:
        lateness = self.pending_lateness
        self.pending_lateness = 0.0
        return lateness


class User:
    """One virtual user: its own client (cookies, pool), id, state and seeded random.

    ``client`` is an ``httpx.AsyncClient`` (``client="httpx"``, the default) or the lean
    ``FastClient`` (``client="fast"``: httpx's request methods, more load per core).

    :param id: 0-based index, for partitioning test data (``customer{user.id}``).
    :param rng: the user's random; without it, ``random.Random(seed)`` is built on the first
        ``user.random`` (a user that never draws costs no generator: ~2.9 KB each), and seeded
        with the same string, so a run's draws are the same either way.
    """

    # ``__dict__`` stays (created on first use only): journeys may keep their own attributes.
    __slots__ = ("__dict__", "_context", "_random", "_seed", "_state", "client", "id", "iteration")

    def __init__(
        self,
        *,
        id: int,
        client: httpx.AsyncClient | FastClient,
        context: UserContext,
        rng: _random.Random | None = None,
        seed: str | int | None = None,
    ) -> None:
        self.id = id
        self.client = client
        self._random = rng
        self._seed = id if seed is None else seed
        self._state: dict[str, Any] | None = None
        self.iteration = 0
        self._context = context

    @property
    def random(self) -> _random.Random:
        rng = self._random
        if rng is None:
            rng = self._random = _random.Random(self._seed)
        return rng

    @random.setter
    def random(self, rng: _random.Random) -> None:
        self._random = rng

    @property
    def state(self) -> dict[str, Any]:
        """The user's own state between iterations (a login token, a cart id)."""
        state = self._state
        if state is None:
            state = self._state = {}
        return state

    @state.setter
    def state(self, value: dict[str, Any]) -> None:
        self._state = value

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
        await _sleep_until_woken(context, delay)
        if context.should_stop():
            raise StopUser

    def measure(self, name: str) -> Measure:
        """Time the block under ``name``, like an endpoint: ``async with user.measure("queue publish"):``.

        Its latency goes into the same histograms, windows, thresholds (``p95{queue publish}<50ms``),
        regression and reports as HTTP requests; an exception inside is an error of kind
        ``exception <Type>`` on that name and propagates (counted once, not again on the journey).
        """
        return Measure(self._context, name)

    def record(self, name: str, seconds: float, error: str | None = None) -> None:
        """Count a duration measured by the journey itself (publish-to-consume time carried in a message).

        ``error`` (its kind, e.g. ``"timeout"``) counts it as a failed operation of that name.
        """
        record_duration(self._context, name, seconds, error)

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


async def _sleep_until_woken(context: UserContext, delay: float) -> None:
    """Sleep ``delay`` seconds unless ``wake(context)`` comes first.

    On asyncio (uvloop included) one future and one timer, as ``anyio.sleep`` itself costs;
    cancellation reaches the future as it reaches ``asyncio.sleep``. Elsewhere (trio) a cancel scope.
    """
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        loop = None
    if loop is None:
        with anyio.CancelScope() as scope:
            context.wake = scope
            try:
                await anyio.sleep(delay)
            finally:
                context.wake = None
        return
    waiter: asyncio.Future[None] = loop.create_future()
    timer = loop.call_later(delay, _resolve, waiter)
    context.wake = waiter
    try:
        await waiter
    finally:
        timer.cancel()
        context.wake = None
