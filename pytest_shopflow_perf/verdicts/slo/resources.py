"""The SLO metrics of the target's resources: ``target_cpu`` (mean), ``target_rss`` (max), ``gauge(NAME)`` (max).

They read ``result.resources`` (the sampler's 1-second samples), scoped as request metrics are:
the whole run, a stage, ``during START..END``, or the worst of every ``over any`` span. A run
without samples cannot hold them: that is an ``SloError`` naming how to get samples, never a pass.
"""

from __future__ import annotations

import difflib
import math
from typing import TYPE_CHECKING

from pytest_shopflow_perf.verdicts.slo.grammar import SloError, Threshold

if TYPE_CHECKING:
    from pytest_shopflow_perf.result.model import LoadResult
    from pytest_shopflow_perf.result.resources import Resources

__all__ = ["judge_resources"]

NO_RESOURCES = (
    "no resources of the target were sampled in this run: the embedded ShopFlow service is sampled by itself; "
    "for another target give --perf-target-pid PID (a process on this machine) or --perf-metrics-url URL "
    "(its Prometheus /metrics)"
)


def value_of(resources: Resources, threshold: Threshold) -> tuple[float, str]:
    """The metric on these samples, or why there is none (no sample carried it)."""
    if threshold.metric == "target_cpu":
        if not resources.has("cpu_percent"):
            return 0.0, "the target's CPU was not measured"
        return resources.cpu_percent_mean / 100.0, ""
    if threshold.metric == "target_rss":
        if not resources.has("rss_mb"):
            return 0.0, "the target's RSS was not measured"
        return resources.rss_mb_max, ""
    name = threshold.metric[len("gauge(") : -1]
    value = resources.gauge_max(name)
    return (value, "") if value is not None else (0.0, f"no sample had the gauge {name}")


def _check_gauge_name(resources: Resources, threshold: Threshold) -> None:
    """A gauge the whole run never scraped is a misspelling or a missing series: said with the names there are."""
    if not threshold.metric.startswith("gauge("):
        return
    name = threshold.metric[len("gauge(") : -1]
    names = resources.gauge_names()
    if name in names:
        return
    close = difflib.get_close_matches(name, names, n=1, cutoff=0.5)
    hint = f"did you mean {close[0]!r}? " if close else ""
    shown = ", ".join(names[:30]) + (", ..." if len(names) > 30 else "")
    raise SloError(
        f"{threshold.text!r}: no gauge {name!r} in what {resources.source or 'the target'} exposed; {hint}"
        f'gauges: {shown or "none"} (a labelled series reads gauge(name{{label="value"}}))'
    )


def judge_resources(
    result: LoadResult, threshold: Threshold, start: float, end: float
) -> tuple[float, float | None, str]:
    """(measured, start of the worst span or None, why nothing could be judged) over ``[start, end)``."""
    resources = result.resources
    if resources is None:
        raise SloError(f"{threshold.text!r}: {NO_RESOURCES}")
    _check_gauge_name(resources, threshold)
    scoped = resources if (start <= 0 and math.isinf(end)) else resources.between(start, end)
    if not scoped.samples:
        return 0.0, None, "no resource sample in that scope"
    if threshold.span is None:
        value, note = value_of(scoped, threshold)
        return value, (start if start > 0 or not math.isinf(end) else None), note
    worst: tuple[float, float] | None = None
    notes = []
    starts = sorted({float(s["t_s"]) for s in scoped.samples})
    last = starts[-1]
    # spans of ``span`` seconds starting at each sample; the last ones shorter than the span only if no full one
    candidates = [t for t in starts if t + threshold.span <= last + 1e-9] or starts[:1]
    for at in candidates:
        value, note = value_of(scoped.between(at, at + threshold.span), threshold)
        if note:
            notes.append(note)
            continue
        if worst is None or value > worst[0]:
            worst = (value, at)
    if worst is None:
        return 0.0, None, notes[0] if notes else "no resource sample in that scope"
    return worst[0], worst[1], ""
