"""The coordinator of a sharded run: plan, ship, start on one clock, follow live, merge into one result.

``ShardedEngine`` is used as ``Engine`` is (``await run()``, ``request_stop``, ``stop_reason``,
``hard_stop``): the fixture picks one or the other. While the shards run it merges their windows
in order (``merged.MergedRecorder``) and calls the progress line and the abort watchdog on the
merged view, as one process's engine does; faults start on the same clock (``on_clock_start``).
A shard whose process ends without its final figures is lost: the run goes on with the others.
"""

from __future__ import annotations

import datetime
import queue
from collections.abc import Callable, Mapping, Sequence
from time import perf_counter, time
from typing import TYPE_CHECKING, Any

import anyio

from pytest_shopflow_perf.engine.engine import Progress, ProgressCallback, Watchdog
from pytest_shopflow_perf.engine.journeys import callable_name, check_hooks, normalize_journeys
from pytest_shopflow_perf.engine.shards.merge import merged_result
from pytest_shopflow_perf.engine.shards.merged import MergedRecorder
from pytest_shopflow_perf.engine.shards.plan import plan_shards
from pytest_shopflow_perf.engine.shards.runner import ShardSpec
from pytest_shopflow_perf.engine.shards.wire import ShardError, ShardFinal, dumps
from pytest_shopflow_perf.metrics.recorder import DETAIL_WINDOWS, WINDOW_S
from pytest_shopflow_perf.target.policy import TargetPolicy

if TYPE_CHECKING:
    from pytest_shopflow_perf.engine.engine import Hook, TransportFactory
    from pytest_shopflow_perf.engine.journeys import JourneySpec
    from pytest_shopflow_perf.engine.shards.local import Event
    from pytest_shopflow_perf.profile.resolve import LoadProfile
    from pytest_shopflow_perf.result.model import LoadResult

POLL_S = 0.02
START_LEAD_S = 0.2  # between the start order and the agreed start: every shard has it by then
READY_TIMEOUT_S = 120.0  # spawning imports the plugin, httpx, numpy: seconds on a busy machine
FINISH_GRACE_S = 15.0  # after duration + graceful stop, a shard that has not reported is lost


class ShardedEngine:
    """Runs one load profile as ``workers`` shards and returns one ``LoadResult``."""

    def __init__(
        self,
        profile: LoadProfile,
        journeys: JourneySpec,
        *,
        workers: int,
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
        event_loop: str = "auto",
        cluster: Any = None,
    ) -> None:
        normalized, _ = normalize_journeys(journeys)  # the same errors as one process, before any spawn
        check_hooks(on_start=on_start, on_stop=on_stop)
        self.profile = profile
        self.base_url = base_url
        self.on_progress = on_progress
        self.watchdog = watchdog
        self.on_clock_start = on_clock_start
        self.test = test
        self.environment = dict(environment or {})
        self.window_detail = window_detail
        self.cluster = cluster  # a distributed.Client: the shards run as tasks on its workers
        self.stop_reason: str | None = None
        self.hard_stop = False  # set by a second Ctrl-C: the shards are killed, nothing is merged
        self.plans = plan_shards(profile, workers)
        policy = target_policy if target_policy is not None else TargetPolicy()
        specs = [
            ShardSpec(
                index=index,
                count=len(self.plans),
                profile=plan,
                journeys=journeys,
                base_url=base_url,
                target_policy=policy,
                on_start=on_start,
                on_stop=on_stop,
                transport_factory=transport_factory,
                http_transport=http_transport,
                event_loop=event_loop,
                test=test,
            )
            for index, plan in enumerate(self.plans)
        ]
        try:
            self.payloads = [dumps(spec, "the shard's specification") for spec in specs]
        except ShardError:
            for what, item in [
                *((f"journey {callable_name(journey)}", journey) for journey in normalized),
                ("on_start", on_start),
                ("on_stop", on_stop),
                ("transport_factory", transport_factory),
            ]:
                if item is not None:
                    dumps(item, what)  # names the piece that cannot travel
            raise

    def request_stop(self, reason: str = "interrupted") -> None:
        """Ask every shard to end early and keep what was measured. Safe from a signal handler."""
        if self.stop_reason is None:
            self.stop_reason = reason

    async def run(self) -> LoadResult:
        from pytest_shopflow_perf.engine.shards.local import start_local
        from pytest_shopflow_perf.metrics.hdr import warm_up

        events: queue.Queue[Event] = queue.Queue()
        shards: Sequence[Any]
        if self.cluster is not None:
            from pytest_shopflow_perf.engine.shards.cluster import start_cluster

            shards = start_cluster(self.cluster, self.payloads, events)
        else:
            shards = start_local(self.payloads, events)
        # While the shards boot (~1 s): numpy and the bucket tables (~0.2 s), else paid at the first merged window.
        warm_up()
        follow = _Follow(self, shards, events)
        try:
            await follow.wait_ready()
            start_wall = time() + START_LEAD_S
            t0 = perf_counter() + (start_wall - time())
            for shard in shards:
                shard.send("start", start_wall)
            if self.on_clock_start is not None:
                self.on_clock_start(t0)  # scheduled faults share the shards' clock
            started_at = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
            await follow.follow(t0)
        except BaseException:
            for shard in shards:
                shard.kill()
            raise
        finally:
            for shard in shards:
                with anyio.CancelScope(shield=True):
                    await anyio.to_thread.run_sync(shard.close)
        follow.raise_errors()
        return merged_result(
            follow.merged,
            follow.finals,
            follow.lost,
            profile=self.profile,
            workers=[shard.worker for shard in shards],
            started_at=started_at,
            stop_reason=self.stop_reason,
            base_url=self.base_url,
            test=self.test,
            environment=self.environment,
        )


class _Follow:
    """The coordinator's loop over the shards' events, from spawn to the last final."""

    def __init__(self, engine: ShardedEngine, shards: Sequence[Any], events: queue.Queue[Event]) -> None:
        self.engine = engine
        self.shards = shards
        self.events = events
        self.merged = MergedRecorder(len(shards), open_model=engine.profile.is_open, detail=engine.window_detail)
        self.finals: dict[int, ShardFinal] = {}
        self.lost: dict[int, tuple[float, str]] = {}  # shard -> (elapsed s, why)
        self.errors: dict[int, str] = {}
        self.ready: set[int] = set()
        self.ended: set[int] = set()
        self._t0 = 0.0
        self._stop_sent = False

    def _handle(self, index: int, kind: str, payload: Any) -> None:
        if kind == "ready":
            self.ready.add(index)
        elif kind == "windows":
            self.merged.absorb(payload)
        elif kind == "final":
            self.finals[index] = payload
            self.merged.absorb(payload.batch)
            self.merged.end(index)
        elif kind == "error":
            self.errors[index] = str(payload)
        elif kind == "exit":
            self.ended.add(index)
            if index not in self.finals:
                elapsed = max(0.0, perf_counter() - self._t0) if self._t0 else 0.0
                self.lost[index] = (elapsed, str(payload))
                self.merged.end(index)

    def _drain(self) -> None:
        while True:
            try:
                index, kind, payload = self.events.get_nowait()
            except queue.Empty:
                return
            self._handle(index, kind, payload)

    def _fail_if_broken(self) -> None:
        """Errors before the start: a shard that cannot run its journeys is a setup error, not a lost shard."""
        broken = sorted(set(self.errors) | (self.ended - self.ready))
        if broken:
            index = broken[0]
            why = self.lost.get(index, (0.0, "reported an error"))[1]
            raise ShardError(
                f"shard {self.shards[index].worker} could not start ({why}):\n{self.errors.get(index, '').strip()}"
            )

    async def wait_ready(self) -> None:
        deadline = perf_counter() + READY_TIMEOUT_S
        while len(self.ready) < len(self.shards):
            self._drain()
            self._fail_if_broken()
            if perf_counter() > deadline:
                raise ShardError(
                    f"{len(self.shards) - len(self.ready)} shard process(es) not ready after {READY_TIMEOUT_S:g} s"
                )
            await anyio.sleep(POLL_S)

    async def follow(self, t0: float) -> None:
        self._t0 = t0
        engine = self.engine
        profile = engine.profile
        deadline = t0 + profile.duration + profile.graceful_stop + FINISH_GRACE_S
        while len(self.ended) < len(self.shards):
            self._drain()
            if self.merged.merge_ready():
                self._on_windows()
            if engine.stop_reason is not None and not self._stop_sent:
                self._stop_sent = True
                for shard in self.shards:
                    shard.send("stop", engine.stop_reason)
            if perf_counter() > deadline:
                for shard in self.shards:
                    if shard.index not in self.finals and shard.index not in self.ended:
                        shard.kill()  # hung: its exit is reported as a lost shard
                deadline = float("inf")
            await anyio.sleep(POLL_S)
        self._drain()

    def _on_windows(self) -> None:
        engine = self.engine
        merged = self.merged
        elapsed = merged.closed_windows() * WINDOW_S
        series = merged.total_series
        if engine.on_progress is not None:
            engine.on_progress(
                Progress(
                    elapsed=elapsed,
                    duration=engine.profile.duration,
                    users=merged.users,
                    rps=float(series.count[-1]),
                    p95=series.p95_ms[-1] / 1000,
                    window_errors=series.errors[-1],
                    requests=sum(e.requests for e in merged.endpoints.values()),
                    errors=merged.totals(None).errors,
                )
            )
        if engine.watchdog is not None and engine.stop_reason is None:
            reason = engine.watchdog(merged, elapsed, engine.profile.duration, merged.remaining)
            if reason:
                engine.request_stop(f"aborted: {reason}")

    def raise_errors(self) -> None:
        """A shard whose engine failed (not one that died): its error is the run's, as in one process."""
        for index, text in sorted(self.errors.items()):
            if index not in self.finals:
                raise ShardError(f"shard {self.shards[index].worker} failed:\n{text.strip()}")
