"""assert_no_drift on synthetic runs whose trend is known: no false alarm on noise, a clear climb fails."""

from __future__ import annotations

import json
import math
import random
from collections.abc import Sequence

import pytest

from pytest_shopflow_perf import Drift, DriftWarning, LoadResult, ShopflowPerfError, SloError, assert_no_drift
from pytest_shopflow_perf.reporting._format import run_status
from pytest_shopflow_perf.reporting.summary import build_summary, render_markdown
from pytest_shopflow_perf.result.schema import RUN_SCHEMA
from pytest_shopflow_perf.verdicts.drift import DriftError, measure_drift

ENDPOINT = "GET /api/products"


def _windows(p95_ms: Sequence[float | None], errors: Sequence[int] | None = None, count: int = 50) -> dict:
    """The per-window series of a record; None is a window without requests."""
    n = len(p95_ms)
    counts = [0 if v is None else count for v in p95_ms]
    value = [0.0 if v is None else float(v) for v in p95_ms]
    return {
        "t_s": [float(i) for i in range(n)],
        "count": counts,
        "errors": list(errors) if errors is not None else [0] * n,
        "p50_ms": [v * 0.5 for v in value],
        "p95_ms": value,
        "p99_ms": [v * 1.5 for v in value],
        "mean_ms": [v * 0.6 for v in value],
        "max_ms": [v * 2 for v in value],
    }


def _result(
    p95_ms: Sequence[float | None],
    *,
    ramp_up: float = 0.0,
    errors: Sequence[int] | None = None,
    endpoint_p95_ms: Sequence[float | None] | None = None,
    rss_mb: Sequence[float] | None = None,
    generator: dict | None = None,
    shards: list | None = None,
) -> LoadResult:
    n = len(p95_ms)
    total = {"requests": 50 * n, "errors": sum(errors or []), "windows": _windows(p95_ms, errors)}
    endpoint = (
        total if endpoint_p95_ms is None else {"requests": 50 * n, "errors": 0, "windows": _windows(endpoint_p95_ms)}
    )
    record = {
        "schema": RUN_SCHEMA,
        "test": "test_soak.py::test_soak",
        "duration_s": float(n),
        "profile": {"model": "closed", "users": 10, "duration": float(n), "ramp_up": ramp_up, "ramp_down": 0.0,
                    "start": 0.0, "stages": [[ramp_up, 10.0], [n - ramp_up, 10.0], [0.0, 0.0]]},
        "total": total,
        "endpoints": {ENDPOINT: endpoint},
        "generator": generator or {},
        "shards": shards or [],
    }  # fmt: skip
    if rss_mb is not None:
        record["resources"] = {
            "samples": [{"t_s": float(t), "cpu_percent": 5.0, "rss_mb": v} for t, v in enumerate(rss_mb)]
        }
    return LoadResult.from_dict(record)


def _steady(seed: int, n: int = 60, level: float = 20.0, sigma: float = 0.3) -> list[float]:
    rng = random.Random(seed)
    return [level * rng.lognormvariate(0, sigma) for _ in range(n)]


def _climbing(seed: int, per_min: float, n: int = 60, level: float = 20.0, sigma: float = 0.1) -> list[float]:
    """Relative growth ``per_min`` (0.5: +50 % of the start level a minute) with lognormal noise."""
    rng = random.Random(seed)
    return [level * (1 + per_min * t / 60) * rng.lognormvariate(0, sigma) for t in range(n)]


def _autocorrelated(seed: int, phi: float = 0.8, n: int = 60, level: float = 20.0, sd: float = 0.05) -> list[float]:
    """Flat in expectation, but each window leans on the one before (AR(1) on the log scale)."""
    rng = random.Random(seed)
    x, out = 0.0, []
    for _ in range(n):
        x = phi * x + rng.gauss(0, sd)
        out.append(level * math.exp(x))
    return out


def test_twenty_seeded_steady_runs_raise_no_false_alarm() -> None:
    for seed in range(20):
        drift = assert_no_drift(_result(_steady(seed)), metric="p95", max_slope="10%/min")
        assert drift.verdict == "pass", (seed, drift)
        assert drift.low is not None
        assert drift.high is not None
        assert drift.slope is not None
        assert drift.low <= drift.slope <= drift.high
        assert drift.windows == 60


def test_a_clear_upward_trend_fails_with_slope_interval_levels_and_limit() -> None:
    result = _result(_climbing(seed=3, per_min=1.0))  # +100 % of the start level a minute
    with pytest.raises(AssertionError) as failure:
        assert_no_drift(result, metric="p95", max_slope="10%/min")
    message = str(failure.value)
    assert message.startswith("p95 drifts upward: slope +")
    assert "%/min (99 % interval +" in message
    assert " ms over 60 windows (0-59 s); limit 10%/min" in message
    (entry,) = result.extra["drift"]
    assert entry["verdict"] == "fail"
    assert 60 <= entry["slope"] <= 140  # the truth is +100 %/min of the fitted start level
    assert entry["low"] > 10
    assert 17 <= entry["start"] <= 23
    assert 34 <= entry["end"] <= 46
    assert json.loads(json.dumps(entry)) == entry  # travels on the report as plain data


def test_a_flat_but_autocorrelated_series_does_not_fail() -> None:
    """Successive windows lean on each other: the interval widens by sqrt(n / n_eff)."""
    for seed in range(10):
        drift = assert_no_drift(_result(_autocorrelated(seed)), max_slope="10%/min")
        assert drift.verdict == "pass", (seed, drift)
    drift = measure_drift(_result(_autocorrelated(seed=1)), max_slope="10%/min")
    assert drift.autocorrelation > 0.4


def test_a_slope_above_the_limit_but_not_significantly_passes() -> None:
    drift = assert_no_drift(_result(_climbing(seed=5, per_min=0.3, sigma=0.4)), max_slope="10%/min")
    assert drift.verdict == "pass"
    assert drift.low is not None
    assert drift.low <= 10


@pytest.mark.parametrize(
    ("limit", "metric", "needle"),
    [
        ("fast", "p95", "could not be read"),
        ("10%", "p95", "could not be read"),
        ("10%/day", "p95", "could not be read"),
        ("-5ms/min", "p95", "could not be read"),
        (0.1, "p95", "must be a string with a unit"),
        ("2MB/h", "p95", "does not fit metric='p95'"),
        ("5ms/min", "target_rss", "does not fit metric='target_rss'"),
    ],
)
def test_a_bad_limit_is_an_error_naming_the_accepted_forms(limit: object, metric: str, needle: str) -> None:
    with pytest.raises(DriftError, match="10%/min") as error:
        assert_no_drift(_result(_steady(0)), metric=metric, max_slope=limit)  # type: ignore[arg-type]
    assert needle in str(error.value)
    assert isinstance(error.value, ShopflowPerfError)
    assert isinstance(error.value, ValueError)
    assert isinstance(error.value, SloError)


def test_an_unknown_metric_or_endpoint_is_an_error_naming_the_known_ones() -> None:
    with pytest.raises(DriftError, match="p50, p95, p99, mean, error_rate, target_rss"):
        assert_no_drift(_result(_steady(0)), metric="p90")
    with pytest.raises(DriftError, match=r"no endpoint 'GET /nope' in this run; endpoints: 'GET /api/products'"):
        assert_no_drift(_result(_steady(0)), endpoint="GET /nope")
    with pytest.raises(DriftError, match="leave endpoint=None"):
        assert_no_drift(_result(_steady(0), rss_mb=[100.0] * 60), metric="target_rss", max_slope="1MB/min",
                        endpoint=ENDPOINT)  # fmt: skip


def test_fewer_than_five_windows_is_inconclusive_with_a_warning() -> None:
    result = _result([20.0, None, 21.0, 40.0, 80.0, None])
    with pytest.warns(DriftWarning, match=r"only 4 windows with requests after the ramp-up"):
        drift = assert_no_drift(result)
    assert drift.verdict == "inconclusive"
    assert drift.slope is None
    assert result.extra["drift"][0]["verdict"] == "inconclusive"


def test_ramp_up_and_empty_windows_are_left_out() -> None:
    """A cold start (slow first windows while users ramp up) is not drift."""
    steady = _steady(seed=2, n=40)
    cold = [400.0, 300.0, 200.0, 100.0, 50.0]
    series: list[float | None] = [*cold, *steady[:10], None, None, *steady[10:]]
    drift = assert_no_drift(_result(series, ramp_up=5.0), max_slope="10%/min")
    assert drift.windows == 40
    assert drift.first_s == 5.0
    whole = measure_drift(_result(series), max_slope="10%/min")  # without a ramp in the profile: every window
    assert (whole.windows, whole.first_s) == (45, 0.0)


def test_absolute_latency_limits_are_in_their_own_unit() -> None:
    grows = [10.0 + 0.5 * t for t in range(30)]  # +0.5 ms a second: +30 ms/min
    with pytest.raises(
        AssertionError, match=r"p95 drifts upward: slope \+30 ms/min .* from 10 ms to 24\.5 ms .*limit 5ms/min"
    ):
        assert_no_drift(_result(grows), max_slope="5ms/min")
    drift = assert_no_drift(_result(grows), max_slope="0.05s/min")
    assert drift.slope == pytest.approx(0.03)
    assert drift.unit == "s/min"
    assert drift.start == pytest.approx(10.0)
    assert drift.end == pytest.approx(24.5)


def test_one_endpoints_windows_are_judged_on_their_own() -> None:
    result = _result(_steady(0), endpoint_p95_ms=_climbing(seed=1, per_min=1.0))
    assert assert_no_drift(result).verdict == "pass"
    with pytest.raises(AssertionError, match=f"p95 on {ENDPOINT} drifts upward: slope"):
        assert_no_drift(result, endpoint=ENDPOINT)
    assert [entry["endpoint"] for entry in result.extra["drift"]] == [None, ENDPOINT]


def test_error_rate_drift_is_in_percentage_points() -> None:
    errors = [t // 6 for t in range(60)]  # 0 of 50 at the start, 9 of 50 at the end: +18 points a minute
    with pytest.raises(AssertionError, match=r"error_rate drifts upward: slope \+[0-9.]+ %/min"):
        assert_no_drift(_result([20.0] * 60, errors=errors), metric="error_rate", max_slope="5%/min")
    drift = assert_no_drift(_result([20.0] * 60, errors=[1] * 60), metric="error_rate", max_slope="1%/min")
    assert (drift.verdict, drift.slope, drift.start) == ("pass", 0.0, pytest.approx(2.0))


def test_target_rss_grows_in_mb_per_hour_and_needs_samples() -> None:
    leaking = [200.0 + 0.05 * t for t in range(60)]  # 3 MB/min, 180 MB/h
    with pytest.raises(AssertionError, match=r"target_rss drifts upward: slope \+180 MB/h"):
        assert_no_drift(_result(_steady(0), rss_mb=leaking), metric="target_rss", max_slope="2MB/h")
    flat = assert_no_drift(_result(_steady(0), rss_mb=[200.0] * 60), metric="target_rss", max_slope="1MB/min")
    assert (flat.verdict, flat.level_unit) == ("pass", "MB")
    with pytest.warns(DriftWarning, match="no resource samples"):
        none = assert_no_drift(_result(_steady(0)), metric="target_rss", max_slope="2MB/h")
    assert none.verdict == "inconclusive"


def test_a_saturated_generator_or_a_lost_shard_skips_as_inconclusive() -> None:
    saturated = _result(_climbing(seed=1, per_min=1.0), generator={"saturated": True, "reasons": ["loop lag 300 ms"]})
    with pytest.raises(pytest.skip.Exception, match="inconclusive: the load generator was saturated"):
        assert_no_drift(saturated)
    assert saturated.extra["drift"][0]["verdict"] == "inconclusive"
    shard = {
        "worker": "local:1",
        "users": 5,
        "requests": 10,
        "errors": 0,
        "generator": {},
        "lost": True,
        "note": "died",
    }
    with pytest.raises(pytest.skip.Exception, match="inconclusive: shard local:1 died"):
        assert_no_drift(_result(_steady(0), shards=[shard]))
    with pytest.raises(DriftError):  # a wrong argument is still an error, saturated or not
        assert_no_drift(saturated, max_slope="10 percent")


def test_the_summary_shows_a_drift_section_and_a_judged_drift_is_judged() -> None:
    result = _result(_steady(0))
    drift = assert_no_drift(result)
    assert isinstance(drift, Drift)
    run = result.summary_dict()
    assert run_status(dict(run), "passed") == ("PASS", "met its thresholds")
    markdown = render_markdown(build_summary([{"nodeid": result.test, "outcome": "passed", "runs": [run]}], {}))
    section = markdown.split("## Drift", 1)[1].split("##", 1)[0]
    assert "| test_soak.py::test_soak | p95 | total |" in section
    assert "%/min" in section
    assert "| 10%/min | pass |" in section
    inconclusive = _result([20.0, 21.0])
    with pytest.warns(DriftWarning):
        assert_no_drift(inconclusive)
    assert run_status(dict(inconclusive.summary_dict()), "passed")[0] == "NOT JUDGED"
    plain = render_markdown(
        build_summary([{"nodeid": "t", "outcome": "passed", "runs": [_result([1.0]).summary_dict()]}], {})
    )
    assert "## Drift" not in plain


def test_a_long_soak_is_fitted_on_block_medians_in_bounded_time() -> None:
    """Theil-Sen is quadratic in its points: 4 hours of windows are fitted as at most MAX_POINTS blocks."""
    import time

    from pytest_shopflow_perf.verdicts.drift import MAX_POINTS, _blocks

    hours = 4 * 3600
    assert len(_blocks([(float(t), 1.0) for t in range(hours)])[0]) <= MAX_POINTS
    started = time.process_time()
    steady = assert_no_drift(_result(_steady(seed=4, n=hours)), max_slope="1%/min")
    leak = [200.0 + 0.01 * t for t in range(hours)]  # 36 MB/h
    with pytest.raises(AssertionError, match=r"target_rss drifts upward: slope \+36 MB/h"):
        assert_no_drift(_result(_steady(seed=4, n=hours), rss_mb=leak), metric="target_rss", max_slope="10MB/h")
    assert time.process_time() - started < 30  # seconds, not the minutes and gigabytes of every pair
    assert (steady.verdict, steady.windows) == ("pass", hours)
