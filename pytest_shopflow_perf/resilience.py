"""Faults inside a load run: the proxy for network faults, the scheduler for dependency faults.

A :class:`FaultRun` wraps one run: it puts the fault proxy between the engine
and the target when the plan has network faults, starts both schedules on the
run's clock, stops them whatever happens (failure, Ctrl-C), and afterwards
annotates the result with the fault windows and the measured recovery.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from types import TracebackType
from typing import TYPE_CHECKING, Any

from .schedule import Action, Scheduler

if TYPE_CHECKING:
    from .faults import Fault, FaultProxy
    from .result import LoadResult
    from .target import TargetPolicy


class FaultPlan:
    """The faults of a test: from the marker (``faults=[...]``) and the ``faults`` fixture."""

    def __init__(self, faults: Iterable[object] = ()) -> None:
        self.items: list[Fault | Action] = []
        self.proxy: FaultProxy | None = None  # while a run with network faults is going on
        self.add(*faults)

    def add(self, *faults: object) -> FaultPlan:
        from .faults import Fault

        for fault in faults:
            if not isinstance(fault, (Fault, Action)):
                raise TypeError(
                    f"{fault!r} is not a fault: use latency(), errors(), resets(), timeouts(), bandwidth(), "
                    "outage() from pytest_shopflow_perf.faults or action() from pytest_shopflow_perf.schedule"
                )
            self.items.append(fault)
        return self

    def clear(self) -> None:
        self.items.clear()


class FaultRun:
    """One run's faults; a context manager so that nothing outlives the run."""

    def __init__(self, faults: Sequence[Fault | Action], *, policy: TargetPolicy | None = None) -> None:
        self.faults = list(faults)
        self.policy = policy  # where the proxy may connect upstream; None: loopback only
        self.actions = [f for f in self.faults if isinstance(f, Action)]
        self.network = [f for f in self.faults if not isinstance(f, Action)]
        self.scheduler = Scheduler(self.actions)
        self.proxy: FaultProxy | None = None

    def route(self, upstream: str, *, in_process: bool = False) -> str:
        """The URL the engine must use: the proxy's when there are network faults."""
        if not self.network:
            return upstream
        if in_process:
            raise ValueError("network faults need a real target (a proxy cannot sit in front of app=...)")
        from .faults import FaultProxy

        self.proxy = FaultProxy(upstream, policy=self.policy)
        return self.proxy.start()

    def clock_started(self, t0: float) -> None:
        if self.proxy is not None:
            self.proxy.begin(self.network, start=t0)
        self.scheduler.begin(t0)

    def __enter__(self) -> FaultRun:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, value: BaseException | None, traceback: TracebackType | None
    ) -> None:
        try:
            self.scheduler.stop()
        finally:
            if self.proxy is not None:
                self.proxy.stop()

    def annotate(self, result: LoadResult) -> None:
        if not self.faults:
            return
        from .recovery import measure

        windows: list[dict[str, Any]] = []
        for fault in self.faults:
            entry = fault.to_dict()
            if entry.get("end_s") is None:
                entry["end_s"] = round(result.duration, 3)
            windows.append(entry)
        result.extra["faults"] = windows
        result.extra["recovery"] = measure(result, windows)
        if self.scheduler.errors:
            result.extra["fault_errors"] = list(self.scheduler.errors)
        if self.proxy is not None:
            result.extra["proxy"] = dict(self.proxy.stats)
