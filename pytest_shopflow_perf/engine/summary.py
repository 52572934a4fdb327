"""A finished run's recorder folded into the ``Stats`` of every endpoint and of the total.

The total merges the endpoints' histograms (latency, uncorrected, failed, connect
and pool wait) and adds the errors of events that are not requests.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from pytest_shopflow_perf.metrics.hdr import mean_us, new_histogram, percentiles
from pytest_shopflow_perf.result.model import Stats

if TYPE_CHECKING:
    from hdrh.histogram import HdrHistogram

    from pytest_shopflow_perf.metrics.recorder import Recorder


def _setup_figures(connect: HdrHistogram | None, wait: HdrHistogram | None) -> dict[str, float]:
    """Mean, p95 and max of connect and pool wait, only for what was measured."""
    figures: dict[str, float] = {}
    for prefix, histogram in (("connect_ms", connect), ("wait_ms", wait)):
        if histogram is not None and histogram.get_total_count():
            figures[f"{prefix}_mean"] = round(mean_us(histogram) / 1000, 3)
            figures[f"{prefix}_p95"] = percentiles(histogram, [95.0])[95.0] / 1000
            figures[f"{prefix}_max"] = round(histogram.get_max_value() / 1000, 3)
    return figures


def summarize(recorder: Recorder, duration: float, *, open_model: bool) -> tuple[dict[str, Stats], Stats]:
    """The per-endpoint ``Stats`` (by name) and the total over all of them, for a run of ``duration`` seconds."""
    endpoints: dict[str, Stats] = {}
    total_hist = new_histogram()
    total_raw = new_histogram() if open_model else None
    total_connect: HdrHistogram | None = None
    total_wait: HdrHistogram | None = None
    total_failed: HdrHistogram | None = None
    errors_by_kind: dict[str, int] = {}
    for name, recorded in recorder.endpoints.items():
        if recorded.failed_hist is not None:
            total_failed = total_failed or new_histogram()
            total_failed.add(recorded.failed_hist)
        if recorded.connect_hist is not None:
            total_connect = total_connect or new_histogram()
            total_connect.add(recorded.connect_hist)
        if recorded.wait_hist is not None:
            total_wait = total_wait or new_histogram()
            total_wait.add(recorded.wait_hist)
        endpoints[name] = Stats(
            name=name,
            requests=recorded.requests,
            errors=recorded.errors,
            errors_by_kind=recorded.errors_by_kind,
            histogram=recorded.hist,
            series=recorded.series,
            duration=duration,
            uncorrected=recorded.raw_hist,
            failed=recorded.failed_hist,
            setup=_setup_figures(recorded.connect_hist, recorded.wait_hist),
        )
        total_hist.add(recorded.hist)
        if total_raw is not None and recorded.raw_hist is not None:
            total_raw.add(recorded.raw_hist)
        for kind, count in recorded.errors_by_kind.items():
            errors_by_kind[kind] = errors_by_kind.get(kind, 0) + count
    for event in recorder.events.values():
        for kind, count in event.errors_by_kind.items():
            errors_by_kind[kind] = errors_by_kind.get(kind, 0) + count
    request_errors = sum(stats.errors for stats in endpoints.values())
    total = Stats(
        name="total",
        requests=sum(stats.requests for stats in endpoints.values()),
        errors=request_errors + sum(event.errors for event in recorder.events.values()),
        errors_by_kind=errors_by_kind,
        histogram=total_hist,
        series=recorder.total_series,
        duration=duration,
        uncorrected=total_raw,
        failed=total_failed,
        request_errors=request_errors,
        setup=_setup_figures(total_connect, total_wait),
    )
    return endpoints, total
