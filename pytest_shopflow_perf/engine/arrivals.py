"""The open model: iterations arrive on a fixed schedule whether or not earlier ones finished.

``arrival_times`` gives each iteration's intended start; the dispatcher sends them
on time into a stream that a pool of workers (virtual users, capped by
``max_users``) takes them from, starting a worker whenever the backlog outgrows the
idle ones. Each iteration's lateness is added to its first request, so latency
counts from the intended start (wrk2: no coordinated omission); arrivals due but
never started are counted as dropped at the end of the run.
"""

from __future__ import annotations

import math
from collections.abc import Awaitable, Callable, Iterator, Sequence
from time import perf_counter
from typing import TYPE_CHECKING

import anyio
import anyio.abc
import anyio.lowlevel

if TYPE_CHECKING:
    from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

    from pytest_shopflow_perf.engine.engine import _Slot
    from pytest_shopflow_perf.engine.monitor import GeneratorMonitor
    from pytest_shopflow_perf.engine.user import User
    from pytest_shopflow_perf.profile.resolve import LoadProfile, Stage


def arrival_times(start_rate: float, stages: Sequence[Stage], offset: float = 0.0) -> Iterator[float]:
    """Intended start times of open-model iterations: the k-th arrives when the integral of the rate reaches k.

    The rate changes linearly within a stage, so each arrival is the root of a quadratic.
    ``offset`` (0 <= offset < 1) shifts every arrival to ``k + offset``: shard i of n runs 1/n of
    the rate at offset i/n, and the n shards' arrivals together are exactly the whole schedule's.
    """
    arrived = 0.0  # integral of the rate up to the start of the current stage
    stage_start = 0.0
    rate = start_rate
    k = offset
    for stage_duration, target in stages:
        if stage_duration <= 0:
            rate = target
            continue
        curvature = (target - rate) / (2.0 * stage_duration)
        stage_total = rate * stage_duration + curvature * stage_duration**2
        while k < arrived + stage_total - 1e-9:
            needed = k - arrived
            discriminant = rate * rate + 4.0 * curvature * needed
            root = math.sqrt(max(discriminant, 0.0))
            denominator = rate + root
            offset = 2.0 * needed / denominator if denominator > 0 else 0.0
            yield stage_start + min(offset, stage_duration)
            k += 1
        arrived += stage_total
        stage_start += stage_duration
        rate = target


def dropped_iterations(profile: LoadProfile, horizon: float, started: int, offset: float = 0.0) -> int:
    """Iterations due by ``horizon`` seconds but never started, whether queued or never reached by the dispatcher."""
    planned = max(0, math.ceil(profile.integral(horizon) - offset - 1e-9))
    if profile.iterations is not None:
        planned = min(planned, profile.iterations)
    return max(0, planned - started)


class OpenModel:
    """The open model's half of the ``Engine`` (a mixin): the arrival stream, its dispatcher and its workers.

    The engine provides the run's state declared here, starts and paces the
    users (``_spawn``, ``_spawn_allowance``) and runs each iteration (``_iterate``).
    """

    profile: LoadProfile
    monitor: GeneratorMonitor
    stop_reason: str | None
    _t0: float
    arrival_offset: float  # this shard's place in the whole schedule (0 in one process)
    _stopping: bool
    _slots: dict[int, _Slot]
    _failed_starts: set[int]
    _started_ok: int
    _idle_workers: int  # workers waiting for an arrival
    _arrivals: MemoryObjectReceiveStream[float]
    _arrivals_send: MemoryObjectSendStream[float]
    # Iterations in flight, and their integral over time since the recorder last read it (a window).
    _busy_now: int
    _busy_at: float  # when the count last changed or was read
    _busy_area: float  # iteration-seconds since the last read
    _busy_read_at: float

    if TYPE_CHECKING:

        def _spawn(self, user_id: int, body: Callable[[_Slot, User], Awaitable[None]]) -> None: ...

        def _spawn_allowance(self) -> int: ...

        async def _iterate(self, user: User) -> None: ...

    def _busy(self, now: float, delta: int) -> None:
        self._busy_area += self._busy_now * (now - self._busy_at)
        self._busy_at = now
        self._busy_now += delta

    def busy_mean(self, now: float) -> float:
        """Iterations in flight on average since the last call: exact (the integral of their count), so a
        schedule in step with the ticker cannot alias it as sampling at ticks would."""
        start = self._busy_read_at
        self._busy(now, 0)
        area, self._busy_area, self._busy_read_at = self._busy_area, 0.0, now
        return area / (now - start) if now > start else float(self._busy_now)

    def _start_arrivals(self, task_group: anyio.abc.TaskGroup) -> None:
        send, receive = anyio.create_memory_object_stream[float](math.inf)
        self._arrivals = receive
        self._arrivals_send = send
        task_group.start_soon(self._dispatch, send)

    def _end_arrivals(self) -> None:
        """No more arrivals: idle workers see the end of the stream."""
        self._arrivals_send.close()

    def _close_arrivals(self) -> None:
        self._arrivals.close()

    async def _dispatch(self, send: MemoryObjectSendStream[float]) -> None:
        profile = self.profile
        peak = max(profile.peak, 1.0)
        for user_id in range(min(profile.max_users, max(2, math.ceil(peak / 20)), self._spawn_allowance())):
            self._spawn(user_id, self._open_worker)
        next_id = len(self._slots)
        sent = 0
        async with send:
            for intended in arrival_times(profile.start, profile.stages, self.arrival_offset):
                if intended >= profile.duration or self._stopping or self.stop_reason is not None:
                    break
                if profile.iterations is not None and sent >= profile.iterations:
                    break
                delay = self._t0 + intended - perf_counter()
                if delay > 0:
                    await anyio.sleep(delay)
                else:
                    await anyio.lowlevel.checkpoint()
                self.monitor.record_dispatch(perf_counter() - (self._t0 + intended))
                if self._stopping:
                    break
                backlog = self._arrivals.statistics().current_buffer_used
                if (
                    self._idle_workers <= backlog
                    and len(self._slots) + len(self._failed_starts) < profile.max_users
                    and (self._started_ok or not self._failed_starts)  # no more logins while all fail
                    and self._spawn_allowance() > 0
                ):
                    while next_id in self._slots or next_id in self._failed_starts:
                        next_id += 1
                    self._spawn(next_id, self._open_worker)
                    next_id += 1
                send.send_nowait(intended)
                sent += 1

    async def _open_worker(self, slot: _Slot, user: User) -> None:
        arrivals = self._arrivals
        context = slot.context
        while not self._stopping:
            self._idle_workers += 1
            try:
                intended = await arrivals.receive()
            except (anyio.EndOfStream, anyio.ClosedResourceError):
                return
            finally:
                self._idle_workers -= 1
            if self._stopping:
                return  # counted as dropped at the end of the run
            now = perf_counter()
            lateness = now - (self._t0 + intended)
            self.monitor.record_lateness(lateness)
            context.pending_lateness = max(0.0, lateness)
            self._busy(now, 1)
            try:
                await self._iterate(user)
            finally:
                self._busy(perf_counter(), -1)
            context.pending_lateness = 0.0
