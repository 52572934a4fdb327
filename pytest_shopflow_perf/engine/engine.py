"""The async load engine: virtual users on an anyio task group, one httpx client each.

``Engine`` is the run's controller: the ticker that closes windows, samples the
generator, reports progress and ends the run; user start, pacing and graceful
stop; iterations and their exceptions; the result. Closed model (here): a number
of users, ramped by stages, loop over weighted journeys. The open model (arrivals
on a schedule) is ``engine/arrivals.py``.

The engine knows nothing of pytest; it reports progress through a callback.

Over ~500 lines on purpose: the controller's state (slots, clock, window close, stop, the
collector's freezes) is one object whose parts change together; the open model, journeys, the
clients (``engine/clients.py``) and the result summary are apart.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import datetime
import gc
import math
import traceback
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from time import perf_counter
from typing import TYPE_CHECKING, Any

import anyio
import anyio.abc
import anyio.lowlevel
import httpx

from pytest_shopflow_perf.engine.arrivals import OpenModel, dropped_iterations
from pytest_shopflow_perf.engine.clients import Clients, event_loop_name
from pytest_shopflow_perf.engine.journeys import JourneySpec, callable_name, check_hooks, normalize_journeys
from pytest_shopflow_perf.engine.marks import is_recorded, measured_row
from pytest_shopflow_perf.engine.monitor import GeneratorMonitor
from pytest_shopflow_perf.engine.summary import summarize
from pytest_shopflow_perf.engine.tasks import UserTasks
from pytest_shopflow_perf.engine.transport import TransportCounters
from pytest_shopflow_perf.engine.user import StopUser, User, UserContext, wake
from pytest_shopflow_perf.metrics.hdr import warm_up
from pytest_shopflow_perf.metrics.recorder import DETAIL_WINDOWS, JOURNEY_ROW_PREFIX, Recorder
from pytest_shopflow_perf.profile.resolve import LoadProfile
from pytest_shopflow_perf.result.model import CheckCount, LoadResult
from pytest_shopflow_perf.target.policy import TargetPolicy

if TYPE_CHECKING:
    pass

Hook = Callable[[User], Awaitable[Any]]
TransportFactory = Callable[[], httpx.AsyncBaseTransport]
ProgressCallback = Callable[["Progress"], None]
# Called once per closed window with the live recorder, the elapsed and the planned time, and the most
# requests the rest of the run could still make; a returned reason stops the run early (abort on fail).
Watchdog = Callable[[Recorder, float, float, float], "str | None"]

TICK_S = 0.05
MAX_EXCEPTION_SAMPLES = 10


def _row_name(journey: object) -> str:
    """A journey's or hook's name on its row: the function's own name (``journey browse``), else how it prints."""
    return str(getattr(journey, "__name__", None) or callable_name(journey))


# Users started per second at most: each costs a client and a task, and starting 100,000 at
# once froze the loop for minutes; a run that wants more runs behind its profile (and says so).
SPAWN_RATE_PER_S = 2000
SPAWN_BURST = SPAWN_RATE_PER_S * TICK_S * 2
# The users alive are frozen out of the garbage collector's reach again once this many more
# started (and by a quarter more than the last time: a bounded number of freezes per run). Each
# full collection otherwise walks every user's objects: 26 of them cost 15 s of a 35 s run at
# 10,000 users (issue 13), and the users fell behind their think times.
FREEZE_MIN_USERS = 500
FREEZE_GROWTH = 1.25


@dataclass(frozen=True)
class Progress:
    """What the live progress line shows, once per closed 1-second window."""

    elapsed: float
    duration: float
    users: int
    rps: float
    p95: float
    window_errors: int
    requests: int
    errors: int


def _being_cancelled() -> bool:
    """The current task is really being cancelled (a cancel scope around it, or asyncio's own cancel)."""
    if anyio.current_effective_deadline() == -math.inf:
        return True
    try:
        task = asyncio.current_task()
    except RuntimeError:  # not on asyncio (trio): anyio's scopes are the only way to cancel
        return False
    cancelling = getattr(task, "cancelling", None)  # Python 3.11+
    return bool(cancelling()) if cancelling is not None else False


def _stopped() -> bool:
    return True


class _Slot:
    """A running virtual user as the controller sees it.

    It is also its user's ``should_stop`` (called, it says whether the user must stop), so a
    user costs no closure of its own; the think time is ended by ``wake(slot.context)``.
    """

    __slots__ = ("context", "engine", "id", "stop")

    def __init__(self, user_id: int, context: UserContext, engine: Engine | None = None) -> None:
        self.id = user_id
        self.context = context
        self.engine = engine
        self.stop = False

    def __call__(self) -> bool:
        engine = self.engine
        return self.stop or (engine is not None and engine._stopping)


class Engine(OpenModel):
    """Runs one load profile against one target and returns a ``LoadResult``."""

    def __init__(
        self,
        profile: LoadProfile,
        journeys: JourneySpec,
        *,
        base_url: str,
        transport_factory: TransportFactory | None = None,
        on_start: Hook | None = None,
        on_stop: Hook | None = None,
        on_progress: ProgressCallback | None = None,
        watchdog: Watchdog | None = None,
        on_clock_start: Callable[[float], None] | None = None,
        test: str = "",
        environment: Mapping[str, Any] | None = None,
        window_detail: int | None = DETAIL_WINDOWS,
        target_policy: TargetPolicy | None = None,
        http_transport: str = "fast",
        shard: tuple[int, int] = (0, 1),
    ) -> None:
        self.profile = profile
        # Shard ``index`` of ``count`` (engine/shards): its users are ids index, index + count, ...
        # of the whole run, and its arrivals every count-th of the whole schedule from the index-th.
        self.shard_index, self.shard_count = shard
        self.arrival_offset = self.shard_index / self.shard_count
        self.journeys, self.cumulative_weights = normalize_journeys(journeys)
        check_hooks(on_start=on_start, on_stop=on_stop)
        # The rows journeys and hooks count their exceptions on ("journey browse", "on_start login") and
        # how often each ran: the reports' denominator of their errors %.
        self._journey_rows = [f"{JOURNEY_ROW_PREFIX}{_row_name(journey)}" for journey in self.journeys]
        self._row_runs: dict[str, int] = {}
        self.base_url = base_url
        self.transport_factory = transport_factory
        # Hosts requests may go to; None: loopback only. Checked per request and per connection.
        self.target_policy = target_policy if target_policy is not None else TargetPolicy()
        self._counters = TransportCounters()
        # Without a transport_factory, the httpx client runs over http_transport: "fast"
        # (engine/fast_transport.py, httpcore for what it does not handle) or "httpcore".
        self.clients = Clients(
            profile,
            base_url=base_url,
            policy=self.target_policy,
            counters=self._counters,
            http_transport=http_transport,
            transport_factory=transport_factory,
        )
        self.on_start = on_start
        self.on_stop = on_stop
        self.on_progress = on_progress
        self.watchdog = watchdog
        self.on_clock_start = on_clock_start
        self.test = test
        self.environment = dict(environment or {})
        self.window_detail = window_detail  # 1-second windows keeping their buckets (None: all)
        self.stop_reason: str | None = None
        self.monitor = GeneratorMonitor()
        self._checks: dict[str, list[int]] = {}
        self._exceptions: dict[str, dict[str, Any]] = {}
        self._slots: dict[int, _Slot] = {}
        self._stopping = False
        self._gauge_users = self._gauge_ticks = 0  # users alive summed over the ticks since the last window
        self._gauge_last_users = 0.0
        self._busy_now = 0
        self._busy_at = self._busy_read_at = self._busy_area = 0.0
        self._iterations_left: int | None = profile.iterations
        self._iterations_done = 0
        self._idle_workers = 0
        self._failed_starts: set[int] = set()  # user ids whose on_start failed: kept, never respawned
        self._started_ok = 0  # users whose on_start succeeded
        self._spawn_tokens = SPAWN_BURST
        self._spawn_refill = 0.0
        self._shortfall = 0  # closed model: planned minus running users at the last tick
        self._last_elapsed = 0.0
        self._stop_elapsed = 0.0
        self._all_stopped = anyio.Event()
        self._t0 = 0.0
        self._best_user_rate = 0.0
        self._frozen_users = 0  # users started when the collector last froze what was alive
        self._user_tasks: UserTasks | None = None  # the users' tasks, once the run started
        self.unfinished = 0
        self._event_loop = ""
        # Set by the second Ctrl-C just before it raises KeyboardInterrupt: only that one stops the run.
        self.hard_stop = False

    # ---- control -------------------------------------------------------------

    def request_stop(self, reason: str = "interrupted") -> None:
        """Ask the run to end early and keep what was measured. Safe from a signal handler."""
        if self.stop_reason is None:
            self.stop_reason = reason

    async def _warm_up(self) -> None:
        """Pay one-off costs (CA bundle, lazy imports: ~100 ms) before the clock starts."""
        warm_up()
        self.clients.warm_up()
        client = self.clients.new(UserContext(Recorder(open_model=False, start=0.0), {}))
        await client.aclose()
        if self.transport_factory is None:
            with contextlib.suppress(Exception):  # resolve the target's name before the clock starts
                url = httpx.URL(self.base_url)
                await self.target_policy.connect_address(url.host, url.port or (443 if url.scheme == "https" else 80))

    async def run(self, *, start_at: Callable[[], Awaitable[float]] | None = None) -> LoadResult:
        """Warm up, then run; ``start_at`` (shards) is awaited after the warm-up for the agreed
        ``perf_counter`` instant the run's clock starts at (every shard on the same one)."""
        self._event_loop = event_loop_name()
        await self._warm_up()
        # Everything alive now lives for the whole run: keep full collections from scanning it
        # (they otherwise pause the loop ~30 ms every second and land on the latencies).
        gc.collect()
        gc.freeze()
        try:
            start = None
            if start_at is not None:
                start = await start_at()
                await anyio.sleep(max(0.0, start - perf_counter()))
            return await self._run(start)
        finally:
            gc.unfreeze()

    async def _run(self, start: float | None = None) -> LoadResult:
        self.monitor.start()
        self._t0 = perf_counter() if start is None else start
        if self.on_clock_start is not None:
            self.on_clock_start(self._t0)  # scheduled faults share the run's clock
        started_at = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
        self.recorder = Recorder(open_model=self.profile.is_open, start=self._t0, detail=self.window_detail)
        self.recorder.gauges = self._gauges
        self._busy_at = self._busy_read_at = self._t0
        self._all_stopped = anyio.Event()
        self._spawn_refill = self._t0
        self.monitor.spawn_rate_per_s = SPAWN_RATE_PER_S
        if not self.profile.is_open:
            self.monitor.users_target = math.ceil(self.profile.peak)
        try:
            async with anyio.create_task_group() as task_group:
                self._task_group = task_group
                self._user_tasks = user_tasks = UserTasks(task_group)
                if self.profile.is_open:
                    self._start_arrivals(task_group)
                await self._control()
                self._stop_elapsed = min(perf_counter() - self._t0, self.profile.duration)
                await self._stop_all(task_group)
            if user_tasks.crash is not None:
                raise user_tasks.crash
        finally:
            if self._user_tasks is not None:
                self._user_tasks.cancel_nowait()
            end = perf_counter()
            self.recorder.finish(end)
            self.monitor.sample_cpu()
            if not self._stop_elapsed:
                self._stop_elapsed = min(end - self._t0, self.profile.duration)
            self._account_schedule()
            if self.profile.is_open:
                self._close_arrivals()
        return self._result(end, started_at)

    def _account_schedule(self) -> None:
        """What the profile planned up to the end of the run against what the generator started."""
        horizon = self._stop_elapsed
        if self.profile.is_open:
            self.monitor.dropped_iterations = dropped_iterations(
                self.profile, horizon, self.monitor.iterations, self.arrival_offset
            )
        else:
            self.monitor.behind_user_s += self._shortfall * max(0.0, horizon - self._last_elapsed)
            self.monitor.planned_user_s = self.profile.integral(horizon)

    async def _control(self) -> None:
        """The ticker: user count, window closing, self-monitoring, progress, end of run."""
        profile = self.profile
        next_tick = self._t0
        next_cpu_sample = self._t0 + 1.0
        last_windows = 0
        while True:
            now = perf_counter()
            elapsed = now - self._t0
            if (
                self.stop_reason is not None
                or elapsed >= profile.duration
                or self._iterations_finished()
                or self._every_start_failed()
            ):
                return
            if not profile.is_open:
                self._adjust_users(elapsed)
            self._freeze_started_users()
            self._sample_gauges()
            self.recorder.roll(now)
            if now >= next_cpu_sample:
                self.monitor.sample_cpu()
                next_cpu_sample += 1.0
            windows = len(self.recorder.total_series.t_s)
            if windows != last_windows:
                last_windows = windows
                self._report_progress(elapsed)
                self._note_best_rate()
                if self.watchdog is not None:
                    reason = self.watchdog(self.recorder, elapsed, profile.duration, self.remaining_capacity(elapsed))
                    if reason:
                        self.request_stop(f"aborted: {reason}")
            next_tick += TICK_S
            await anyio.sleep(max(0.0, next_tick - perf_counter()))
            lag = perf_counter() - next_tick
            self.monitor.record_lag(max(lag, 0.0))
            if lag > TICK_S:
                next_tick = perf_counter()  # do not try to catch up on missed ticks

    def _sample_gauges(self) -> None:
        """Each tick: the users alive (they change only as users start and stop: ticks see every step)."""
        self._gauge_users += len(self._slots)
        self._gauge_ticks += 1

    def _gauges(self) -> tuple[float, float | None]:
        """Read by the recorder as each window closes: users alive (the mean of the ticks since the window
        before) and, open model, iterations in flight (their exact mean over the same time).

        After the last tick (the run is stopping) the users stay those of the last ticks: the last window
        closes once every user has gone, and a drop to zero there is the end of the run, not of its load.
        """
        if self._gauge_ticks:
            self._gauge_last_users = round(self._gauge_users / self._gauge_ticks, 2)
            self._gauge_users = self._gauge_ticks = 0
        busy = round(self.busy_mean(perf_counter()), 2) if self.profile.is_open else None
        return self._gauge_last_users, busy

    def _freeze_started_users(self) -> None:
        """Move the users started since the last time into the collector's permanent generation.

        As ``run``'s own ``gc.freeze``: they live for the run, and full collections that walk them
        all (~0.6 s each at 10,000 users) stall the loop. Young garbage is collected first; what
        dies after a freeze is still freed by reference counting, cycles only at the end (unfreeze).
        """
        started = self.monitor.users_started
        if started - self._frozen_users < FREEZE_MIN_USERS or started < self._frozen_users * FREEZE_GROWTH:
            return
        self._frozen_users = started
        gc.collect(1)
        gc.freeze()

    def _note_best_rate(self) -> None:
        """The most requests per user-second any closed window has seen (closed model's speed limit)."""
        users = sum(1 for slot in self._slots.values() if not slot.stop)
        count = self.recorder.total_series.count[-1] if len(self.recorder.total_series.count) else 0
        if users and count:
            self._best_user_rate = max(self._best_user_rate, count / users)

    def remaining_capacity(self, elapsed: float) -> float:
        """An upper bound of the requests the rest of the run can make, for "breached beyond recovery".

        Open model: the planned arrivals times the requests per iteration seen. Closed model: the
        planned user-seconds times the best rate per user any window has shown, since instant
        successes after slow failures would outrun an average taken so far.
        """
        planned = self.profile.planned(elapsed, self.profile.duration)
        if self.profile.is_open:
            requests = sum(endpoint.requests for endpoint in self.recorder.endpoints.values())
            return planned * max(1.0, requests / max(1, self.monitor.iterations))
        return planned * self._best_user_rate

    def _every_start_failed(self) -> bool:
        """Every user the profile can have failed in on_start: nothing is left to run or measure."""
        if self._slots or not self._failed_starts or self._started_ok:
            return False
        return self.profile.is_open or len(self._failed_starts) >= self.profile.users

    def _iterations_finished(self) -> bool:
        if self.profile.iterations is None:
            return False
        return self._iterations_done >= self.profile.iterations or (self._iterations_left == 0 and not self._slots)

    def _report_progress(self, elapsed: float) -> None:
        if self.on_progress is None:
            return
        series = self.recorder.total_series
        requests = sum(endpoint.requests for endpoint in self.recorder.endpoints.values())
        errors = sum(endpoint.errors for endpoint in self.recorder.endpoints.values())
        self.on_progress(
            Progress(
                elapsed=elapsed,
                duration=self.profile.duration,
                users=sum(1 for slot in self._slots.values() if not slot.stop),
                rps=float(series.count[-1]),
                p95=series.p95_ms[-1] / 1000,
                window_errors=series.errors[-1],
                requests=requests,
                errors=errors,
            )
        )

    def _adjust_users(self, elapsed: float) -> None:
        # The run is behind its profile by the users it lacked since the last tick.
        self.monitor.behind_user_s += self._shortfall * max(0.0, elapsed - self._last_elapsed)
        self._last_elapsed = elapsed
        self._shortfall = 0
        if self._iterations_left == 0:
            return  # users leave on their own once the shared iterations are used up
        target = round(self.profile.target_at(elapsed))
        running_count = sum(1 for slot in self._slots.values() if not slot.stop)  # no sort per tick
        failed = self._failed_starts
        have = running_count + len(failed)  # a user whose start failed keeps its slot
        if have < target:
            count = min(target - have, self._spawn_allowance())
            taken = self._slots
            free_ids = (i for i in range(target + len(taken) + len(failed) + 1) if i not in taken and i not in failed)
            for _ in range(count):
                self._spawn(next(free_ids), self._closed_user)
            self._shortfall = target - have - count
        elif have > target:
            running = sorted(slot.id for slot in self._slots.values() if not slot.stop)
            for user_id in running[max(0, target - len(failed)) :]:
                self._stop_slot(self._slots[user_id])

    def _spawn_allowance(self) -> int:
        """Users that may start now: a token bucket refilled at SPAWN_RATE_PER_S."""
        now = perf_counter()
        self._spawn_tokens = min(SPAWN_BURST, self._spawn_tokens + (now - self._spawn_refill) * SPAWN_RATE_PER_S)
        self._spawn_refill = now
        return int(self._spawn_tokens)

    async def _stop_all(self, task_group: anyio.abc.TaskGroup) -> None:
        """Graceful stop: no new iterations, wake thinkers, give in-flight requests time, then cancel."""
        self._stopping = True
        if self.profile.is_open:
            self._end_arrivals()
        for slot in list(self._slots.values()):
            self._stop_slot(slot)
        if self._slots:
            with anyio.move_on_after(self.profile.graceful_stop):
                await self._all_stopped.wait()
        self.unfinished = self.recorder.write_off_inflight(perf_counter())
        assert self._user_tasks is not None
        await self._user_tasks.cancel_all()
        task_group.cancel_scope.cancel()

    def _stop_slot(self, slot: _Slot) -> None:
        slot.stop = True
        wake(slot.context)

    # ---- virtual users -------------------------------------------------------

    def _spawn(self, user_id: int, body: Callable[[_Slot, User], Awaitable[None]]) -> None:
        context = UserContext(self.recorder, self._checks, self._counters)
        slot = _Slot(user_id, context, self)
        context.should_stop = slot
        self._slots[user_id] = slot
        self._spawn_tokens -= 1
        self.monitor.users_started += 1
        self.monitor.peak_users = max(self.monitor.peak_users, len(self._slots))
        assert self._user_tasks is not None
        self._user_tasks.start(self._user_task, slot, body, name=f"shopflow-perf user {user_id}")

    async def _user_task(self, slot: _Slot, body: Callable[[_Slot, User], Awaitable[None]]) -> None:
        client = self.clients.new(slot.context)
        # Its random is built on first use (most journeys never draw), seeded as it always was.
        user_id = slot.id * self.shard_count + self.shard_index  # the id in the whole run, as in one process
        user = User(id=user_id, client=client, context=slot.context, seed=f"{self.profile.seed}:{user_id}")
        graceful = False
        try:
            if await self._call_hook(self.on_start, user, "on_start"):
                self._started_ok += 1
                await body(slot, user)
            else:  # retrying would hammer a failing login endpoint 20 times a second per user
                self._failed_starts.add(slot.id)
                self.monitor.users_failed_to_start += 1
            graceful = True
        except StopUser:
            graceful = True
        finally:
            try:
                if graceful and self.on_stop is not None:
                    with anyio.move_on_after(self.profile.graceful_stop):
                        await self._call_hook(self.on_stop, user, "on_stop")
            finally:
                with anyio.CancelScope(shield=True):
                    await client.aclose()
                slot.context.should_stop = _stopped  # no slot <-> context cycle left once it ends
                del self._slots[slot.id]
                if not self._slots and self._stopping:
                    self._all_stopped.set()

    def _stops_the_run(self, exc: BaseException) -> bool:
        """Whether a BaseException out of user code is the engine's own stop, not the journey's error.

        A journey may raise CancelledError, KeyboardInterrupt or SystemExit itself; letting
        those through would cancel the task group and end (or kill) the run with a wrong result.
        """
        if isinstance(exc, StopUser):
            return True
        if isinstance(exc, KeyboardInterrupt):
            return self.hard_stop
        if isinstance(exc, anyio.get_cancelled_exc_class()):
            return _being_cancelled()
        return False

    async def _call_hook(self, hook: Hook | None, user: User, stage: str) -> bool:
        if hook is None:
            return True
        row = f"{stage} {_row_name(hook)}"
        self._row_runs[row] = self._row_runs.get(row, 0) + 1
        try:
            await hook(user)
        except BaseException as exc:
            if self._stops_the_run(exc):
                raise
            self._record_exception(row, hook, exc)
            return False  # a user that could not start (e.g. login failed) does not iterate
        return True

    async def _closed_user(self, slot: _Slot, user: User) -> None:
        think = self.profile.think_time
        while not slot.stop and not self._stopping:
            if self._iterations_left is not None:
                if self._iterations_left <= 0:
                    return
                self._iterations_left -= 1
            await self._iterate(user)
            if think is not None:
                await user.think(*think)

    async def _iterate(self, user: User) -> None:
        index = 0
        if len(self.journeys) > 1:
            target = user.random.random() * self.cumulative_weights[-1]
            while self.cumulative_weights[index] < target:
                index += 1
        journey = self.journeys[index]
        row = self._journey_rows[index]
        user.iteration += 1
        self.monitor.iterations += 1
        self._row_runs[row] = self._row_runs.get(row, 0) + 1
        try:
            await journey(user)
        except BaseException as exc:
            if self._stops_the_run(exc):
                raise
            self._record_exception(row, journey, exc)
        finally:
            self._iterations_done += 1
        # A journey that never awaits real I/O (an in-memory transport) must not starve the ticker.
        await anyio.lowlevel.checkpoint()

    def _record_exception(self, row: str, where: object, exc: BaseException) -> None:
        """A journey's or hook's own exception, on its row; the first traceback of each kind is kept."""
        kind = f"exception {type(exc).__name__}"
        if is_recorded(exc):
            measured = measured_row(exc)
            if measured is None:
                return  # a transport error or an HTTP error status: counted where it happened
            row = measured  # counted on its user.measure row; its traceback is still worth keeping
        else:
            self.recorder.record_error(row, kind, perf_counter())
        sample = self._exceptions.get(kind)
        if sample is None and len(self._exceptions) < MAX_EXCEPTION_SAMPLES:
            # From the journey's own frame on: the engine's frame that called it says nothing to the user.
            frames = exc.__traceback__.tb_next if exc.__traceback__ is not None else None
            self._exceptions[kind] = {
                "kind": kind,
                "count": 1,
                "where": callable_name(where),
                "row": row,
                "traceback": "".join(traceback.format_exception(type(exc), exc, frames or exc.__traceback__, limit=8)),
            }
        elif sample is not None:
            sample["count"] += 1

    # ---- result ----------------------------------------------------------------

    def _result(self, end: float, started_at: str) -> LoadResult:
        duration = max(end - self._t0, 1e-9)
        endpoints, total = summarize(self.recorder, duration, open_model=self.profile.is_open)
        extra: dict[str, Any] = {}
        if self._exceptions:
            extra["exceptions"] = list(self._exceptions.values())
        if self._row_runs:
            extra["journey_runs"] = dict(self._row_runs)
        if self.stop_reason:
            extra["stop_reason"] = self.stop_reason
        if self.unfinished:
            extra["unfinished_requests"] = self.unfinished
        if self._counters.refused.requests:
            extra["refused"] = self._counters.refused.to_dict()
        if self._counters.truncated_bodies:
            extra["truncated_bodies"] = self._counters.truncated_bodies
        if self._counters.delegated:
            extra["fast_transport_delegated"] = self._counters.delegated  # sent by httpcore instead
        failed = self.monitor.users_failed_to_start
        if failed and failed >= self.monitor.users_started:
            extra["start_failures"] = (
                f"every virtual user failed in on_start ({failed} of {self.monitor.users_started}): no iteration ran"
            )
        return LoadResult(
            total=total,
            endpoints=endpoints,
            profile=self.profile.to_dict(),
            started_at=started_at,
            generator=dataclasses.replace(
                self.monitor.stats(self.recorder.clamped),
                client=self.profile.client,
                transport=self.clients.transport_name,
                event_loop=self._event_loop,
            ),
            checks={name: CheckCount(passes, fails) for name, (passes, fails) in self._checks.items()},
            environment=self.environment,
            interrupted=self.stop_reason is not None,
            target=self.base_url,
            test=self.test,
            extra=extra,
            events={
                name: {"errors": event.errors, "errors_by_kind": dict(event.errors_by_kind)}
                for name, event in self.recorder.events.items()
            },
        )
