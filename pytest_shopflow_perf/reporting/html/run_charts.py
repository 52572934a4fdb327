"""The charts of one run as SVG, each with what it compares to.

- the HDR percentile distribution, the baseline's curve dashed over it;
- latency, throughput and the load applied (users, iterations in flight) over time, stages and
  faults shaded, the baseline's p50/p95 and req/s dashed;
- the target's CPU and RSS over time, when they were sampled (``result.resources``);
- latency over time per endpoint (small multiples) when the run has more than one;
- open model: latency from the intended start (corrected) against from the send (uncorrected);
- a capacity search (``result.extra["capacity"]``): latency and error rate against the level.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pytest_shopflow_perf.reporting.html.baseline_view import BaselineView
    from pytest_shopflow_perf.reporting.html.charts import Band
    from pytest_shopflow_perf.result.model import LoadResult, Stats


@dataclass(frozen=True)
class Chart:
    """One chart of a run: its kind (``data-chart`` in the page), the SVG, and a caption (what it lacks)."""

    kind: str
    svg: str
    caption: str = ""


def result_charts(result: LoadResult, baseline: BaselineView | None = None) -> list[Chart]:
    """Every chart of a run, as SVG markup."""
    charts = [percentile_svg(result, baseline), timeline_svg(result, baseline)]
    if result.resources is not None:
        charts.append(resources_svg(result))  # under the latency timeline: the same time axis
    if len(result.endpoints) > 1:
        charts.append(endpoints_svg(result))
    if result.model == "open" and result.uncorrected_histogram is not None:
        charts.append(correction_svg(result))
    if result.extra.get("capacity"):
        charts.append(capacity_svg(result.extra["capacity"]))
    return charts


def _curve(stats: Stats) -> list[tuple[float, float]]:
    from pytest_shopflow_perf.metrics.hdr import percentiles
    from pytest_shopflow_perf.reporting.html.charts import percentile_levels

    count = int(stats.histogram.get_total_count())
    if not count:
        return []
    levels = percentile_levels(count)
    values = percentiles(stats.histogram, levels)
    return [(q, values[q] / 1000.0) for q in levels]


def percentile_svg(result: LoadResult, baseline: BaselineView | None = None) -> Chart:
    from pytest_shopflow_perf.reporting.html.charts import Reference, percentile_chart

    series: dict[str, list[tuple[float, float]]] = {}
    busiest = sorted(result.endpoints.items(), key=lambda item: -item[1].requests)
    if len(busiest) == 1:
        busiest = []  # the same line as the total
    for name, stats in [("total", result), *busiest]:
        curve = _curve(stats)
        if curve:
            series[name if name not in series else f"{name} (endpoint)"] = curve
    references = []
    caption = ""
    if baseline is not None:
        if baseline.percentiles:
            references.append(Reference(f"total, {baseline.label}", baseline.percentiles, sparse=baseline.sparse))
        caption = _baseline_caption(baseline)
    svg = percentile_chart(series, title="Latency by percentile (HDR)", references=references)
    return Chart("percentiles", svg, caption)


def _baseline_caption(baseline: BaselineView) -> str:
    text = f"Dashed: {baseline.label}, {baseline.path}."
    return text + (
        " " + "; ".join(note[0].upper() + note[1:] for note in baseline.notes) + "." if baseline.notes else ""
    )


def _windows(result: LoadResult) -> tuple[list[int], list[float], list[float]]:
    """The windows drawn (indices into the total's series), their mid-times and widths (s)."""
    from pytest_shopflow_perf.metrics.recorder import WINDOW_S

    series = result.series
    kept: list[int] = []
    times: list[float] = []
    widths: list[float] = []
    for i, start in enumerate(series.t_s):
        width = min(WINDOW_S, result.duration - start) if result.duration > start else WINDOW_S
        if width < WINDOW_S / 2 and len(series.t_s) > 1:
            continue  # a sliver of a last window: a handful of requests would spike the lines
        kept.append(i)
        times.append(start + width / 2)
        widths.append(width)
    return kept, times, widths


def timeline_svg(result: LoadResult, baseline: BaselineView | None = None) -> Chart:
    from pytest_shopflow_perf.reporting.html.charts import PERCENTILE_COLORS, Reference, timeline_chart

    kept, times, widths = _windows(result)
    series = result.series
    latency: dict[str, list[float | None]] = {
        name: [values[i] or None for i in kept]  # 0: no successful request in the window
        for name, values in (("p50", series.p50_ms), ("p95", series.p95_ms), ("p99", series.p99_ms))
    }
    rps: list[float | None] = [series.count[i] / width for i, width in zip(kept, widths, strict=True)]
    errors: list[float | None] = [series.errors[i] / width for i, width in zip(kept, widths, strict=True)]
    references: list[Reference] = []
    reference_rps = None
    caption = ""
    if baseline is not None:
        for name in ("p50", "p95"):
            points = baseline.timeline.get(name) or []
            if points:
                references.append(Reference(f"{name} baseline", points, color=_lighter(PERCENTILE_COLORS[name])))
        if baseline.timeline.get("rps"):
            reference_rps = Reference("req/s baseline", baseline.timeline["rps"], color="#74c476")
        caption = _baseline_caption(baseline)
    svg = timeline_chart(
        times,
        latency,
        rps,
        errors,
        stages=stage_bands(result.profile),
        faults=fault_bands(result),
        duration=result.duration,
        title="Latency, throughput and load over time",
        references=references,
        reference_rps=reference_rps,
        load=_load(result, kept),
    )
    return Chart("timeline", svg, caption)


def resources_svg(result: LoadResult) -> Chart:
    from pytest_shopflow_perf.reporting.html.resource_chart import resource_chart

    assert result.resources is not None
    resources = result.resources
    svg = resource_chart(
        resources, duration=result.duration, stages=stage_bands(result.profile), faults=fault_bands(result)
    )
    caption = "CPU in % of one core (200 % = two cores busy), RSS in MB (10^6 bytes), one sample a second."
    if resources.notes:
        caption += " Not read: " + "; ".join(resources.notes) + "."
    return Chart("resources", svg, caption)


def capacity_svg(record: Mapping[str, Any]) -> Chart:
    """A capacity search: each step a run of its own at one level; what the search found in the caption."""
    from pytest_shopflow_perf.reporting.capacity import capacity_caption
    from pytest_shopflow_perf.reporting.html.capacity_chart import capacity_chart

    return Chart("capacity", capacity_chart(record), capacity_caption(record))


def _lighter(color: str) -> str:
    """The colour halfway to white: the baseline's line of a figure, next to the figure's own."""
    red, green, blue = (int(color[i : i + 2], 16) for i in (1, 3, 5))
    return "#" + "".join(f"{(c + 255) // 2:02x}" for c in (red, green, blue))


def _load(result: LoadResult, kept: Sequence[int]) -> dict[str, list[float | None]]:
    """Users alive (closed model: active users; open model: workers) and iterations in flight, per window."""
    series = result.series
    load: dict[str, list[float | None]] = {}
    if len(series.users) == len(series.t_s) and len(series.users):
        label = "workers (VUs)" if result.model == "open" else "active users"
        load[label] = [series.users[i] for i in kept]
    if len(series.busy) == len(series.t_s) and len(series.busy):
        load["iterations in flight"] = [series.busy[i] for i in kept]
    return load


def endpoints_svg(result: LoadResult) -> Chart:
    from pytest_shopflow_perf.metrics.recorder import WINDOW_S
    from pytest_shopflow_perf.reporting.html.endpoint_charts import (
        MAX_ENDPOINT_PANELS,
        EndpointSeries,
        endpoint_timelines,
    )

    kept, times, _ = _windows(result)
    slot = {round(result.series.t_s[i] / WINDOW_S): n for n, i in enumerate(kept)}
    busiest = sorted(result.endpoints.items(), key=lambda item: (-item[1].requests, item[0]))
    panels = []
    for name, stats in busiest[:MAX_ENDPOINT_PANELS]:
        p50: list[float | None] = [None] * len(kept)
        p95: list[float | None] = [None] * len(kept)
        series = stats.series
        for i, start in enumerate(series.t_s):
            n = slot.get(round(start / WINDOW_S))
            if n is not None and series.p50_ms[i]:  # 0: no successful request in the window
                p50[n], p95[n] = series.p50_ms[i], series.p95_ms[i]
        panels.append(EndpointSeries(name, p50, p95, stats.requests, stats.errors))
    left_out = max(0, len(busiest) - MAX_ENDPOINT_PANELS)
    svg = endpoint_timelines(times, panels, duration=result.duration, left_out=left_out, faults=fault_bands(result))
    caption = f"The {MAX_ENDPOINT_PANELS} busiest of {len(busiest)} endpoints." if left_out else ""
    return Chart("endpoints", svg, caption)


def correction_svg(result: LoadResult) -> Chart:
    """Open model: the total's latency from the intended start against from the send (what omission hides)."""
    from pytest_shopflow_perf.reporting.html.charts import percentile_chart

    series = {
        "corrected: from the intended start": _curve(result),
        "uncorrected: from the send": _curve(result.uncorrected),
    }
    svg = percentile_chart(
        series, title="Open model: corrected vs uncorrected latency", total="corrected: from the intended start"
    )
    late = result.generator.late_iterations
    caption = (
        "Corrected latency counts from when each iteration was due (as the arrival schedule planned it); "
        "uncorrected from when its request was sent. A gap between them is time spent waiting for a free "
        f"virtual user: {late:,} iteration{'s' if late != 1 else ''} started late."
    )
    return Chart("correction", svg, caption)


def fault_bands(result: LoadResult) -> list[Band]:
    from pytest_shopflow_perf.reporting.html.charts import Band

    return [
        Band(float(f.get("start_s") or 0.0), float(f.get("end_s") or result.duration), str(f.get("name", "fault")))
        for f in result.extra.get("faults") or []
    ]


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
