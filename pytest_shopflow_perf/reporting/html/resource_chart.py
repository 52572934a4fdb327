"""The target's CPU and RSS over the run, on the time axis of the latency timeline above it.

Drawn from ``result.resources`` samples (one a second); stages and faults shaded as in the
timeline, so a latency climb can be read against the CPU or memory that came with it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from pytest_shopflow_perf.reporting.html.charts import chart_style, gaps, new_figure, to_svg

if TYPE_CHECKING:
    from pytest_shopflow_perf.reporting.html.charts import Band
    from pytest_shopflow_perf.result.resources import Resources

CPU_COLOR = "#b2182b"
RSS_COLOR = "#2166ac"


def _known(value: object) -> float | None:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def resource_chart(
    resources: Resources, *, duration: float, stages: Sequence[Band] = (), faults: Sequence[Band] = ()
) -> str:
    """Two panels: CPU (% of one core) and RSS (MB) per sample."""
    from pytest_shopflow_perf.reporting.html.charts import _shade

    times = [float(sample["t_s"]) for sample in resources.samples]
    cpu = gaps([_known(sample.get("cpu_percent")) for sample in resources.samples])
    rss = gaps([_known(sample.get("rss_mb")) for sample in resources.samples])
    with chart_style():
        height = 3.4
        figure = new_figure(7.2, height)
        top, bottom = figure.subplots(2, 1, sharex=True)
        for ax in (top, bottom):
            _shade(ax, stages, faults, labels=ax is top)
        marker = "o" if len(times) <= 60 else None
        top.plot(times, cpu, color=CPU_COLOR, linewidth=1.4, marker=marker, markersize=2)
        top.set_ylabel("CPU (% of a core)")
        top.set_ylim(bottom=0.0)
        bottom.plot(times, rss, color=RSS_COLOR, linewidth=1.4, marker=marker, markersize=2)
        bottom.set_ylabel("RSS (MB)")
        bottom.set_xlabel("time into the run (s)")
        bottom.set_xlim(0.0, max(duration, 1.0))
        figure.subplots_adjust(left=0.085, right=0.98, top=1 - 0.5 / height, bottom=0.55 / height, hspace=0.15)
        title = f"Target resources: {resources.source}" if resources.source else "Target resources"
        figure.suptitle(title, x=0.01, y=1 - 0.04 / height, ha="left", va="top")
        return to_svg(figure)
