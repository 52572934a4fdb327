"""The charts of one run as SVG: HDR percentiles, and latency/throughput over time with stages and faults shaded."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pytest_shopflow_perf.reporting.html.charts import Band
    from pytest_shopflow_perf.result.model import LoadResult


def result_charts(result: LoadResult) -> list[str]:
    """The percentile distribution and the over-time chart of a run, as SVG markup."""
    return [percentile_svg(result), timeline_svg(result)]


def percentile_svg(result: LoadResult) -> str:
    from pytest_shopflow_perf.metrics.hdr import percentiles
    from pytest_shopflow_perf.reporting.html.charts import percentile_chart, percentile_levels

    series: dict[str, list[tuple[float, float]]] = {}
    busiest = sorted(result.endpoints.items(), key=lambda item: -item[1].requests)
    if len(busiest) == 1:
        busiest = []  # the same line as the total
    for name, stats in [("total", result), *busiest]:
        count = int(stats.histogram.get_total_count())
        if not count:
            continue
        levels = percentile_levels(count)
        values = percentiles(stats.histogram, levels)
        series[name if name not in series else f"{name} (endpoint)"] = [(q, values[q] / 1000.0) for q in levels]
    return percentile_chart(series, title="Latency by percentile (HDR)")


def timeline_svg(result: LoadResult) -> str:
    from pytest_shopflow_perf.metrics.recorder import WINDOW_S
    from pytest_shopflow_perf.reporting.html.charts import Band, timeline_chart

    times: list[float] = []
    latency: dict[str, list[float | None]] = {"p50": [], "p95": [], "p99": []}
    rps: list[float | None] = []
    errors: list[float | None] = []
    windows = result.timeline
    for window in windows:
        width = min(WINDOW_S, result.duration - window.t) if result.duration > window.t else WINDOW_S
        if width < WINDOW_S / 2 and len(windows) > 1:
            continue  # a sliver of a last window: a handful of requests would spike the lines
        times.append(window.t + width / 2)
        for name, value in (("p50", window.p50), ("p95", window.p95), ("p99", window.p99)):
            latency[name].append(value * 1000 if window.count else None)
        rps.append(window.count / width)
        errors.append(window.errors / width)
    faults = [
        Band(float(f.get("start_s") or 0.0), float(f.get("end_s") or result.duration), str(f.get("name", "fault")))
        for f in result.extra.get("faults") or []
    ]
    return timeline_chart(
        times,
        latency,
        rps,
        errors,
        stages=stage_bands(result.profile),
        faults=faults,
        duration=result.duration,
        title="Latency and throughput over time",
    )


def stage_bands(profile: Mapping[str, Any]) -> list[Band]:
    """The profile's stages as shaded spans (none for a single stage: there is nothing to tell apart)."""
    from pytest_shopflow_perf.reporting.html.charts import Band

    stages = profile.get("stages") or []
    if len(stages) < 2:
        return []
    unit = "/s" if profile.get("model") == "open" else " users"
    bands = []
    start = 0.0
    previous = float(profile.get("start") or 0.0)
    for duration, target in stages:
        end = start + float(duration)
        target = float(target)
        label = f"{previous:g}\u2192{target:g}{unit}" if target != previous else f"{target:g}{unit}"
        bands.append(Band(start, end, label))
        start, previous = end, target
    return bands
