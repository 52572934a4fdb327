"""Faults inside a load run: the proxy for network faults, the scheduler for dependency faults.

A :class:`FaultRun` wraps one run: it puts the fault proxy between the engine
and the target when the plan has network faults, starts both schedules on the
run's clock, stops them whatever happens (failure, Ctrl-C), and afterwards
annotates the result with the fault windows and the measured recovery.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Sequence
from types import TracebackType
from typing import TYPE_CHECKING, Any

from pytest_shopflow_perf.faults.actions import Action, Scheduler
from pytest_shopflow_perf.faults.spec import Fault, scale_window

if TYPE_CHECKING:
    from pytest_shopflow_perf.faults.proxy import FaultProxy
    from pytest_shopflow_perf.result.model import LoadResult
    from pytest_shopflow_perf.target.policy import TargetPolicy


class FaultPlan:
    """The faults of a test: from the marker (``faults=[...]``) and the ``faults`` fixture."""

    def __init__(self, faults: Iterable[object] = ()) -> None:
        self.items: list[Fault | Action] = []
        self.proxy: FaultProxy | None = None  # while a run with network faults is going on
        self.add(*faults)

    def add(self, *faults: object) -> FaultPlan:
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


def scaled(fault: Fault | Action, scale: float) -> Fault | Action:
    """A fault's window on a scaled run's clock: ``--perf-scale 0.25`` moves ``at="8s"`` to 2 s."""
    if scale == 1.0:
        return fault
    at, until = scale_window(fault.at, fault.until, scale)
    return dataclasses.replace(fault, at=at, until=until)


class FaultRun:
    """One run's faults; a context manager so that nothing outlives the run.

    Fault windows are stated on the profile's clock and scaled with it (``--perf-scale``), as
    stages and durations are; a fault that would start after the (scaled) run ends is refused:
    it would be reported as "did not recover" without ever having happened.
    """

    def __init__(
        self,
        faults: Sequence[Fault | Action],
        *,
        scale: float = 1.0,
        duration: float | None = None,
        seed: int = 0,
        policy: TargetPolicy | None = None,
    ) -> None:
        self.policy = policy  # where the proxy may connect upstream; None: loopback only
        self.seed = seed  # the proxy's ratio draws follow --perf-seed like the users' choices
        self.faults = [scaled(fault, scale) for fault in faults]
        if duration is not None:
            late = [f for f in self.faults if f.at >= duration]
            if late:
                names = ", ".join(f"{f.name!r} at {f.at:g} s" for f in late)
                scale_note = f" (after --perf-scale {scale:g})" if scale != 1.0 else ""
                raise ValueError(
                    f"fault {names} starts after the run ends at {duration:g} s{scale_note}: move it inside the run "
                    "or lengthen the run"
                )
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
        from pytest_shopflow_perf.faults.proxy import FaultProxy

        self.proxy = FaultProxy(upstream, seed=self.seed, policy=self.policy)
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
                try:
                    self.proxy.stop()
                except RuntimeError as exc:
                    if value is None:
                        raise
                    # the test's own failure is the one to show; the proxy's is kept beside it
                    if hasattr(value, "add_note"):  # Python 3.11+
                        value.add_note(f"while stopping the fault proxy: {exc}")

    def annotate(self, result: LoadResult) -> None:
        if not self.faults:
            return
        windows: list[dict[str, Any]] = []
        for fault in self.faults:
            entry = fault.to_dict()
            if entry.get("end_s") is None:
                entry["end_s"] = round(result.duration, 3)
            windows.append(entry)
        result.extra["faults"] = windows
        if self.scheduler.errors:
            result.extra["fault_errors"] = list(self.scheduler.errors)
        if self.proxy is not None:
            result.extra["proxy"] = dict(self.proxy.stats)
