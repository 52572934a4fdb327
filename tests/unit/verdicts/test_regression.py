"""Unit tests of regression.compare on small handcrafted run records."""

from __future__ import annotations

import ast
import copy
import json
import math
from pathlib import Path

import pytest

import pytest_shopflow_perf.verdicts.regression as regression
from pytest_shopflow_perf.verdicts.baseline import BaselineError
from pytest_shopflow_perf.verdicts.regression import TIERS, TOTAL, Finding, RegressionPolicy, Verdict, compare

# A fixed, mildly noisy pattern (about +-2 %) so every window sample has a variance.
PATTERN = [1.0, 1.02, 0.98, 1.01, 0.99, 1.03, 0.97, 1.0, 1.015, 0.985]


def stats(
    scale: float = 1.0,
    *,
    windows: int = 30,
    count: int = 100,
    errors: int = 0,
    error_every: int = 0,
    phase: int = 0,
    mean_windows: bool = True,
    empty: tuple[int, ...] = (),
    present: tuple[int, ...] | None = None,
) -> dict:
    """STATS with latency ``scale`` x (p50 50 ms, p95 100 ms, p99 150 ms, mean 60 ms)."""
    t = [i for i in range(windows) if present is None or i in present]
    factor = [PATTERN[(i + phase) % len(PATTERN)] for i in t]
    counts = [0 if i in empty else count for i in t]
    errs = [
        0 if c == 0 else (errors if not error_every or i % error_every == 0 else 0)
        for i, c in zip(t, counts, strict=True)
    ]

    def column(ms: float) -> list[float]:
        return [0.0 if c == 0 else ms * scale * f for c, f in zip(counts, factor, strict=True)]

    window = {
        "t_s": [float(i) for i in t],
        "count": counts,
        "errors": errs,
        "p50_ms": column(50.0),
        "p95_ms": column(100.0),
        "p99_ms": column(150.0),
    }
    if mean_windows:
        window["mean_ms"] = column(60.0)
    requests = sum(counts)
    return {
        "requests": requests,
        "errors": sum(errs),
        "rps": requests / windows,
        "mean_ms": 60.0 * scale,
        "p50_ms": 50.0 * scale,
        "p90_ms": 90.0 * scale,
        "p95_ms": 100.0 * scale,
        "p99_ms": 150.0 * scale,
        "max_ms": 300.0 * scale,
        "windows": window,
    }


def record(total: dict | None = None, endpoints: dict | None = None, fingerprint: str | None = None) -> dict:
    total = total if total is not None else stats()
    environment = {} if fingerprint is None else {"fingerprint": fingerprint, "cpu_count": 2}
    return {
        "schema": "shopflow-perf/run/1",
        "started_at": "2026-11-22T00:00:00Z",
        "duration_s": 30.0,
        "profile": {"users": 10, "duration": 30.0},
        "environment": environment,
        "total": total,
        "endpoints": endpoints if endpoints is not None else {"GET /x": copy.deepcopy(total)},
    }


def baseline(*runs: dict) -> dict:
    return {"schema": "shopflow-perf/baseline/1", "test": "tests/test_x.py::test_x", "runs": list(runs)}


def stable_baseline(k: int = 5, **kwargs) -> dict:
    """K runs that differ by a fraction of a percent, as back-to-back runs on a quiet machine do."""
    return baseline(*(record(stats(1.0 + 0.004 * (i - k // 2), phase=i, **kwargs)) for i in range(k)))


def finding(verdict: Verdict, metric: str, endpoint: str = TOTAL) -> Finding:
    (match,) = [f for f in verdict.findings if f.metric == metric and f.endpoint == endpoint]
    return match


# ---- tiers ---------------------------------------------------------------------------


def test_same_latency_is_none():
    verdict = compare(stable_baseline(), record(stats(1.0, phase=7)))
    assert verdict.tier == "none"
    assert verdict.baseline_runs == 5
    # every metric of every endpoint, except an endpoint's throughput (the journey mix's choice)
    assert {(f.endpoint, f.metric) for f in verdict.findings} == {
        (e, m) for e in (TOTAL, "GET /x") for m in regression.METRICS if (e, m) != ("GET /x", "throughput")
    }


@pytest.mark.parametrize(
    ("scale", "tier"),
    [(0.7, "none"), (1.03, "none"), (1.18, "minor"), (1.35, "major"), (1.8, "critical")],
)
def test_latency_tiers(scale, tier):
    verdict = compare(stable_baseline(), record(stats(scale, phase=3)))
    assert verdict.tier == tier
    p95 = finding(verdict, "p95")
    assert p95.tier == tier
    assert p95.change == pytest.approx(scale / math.exp(sum(math.log(1 + 0.004 * (i - 2)) for i in range(5)) / 5) - 1)


def test_thresholds_are_strict_greater_than():
    policy = RegressionPolicy(minor=0.10, major=0.25, critical=0.50, noise_floor=0.0)
    base = baseline(*(record(stats(1.0, phase=i)) for i in range(5)))
    verdict = compare(base, record(stats(1.5, phase=2)), policy=policy)
    assert finding(verdict, "p95").change == pytest.approx(0.5)
    assert finding(verdict, "p95").tier == "major"  # exactly +50 % is not "> 50 %"


def test_significant_but_small_change_is_negligible():
    # Without a noise floor and with very stable runs, +5 % is significant but below "minor".
    policy = RegressionPolicy(noise_floor=0.0)
    base = baseline(*(record(stats(1.0, phase=i)) for i in range(5)))
    verdict = compare(base, record(stats(1.05, phase=5)), policy=policy)
    p95 = finding(verdict, "p95")
    assert p95.p_value is not None
    assert p95.p_value < 0.05
    assert p95.tier == "negligible"
    assert verdict.tier == "negligible"
    assert not verdict.failed("minor")


def test_large_but_not_significant_is_inconclusive():
    # Baseline runs that disagree by +-15 % leave a +20 % change unproven.
    base = baseline(*(record(stats(s, phase=i)) for i, s in enumerate([0.85, 1.15, 1.0])))
    verdict = compare(base, record(stats(1.2, phase=4)))
    p95 = finding(verdict, "p95")
    assert p95.tier == "inconclusive"
    assert p95.p_value is not None
    assert p95.p_value >= 0.05
    assert "not significant" in p95.note
    assert verdict.tier == "inconclusive"
    assert not verdict.failed("minor")


def test_improvement_is_never_flagged():
    verdict = compare(stable_baseline(), record(stats(0.5, count=200, phase=1)))
    assert verdict.tier == "none"
    assert all(f.tier == "none" for f in verdict.findings)
    p95 = finding(verdict, "p95")
    assert p95.change == pytest.approx(-0.5, abs=0.01)
    assert p95.p_value == pytest.approx(1.0)
    assert finding(verdict, "throughput").change == pytest.approx(1.0, abs=0.01)


def test_throughput_drop_is_a_regression():
    verdict = compare(stable_baseline(), record(stats(1.0, count=60, phase=2)))
    throughput = finding(verdict, "throughput")
    assert throughput.change == pytest.approx(-0.4)
    assert throughput.tier == "major"
    assert throughput.ci is not None
    assert throughput.ci[1] < 0
    assert finding(verdict, "p95").tier == "none"


def test_confidence_interval_and_mde():
    verdict = compare(stable_baseline(), record(stats(1.4, phase=3)))
    p95 = finding(verdict, "p95")
    assert p95.ci is not None
    low, high = p95.ci
    assert 0 < low < p95.change < high
    assert p95.mde is not None
    assert 0 < p95.mde < 0.25
    assert p95.p_raw is not None
    assert p95.p_value is not None
    assert p95.p_value >= p95.p_raw  # Benjamini-Hochberg never lowers a p-value


def test_mean_uses_window_means_when_present():
    with_means = compare(stable_baseline(), record(stats(1.4, phase=1)))
    assert finding(with_means, "mean").p_value is not None
    assert finding(with_means, "mean").tier == "major"
    without = compare(stable_baseline(mean_windows=False), record(stats(1.4, phase=1, mean_windows=False)))
    mean = finding(without, "mean")
    assert mean.p_value is None
    assert "not tested" in mean.note
    assert mean.tier == "inconclusive"  # +40 % that could not be tested is not "none"


def test_empty_total_windows_are_ignored_for_latency():
    empty = (3, 4, 17)
    base = baseline(*(record(stats(1.0, phase=i, empty=empty)) for i in range(3)))
    verdict = compare(base, record(stats(1.0, phase=5, empty=empty)))
    assert verdict.tier == "none"
    assert all(f.ci is None or all(math.isfinite(c) for c in f.ci) for f in verdict.findings)


def test_an_endpoints_share_of_the_requests_is_not_a_regression():
    """The endpoint served every window in the baseline, only every other one now: the journeys
    sent it half as often (their mix), while the service kept up with the total."""

    def run(present: tuple[int, ...] | None, phase: int) -> dict:
        endpoint = stats(1.0, present=present, phase=phase)
        return record(stats(1.0, phase=phase), {"GET /x": endpoint})

    base = baseline(*(run(None, i) for i in range(3)))
    verdict = compare(base, run(tuple(range(0, 30, 2)), 4))
    assert not [f for f in verdict.findings if f.endpoint == "GET /x" and f.metric == "throughput"]
    assert finding(verdict, "throughput").tier == "none"  # the total did not change
    assert verdict.tier == "none"


def _with_profile(run: dict, **profile: object) -> dict:
    return {**run, "profile": {**run["profile"], **profile}}


@pytest.mark.parametrize(
    ("users", "model", "compared"),
    [
        (10, "closed", True),  # 100 requests/s of 60 ms for 10 users: busy 60 % of the time
        (100, "closed", False),  # the same requests from 100 users: they think 94 % of the time
        (100, "open", True),  # arrivals are fixed: fewer requests are dropped iterations
    ],
)
def test_total_throughput_is_compared_only_where_the_service_sets_it(users: int, model: str, compared: bool) -> None:
    base = baseline(*(_with_profile(record(stats(1.0, phase=i)), users=users, model=model) for i in range(3)))
    verdict = compare(base, _with_profile(record(stats(1.0, count=60, phase=4)), users=users, model=model))
    throughput = [f for f in verdict.findings if f.metric == "throughput"]
    if compared:
        assert [(f.endpoint, f.tier) for f in throughput] == [(TOTAL, "major")]  # -40 %
    else:
        assert throughput == []
        assert verdict.tier == "none"
        assert any("throughput not compared" in note and "94%" in note for note in verdict.notes), verdict.notes


# ---- error rate -------------------------------------------------------------------------


def test_error_rate_increase_is_flagged():
    base = baseline(*(record(stats(1.0, count=1000, errors=5, phase=i)) for i in range(3)))  # 0.5 %
    verdict = compare(base, record(stats(1.0, count=1000, errors=20, phase=4)))  # 2 %
    error_rate = finding(verdict, "error_rate")
    assert error_rate.baseline == pytest.approx(0.005)
    assert error_rate.current == pytest.approx(0.02)
    assert error_rate.change == pytest.approx(3.0)
    assert error_rate.tier == "critical"
    assert verdict.failed("major")


def test_error_rate_below_the_absolute_floor_is_at_most_negligible():
    # 0.01 % -> 0.02 % on 3 million requests a run: significant, doubled, and harmless.
    base = baseline(*(record(stats(1.0, count=100_000, errors=10, phase=i)) for i in range(3)))
    verdict = compare(base, record(stats(1.0, count=100_000, errors=20, phase=4)))
    error_rate = finding(verdict, "error_rate")
    assert error_rate.change == pytest.approx(1.0)
    assert error_rate.p_value is not None
    assert error_rate.p_value < 0.05
    assert error_rate.tier == "negligible"
    assert "floor" in error_rate.note
    assert verdict.tier == "negligible"


def test_bursty_errors_are_not_overstated():
    # Baseline runs have their errors in bursts (all in every tenth window): the
    # same total rise that is significant for even errors is not for bursts.
    def run(errors: int, every: int, phase: int) -> dict:
        return record(stats(1.0, count=100, errors=errors, error_every=every, phase=phase))

    even = compare(baseline(*(run(1, 0, i) for i in range(3))), run(2, 0, 4))
    bursty = compare(baseline(*(run(10, 10, i) for i in range(3))), run(20, 10, 4))
    assert finding(even, "error_rate").change == pytest.approx(finding(bursty, "error_rate").change)
    assert finding(even, "error_rate").tier == "critical"
    even_p = finding(even, "error_rate").p_raw
    bursty_p = finding(bursty, "error_rate").p_raw
    assert even_p is not None
    assert bursty_p is not None
    assert bursty_p > 10 * even_p


def test_errors_where_there_were_none():
    base = baseline(*(record(stats(1.0, count=1000, phase=i)) for i in range(3)))
    verdict = compare(base, record(stats(1.0, count=1000, errors=10, phase=4)))  # 1 %
    error_rate = finding(verdict, "error_rate")
    assert error_rate.baseline == 0.0
    assert error_rate.change == math.inf
    assert error_rate.tier == "critical"
    as_dict = json.loads(json.dumps(verdict.to_dict(), allow_nan=False))
    (row,) = [f for f in as_dict["findings"] if f["metric"] == "error_rate" and f["endpoint"] == TOTAL]
    assert row["change"] is None


# ---- environment, notes, schema ----------------------------------------------------------


def test_different_environment_downgrades_to_inconclusive():
    base = baseline(*(record(stats(1.0, phase=i), fingerprint="sha256:aaaa") for i in range(3)))
    verdict = compare(base, record(stats(2.0, phase=4), fingerprint="sha256:bbbb"))
    assert verdict.tier == "inconclusive"
    assert not verdict.failed("minor")
    assert any("environment differs" in n for n in verdict.notes)
    p95 = finding(verdict, "p95")
    assert "would be critical" in p95.note
    same = compare(base, record(stats(2.0, phase=4), fingerprint="sha256:aaaa"))
    assert same.tier == "critical"
    unknown = compare(base, record(stats(2.0, phase=4)))  # no fingerprint on one side: compared as is
    assert unknown.tier == "critical"


def test_notes_on_few_runs_and_changed_endpoints():
    assert compare(baseline(), record()).tier == "none"
    assert "no runs" in compare(baseline(), record()).notes[0]
    one = compare(baseline(record()), record())
    assert any("only 1 baseline run" in n for n in one.notes)
    two = compare(baseline(record(), record(stats(phase=1))), record())
    assert any("only 2 baseline runs" in n for n in two.notes)
    renamed = record(endpoints={"GET /y": stats()})
    verdict = compare(stable_baseline(3), renamed)
    assert any("not in the baseline" in n and "GET /y" in n for n in verdict.notes)
    assert any("not in this run" in n and "GET /x" in n for n in verdict.notes)
    assert {f.endpoint for f in verdict.findings} == {TOTAL}


def test_profile_change_is_noted():
    run = record()
    run["profile"] = {"users": 50, "duration": 30.0}
    verdict = compare(stable_baseline(3), run)
    assert any("load profile differs" in n and "users" in n for n in verdict.notes)


def test_a_regression_under_another_load_shape_is_inconclusive():
    """A pre-merge run at --perf-scale 0.25 compresses its ramps (logins pile up): not an A/A comparison."""
    run = record(stats(2.0))
    run["profile"] = {"users": 10, "duration": 7.5, "scale": 0.25}
    verdict = compare(stable_baseline(3), run)
    assert verdict.tier == "inconclusive"
    assert any("load shape differs" in n and "(duration)" in n for n in verdict.notes)  # scale: not in the baseline
    assert any("would be critical with the baseline's load profile" in f.note for f in verdict.findings)
    same_shape = record(stats(2.0))
    same_shape["profile"] = {"users": 10, "duration": 30.0, "max_body": 1}  # a key the baseline never had
    assert compare(stable_baseline(3), same_shape).tier == "critical"


def test_compare_does_not_modify_its_inputs():
    base, run = stable_baseline(3), record(stats(1.3))
    before = copy.deepcopy((base, run))
    compare(base, run)
    assert (base, run) == before


def test_policy_metrics_subset():
    verdict = compare(stable_baseline(3), record(stats(1.5)), policy=RegressionPolicy(metrics=("p95",)))
    assert {f.metric for f in verdict.findings} == {"p95"}


@pytest.mark.parametrize(
    "kwargs",
    [
        {"alpha": 0.0},
        {"alpha": 1.0},
        {"minor": 0.3, "major": 0.2},
        {"metrics": ("p42",)},
        {"noise_floor": -0.1},
    ],
)
def test_policy_rejects_nonsense(kwargs):
    with pytest.raises(ValueError, match=next(iter(kwargs)).split("_")[0]):
        RegressionPolicy(**kwargs)


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda b, r: (["not", "a", "dict"], r), "expected a JSON object"),
        (lambda b, r: ({**b, "schema": "something/else"}, r), "expected 'shopflow-perf/baseline/1'"),
        (lambda b, r: ({**b, "schema": "shopflow-perf/baseline/2"}, r), "unsupported schema version"),
        (lambda b, r: ({**b, "runs": {}}, r), '"runs" must be a list'),
        (lambda b, r: ({**b, "runs": [{"schema": "shopflow-perf/run/9"}]}, r), "run 0: unsupported schema"),
        (lambda b, r: (b, {**r, "schema": None}), "run record"),
        (lambda b, r: (b, {k: v for k, v in r.items() if k != "total"}), '"total"'),
        (lambda b, r: (b, {**r, "endpoints": []}), '"endpoints"'),
    ],
)
def test_schema_errors(mutate, message):
    base, run = mutate(stable_baseline(2), record())
    with pytest.raises(BaselineError, match=message.replace("(", r"\(")):
        compare(base, run)


def test_malformed_windows_are_schema_errors():
    run = record()
    run["total"]["windows"]["p95_ms"] = run["total"]["windows"]["p95_ms"][:-1]
    with pytest.raises(BaselineError, match=r"run record total: per-window arrays differ in length"):
        compare(stable_baseline(2), run)
    run = record()
    run["endpoints"]["GET /x"]["windows"]["count"][0] = "many"
    with pytest.raises(BaselineError, match=r"endpoint 'GET /x'.*count"):
        compare(stable_baseline(2), run)


def test_baseline_error_is_a_value_error():
    assert issubclass(BaselineError, ValueError)
    assert regression.BaselineError is BaselineError


# ---- Verdict ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("tier", "fail_on", "failed"),
    [
        ("critical", "minor", True),
        ("critical", "critical", True),
        ("critical", "never", False),
        ("major", "major", True),
        ("major", "critical", False),
        ("minor", "minor", True),
        ("minor", "major", False),
        ("inconclusive", "minor", False),
        ("negligible", "minor", False),
        ("none", "minor", False),
    ],
)
def test_verdict_failed(tier, fail_on, failed):
    assert Verdict(tier).failed(fail_on) is failed


def test_verdict_failed_rejects_unknown_threshold():
    with pytest.raises(ValueError, match="minor, major, critical, never"):
        Verdict("none").failed("sometimes")


def test_tier_order():
    assert TIERS == ("none", "negligible", "inconclusive", "minor", "major", "critical")
    assert regression.worst_tier(["minor", "inconclusive", "none"]) == "minor"
    assert regression.worst_tier([]) == "none"


def test_verdict_to_dict_is_json_safe_and_lists_regressions():
    verdict = compare(stable_baseline(), record(stats(1.8, count=60)))
    data = json.loads(json.dumps(verdict.to_dict(), allow_nan=False))
    assert data["tier"] == "critical"
    assert data["baseline_runs"] == 5
    row = data["findings"][0]
    assert set(row) >= {
        "endpoint",
        "metric",
        "tier",
        "baseline",
        "current",
        "change",
        "ci",
        "p_value",
        "mde",
        "note",
    }
    tiers = [f.tier for f in verdict.regressions]
    assert tiers == sorted(tiers, key=TIERS.index, reverse=True)
    assert set(tiers) <= {"minor", "major", "critical"}


def test_numpy_and_scipy_are_imported_lazily():
    """The module is imported in every pytest run: heavy imports belong inside functions."""
    for module in (regression, pytest.importorskip("pytest_shopflow_perf.verdicts.baseline")):
        tree = ast.parse(Path(module.__file__).read_text(encoding="utf-8"))
        top_level = [
            name
            for node in tree.body
            if isinstance(node, (ast.Import, ast.ImportFrom))
            for name in ([a.name for a in node.names] if isinstance(node, ast.Import) else [node.module or ""])
        ]
        assert not [n for n in top_level if n.split(".")[0] in {"numpy", "scipy"}], module.__name__


def test_verdict_round_trips_through_json():
    verdict = compare(stable_baseline(), record(stats(1.3, phase=2)), policy=RegressionPolicy(noise_floor=0.02))
    again = Verdict.from_dict(json.loads(json.dumps(verdict.to_dict())))
    assert again == verdict
    with pytest.raises(ValueError, match="unknown tier"):
        Verdict.from_dict({"tier": "catastrophic"})


def test_errors_without_requests_never_crash_the_comparison():
    """Failed checks and journey exceptions can outnumber requests; compare() raised ValueError (Fisher)."""
    base = baseline(*(record(stats(1.0, count=100, phase=i)) for i in range(3)))
    current = record(stats(1.0, count=100, errors=250, phase=4))  # 2.5 events per request, per window
    verdict = compare(base, current)
    assert finding(verdict, "error_rate").current == pytest.approx(1.0)
    current["total"]["request_errors"] = 0  # new records say which errors were failed requests
    for stats_ in current["endpoints"].values():
        stats_["request_errors"] = 0
    assert finding(compare(base, current), "error_rate").tier == "none"


# ---- the absolute latency floor (issue 14) ---------------------------------------------------


def _scaled_baseline(scale: float) -> dict:
    return baseline(*(record(stats(scale, phase=i)) for i in range(5)))


def test_a_sub_millisecond_latency_increase_is_never_a_regression() -> None:
    """p99 1.8 -> 2.6 ms is "+44 %" on paper: timer and scheduler noise on a millisecond service."""
    verdict = compare(_scaled_baseline(0.012), record(stats(0.012 * 1.44, phase=7)))
    p99 = finding(verdict, "p99")
    assert p99.change == pytest.approx(0.44, abs=0.01)
    assert p99.tier == "negligible"  # significant, but below the floor
    assert "below the absolute floor of 1 ms" in p99.note
    assert verdict.tier == "negligible"
    assert not verdict.failed("minor")


def test_the_same_relative_change_above_the_floor_is_a_regression() -> None:
    verdict = compare(_scaled_baseline(0.18), record(stats(0.18 * 1.44, phase=7)))
    assert finding(verdict, "p95").tier == "major"


def test_a_zero_floor_judges_sub_millisecond_changes_by_their_size() -> None:
    policy = RegressionPolicy(latency_floor_ms=0.0)
    verdict = compare(_scaled_baseline(0.012), record(stats(0.012 * 1.44, phase=7)), policy=policy)
    assert finding(verdict, "p95").tier == "major"


def test_a_large_change_below_the_floor_is_not_inconclusive() -> None:
    """Not significant and below the floor: nothing more to learn by running longer."""
    noisy = baseline(*(record(stats(0.01 * (1 + 0.3 * (i % 2)), phase=i)) for i in range(2)))
    verdict = compare(noisy, record(stats(0.01 * 1.6, phase=3)))
    assert finding(verdict, "p50").tier in ("none", "negligible")
    assert verdict.tier in ("none", "negligible")


@pytest.mark.parametrize("bad", [-1.0, math.inf])
def test_a_bad_latency_floor_is_refused(bad: float) -> None:
    with pytest.raises(ValueError, match="latency_floor_ms"):
        RegressionPolicy(latency_floor_ms=bad)


# ---- insufficient data and what would decide (issue 14) --------------------------------------


def _disagreeing_baseline(count: int, runs: int = 3) -> dict:
    """Baseline runs that disagree by +-15 %: only large changes can be significant."""
    return baseline(*(record(stats(s, phase=i, count=count)) for i, s in enumerate([0.85, 1.15, 1.0][:runs])))


def test_a_tail_metric_of_too_few_requests_is_insufficient_data_not_a_finding() -> None:
    verdict = compare(_disagreeing_baseline(count=3), record(stats(1.2, phase=4, count=3)))  # 90 requests
    p99 = finding(verdict, "p99")
    assert (p99.tier, p99.insufficient) == ("none", True)
    assert "insufficient data: 90 requests" in p99.note
    assert "run longer: ~" in p99.note
    assert "more requests on total" in p99.note
    assert "baseline run" not in p99.note  # three runs are enough baselines
    assert {(f.endpoint, f.metric) for f in verdict.insufficient} == {
        (e, m) for e in (TOTAL, "GET /x") for m in ("p95", "p99")
    }
    assert any("4 metric(s) with insufficient data" in note for note in verdict.notes), verdict.notes
    # p50 rests on enough requests: a large change that is not significant stays inconclusive, with advice
    p50 = finding(verdict, "p50")
    assert (p50.tier, p50.insufficient) == ("inconclusive", False)
    assert "large but not significant; run longer: ~" in p50.note
    assert verdict.tier == "inconclusive"
    assert Verdict.from_dict(json.loads(json.dumps(verdict.to_dict()))).insufficient == verdict.insufficient


def test_inconclusive_says_to_record_more_baseline_runs_when_there_are_few() -> None:
    verdict = compare(_disagreeing_baseline(count=100, runs=2), record(stats(1.2, phase=4)))
    p95 = finding(verdict, "p95")
    assert p95.tier == "inconclusive"
    assert "record 1 more baseline run(s)" in p95.note


def test_enough_requests_and_a_clear_change_are_judged_as_before() -> None:
    verdict = compare(stable_baseline(count=3), record(stats(1.8, phase=7, count=3)))
    assert not finding(verdict, "p99").insufficient  # significant despite few requests: judged
    assert finding(verdict, "p99").tier == "critical"
