"""The baseline's side of the overlay charts: the median of its runs, and what their records lack.

A baseline holds up to N run records (``shopflow-perf/run/1``): each has the HDR histogram of
its total (``total.hdr``) and its 1-second windows (``total.windows``). The overlay is their
pointwise median, so one odd run does not draw the line. Older or hand-made records may lack
the histogram or the windows: the view then carries what there is, and says what is missing.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from statistics import median
from typing import Any

SUMMARY_LEVELS = ((50.0, "p50_ms"), (90.0, "p90_ms"), (95.0, "p95_ms"), (99.0, "p99_ms"))
TIMELINE_FIGURES = ("p50", "p95", "p99")


@dataclass(frozen=True)
class BaselineView:
    """The median baseline: its total's percentile curve and its timeline, with notes on what it lacks."""

    path: str
    runs: int
    percentiles: list[tuple[float, float]]  # (percentile 0-100, ms)
    sparse: bool  # only the recorded p50..p99 of each run (no histogram): a few points, not a curve
    timeline: dict[str, list[tuple[float, float]]] = field(default_factory=dict)  # p50/p95/p99 ms, rps
    notes: list[str] = field(default_factory=list)

    @property
    def label(self) -> str:
        return f"baseline (median of {self.runs} run{'s' if self.runs != 1 else ''})"


def baseline_view(path: str, runs: Sequence[Mapping[str, Any]], levels: Sequence[float]) -> BaselineView | None:
    """The view of ``runs`` (the baseline's usable run records) at the percentile ``levels`` of the current run."""
    if not runs:
        return None
    notes: list[str] = []
    points, sparse = _percentiles(runs, levels, notes)
    timeline = _timeline(runs, notes)
    return BaselineView(path=path, runs=len(runs), percentiles=points, sparse=sparse, timeline=timeline, notes=notes)


def _percentiles(
    runs: Sequence[Mapping[str, Any]], levels: Sequence[float], notes: list[str]
) -> tuple[list[tuple[float, float]], bool]:
    from pytest_shopflow_perf.metrics.hdr import decode_histogram, percentiles

    curves: list[list[float]] = []
    for run in runs:
        encoded = (run.get("total") or {}).get("hdr")
        if not isinstance(encoded, str) or not encoded:
            continue
        try:
            histogram = decode_histogram(encoded)
        except Exception:  # a damaged histogram is a missing one: the summary figures remain
            continue
        if histogram.get_total_count():
            values = percentiles(histogram, list(levels))
            curves.append([values[q] / 1000.0 for q in levels])
    if curves:
        if len(curves) < len(runs):
            notes.append(f"{len(curves)} of its {len(runs)} runs keep a histogram: the curve is their median")
        return [(q, median(curve[i] for curve in curves)) for i, q in enumerate(levels)], False
    points = []
    for level, key in SUMMARY_LEVELS:
        figures = [float(v) for run in runs if isinstance(v := (run.get("total") or {}).get(key), (int, float))]
        if figures:
            points.append((level, median(figures)))
    if points:
        notes.append("its runs keep no histogram: the baseline curve joins their median p50, p90, p95 and p99")
    else:
        notes.append("its runs keep no percentiles of their total: no baseline curve")
    return points, True


def _timeline(runs: Sequence[Mapping[str, Any]], notes: list[str]) -> dict[str, list[tuple[float, float]]]:
    by_window: dict[int, dict[str, list[float]]] = {}
    with_windows = 0
    for run in runs:
        windows = (run.get("total") or {}).get("windows") or {}
        starts = windows.get("t_s") or []
        if not starts:
            continue
        with_windows += 1
        width_s = float(run.get("window_s") or 1.0)
        duration = float(run.get("duration_s") or 0.0)
        counts = windows.get("count") or [0] * len(starts)
        for i, start in enumerate(starts):
            width = min(width_s, duration - start) if duration > start else width_s
            if width < width_s / 2 and len(starts) > 1:
                continue  # a sliver of a last window: a handful of requests would spike the line
            bucket = by_window.setdefault(round(start / width_s), {name: [] for name in (*TIMELINE_FIGURES, "rps")})
            bucket["rps"].append(float(counts[i]) / width)
            for name in TIMELINE_FIGURES:
                series = windows.get(f"{name}_ms") or []
                if i < len(series) and series[i] and series[i] > 0:  # 0: no successful request in it
                    bucket[name].append(float(series[i]))
    if not with_windows:
        notes.append("its runs keep no timeline: only the percentile curve is overlaid")
        return {}
    if with_windows < len(runs):
        notes.append(f"{with_windows} of its {len(runs)} runs keep a timeline: the line is their median")
    width_s = float(runs[0].get("window_s") or 1.0)
    timeline: dict[str, list[tuple[float, float]]] = {name: [] for name in (*TIMELINE_FIGURES, "rps")}
    for index in sorted(by_window):
        for name, values in by_window[index].items():
            if values:
                timeline[name].append((index * width_s + width_s / 2, median(values)))
    return timeline
