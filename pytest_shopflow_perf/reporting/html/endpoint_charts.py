"""Latency over time per endpoint as small multiples: one small panel each, the busiest first, one figure.

One figure of N axes costs far less than N figures (the SVG backend's fixed cost per figure
dominates), and a shared time axis lets the eye line up a slow second across endpoints.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from pytest_shopflow_perf.reporting.html.charts import (
    ERROR_COLOR,
    FAULT_COLOR,
    PERCENTILE_COLORS,
    Band,
    chart_style,
    gaps,
    legend_label,
    new_figure,
    to_svg,
)

MAX_ENDPOINT_PANELS = 8


@dataclass(frozen=True)
class EndpointSeries:
    """One endpoint's windows on the run's time points: ``None`` where it had no successful request."""

    name: str
    p50: Sequence[float | None]
    p95: Sequence[float | None]
    requests: int
    errors: int


def endpoint_timelines(
    t_s: Sequence[float],
    endpoints: Sequence[EndpointSeries],
    *,
    duration: float,
    left_out: int = 0,
    faults: Sequence[Band] = (),
    title: str = "Latency over time by endpoint",
) -> str:
    """p50 and p95 (ms) of each endpoint over the run, a panel each (at most ``MAX_ENDPOINT_PANELS``)."""
    with chart_style():
        return _endpoint_timelines(t_s, endpoints[:MAX_ENDPOINT_PANELS], duration, left_out, faults, title)


def _endpoint_timelines(
    t_s: Sequence[float],
    endpoints: Sequence[EndpointSeries],
    duration: float,
    left_out: int,
    faults: Sequence[Band],
    title: str,
) -> str:
    from matplotlib.ticker import MaxNLocator

    columns = 2 if len(endpoints) > 1 else 1
    rows = max(1, math.ceil(len(endpoints) / columns))
    height = 1.0 + 1.55 * rows
    figure = new_figure(7.2, height)
    figure.subplots_adjust(left=0.09, right=0.98, top=1 - 0.42 / height, bottom=0.62 / height, hspace=0.62, wspace=0.2)
    axes = figure.subplots(rows, columns, sharex=True, squeeze=False)
    times = list(t_s)
    marker = "o" if len(times) <= 30 else None
    for index, endpoint in enumerate(endpoints):
        ax = axes[index // columns][index % columns]
        for fault in faults:
            ax.axvspan(fault.start, fault.end, color=FAULT_COLOR, alpha=0.18, zorder=1, linewidth=0)
        for name, values in (("p50", endpoint.p50), ("p95", endpoint.p95)):
            ax.plot(times, gaps(values), label=name, color=PERCENTILE_COLORS[name], linewidth=1.2, marker=marker,
                    markersize=1.8)  # fmt: skip
        ax.set_ylim(bottom=0.0)
        ax.yaxis.set_major_locator(MaxNLocator(4))
        ax.tick_params(labelsize=7.5)
        ax.set_title(legend_label(endpoint.name, 44), loc="left", fontsize=8.5)
        if endpoint.errors:
            share = 100.0 * endpoint.errors / endpoint.requests if endpoint.requests else 100.0
            ax.set_title(f"{share:.1f} % errors", loc="right", fontsize=7.5, color=ERROR_COLOR, fontweight="normal")
    for ax in axes[-1]:
        ax.set_xlabel("time into the run (s)")
    for index in range(len(endpoints), rows * columns):
        axes[index // columns][index % columns].set_visible(False)
        if index >= columns:  # the panel above is the last of its column: it shows the time axis
            above = axes[index // columns - 1][index % columns]
            above.tick_params(labelbottom=True)
            above.set_xlabel("time into the run (s)")
    axes[0][0].set_xlim(0.0, max(duration, 1.0))
    figure.supylabel("latency (ms)", fontsize=8.5, x=0.005)
    more = f" ({left_out} more not shown)" if left_out else ""
    figure.suptitle(title + more, x=0.01, y=1 - 0.06 / height, ha="left", va="top")
    handles, labels = axes[0][0].get_legend_handles_labels()
    figure.legend(handles, labels, loc="lower center", ncols=len(labels), bbox_to_anchor=(0.5, 0.0))
    return to_svg(figure)
