"""The ``load`` fixture: turns the test's profile and journeys into an engine run."""

from __future__ import annotations

import asyncio
import signal
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from typing import TYPE_CHECKING, Any

import pytest

from pytest_shopflow_perf._errors import ShopflowPerfError, hide_own_errors
from pytest_shopflow_perf.plugin.progress import end_progress, notice_printer, progress_printer
from pytest_shopflow_perf.profile.resolve import DOCUMENTED_MARKER_KEYS, unknown_keys_error

if TYPE_CHECKING:
    from pytest_shopflow_perf.engine.engine import Engine, Hook, TransportFactory, Watchdog
    from pytest_shopflow_perf.engine.journeys import JourneySpec
    from pytest_shopflow_perf.engine.shards.coordinator import ShardedEngine
    from pytest_shopflow_perf.faults.run import FaultPlan, FaultRun
    from pytest_shopflow_perf.metrics.resources import ResourceSampler
    from pytest_shopflow_perf.plugin.session import PerfSession
    from pytest_shopflow_perf.profile.resolve import LoadProfile
    from pytest_shopflow_perf.result.capacity import Capacity
    from pytest_shopflow_perf.result.model import LoadResult
    from pytest_shopflow_perf.result.target import RunTarget
    from pytest_shopflow_perf.verdicts.assertions import Slo


# What load.run accepts besides the profile's keys (slo= and faults= are among the marker's documented keys).
RUN_PARAMETERS = ("on_start", "on_stop", "app", "transport_factory")


class EventLoopMisuse(ShopflowPerfError, RuntimeError):
    """``load.run`` inside a running event loop: an async test awaits ``load.arun`` instead."""


@contextmanager
def _stop_on_interrupt(engine: Engine | ShardedEngine) -> Iterator[None]:
    """First Ctrl-C (or SIGTERM, how CI cancels a job) ends the run gracefully and keeps its results;
    a second one stops at once."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, frame: object) -> None:
        if engine.stop_reason == "interrupted":
            engine.hard_stop = True  # this KeyboardInterrupt is the user's, not a journey's: let it through
            raise KeyboardInterrupt
        engine.request_stop("interrupted")

    previous = signal.signal(signal.SIGINT, handler)
    previous_term = signal.signal(signal.SIGTERM, handler) if hasattr(signal, "SIGTERM") else None
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
        if previous_term is not None:
            signal.signal(signal.SIGTERM, previous_term)


class LoadRunner:
    """What a load test receives as ``load``: ``load.run(journeys)`` or ``await load.arun(journeys)``."""

    def __init__(
        self,
        session: PerfSession,
        nodeid: str,
        marker_kwargs: dict[str, Any],
        slos: Sequence[Slo] = (),
        faults: FaultPlan | None = None,
    ) -> None:
        self._session = session
        self.nodeid = nodeid
        self._marker_kwargs = marker_kwargs
        self.profile: LoadProfile = session.resolve_profile(marker_kwargs, self._label(marker_kwargs))
        self.slos: list[Slo] = list(slos)
        from pytest_shopflow_perf.faults.run import FaultPlan

        self.faults: FaultPlan = faults if faults is not None else FaultPlan()
        self.results: list[LoadResult] = []
        self._tracked: dict[str, tuple[float, float]] = {}  # the current run's declared spans, judged live
        self._measured_target: str | None = None  # the current run's target, for the machine probe
        self._target: RunTarget | None = None  # what the current run targets, and why
        self._sampler: ResourceSampler | None = None  # the target's resources during the current run

    @staticmethod
    def _label(kwargs: dict[str, Any], call: str = "@pytest.mark.load") -> str:
        arguments = ", ".join(f"{key}={value!r}" for key, value in kwargs.items())
        return f"{call}({arguments})"

    @property
    def base_url(self) -> str:
        return self._session.base_url_for(self.profile)

    def _profile(self, overrides: dict[str, Any]) -> LoadProfile:
        """The marker's profile with this run's overrides; an unknown keyword names the closest one it accepts."""
        __tracebackhide__ = hide_own_errors
        if not overrides:
            return self.profile
        label = self._label(overrides, "load.run")
        error = unknown_keys_error(label, overrides, (*DOCUMENTED_MARKER_KEYS, *RUN_PARAMETERS))
        if error is not None:
            raise pytest.UsageError(str(error))
        merged = {**self._marker_kwargs, **overrides}
        return self._session.resolve_profile(merged, label)

    def _watchdog(self, slos: Sequence[Slo]) -> Watchdog | None:
        """Per closed window: the declared ``over any`` spans, abort-on-fail, and a word on unseen endpoints."""
        if not slos:
            return None
        from pytest_shopflow_perf.verdicts.slo.abort import unseen_endpoints, watch

        notice = notice_printer(self._session.config)
        warned: set[str] = set()
        tracked = self._tracked

        def watchdog(view: Any, elapsed: float, duration: float, remaining: float) -> str | None:
            for message in unseen_endpoints(slos, view, elapsed, warned, duration):
                notice(message)
            return watch(slos, tracked, view, elapsed, duration, remaining)

        return watchdog

    def _engine(
        self,
        journeys: JourneySpec,
        *,
        on_start: Hook | None,
        on_stop: Hook | None,
        app: Any,
        transport_factory: TransportFactory | None,
        profile: LoadProfile,
        overrides: dict[str, Any],
        slos: Sequence[Slo],
        fault_run: FaultRun,
    ) -> Engine | ShardedEngine:
        __tracebackhide__ = hide_own_errors
        from pytest_shopflow_perf.engine.engine import Engine

        self._tracked.clear()
        if profile.workers not in (1, "auto") and app is not None:
            raise pytest.UsageError(
                f"workers={profile.workers} with app=: an in-process ASGI app lives in this process only, and "
                "each shard process would drive its own copy; serve the app (uvicorn) and give its URL, or use "
                "workers=1"
            )
        from pytest_shopflow_perf.plugin import targets

        if app is not None:
            import httpx

            def asgi_transport() -> httpx.AsyncBaseTransport:
                return httpx.ASGITransport(app=app)

            transport_factory = asgi_transport
            base_url = profile.base_url or "http://shopflow.inprocess"
            target = targets.in_process(app, base_url)
            # the in-process host is never connected to: ASGI calls the app; other hosts stay refused
            policy = self._session.target_policy.allowing(httpx.URL(base_url).host)
        else:
            target = self._session.target_for(profile, from_run="base_url" in overrides, test=self.nodeid)
            base_url = target.url
            policy = self._session.target_policy
        self._measured_target = None if app is not None else base_url  # before a fault proxy takes its place
        try:
            base_url = fault_run.route(base_url, in_process=app is not None)
        except ValueError as exc:
            raise pytest.UsageError(str(exc)) from None
        common: dict[str, Any] = {
            "base_url": base_url,
            "transport_factory": transport_factory,
            "on_start": on_start,
            "on_stop": on_stop,
            "on_progress": progress_printer(self._session.config, self.nodeid.rsplit("::", 1)[-1]),
            "watchdog": self._watchdog(slos),
            "window_detail": _window_detail(slos, profile),
            "on_clock_start": self._clock_start(fault_run, None if app is not None else target),
            "test": self.nodeid,
            "environment": self._session.environment(),
            "target_policy": policy,
            "http_transport": self._session.settings.http_transport,
        }
        from pytest_shopflow_perf.engine.shards.plan import resolve_workers

        cluster = self._session.cluster_client() if self._session.settings.cluster and app is None else None
        if cluster is not None:
            target = targets.with_note(target, f"load generated on the Dask cluster {self._session.settings.cluster}")
        self._target = target
        if cluster is not None:
            from pytest_shopflow_perf.engine.shards.cluster import worker_addresses

            stated = "workers" in profile.sources and profile.workers != "auto"
            workers = int(profile.workers) if stated else len(worker_addresses(cluster))  # one shard per worker
        else:
            workers = 1 if app is not None else resolve_workers(profile.workers, base_url)
        try:
            if workers == 1 and cluster is None:
                return Engine(profile, journeys, **common)
            from pytest_shopflow_perf.engine.shards.coordinator import ShardedEngine

            return ShardedEngine(
                profile,
                journeys,
                workers=workers,
                event_loop=self._session.settings.event_loop,
                cluster=cluster,
                **common,
            )
        except (TypeError, ValueError, ShopflowPerfError) as exc:  # hooks not async, a journey that cannot travel
            raise pytest.UsageError(str(exc)) from None

    def _clock_start(self, fault_run: FaultRun, target: RunTarget | None) -> Callable[[float], None]:
        """Faults and the target's resource sampler start on the run's clock."""
        from pytest_shopflow_perf.plugin.resources import sampler_for

        sampler = self._sampler = None if target is None else sampler_for(self._session, target)

        def clock_started(t0: float) -> None:
            fault_run.clock_started(t0)
            if sampler is not None:
                sampler.clock_started(t0)

        return clock_started

    def run(
        self,
        journeys: JourneySpec,
        *,
        on_start: Hook | None = None,
        on_stop: Hook | None = None,
        app: Any = None,
        transport_factory: TransportFactory | None = None,
        slo: Sequence[str | Slo] | None = None,
        faults: Sequence[object] | None = None,
        **overrides: Any,
    ) -> LoadResult:
        """Run the load in this (sync) test and return what was measured.

        :param journeys: ``browse``, ``[browse, search]`` or ``{browse: 3, checkout: 1}``.
        :param app: an ASGI app to drive in-process (smoke runs without a server).
        :param slo: thresholds for this run instead of the declared ones (marker, ini);
            a breach raises ``AssertionError`` when the run ends, ``Slo(..., abort=True)`` ends it early.
        :param faults: faults for this run instead of the declared ones (marker ``faults=``, ``faults`` fixture).
        :param overrides: profile keys for this run only (e.g. ``users=20`` in a stress loop).
        """
        __tracebackhide__ = hide_own_errors
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            pass
        else:
            raise EventLoopMisuse(
                "load.run() was called inside a running event loop; in an async test use `await load.arun(...)`"
            )
        slos = self._slos(slo)
        return self._run_sync(journeys, on_start, on_stop, app, transport_factory, overrides, slos, faults)

    def _run_sync(
        self,
        journeys: JourneySpec,
        on_start: Hook | None,
        on_stop: Hook | None,
        app: Any,
        transport_factory: TransportFactory | None,
        overrides: dict[str, Any],
        slos: Sequence[Slo],
        faults: Sequence[object] | None,
        *,
        judge: bool = True,
    ) -> LoadResult:
        """One run on its own event loop: ``load.run``, and each level of ``load.find_capacity`` (``judge=False``)."""
        __tracebackhide__ = hide_own_errors
        import anyio

        backend_options = _backend_options(self._session.settings.event_loop)
        with ExitStack() as stack:
            engine, fault_run = self._prepare(
                stack, journeys, on_start, on_stop, app, transport_factory, overrides, slos, faults
            )
            result = anyio.run(self._drive, engine, app, backend="asyncio", backend_options=backend_options)
        self._annotate(fault_run, result)
        return self._finish(result, slos, judge=judge)

    def find_capacity(
        self,
        journeys: JourneySpec,
        *,
        slo: Sequence[str | Slo] | None = None,
        start: float = 10.0,
        max: float = 10_000.0,
        model: str = "rate",
        factor: float = 2.0,
        refine: int = 2,
        cooldown: float | str = "2s",
        on_start: Hook | None = None,
        on_stop: Hook | None = None,
        **overrides: Any,
    ) -> Capacity:
        """The highest level (arrivals/s, or users with ``model="users"``) at which ``slo`` holds.

        Runs the profile's duration at ``start``, ``start * factor``, ... up to ``max`` until a level
        fails, then bisects ``refine`` times between the last passing and the first failing level.
        """
        __tracebackhide__ = hide_own_errors
        from pytest_shopflow_perf.plugin.capacity import find_capacity

        return find_capacity(
            self,
            journeys,
            slo=slo,
            start=start,
            max=max,
            model=model,
            factor=factor,
            refine=refine,
            cooldown=cooldown,
            on_start=on_start,
            on_stop=on_stop,
            overrides=overrides,
        )

    async def arun(
        self,
        journeys: JourneySpec,
        *,
        on_start: Hook | None = None,
        on_stop: Hook | None = None,
        app: Any = None,
        transport_factory: TransportFactory | None = None,
        slo: Sequence[str | Slo] | None = None,
        faults: Sequence[object] | None = None,
        **overrides: Any,
    ) -> LoadResult:
        """Like ``run``, inside the running event loop of an async test (anyio or pytest-asyncio)."""
        __tracebackhide__ = hide_own_errors
        slos = self._slos(slo)
        with ExitStack() as stack:
            engine, fault_run = self._prepare(
                stack, journeys, on_start, on_stop, app, transport_factory, overrides, slos, faults
            )
            result = await self._drive(engine, app)
        self._annotate(fault_run, result)
        return self._finish(result, slos)

    @staticmethod
    def _annotate(fault_run: FaultRun, result: LoadResult) -> None:
        """The fault windows on the result, and how the service recovered from each (a verdict on the result)."""
        from pytest_shopflow_perf.verdicts.recovery import annotate

        fault_run.annotate(result)
        annotate(result)

    def _prepare(
        self,
        stack: ExitStack,
        journeys: JourneySpec,
        on_start: Hook | None,
        on_stop: Hook | None,
        app: Any,
        transport_factory: TransportFactory | None,
        overrides: dict[str, Any],
        slos: Sequence[Slo],
        faults: Sequence[object] | None,
    ) -> tuple[Engine | ShardedEngine, FaultRun]:
        """The engine of one run, its faults in force and Ctrl-C handled until ``stack`` closes (run and arun).

        Not a generator context manager: a usage error raised here then shows no frame of contextlib.
        """
        __tracebackhide__ = hide_own_errors
        profile = self._profile(overrides)
        fault_run = stack.enter_context(self._fault_run(faults, profile))
        engine = self._engine(
            journeys,
            on_start=on_start,
            on_stop=on_stop,
            app=app,
            transport_factory=transport_factory,
            profile=profile,
            overrides=overrides,
            slos=slos,
            fault_run=fault_run,
        )
        stack.enter_context(_stop_on_interrupt(engine))
        return engine, fault_run

    def _fault_run(self, faults: Sequence[object] | None, profile: LoadProfile) -> FaultRun:
        __tracebackhide__ = hide_own_errors
        from pytest_shopflow_perf.faults.run import FaultPlan, FaultRun

        try:
            plan = self.faults if faults is None else FaultPlan(faults)
            return FaultRun(
                plan.items,
                scale=profile.scale,
                duration=profile.duration,
                seed=profile.seed,
                policy=self._session.target_policy,
            )
        except (TypeError, ValueError) as exc:
            raise pytest.UsageError(str(exc)) from None

    async def _drive(self, engine: Engine | ShardedEngine, app: Any) -> LoadResult:
        from pytest_shopflow_perf.metrics.machine import MachineProbe

        probe = MachineProbe(self._measured_target)  # what else the machine does: the regression gate asks
        probe.start()
        sampler, self._sampler = self._sampler, None
        if sampler is not None:
            sampler.start()  # a thread of its own: never on the engine's event loop
        try:
            if app is None:
                result = await engine.run()
            else:
                from pytest_shopflow_perf.engine.asgi import lifespan

                async with lifespan(app):
                    result = await engine.run()
        finally:
            from pytest_shopflow_perf.plugin.resources import stop

            resources = stop(sampler)
        result.resources = resources
        result.environment["machine_load"] = probe.finish(result.requests)
        return result

    def _slos(self, slo: Sequence[str | Slo] | None) -> list[Slo]:
        __tracebackhide__ = hide_own_errors
        if slo is None:
            return self.slos
        from pytest_shopflow_perf.verdicts.assertions import SloError, as_slos

        try:
            return as_slos(slo, "load.run(slo=...)")
        except SloError as exc:
            raise pytest.UsageError(str(exc)) from None

    def _finish(self, result: LoadResult, slos: Sequence[Slo] = (), *, judge: bool = True) -> LoadResult:
        __tracebackhide__ = hide_own_errors
        if not judge:
            result.extra["capacity_step"] = True  # a level of a capacity search: the search judges it
        end_progress(self._session.config)
        if self._target is not None:
            result.target = self._target  # the engine knows the URL it sent to; the plugin knows why
        if self.results:  # several runs in one test each get their own baseline
            result.test = f"{self.nodeid}@{result.profile.get('name') or len(self.results) + 1}"
        self.results.append(result)
        # Recorded first: whatever the comparison does next, the run stays in every report.
        self._session.results.setdefault(self.nodeid, []).append(result)
        if result.interrupted and result.extra.get("stop_reason") == "interrupted":
            self._session.orphan_results.append(result)
            try:
                self._session.write_result_files(result)  # the test gets no report: keep its partial results now
            except OSError as exc:
                result.extra["report_error"] = str(exc)
            raise KeyboardInterrupt(f"load run of {self.nodeid} interrupted; partial results kept")
        if not judge:
            return result
        comparison_error = None
        if not result.interrupted:
            try:
                self._session.compare_with_baseline(result)
            except Exception as exc:  # a corrupt baseline, or a comparison that cannot be made
                comparison_error = f"comparison with the baseline failed: {exc}"
                result.extra["regression_note"] = comparison_error
        from pytest_shopflow_perf.verdicts.assertions import check_declared

        check_declared(result, slos, self._tracked)
        if comparison_error is not None:
            pytest.fail(comparison_error, pytrace=False)
        return result


def _window_detail(slos: Sequence[Slo], profile: LoadProfile) -> int:
    """How many 1-second windows keep their buckets: enough for every declared phase, judged after the run.

    Declared ``over any`` spans are judged while the run goes, so they need no more.
    """
    import math

    from pytest_shopflow_perf.metrics.recorder import DETAIL_WINDOWS, WINDOW_S

    needed = DETAIL_WINDOWS
    for slo in slos:
        threshold = slo.threshold
        if threshold.stage is not None:
            start = sum(stage[0] for stage in profile.stages[: threshold.stage - 1])
        elif threshold.between is not None:
            start = threshold.between[0] * profile.scale
        else:
            continue
        needed = max(needed, math.ceil((profile.duration - start) / WINDOW_S) + 1)
    return needed


def _backend_options(event_loop: str) -> dict[str, Any]:
    """uvloop unless asked otherwise (``--perf-event-loop``): ~15 % more requests per core, measured."""
    __tracebackhide__ = hide_own_errors
    from pytest_shopflow_perf.engine.shards.runner import backend_options

    options = backend_options(event_loop)
    if event_loop == "uvloop" and not options:
        raise pytest.UsageError(
            "--perf-event-loop=uvloop: uvloop is not installed; pip install uvloop, or use auto/asyncio"
        )
    return options
