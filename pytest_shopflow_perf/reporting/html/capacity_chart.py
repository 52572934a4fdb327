"""A capacity search as a chart: latency (p95, p99) and error rate against the level each step ran at.

Drawn from the search's plain record (``result.extra["capacity"]``): one point per step, green when
the level passed its SLOs, red when it did not (a cross when the generator saturated there: the
service was not what stopped it), and the max sustainable level as a dashed vertical line.
Geometric levels spread over a log axis, so the bisected ones near the limit stay apart.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from pytest_shopflow_perf.reporting.capacity import level_text
from pytest_shopflow_perf.reporting.html.charts import (
    ERROR_COLOR,
    PERCENTILE_COLORS,
    chart_style,
    new_figure,
    to_svg,
)

if TYPE_CHECKING:
    from matplotlib.axes import Axes

PASS_COLOR = "#1a9850"
FAIL_COLOR = "#d73027"
LIMIT_COLOR = "#555555"
MAX_LEVEL_TICKS = 8
LOG_SPAN = 8.0  # levels spanning this ratio or more go on a log axis


def _number(value: object) -> float:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else math.nan


def _points(steps: Sequence[Mapping[str, Any]], key: str, scale: float = 1.0) -> tuple[list[float], list[float]]:
    """(levels, values) sorted by level: the line through the steps (the order run is bisection's, not the axis')."""
    ordered = sorted(steps, key=lambda s: _number(s.get("level")))
    return [_number(s.get("level")) for s in ordered], [_number(s.get(key)) * scale for s in ordered]


def _group(step: Mapping[str, Any]) -> str:
    if step.get("passed"):
        return "passed"
    return "generator saturated" if step.get("saturated") else "failed"


GROUPS = (("passed", PASS_COLOR, "o"), ("failed", FAIL_COLOR, "o"), ("generator saturated", FAIL_COLOR, "X"))


def _markers(ax: Axes, steps: Sequence[Mapping[str, Any]], key: str, scale: float, *, labels: bool) -> None:
    for label, color, marker in GROUPS:
        chosen = [s for s in steps if _group(s) == label]
        if not chosen:
            continue
        ax.scatter(
            [_number(s.get("level")) for s in chosen],
            [_number(s.get(key)) * scale for s in chosen],
            color=color,
            marker=marker,
            s=28,
            zorder=3,
            label=label if labels else None,
        )


def _level_axis(ax: Axes, levels: Sequence[float], unit: str) -> None:
    known = sorted({x for x in levels if x > 0 and not math.isnan(x)})
    if len(known) >= 2 and known[-1] / known[0] >= LOG_SPAN:
        from matplotlib.ticker import NullFormatter, NullLocator

        ax.set_xscale("log")
        ax.xaxis.set_minor_locator(NullLocator())
        ax.xaxis.set_minor_formatter(NullFormatter())
    shown = known if len(known) <= MAX_LEVEL_TICKS else known[:: math.ceil(len(known) / MAX_LEVEL_TICKS)]
    if shown:
        ax.set_xticks(shown, [level_text(x) for x in shown])
        ax.set_xlim(shown[0] / 1.15 if ax.get_xscale() == "log" else 0.0, known[-1] * 1.1)
    ax.set_xlabel(f"level ({unit})")


def capacity_chart(record: Mapping[str, Any], *, title: str = "Capacity search: latency and errors by level") -> str:
    """Two panels over the level: p95/p99 (ms) above, error rate (%) below; the max sustainable dashed."""
    steps: Sequence[Mapping[str, Any]] = record.get("steps") or []
    unit = str(record.get("unit") or "level")
    best = record.get("max_sustainable")
    with chart_style():
        height = 4.4
        figure = new_figure(7.2, height)
        top, bottom = figure.subplots(2, 1, sharex=True, height_ratios=[3, 2])
        for name in ("p95", "p99"):
            levels, values = _points(steps, f"{name}_ms")
            top.plot(levels, values, label=name, color=PERCENTILE_COLORS[name], linewidth=1.3, zorder=2)
        _markers(top, steps, "p95_ms", 1.0, labels=True)
        _markers(top, steps, "p99_ms", 1.0, labels=False)
        top.set_ylabel("latency (ms)")
        top.set_ylim(bottom=0.0)
        levels, errors = _points(steps, "error_rate", 100.0)
        bottom.plot(levels, errors, label="errors", color=ERROR_COLOR, linewidth=1.3, linestyle="--", zorder=2)
        _markers(bottom, steps, "error_rate", 100.0, labels=False)
        bottom.set_ylabel("errors (%)")
        bottom.set_ylim(bottom=0.0, top=max([e for e in errors if not math.isnan(e)] + [1.0]) * 1.15)
        if best is not None:
            for ax in (top, bottom):
                ax.axvline(
                    float(best),
                    color=LIMIT_COLOR,
                    linestyle="--",
                    linewidth=1.2,
                    label=f"max sustainable {level_text(best)} {unit}" if ax is top else None,
                )
        _level_axis(bottom, levels, unit)
        handles, labels = top.get_legend_handles_labels()
        more_handles, more_labels = bottom.get_legend_handles_labels()
        handles += more_handles
        labels += more_labels
        columns = min(len(labels), 4) or 1
        rows = math.ceil(len(labels) / columns)
        figure.subplots_adjust(
            left=0.085, right=0.98, top=1 - 0.5 / height, bottom=(0.6 + 0.2 * rows) / height, hspace=0.12
        )
        figure.suptitle(title, x=0.01, y=1 - 0.04 / height, ha="left", va="top")
        if labels:
            figure.legend(handles, labels, loc="lower center", bbox_to_anchor=(0.5, 0.0), ncols=columns)
        return to_svg(figure)
