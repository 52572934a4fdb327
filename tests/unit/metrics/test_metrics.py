"""Endpoint naming, window bookkeeping and flat memory of the recorder."""

from __future__ import annotations

import random
import tracemalloc

import pytest

from pytest_shopflow_perf.metrics.recorder import MAX_ENDPOINTS, OVERFLOW_ENDPOINT, Recorder, collapse_path


@pytest.mark.parametrize(
    ("path", "name"),
    [
        ("/api/products/123", "/api/products/{id}"),
        ("/api/orders/ord_8f3a2c9d/items/7", "/api/orders/{id}/items/{id}"),
        ("/api/users/3fa85f64-5717-4562-b3fc-2c963f66afa6", "/api/users/{id}"),
        ("/api/v1/products", "/api/v1/products"),
        ("/files/report2024", "/files/report2024"),
        ("/t/9f86d081884c7d659a2feaa0c55ad015", "/t/{id}"),
        ("/api/cart", "/api/cart"),
    ],
)
def test_ids_are_collapsed_and_names_kept(path, name) -> None:
    assert collapse_path(path) == name


def test_windows_close_per_second_and_keep_only_figures() -> None:
    recorder = Recorder(open_model=False, start=100.0)
    for i in range(300):
        recorder.record("GET /a", 0.010 + (i % 10) / 1000, 100.0 + i / 100, "HTTP 500" if i % 50 == 0 else None)
    recorder.finish(103.0)
    series = recorder.total_series
    assert list(series.t_s) == [0.0, 1.0, 2.0]
    assert list(series.count) == [100, 100, 100]
    assert list(series.errors) == [2, 2, 2]
    assert series.p50_ms[0] == pytest.approx(15.0, abs=0.02)  # of the 98 successes per window
    assert recorder.endpoints["GET /a"].requests == 300


def test_failed_requests_keep_their_own_latency() -> None:
    """Fast failures mixed into the percentiles made an outage look faster (p95 1.3 ms)."""
    from pytest_shopflow_perf.metrics.hdr import percentiles

    recorder = Recorder(open_model=False, start=0.0)
    for i in range(100):
        recorder.record("GET /a", 0.200, 0.001 * i, None)
        recorder.record("GET /a", 0.001, 0.001 * i, "connect")
    endpoint = recorder.endpoints["GET /a"]
    assert endpoint.requests == 200
    assert endpoint.errors == 100
    assert percentiles(endpoint.hist, [5.0])[5.0] >= 199_000  # successes only
    assert endpoint.failed_hist is not None
    assert percentiles(endpoint.failed_hist, [95.0])[95.0] <= 1_001


def test_endpoint_cardinality_is_capped() -> None:
    recorder = Recorder(open_model=False, start=0.0)
    for i in range(MAX_ENDPOINTS + 50):
        recorder.record(f"GET /unique/{i}", 0.001, 0.5, None)
    assert len(recorder.endpoints) == MAX_ENDPOINTS + 1  # the first 200 names, then one bucket
    assert recorder.endpoints[OVERFLOW_ENDPOINT].requests == 50


def test_memory_stays_flat_over_a_long_run() -> None:
    """A simulated hour (3,600 windows, 5 endpoints): only per-window figures accumulate."""
    rng = random.Random(1)
    recorder = Recorder(open_model=True, start=0.0)

    def simulate(start_s: int, end_s: int) -> None:
        for second in range(start_s, end_s):
            for k in range(20):
                recorder.record(f"GET /e{k % 5}", rng.lognormvariate(-3, 0.5), second + k / 20, None, 0.001)

    simulate(0, 60)
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    simulate(60, 3600)
    grown = tracemalloc.get_traced_memory()[0] - before
    tracemalloc.stop()
    # 3,540 windows x 6 series (5 endpoints + total): 8 figures x 8 bytes (~1.4 MB) plus the
    # packed non-zero buckets of each window (~2 MB); a live histogram per window would be
    # 6 x 188 KB x 3,540 = 4 GB.
    assert grown < 6_000_000
    assert len(recorder.total_series.t_s) == 3599


def _soak(windows: int, detail: int) -> Recorder:
    """1,000 requests a second over 10 endpoints, lognormal latencies: realistic bucket counts."""
    import random

    rng = random.Random(7)
    recorder = Recorder(open_model=False, start=0.0, detail=detail)
    for window in range(windows):
        for i in range(1000):
            recorder.record(f"GET /e{i % 10}", rng.lognormvariate(-5.0, 0.6), window + i / 1000, None)
    recorder.finish(float(windows))
    return recorder


def _held(recorder: Recorder) -> int:
    return recorder.total_series.snapshot_bytes + sum(e.series.snapshot_bytes for e in recorder.endpoints.values())


def test_window_buckets_stay_flat_over_a_soak() -> None:
    """Each window kept its buckets for the whole run: ~16 KiB a second, 57 MiB an hour at this load (B11)."""
    short, long = _soak(120, detail=30), _soak(240, detail=30)
    per_window = _held(_soak(30, detail=None)) / 30
    growth = (_held(long) - _held(short)) / 120
    assert per_window > 5_000  # what every window cost before: several KiB
    assert growth < per_window / 20  # now: old windows share one merged set of buckets (it fills in slowly)


def test_spans_over_merged_windows_are_exact_or_refused() -> None:
    import pytest

    from pytest_shopflow_perf.metrics.hdr import merge_snapshots
    from pytest_shopflow_perf.metrics.recorder import CoarsenedError

    coarse, full = _soak(120, detail=30), _soak(120, detail=None)
    series, exact = coarse.endpoints["GET /e3"].series, full.endpoints["GET /e3"].series
    # from the start of the run: the merged windows plus the recent ones, exactly
    assert (merge_snapshots(series.span_snapshots(0, 120)) == merge_snapshots(exact.span_snapshots(0, 120))).all()
    assert (merge_snapshots(series.span_snapshots(100, 110)) == merge_snapshots(exact.span_snapshots(100, 110))).all()
    with pytest.raises(CoarsenedError, match="declare the threshold on the marker"):
        series.span_snapshots(10, 20)
