"""Charts of a load run as small SVG strings, drawn from plain data (no pytest, no pytest-html).

The SVG is meant to be embedded inline in an HTML page: no XML prologue, no
metadata, no global ``<style>``, text kept as text (``svg.fonttype = "none"``,
no embedded glyphs), and element ids salted per chart so several charts can
share a page. matplotlib is imported lazily and used through ``Figure``
directly (the Agg-family canvas of the SVG backend): pyplot and the global
backend of the process are never touched.
"""

from __future__ import annotations

import io
import math
import re
import uuid
from collections.abc import Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, cast

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

TOTAL_COLOR = "#111111"
PERCENTILE_COLORS = {"p50": "#1f77b4", "p95": "#ff7f0e", "p99": "#7b3294"}
ENDPOINT_COLORS = (
    "#1f77b4",
    "#ff7f0e",
    "#2ca02c",
    "#d62728",
    "#9467bd",
    "#8c564b",
    "#e377c2",
    "#17becf",
    "#bcbd22",
    "#7f7f7f",
)
THROUGHPUT_COLOR = "#238b45"
BASELINE_COLOR = "#8c8c8c"
USERS_COLOR = "#6a51a3"
BUSY_COLOR = "#d94801"
ERROR_COLOR = "#d62728"
FAULT_COLOR = "#e41a1c"
STAGE_COLORS = ("#f2f2f2", "#ffffff")
# x = 1 / (1 - p): the HDR "percentile distribution" axis
PERCENTILE_TICKS: tuple[tuple[float, str], ...] = (
    (0.0, "0%"),
    (50.0, "50%"),
    (90.0, "90%"),
    (99.0, "99%"),
    (99.9, "99.9%"),
    (99.99, "99.99%"),
    (99.999, "99.999%"),
    (99.9999, "99.9999%"),
)
MAX_PERCENTILE_LINES = 9
_RC: dict[str, Any] = {
    "svg.fonttype": "none",
    "font.family": "sans-serif",
    "font.sans-serif": ["DejaVu Sans"],
    "font.size": 9.0,
    "axes.titlesize": 10.0,
    "axes.titleweight": "bold",
    "axes.titley": 1.0,  # fixed: placing titles automatically measures every axis (~20 ms a panel)
    "axes.titlepad": 4.0,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.grid": True,
    "grid.color": "#dddddd",
    "grid.linewidth": 0.6,
    "legend.fontsize": 8.0,
    "legend.frameon": False,
    "path.simplify": True,
    "text.parse_math": False,  # "$" in an endpoint name is a dollar, not mathtext
}
_FONT_STACK = "Helvetica, Arial, 'DejaVu Sans', sans-serif"


@dataclass(frozen=True)
class Reference:
    """A line to compare with, drawn dashed over a chart: the baseline (median of its runs), uncorrected latency.

    ``points`` are (x, y) in the chart's units: (percentile 0-100, ms) or (seconds into the run, value).
    A ``sparse`` reference has a few points only (a baseline without histogram): markers, straight lines.
    """

    label: str
    points: Sequence[tuple[float, float]]
    color: str = BASELINE_COLOR
    sparse: bool = False


@dataclass(frozen=True)
class Band:
    """A shaded span of the time axis: a stage of the profile or a fault window (seconds into the run)."""

    start: float
    end: float
    label: str


# ---- percentile distribution --------------------------------------------------------------


def percentile_levels(count: int, points: int = 80) -> list[float]:
    """Percentiles (0-100) to sample a histogram of ``count`` values at, evenly spaced on the 1/(1-p) axis.

    The last level is the one of the slowest value (``1 - 1/count``): beyond it a
    histogram has nothing more to say. At least up to 99 % so short runs still span the ticks.
    """
    top = math.log10(min(max(float(count), 100.0), 1e7))
    levels = [100.0 * (1.0 - 10.0 ** (-top * i / (points - 1))) for i in range(points)]
    return sorted(set(levels))


def _percentile_x(percentile: float) -> float:
    return 1.0 / max(1.0 - percentile / 100.0, 1e-9)


def percentile_chart(
    series: Mapping[str, Sequence[tuple[float, float]]],
    *,
    title: str = "Latency by percentile",
    total: str = "total",
    references: Sequence[Reference] = (),
) -> str:
    """The HDR percentile distribution: one line per series of ``(percentile 0-100, latency ms)`` points.

    The x axis is ``1 / (1 - p)`` on a log scale, labelled 50 %, 90 %, 99 %,
    99.9 %, ...: the tail gets the room it deserves. The series named ``total``
    is drawn black and thicker. At most ``MAX_PERCENTILE_LINES`` series are
    drawn, in the given order (put the busiest first); the title says how many were left out.
    ``references`` are drawn dashed over them (the baseline's curve).
    """
    with chart_style():
        return _percentile_chart(series, title=title, total=total, references=references)


def _percentile_chart(
    series: Mapping[str, Sequence[tuple[float, float]]], *, title: str, total: str, references: Sequence[Reference]
) -> str:
    from matplotlib.ticker import FixedLocator, NullLocator

    named = [(name, [(p, v) for p, v in points if 0.0 <= p < 100.0]) for name, points in series.items()]
    named = [(name, points) for name, points in named if points]
    shown = named[:MAX_PERCENTILE_LINES]
    if total in dict(named) and total not in dict(shown):
        shown = [*shown[:-1], (total, dict(named)[total])]
    left_out = len(named) - len(shown)
    lines = len(shown) + sum(1 for reference in references if reference.points)
    legend_rows = math.ceil(lines / 3)
    height = 3.5 + 0.2 * legend_rows
    figure = new_figure(7.2, height)
    ax = figure.add_subplot()
    figure.subplots_adjust(left=0.085, right=0.98, top=1 - 0.4 / height, bottom=(0.62 + 0.2 * legend_rows) / height)
    x_max = 10.0
    y_max = 0.0
    for index, (name, points) in enumerate(shown):
        xs = [_percentile_x(p) for p, _ in points]
        ys = [v for _, v in points]
        x_max = max(x_max, *xs)
        y_max = max(y_max, *ys)
        is_total = name == total
        ax.plot(
            xs,
            ys,
            label=legend_label(name),
            color=TOTAL_COLOR if is_total else ENDPOINT_COLORS[index % len(ENDPOINT_COLORS)],
            linewidth=2.2 if is_total else 1.4,
            zorder=3 if is_total else 2,
            drawstyle="steps-post",
        )
    drawn = len(shown)
    for reference in references:
        points = [(p, v) for p, v in reference.points if 0.0 <= p < 100.0]
        if not points:
            continue
        xs = [_percentile_x(p) for p, _ in points]
        ys = [v for _, v in points]
        x_max = max(x_max, *xs)
        y_max = max(y_max, *ys)
        ax.plot(
            xs,
            ys,
            label=legend_label(reference.label),
            color=reference.color,
            linewidth=1.6,
            linestyle="--",
            zorder=4,
            marker="o" if reference.sparse else None,
            markersize=3.5,
            drawstyle="default" if reference.sparse else "steps-post",
        )
        drawn += 1
    ax.set_xscale("log")
    ticks = [(x, label) for p, label in PERCENTILE_TICKS if (x := _percentile_x(p)) <= x_max * 1.0001]
    ax.xaxis.set_major_locator(FixedLocator([x for x, _ in ticks]))
    ax.xaxis.set_minor_locator(NullLocator())
    ax.set_xticklabels([label for _, label in ticks])
    ax.set_xlim(1.0, x_max)
    ax.set_ylim(0.0, y_max * 1.08 if y_max > 0 else 1.0)
    ax.set_xlabel("percentile")
    ax.set_ylabel("latency (ms)")
    more = f" ({left_out} more not shown)" if left_out else ""
    figure.suptitle(title + more, x=0.01, y=1 - 0.04 / height, ha="left", va="top")
    if drawn:
        figure.legend(loc="lower center", bbox_to_anchor=(0.5, 0.0), ncols=min(drawn, 3))
    if not shown:
        _no_data(ax)
    return to_svg(figure)


# ---- over time ----------------------------------------------------------------------------


def timeline_chart(
    t_s: Sequence[float],
    latency_ms: Mapping[str, Sequence[float | None]],
    rps: Sequence[float | None],
    errors_per_s: Sequence[float | None],
    *,
    stages: Sequence[Band] = (),
    faults: Sequence[Band] = (),
    title: str = "Latency and throughput over time",
    duration: float | None = None,
    references: Sequence[Reference] = (),
    reference_rps: Reference | None = None,
    load: Mapping[str, Sequence[float | None]] | None = None,
) -> str:
    """Panels over the run's time axis (seconds): latency lines (e.g. p50/p95/p99, ms), then req/s and errors/s,
    then (``load``) the users or iterations in flight.

    ``None`` (or NaN) values are gaps: a window without requests has no latency.
    ``stages`` are shaded in alternating greys with their label at the top,
    ``faults`` in red with their name, on every panel. ``references`` (latency, on
    their own time points) and ``reference_rps`` are drawn dashed: the baseline's lines.
    """
    with chart_style():
        return _timeline_chart(
            t_s,
            latency_ms,
            rps,
            errors_per_s,
            stages=stages,
            faults=faults,
            title=title,
            duration=duration,
            references=references,
            reference_rps=reference_rps,
            load=load or {},
        )


def _timeline_chart(
    t_s: Sequence[float],
    latency_ms: Mapping[str, Sequence[float | None]],
    rps: Sequence[float | None],
    errors_per_s: Sequence[float | None],
    *,
    stages: Sequence[Band],
    faults: Sequence[Band],
    title: str,
    duration: float | None,
    references: Sequence[Reference],
    reference_rps: Reference | None,
    load: Mapping[str, Sequence[float | None]],
) -> str:
    height = 5.8 if load else 4.8
    figure = new_figure(7.2, height)
    if load:
        top, bottom, users = figure.subplots(3, 1, sharex=True, height_ratios=[3, 2, 1.5])
        panels = [top, bottom, users]
    else:
        top, bottom = figure.subplots(2, 1, sharex=True, height_ratios=[3, 2])
        panels = [top, bottom]
    times = list(t_s)
    end = duration if duration is not None else (max(times) + 1.0 if times else 1.0)
    for ax in panels:
        _shade(ax, stages, faults, labels=ax is top)
    marker = "o" if len(times) <= 60 else None
    has_latency = False
    for name, values in latency_ms.items():
        ys = gaps(values)
        has_latency = has_latency or any(not math.isnan(y) for y in ys)
        top.plot(times, ys, label=name, color=PERCENTILE_COLORS.get(name), linewidth=1.4, marker=marker, markersize=2)
    for reference in references:
        _dashed(top, reference)
    top.set_ylabel("latency (ms)")
    top.set_ylim(bottom=0.0)
    if not has_latency:
        _no_data(top)
    errors = [0.0 if math.isnan(e) else e for e in gaps(errors_per_s)]
    bottom.plot(times, gaps(rps), label="req/s", color=THROUGHPUT_COLOR, linewidth=1.4, marker=marker, markersize=2)
    if reference_rps is not None:
        _dashed(bottom, reference_rps)
    bottom.set_ylabel("requests/s")
    bottom.set_ylim(bottom=0.0)
    panels[-1].set_xlabel("time into the run (s)")
    panels[-1].set_xlim(0.0, max(end, 1.0))
    handles, labels = top.get_legend_handles_labels()
    more_handles, more_labels = bottom.get_legend_handles_labels()
    if any(errors):
        # Their own scale: 1 % errors would be a flat line on the req/s axis.
        right = bottom.twinx()
        right.plot(
            times,
            errors,
            label="errors/s",
            color=ERROR_COLOR,
            linewidth=1.3,
            linestyle="--",
            marker=marker,
            markersize=2,
        )
        right.set_ylim(0.0, max(errors) * 1.15)
        right.set_ylabel("errors/s", color=ERROR_COLOR)
        right.tick_params(axis="y", colors=ERROR_COLOR)
        right.spines["right"].set_visible(True)
        right.spines["right"].set_color(ERROR_COLOR)
        right.grid(False)
        error_handles, error_labels = right.get_legend_handles_labels()
        more_handles += error_handles
        more_labels += error_labels
    if load:
        colors = (USERS_COLOR, BUSY_COLOR)
        for index, (name, values) in enumerate(load.items()):
            users.plot(times, gaps(values), label=name, color=colors[index % 2], linewidth=1.4, drawstyle="steps-mid")
        users.set_ylabel("concurrency")
        users.set_ylim(bottom=0.0)
        load_handles, load_labels = users.get_legend_handles_labels()
        more_handles += load_handles
        more_labels += load_labels
    handles += more_handles
    labels += more_labels
    if faults:
        from matplotlib.patches import Patch

        handles.append(Patch(facecolor=FAULT_COLOR, alpha=0.18))
        labels.append("fault")
    columns = min(len(labels), 5)
    legend_rows = math.ceil(len(labels) / columns) if labels else 0
    figure.subplots_adjust(
        left=0.085,
        right=0.9 if any(errors) else 0.98,
        top=1 - 0.5 / height,
        bottom=(0.5 + 0.2 * legend_rows) / height,
        hspace=0.12,
    )
    figure.suptitle(title, x=0.01, y=1 - 0.04 / height, ha="left", va="top")
    if labels:
        figure.legend(handles, labels, loc="lower center", bbox_to_anchor=(0.5, 0.0), ncols=columns)
    return to_svg(figure)


def _dashed(ax: Axes, reference: Reference) -> None:
    if not reference.points:
        return
    xs = [x for x, _ in reference.points]
    ys = [y for _, y in reference.points]
    ax.plot(xs, ys, label=legend_label(reference.label), color=reference.color, linewidth=1.3, linestyle="--", zorder=4)


def _shade(ax: Axes, stages: Sequence[Band], faults: Sequence[Band], *, labels: bool) -> None:
    transform = ax.get_xaxis_transform()
    for index, stage in enumerate(stages):
        ax.axvspan(stage.start, stage.end, color=STAGE_COLORS[index % 2], zorder=0, linewidth=0)
        if labels and stage.label:
            ax.text(
                (stage.start + stage.end) / 2,
                1.0,
                stage.label,
                transform=transform,
                ha="center",
                va="bottom",
                fontsize=7.5,
                color="#666666",
                clip_on=False,
            )
    for fault in faults:
        ax.axvspan(fault.start, fault.end, color=FAULT_COLOR, alpha=0.18, zorder=1, linewidth=0)
        if labels and fault.label:
            ax.text(
                fault.start,
                0.97,
                " " + fault.label,
                transform=transform,
                ha="left",
                va="top",
                fontsize=7.5,
                color=FAULT_COLOR,
            )


# ---- plumbing -------------------------------------------------------------------------------


def gaps(values: Sequence[float | None]) -> list[float]:
    return [math.nan if v is None else float(v) for v in values]


def legend_label(name: str, width: int = 48) -> str:
    """A legend label: shortened, and never starting with "_" (matplotlib would leave it out)."""
    name = name if len(name) <= width else name[: width - 1] + "\u2026"
    return "\u200b" + name if name.startswith("_") else name


def _no_data(ax: Axes) -> None:
    ax.text(0.5, 0.5, "no requests", transform=ax.transAxes, ha="center", va="center", color="#999999")


def chart_style() -> AbstractContextManager[None]:
    """Our rcParams while a chart is drawn (artists read them when created) and saved."""
    import matplotlib

    rc: Any = {**_RC, "svg.hashsalt": uuid.uuid4().hex}
    return cast("AbstractContextManager[None]", matplotlib.rc_context(rc))


def new_figure(width: float, height: float) -> Figure:
    """A figure placed by hand (``subplots_adjust``): the constrained layout engine cost a third of a chart."""
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height))


def to_svg(figure: Figure) -> str:
    """The figure as inline-ready SVG markup (a few tens of KB)."""
    buffer = io.StringIO()
    figure.savefig(buffer, format="svg", metadata={"Date": None})
    return _inline(buffer.getvalue())


_PROLOGUE = re.compile(r"^.*?(?=<svg\b)", re.DOTALL)
_METADATA = re.compile(r"\s*<metadata>.*?</metadata>", re.DOTALL)
_GLOBAL_STYLE = re.compile(r"\s*<style[^>]*>\s*\*\s*\{[^}]*\}\s*</style>", re.DOTALL)
_FONT = re.compile(r"font-family: *[^;\"]*")
_ID = re.compile(r' id="([^"]+)"')
_REFERENCE = re.compile(r"#([\w.-]+)")


def _inline(svg: str) -> str:
    """Drop the XML prologue, metadata and the ``* {...}`` style that would leak into the host page."""
    svg = _PROLOGUE.sub("", svg, count=1)
    svg = _METADATA.sub("", svg, count=1)
    svg = _GLOBAL_STYLE.sub("", svg, count=1)
    svg = _FONT.sub(f"font-family: {_FONT_STACK}", svg)
    # Ids nothing refers to (figure_1, axes_1, ...) would repeat in every chart of a page.
    referenced = set(_REFERENCE.findall(svg))
    svg = _ID.sub(lambda match: match.group(0) if match.group(1) in referenced else "", svg)
    return svg.replace("<svg ", '<svg class="sfp-svg" stroke-linejoin="round" stroke-linecap="butt" ', 1).strip()
