"""``load.find_capacity``: each level of the search is a run of the test, judged by the search's SLOs.

A level runs the profile's duration with ``rate=level`` (open model, the default: arrivals keep
coming whether or not the service keeps up, so a limit shows as latency, never hides as
coordinated omission) or ``users=level``. The SLOs that can abort a run do so per step (a
broken level costs seconds, not the whole duration), a cool-down lets the service drain between
steps, and every step is a run in the reports. The answer is compared with the capacity stored
next to the test's baseline, and stored with ``--perf-save-baseline`` when the test passes.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import asdict, replace
from typing import TYPE_CHECKING, Any

from pytest_shopflow_perf._errors import hide_own_errors
from pytest_shopflow_perf.profile.units import parse_duration

if TYPE_CHECKING:
    from pytest_shopflow_perf.engine.engine import Hook
    from pytest_shopflow_perf.engine.journeys import JourneySpec
    from pytest_shopflow_perf.plugin.fixtures import LoadRunner
    from pytest_shopflow_perf.result.capacity import Capacity, CapacityStep
    from pytest_shopflow_perf.result.model import LoadResult
    from pytest_shopflow_perf.verdicts.slo.grammar import Slo

__all__ = ["find_capacity"]

MAX_STEP_GRACE_S = 5.0  # a step's abort waits at most this long (a third of its duration when shorter)


def _step_slo(slo: Slo, grace: float) -> Slo:
    """The same threshold, stopping its step once breached beyond recovery (where the grammar allows)."""
    from pytest_shopflow_perf.verdicts.slo.grammar import Slo

    threshold = slo.threshold
    if slo.abort or threshold.is_resource or threshold.kinds or threshold.op not in ("<", "<="):
        return slo
    return Slo(slo.expression, abort=True, grace=grace)


def find_capacity(
    runner: LoadRunner,
    journeys: JourneySpec,
    *,
    slo: Sequence[str | Slo] | None,
    start: float,
    max: float,
    model: str,
    factor: float,
    refine: int,
    cooldown: float | str,
    on_start: Hook | None,
    on_stop: Hook | None,
    overrides: dict[str, Any],
) -> Capacity:
    __tracebackhide__ = hide_own_errors
    from pytest_shopflow_perf.result.capacity import UNITS
    from pytest_shopflow_perf.verdicts.capacity.search import CapacityError, check_search, search

    check_search(model=model, start=start, max=max, factor=factor, refine=refine)
    slos = runner._slos(slo)
    if not slos:
        raise CapacityError(
            "find_capacity needs the SLOs that define 'sustained': slo=['p(95)<500ms', 'error_rate<1%'] "
            "(or declare them on the marker, @pytest.mark.slo or ini perf_slo)"
        )
    cooldown_s = parse_duration(cooldown, what="cooldown")
    for key in ("rate", "users"):
        if key in overrides:
            raise CapacityError(f"find_capacity({key}=...): the search sets the level itself (start= .. max=)")
    profile = runner._profile(dict(overrides))
    grace = min(MAX_STEP_GRACE_S, profile.duration / 3)
    step_slos = [_step_slo(s, grace) for s in slos]
    name = str(profile.name or runner.nodeid.rsplit("::", 1)[-1])
    unit = UNITS[model]
    ran: list[CapacityStep] = []

    def run_level(level: float) -> CapacityStep:
        if ran and cooldown_s > 0:
            time.sleep(cooldown_s)  # the service drains the last level's queues before the next
        shown = f"{level:g}"
        load = {"rate": level, "users": None} if model == "rate" else {"users": int(level), "rate": None}
        result = run_step(
            runner,
            journeys,
            on_start=on_start,
            on_stop=on_stop,
            slos=step_slos,
            overrides={**overrides, **load, "name": f"{name}: {shown} {unit}"},
        )
        step = judge_step(level, result, slos)
        ran.append(step)
        return step

    capacity = search(
        run_level,
        model=model,
        start=start,
        max=max,
        factor=factor,
        refine=refine,
        slo=tuple(s.expression for s in slos),
    )
    last = capacity.steps[-1].result
    environment = last.environment if last is not None else {}
    conditions = {"fingerprint": environment.get("fingerprint"), "step_duration_s": profile.duration}
    capacity = replace(capacity, conditions=conditions)
    capacity = replace(capacity, regression=runner._session.compare_capacity(runner.nodeid, capacity.to_dict()))
    if last is not None:
        last.extra["capacity"] = capacity.to_dict()  # the reports and the JSON show it with the last step
        last.extra["capacity_test"] = runner.nodeid
    return capacity


def run_step(
    runner: LoadRunner,
    journeys: JourneySpec,
    *,
    on_start: Hook | None,
    on_stop: Hook | None,
    slos: Sequence[Slo],
    overrides: dict[str, Any],
) -> LoadResult:
    """One level: a run of the test in every report, judged by the search (not by a baseline of its own)."""
    __tracebackhide__ = hide_own_errors
    return runner._run_sync(journeys, on_start, on_stop, None, None, overrides, slos, None, judge=False)


def judge_step(level: float, result: LoadResult, slos: Sequence[Slo]) -> CapacityStep:
    """Every SLO against the step's run (kept on it for the reports); aborted or breached: not sustained."""
    from pytest_shopflow_perf.reporting._format import slo_outcome
    from pytest_shopflow_perf.result.capacity import CapacityStep
    from pytest_shopflow_perf.verdicts.slo.evaluate import evaluate

    outcomes = evaluate(result, [s.threshold for s in slos])
    result.extra.setdefault("slo", []).extend(asdict(o) for o in outcomes)
    reason = str(result.extra.get("stop_reason", ""))
    aborted = reason.startswith("aborted")
    breaches = [slo_outcome(asdict(o)) for o in outcomes if not o.passed]
    if aborted and not breaches:
        breaches.append(f"load aborted early: {reason.removeprefix('aborted: ')}")
    saturated = bool(result.generator.saturated or result.lost_shards)
    return CapacityStep(
        level=level,
        passed=not breaches and not aborted,
        result=result,
        breaches=tuple(breaches),
        saturated=saturated,
        aborted=aborted,
    )
