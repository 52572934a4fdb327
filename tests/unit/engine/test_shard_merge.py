"""Merged shards are one run: the same percentiles as one histogram of every request, exactly."""

from __future__ import annotations

import random

import pytest
from support.engine import profile

from pytest_shopflow_perf.engine.shards.merge import merge_extras, merged_result
from pytest_shopflow_perf.engine.shards.merged import MergedRecorder
from pytest_shopflow_perf.engine.shards.wire import ShardFinal, WindowCollector, final_histograms
from pytest_shopflow_perf.engine.summary import summarize
from pytest_shopflow_perf.metrics.recorder import Recorder
from pytest_shopflow_perf.result.model import GeneratorStats

QUANTILES = [0, 1, 10, 25, 50, 75, 90, 95, 99, 99.9, 100]
SECONDS = 6


def synthetic_run(shards: int, seed: int = 3):
    """The same requests recorded by ``shards`` recorders (dealt round-robin) and by one recorder."""
    rng = random.Random(seed)
    one = Recorder(open_model=True, start=0.0)
    parts = [Recorder(open_model=True, start=0.0) for _ in range(shards)]
    checks: list[dict[str, list[int]]] = [{} for _ in range(shards)]
    for i in range(4000):
        now = i * SECONDS / 4000
        name = rng.choice(["GET /a", "GET /b", "POST /c"])
        latency = rng.lognormvariate(-4, 1.0)
        lateness = rng.random() * 0.002 if rng.random() < 0.3 else 0.0
        error = "http 500" if rng.random() < 0.03 else None
        shard = i % shards
        for recorder in (one, parts[shard]):
            recorder.record(name, latency, now, error, lateness, connect_s=0.001 if i < 20 else 0.0)
        if rng.random() < 0.01:
            for recorder in (one, parts[shard]):
                recorder.record_error("check: cart has items", "check failed", now)
            checks[shard].setdefault("cart has items", [0, 0])[1] += 1
    for recorder in (one, *parts):
        recorder.finish(SECONDS)
        recorder.close_open_window()
    return one, parts, checks


def merge(parts: list[Recorder], checks: list[dict[str, list[int]]]) -> tuple[MergedRecorder, list[ShardFinal]]:
    merged = MergedRecorder(len(parts), open_model=True, detail=None)
    finals = []
    for index, (recorder, shard_checks) in enumerate(zip(parts, checks, strict=True)):
        batch = WindowCollector(recorder, shard_checks).batch(index, 0, 0.0)
        finals.append(
            ShardFinal(
                shard=index,
                batch=batch,
                histograms=final_histograms(recorder),
                generator=GeneratorStats(users_started=1, peak_users=1).to_dict(),  # type: ignore[arg-type]
                extra={},
                started_at="",
                elapsed_s=SECONDS,
            )
        )
        merged.absorb(batch)
    return merged, finals


@pytest.mark.parametrize("shards", [2, 3])
def test_merged_endpoint_and_total_percentiles_equal_one_histogram(shards: int):
    one, parts, checks = synthetic_run(shards)
    merged, finals = merge(parts, checks)
    result = merged_result(
        merged,
        dict(enumerate(finals)),
        {},
        profile=profile(rate=100, duration=f"{SECONDS}s"),
        workers=[f"local:{i}" for i in range(shards)],
        started_at="",
        stop_reason=None,
        base_url="http://127.0.0.1:1",
        test="t",
        environment={},
    )
    endpoints, total = summarize(one, SECONDS, open_model=True)
    for name, expected in [*endpoints.items(), ("total", total)]:
        got = result if name == "total" else result.endpoints[name]
        assert [got.percentile(q) for q in QUANTILES] == [expected.percentile(q) for q in QUANTILES], name
        assert [got.uncorrected.percentile(q) for q in QUANTILES] == [
            expected.uncorrected.percentile(q) for q in QUANTILES
        ]
        assert [got.failed.percentile(q) for q in QUANTILES] == [expected.failed.percentile(q) for q in QUANTILES]
        assert (got.requests, got.errors, got.errors_by_kind) == (
            expected.requests,
            expected.errors,
            expected.errors_by_kind,
        )
        assert got.mean == pytest.approx(expected.mean, rel=1e-12)
        assert got.setup == expected.setup
    assert result.events == {
        name: {"errors": event.errors, "errors_by_kind": event.errors_by_kind} for name, event in one.events.items()
    }
    assert result.checks["cart has items"].fails == sum(c.get("cart has items", [0, 0])[1] for c in checks)
    assert [shard.requests for shard in result.shards] == [
        sum(e.requests for e in part.endpoints.values()) for part in parts
    ]


def test_merged_windows_equal_the_windows_of_one_recorder():
    one, parts, checks = synthetic_run(2, seed=11)
    merged, finals = merge(parts, checks)
    merged.complete(finals)
    for name in one.endpoints:
        expected, got = one.endpoints[name].series, merged.endpoints[name].series
        for figure in ("t_s", "count", "errors", "p50_ms", "p95_ms", "p99_ms", "max_ms"):
            assert list(getattr(got, figure)) == list(getattr(expected, figure)), (name, figure)
        assert list(got.mean_ms) == pytest.approx(list(expected.mean_ms), rel=1e-12)
    for figure in ("t_s", "count", "errors", "p50_ms", "p95_ms", "p99_ms", "max_ms"):
        assert list(getattr(merged.total_series, figure)) == list(getattr(one.total_series, figure)), figure
    # a span of windows (a stage, "over any 10s") is exact too
    span_one = one.newest_span(None, 3.0)
    span_merged = merged.newest_span(None, 3.0)
    assert span_one is not None
    assert span_merged is not None
    assert (span_merged.counts == span_one.counts).all()


def test_a_window_waits_for_every_running_shard_and_not_for_a_lost_one():
    _, parts, checks = synthetic_run(2)
    merged = MergedRecorder(2, open_model=True, detail=None)
    merged.absorb(WindowCollector(parts[0], checks[0]).batch(0, 3, 10.0))
    assert merged.merge_ready() == 0  # shard 1 has not closed window 0 yet
    merged.end(1)  # lost: the run goes on with the others
    assert merged.merge_ready() == len(parts[0].total_series.t_s)
    assert merged.users == 3


def test_exception_samples_add_up_by_kind():
    sample = {"kind": "exception KeyError", "count": 2, "where": "browse", "traceback": "tb"}
    extras = [{"exceptions": [sample], "unfinished_requests": 1}, {"exceptions": [{**sample, "count": 3}]}]
    merged = merge_extras(extras)
    assert merged["exceptions"] == [{**sample, "count": 5}]
    assert merged["unfinished_requests"] == 1


def test_journey_runs_add_up_across_shards():
    extras = [{"journey_runs": {"journey browse": 4, "on_start login": 1}}, {"journey_runs": {"journey browse": 6}}]
    assert merge_extras(extras)["journey_runs"] == {"journey browse": 10, "on_start login": 1}


def test_the_users_of_a_window_are_the_shards_users_added() -> None:
    """Users alive and iterations in flight per window: each shard's, summed into the merged run's."""
    parts = [Recorder(open_model=True, start=0.0) for _ in range(3)]
    for index, recorder in enumerate(parts):
        recorder.gauges = lambda index=index: (2.0 + index, 0.5 * index)
        for i in range(30):
            recorder.record("GET /a", 0.01, i / 10, None)
        recorder.finish(3.0)
    merged, _ = merge(parts, [{}, {}, {}])
    merged.merge_ready()
    windows = len(merged.total_series.t_s)
    assert windows == 3
    assert list(merged.total_series.users) == [9.0] * windows
    assert list(merged.total_series.busy) == [1.5] * windows
    assert merged.total_series.to_dict()["users"] == [9.0] * windows
