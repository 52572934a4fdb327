"""How a run went through a fault: the band before it, the damage during it, the time to get back.

Computed from the 1-second timeline of the whole run (total p95 and error rate
per window), for every fault window ``[start_s, end_s)``:

* **band**: the windows of the ``BAND_WINDOWS`` seconds before the fault set the
  normal range: p95 up to ``max(1.5 x their median p95, median + 10 ms)`` and an
  error rate up to ``their error rate + 1 %``.
* **degradation**: the worst window p95 during the fault relative to the
  median before it, and the error rate over the fault.
* **recovery time**: from the end of the fault to the start of the first of
  ``CONSECUTIVE`` windows in a row that are back within the band (windows
  without requests do not count as healthy); ``None`` when the run ended first.
  A window that starts before the fault ends but is healthy cannot count: the
  fault was still on.
"""

from __future__ import annotations

import statistics
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pytest_shopflow_perf.result.model import LoadResult, TimelineWindow

BAND_WINDOWS = 10
CONSECUTIVE = 3
P95_BAND_FACTOR = 1.5
P95_BAND_MIN_S = 0.010
ERROR_BAND = 0.01


def _error_rate(windows: Sequence[TimelineWindow]) -> float:
    requests = sum(w.count for w in windows)
    errors = sum(w.errors for w in windows)
    return errors / requests if requests else (1.0 if errors else 0.0)


def measure(result: LoadResult, faults: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """One entry per fault (``{"name", "start_s", "end_s", ...}``): band, degradation, recovery time."""
    timeline = result.timeline
    entries = []
    for fault in faults:
        start = float(fault["start_s"])
        end = float(fault["end_s"]) if fault.get("end_s") is not None else result.duration
        before = [w for w in timeline if start - BAND_WINDOWS <= w.t and w.t + 1 <= start and w.count]
        during = [w for w in timeline if w.t + 1 > start and w.t < end]
        entry: dict[str, Any] = {"name": fault.get("name", fault.get("kind", "fault")), "start_s": start, "end_s": end}
        if not before:
            entry["note"] = "no traffic before the fault: no band to recover to"
            entries.append(entry)
            continue
        median_p95 = statistics.median(w.p95 for w in before)
        p95_limit = max(P95_BAND_FACTOR * median_p95, median_p95 + P95_BAND_MIN_S)
        error_limit = _error_rate(before) + ERROR_BAND
        entry["band"] = {"p95_ms": round(p95_limit * 1000, 3), "error_rate": round(error_limit, 6)}
        entry["baseline"] = {"p95_ms": round(median_p95 * 1000, 3), "error_rate": round(_error_rate(before), 6)}
        busy = [w for w in during if w.count]
        worst_p95 = max((w.p95 for w in busy), default=0.0)
        entry["during"] = {
            "p95_ms": round(worst_p95 * 1000, 3),
            "p95_change": round(worst_p95 / median_p95 - 1, 4) if median_p95 > 0 else None,
            "error_rate": round(_error_rate(during), 6),
            "worst_window_error_rate": round(max((w.error_rate for w in during), default=0.0), 6),
            "requests": sum(w.count for w in during),
        }
        after = [w for w in timeline if w.t >= end - 1e-9]
        healthy = [w.count > 0 and w.p95 <= p95_limit and w.error_rate <= error_limit for w in after]
        recovery = None
        for i in range(len(after) - CONSECUTIVE + 1):
            if all(healthy[i : i + CONSECUTIVE]):
                recovery = max(0.0, after[i].t - end)
                break
        entry["recovery_s"] = round(recovery, 3) if recovery is not None else None
        entry["recovered"] = recovery is not None
        entries.append(entry)
    return entries


def annotate(result: LoadResult) -> None:
    """Put the recovery from each fault window the run recorded (``extra["faults"]``) on the result."""
    if result.extra.get("faults"):
        result.extra["recovery"] = measure(result, result.extra["faults"])
