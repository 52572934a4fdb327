"""Monte-Carlo calibration of the regression verdict: false-positive rates and power.

Every scenario draws at least 200 seeded (baseline, run) pairs of synthetic run
records and asserts a rate with a margin. Records are synthesised per window
(no HTTP, no HDR): the p-quantile of the c requests of a window is drawn
exactly as an order statistic of a lognormal sample (U ~ Beta(k, c - k + 1),
value = exp(mu + sigma * Phi^-1(U))), the window mean by its normal
approximation, request counts as Poisson, errors as binomial or beta-binomial.
Latency is lognormal with median 50 ms and sigma 0.5, 60 windows of 1 s.

Simplifications, all on the pessimistic side for false positives: the total
and each endpoint are drawn independently (a real total is their merge, which
correlates the tests); each gets its own AR(1) window level. Run-to-run noise
is one offset per run shared by all streams, mirrored in throughput as in a
closed model without think time. "Flagged" means a verdict of minor, major or
critical, the tiers that can fail a test.

Run ``python tests/test_regression_stats.py`` to print the table of rates.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, replace
from functools import cache
from statistics import NormalDist
from typing import Any

import numpy as np
import pytest

from pytest_shopflow_perf.verdicts.regression import TIERS, compare, worst_tier

PAIRS = 200
SIGMA = 0.5
WINDOWS = 60
FLAGGED = {"minor", "major", "critical"}


@dataclass(frozen=True)
class Stream:
    """How one endpoint (or the total) behaves in one run."""

    rate: float = 100.0  # requests per 1-second window
    median_ms: float = 50.0
    shift: float = 0.0  # every request slower by this fraction
    tail: float = 0.0  # only requests above the p90 slower by this fraction
    error_rate: float = 0.0
    burst: float | None = None  # beta-binomial concentration of the per-window error rate


@dataclass(frozen=True)
class Scenario:
    name: str
    seed: int
    k: int  # baseline runs
    base: dict[str, Stream]  # "total" and endpoints, as in a run record
    new: dict[str, Stream]
    run_noise: float = 0.0  # sd of the per-run log latency / log rate offset
    ar_phi: float = 0.0  # AR(1) coefficient of the per-window latency level
    ar_sd: float = 0.0  # marginal sd of that level (log scale)
    windows: int = WINDOWS
    pairs: int = PAIRS
    metric: str | None = None  # rate the tier of this metric's findings instead of the verdict


# Fraction of a lognormal's mean contributed by the values above its p90.
TAIL_SHARE = 1.0 - NormalDist().cdf(NormalDist().inv_cdf(0.9) - SIGMA)


def _ar_path(rng: np.random.Generator, n: int, phi: float, sd: float) -> np.ndarray:
    if sd == 0:
        return np.zeros(n)
    innovations = rng.normal(0.0, sd * math.sqrt(1 - phi * phi), n)
    path = np.empty(n)
    path[0] = rng.normal(0.0, sd)
    for i in range(1, n):
        path[i] = phi * path[i - 1] + innovations[i]
    return path


_QUANTILES = np.array([[0.50], [0.95], [0.99]])


def synth_stats(
    rng: np.random.Generator, spec: Stream, level: np.ndarray, rate_factor: float, *, keep_empty: bool
) -> dict[str, Any]:
    """One STATS object of a run record: run-level summaries plus per-window arrays.

    Run-level quantiles stand in for the merged-histogram ones as the
    count-weighted geometric mean of the window values: biased like the window
    values themselves, so ratios between runs stay right.
    """
    from scipy.special import ndtri

    n = level.size
    counts = rng.poisson(spec.rate * rate_factor, n)
    busy = counts > 0
    c = np.maximum(counts, 1)
    mu = math.log(spec.median_ms) + math.log1p(spec.shift) + level
    k = np.clip(np.ceil(_QUANTILES * c), 1, c)  # rank of the p50/p95/p99 order statistic, per window
    u = rng.beta(k, c - k + 1)  # that order statistic of c uniforms
    logs = mu + SIGMA * ndtri(u) + np.where(u > 0.9, math.log1p(spec.tail), 0.0)
    s2 = np.log1p(math.expm1(SIGMA**2) / c)  # variance of the log of a mean of c lognormals
    mean = np.exp(mu + SIGMA**2 / 2 + rng.normal(-s2 / 2, np.sqrt(s2))) * (1 + spec.tail * TAIL_SHARE)
    if spec.burst is None or spec.error_rate == 0:
        p: Any = spec.error_rate
    else:
        a = spec.error_rate * spec.burst
        p = rng.beta(a, spec.burst - a, n)
    errors = rng.binomial(counts, p)
    weights = counts[busy] / counts.sum()
    p50, p95, p99 = np.exp(logs[:, busy] @ weights)
    values = {"p50_ms": np.exp(logs), "p95_ms": None, "p99_ms": None, "mean_ms": mean}
    values["p95_ms"], values["p99_ms"] = values["p50_ms"][1], values["p50_ms"][2]
    values["p50_ms"] = values["p50_ms"][0]
    keep = np.ones(n, bool) if keep_empty else busy
    windows: dict[str, Any] = {
        "t_s": np.arange(n, dtype=float)[keep].tolist(),
        "count": counts[keep].tolist(),
        "errors": errors[keep].tolist(),
    }
    for key, v in values.items():
        windows[key] = np.where(busy, v, 0.0)[keep].tolist()
    requests = int(counts.sum())
    return {
        "requests": requests,
        "errors": int(errors.sum()),
        "rps": requests / n,
        "mean_ms": float(mean[busy] @ weights),
        "p50_ms": float(p50),
        "p90_ms": float(p95) * 0.8,
        "p95_ms": float(p95),
        "p99_ms": float(p99),
        "max_ms": float(values["p99_ms"].max()),
        "windows": windows,
    }


def synth_run(rng: np.random.Generator, streams: dict[str, Stream], sc: Scenario) -> dict[str, Any]:
    """A run record; every stream gets its own AR(1) level path, the run offset is shared."""
    offset = rng.normal(0.0, sc.run_noise) if sc.run_noise else 0.0
    rate_factor = math.exp(-offset)  # closed model: a slower run also serves fewer requests
    stats = {
        name: synth_stats(
            rng,
            spec,
            offset + _ar_path(rng, sc.windows, sc.ar_phi, sc.ar_sd),
            rate_factor,
            keep_empty=name == "total",
        )
        for name, spec in streams.items()
    }
    total = stats.pop("total")
    return {
        "schema": "shopflow-perf/run/1",
        "started_at": "2026-11-22T00:00:00Z",
        "duration_s": float(sc.windows),
        "profile": {"users": 10},
        "environment": {},
        "total": total,
        "endpoints": stats,
    }


@dataclass(frozen=True)
class Rates:
    tiers: dict[str, float]  # share of pairs per verdict tier
    seconds: float

    @property
    def flagged(self) -> float:
        return sum(self.tiers[t] for t in FLAGGED)

    def at_least(self, tier: str) -> float:
        return sum(v for t, v in self.tiers.items() if TIERS.index(t) >= TIERS.index(tier))  # type: ignore[arg-type]


def run_scenario(sc: Scenario) -> Rates:
    rng = np.random.default_rng(sc.seed)
    counts = dict.fromkeys(TIERS, 0)
    start = time.perf_counter()
    for _ in range(sc.pairs):
        runs = [synth_run(rng, sc.base, sc) for _ in range(sc.k)]
        baseline = {"schema": "shopflow-perf/baseline/1", "test": sc.name, "runs": runs}
        verdict = compare(baseline, synth_run(rng, sc.new, sc))
        if sc.metric is None:
            counts[verdict.tier] += 1
        else:
            counts[worst_tier(f.tier for f in verdict.findings if f.metric == sc.metric)] += 1
    return Rates({t: n / sc.pairs for t, n in counts.items()}, time.perf_counter() - start)


def _three(spec: Stream) -> dict[str, Stream]:
    """Total plus two endpoints: 18 tests per comparison, as a small real suite would have."""
    return {
        "total": spec,
        "GET /api/products": replace(spec, rate=spec.rate * 0.6),
        "POST /api/cart": replace(spec, rate=spec.rate * 0.4, median_ms=spec.median_ms * 1.6),
    }


def _one(spec: Stream) -> dict[str, Stream]:
    return {"total": spec}


PLAIN = Stream()
AA = {
    "aa_iid_k3": Scenario("A/A iid lognormal, K=3", 101, 3, _three(PLAIN), _three(PLAIN)),
    "aa_iid_k1": Scenario("A/A iid lognormal, K=1", 102, 1, _three(PLAIN), _three(PLAIN)),
    "aa_ar_k3": Scenario(
        "A/A AR(1) phi=0.9 window level (sd 10%), K=3",
        103,
        3,
        _three(PLAIN),
        _three(PLAIN),
        ar_phi=0.9,
        ar_sd=0.1,
    ),
    "aa_ar_k1": Scenario(
        "A/A AR(1) phi=0.9 window level (sd 10%), K=1",
        104,
        1,
        _three(PLAIN),
        _three(PLAIN),
        ar_phi=0.9,
        ar_sd=0.1,
    ),
    "aa_noise_k1": Scenario("A/A 5% run-to-run noise, K=1", 105, 1, _three(PLAIN), _three(PLAIN), run_noise=0.05),
    "aa_noise_k3": Scenario("A/A 5% run-to-run noise, K=3", 106, 3, _three(PLAIN), _three(PLAIN), run_noise=0.05),
    "aa_noise_k5": Scenario("A/A 5% run-to-run noise, K=5", 107, 5, _three(PLAIN), _three(PLAIN), run_noise=0.05),
    "aa_bursty_errors_k3": Scenario(
        "A/A bursty errors 1% (beta-binomial, concentration 20), K=3",
        108,
        3,
        _three(Stream(error_rate=0.01, burst=20)),
        _three(Stream(error_rate=0.01, burst=20)),
    ),
}


def _shift(name: str, seed: int, change: Stream, *, k: int = 3, run_noise: float = 0.0) -> Scenario:
    return Scenario(name, seed, k, _one(PLAIN), _one(change), run_noise=run_noise)


AB = {
    "uniform15": _shift("+15% uniform, K=3", 201, Stream(shift=0.15)),
    "uniform35": _shift("+35% uniform, K=3", 202, Stream(shift=0.35)),
    "uniform35_k1": _shift("+35% uniform, K=1", 212, Stream(shift=0.35), k=1),
    "uniform75": _shift("+75% uniform, K=3", 203, Stream(shift=0.75)),
    "tail15": _shift("+15% p95 tail-only (above p90), K=3", 204, Stream(tail=0.15)),
    "tail35": _shift("+35% p95 tail-only (above p90), K=3", 205, Stream(tail=0.35)),
    "tail75": _shift("+75% p95 tail-only (above p90), K=3", 206, Stream(tail=0.75)),
    "uniform35_noise_k5": _shift("+35% uniform, 5% run noise, K=5", 207, Stream(shift=0.35), k=5, run_noise=0.05),
    "tail35_noise_k5": _shift("+35% tail-only, 5% run noise, K=5", 208, Stream(tail=0.35), k=5, run_noise=0.05),
    "improvement30": _shift("-30% improvement, K=3", 209, Stream(shift=-0.30)),
    "huge_n_plus1": Scenario(
        "+1% with 10^6 requests per run, K=3",
        210,
        3,
        _one(Stream(rate=1e6 / WINDOWS)),
        _one(Stream(rate=1e6 / WINDOWS, shift=0.01)),
    ),
    "errors_0.5_to_2": Scenario(
        "error rate 0.5% -> 2%, K=3 (error_rate finding)",
        211,
        3,
        _one(Stream(error_rate=0.005)),
        _one(Stream(error_rate=0.02)),
        metric="error_rate",
    ),
    "errors_0.01_to_0.02": Scenario(
        "error rate 0.01% -> 0.02% on 10^6 requests per run, K=3 (error_rate finding)",
        212,
        3,
        _one(Stream(rate=1e6 / WINDOWS, error_rate=0.0001)),
        _one(Stream(rate=1e6 / WINDOWS, error_rate=0.0002)),
        metric="error_rate",
    ),
}
SCENARIOS = {**AA, **AB}


@cache
def rates(key: str) -> Rates:
    return run_scenario(SCENARIOS[key])


# ---- A/A: false positives -------------------------------------------------------------


@pytest.mark.parametrize("key", ["aa_iid_k3", "aa_ar_k3", "aa_noise_k3", "aa_noise_k5", "aa_bursty_errors_k3"])
def test_aa_false_positives_with_three_or_more_baseline_runs(key):
    assert rates(key).flagged <= 0.02


def test_aa_iid_with_a_single_baseline_run_is_quiet_too():
    assert rates("aa_iid_k1").flagged <= 0.02


@pytest.mark.parametrize("key", ["aa_noise_k1", "aa_ar_k1"])
def test_a_single_baseline_run_assumes_ten_percent_run_noise(key):
    # One run cannot show run-to-run noise; with the 3 % floor of K >= 2, 10-19 % of these
    # A/A pairs came out flagged. The 10 % single-run floor keeps them quiet...
    assert rates(key).flagged <= 0.02


def test_a_single_baseline_run_still_catches_plus_35_percent():
    # ...and still catches a real +35 % change.
    assert rates("uniform35_k1").at_least("major") >= 0.9


# ---- A/B: power and tiers ---------------------------------------------------------------


@pytest.mark.parametrize("key", ["uniform35", "tail35"])
def test_plus_35_percent_is_at_least_major(key):
    assert rates(key).at_least("major") >= 0.90


def test_plus_35_percent_under_run_noise_is_mostly_major():
    # 5 % run-to-run noise moves the measured change by about as much as the
    # distance to the 25 % threshold: some pairs honestly land below it.
    assert rates("uniform35_noise_k5").at_least("major") >= 0.85
    assert rates("tail35_noise_k5").at_least("major") >= 0.70
    assert rates("tail35_noise_k5").tiers["none"] <= 0.02


@pytest.mark.parametrize("key", ["uniform75", "tail75"])
def test_plus_75_percent_is_critical(key):
    assert rates(key).tiers["critical"] >= 0.95


def test_plus_15_percent_is_minor_and_never_overstated():
    uniform, tail = rates("uniform15"), rates("tail15")
    assert uniform.flagged >= 0.75
    # A tail-only +15 % moves two of six metrics; after Benjamini-Hochberg it is
    # often "inconclusive" with K = 3, but it is always noticed.
    assert tail.flagged + tail.tiers["inconclusive"] >= 0.95
    for r in (uniform, tail):
        assert r.at_least("major") <= 0.02


def test_improvement_is_never_flagged():
    r = rates("improvement30")
    assert r.flagged == 0.0
    assert r.tiers["inconclusive"] == 0.0


def test_one_percent_on_a_million_requests_is_never_flagged():
    r = rates("huge_n_plus1")
    assert r.flagged == 0.0
    assert r.tiers["inconclusive"] == 0.0


def test_error_rate_quadrupling_is_flagged():
    assert rates("errors_0.5_to_2").flagged >= 0.98


def test_error_rate_below_the_absolute_floor_is_at_most_negligible():
    r = rates("errors_0.01_to_0.02")
    assert r.tiers["none"] + r.tiers["negligible"] == 1.0


def main() -> None:
    """Print the table of measured rates (for the README)."""
    start = time.perf_counter()
    print("| scenario | pairs | " + " | ".join(TIERS) + " | flagged | seconds |")
    print("|---" * (len(TIERS) + 4) + "|")
    for key, sc in SCENARIOS.items():
        r = rates(key)
        cells = " | ".join(f"{r.tiers[t]:.1%}" for t in TIERS)
        print(f"| {sc.name} | {sc.pairs} | {cells} | {r.flagged:.1%} | {r.seconds:.2f} |")
    print(f"\ntotal {time.perf_counter() - start:.1f} s")


if __name__ == "__main__":
    main()
