"""Statistical regression verdict: one run record against a baseline of K earlier runs.

A pure function on JSON-safe records (no HTTP, no pytest), so the statistics
can be tested on synthetic data. The method (see the project's research note
on regression detection) in one paragraph:

* Samples are per-window values, never individual requests (requests are
  autocorrelated; windows much less so): log of the per-window p50/p95/p99/mean
  for latency, per-window request counts for throughput.
* Each run's mean gets an autocorrelation-corrected standard error
  (``n_eff = n (1 - r1) / (1 + r1)``, lag-1 ``r1`` floored at 0).
* Run-to-run variance, which dominates real measurements, is estimated by the
  method of moments from K >= 2 baseline runs (K - 1 degrees of freedom) and
  padded with ``noise_floor`` (the only source of it when K = 1). One-sided
  Welch test with Satterthwaite degrees of freedom.
* The effect size is the run-level change (merged-histogram percentiles, rps),
  against the geometric mean of the baseline runs; its confidence interval is
  the window-level one, exponentiated.
* Error rate: a one-sided Fisher exact test on counts scaled down by the
  overdispersion (bursty errors) seen across windows and across baseline runs,
  plus an absolute floor, so 0.01 % -> 0.02 % is not a "+100 %" regression.
* Benjamini-Hochberg across every test of the comparison, then tiers by
  effect size: a finding needs both significance and a relative change above
  ``minor`` / ``major`` / ``critical``. Large but not significant is
  "inconclusive" (run more), significant but small is "negligible";
  improvements are never flagged.

Heavy imports (numpy, scipy) happen inside functions: this module is imported
in every pytest run that has the plugin installed.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, Final, cast

from pytest_shopflow_perf.result.schema import FAIL_ON_CHOICES, FAILING_TIERS, TIERS, Tier, tier_rank
from pytest_shopflow_perf.verdicts.baseline import BaselineError, validate_baseline, validate_run

if TYPE_CHECKING:
    import numpy as np
    from numpy.typing import NDArray

    FloatArray = NDArray[np.float64]

__all__ = [
    "FAILING_TIERS",
    "FAIL_ON_CHOICES",
    "METRICS",
    "TIERS",
    "TOTAL",
    "BaselineError",
    "Finding",
    "RegressionPolicy",
    "Tier",
    "Verdict",
    "compare",
    "policy_from_ini",
    "tier_rank",
    "worst_tier",
]

METRICS: Final[tuple[str, ...]] = ("p50", "p95", "p99", "mean", "throughput", "error_rate")
TOTAL: Final = "total"
"""Endpoint name of the findings on the whole run (all endpoints together)."""

_LATENCY_KEYS: Final = {"p50": "p50_ms", "p95": "p95_ms", "p99": "p99_ms", "mean": "mean_ms"}
_POWER: Final = 0.80  # for the minimum detectable effect
_EPSILON: Final = 1e-9


@dataclass(frozen=True)
class RegressionPolicy:
    """Thresholds of the verdict. Relative thresholds are fractions (0.10 = +10 %).

    :param alpha: significance level of the one-sided tests, after Benjamini-Hochberg.
    :param minor: relative worsening above which a significant change is a regression.
    :param major: ... a major one.
    :param critical: ... a critical one.
    :param error_rate_floor: smallest absolute error-rate increase (0.001 = 0.1
        percentage points) that can count as a regression.
    :param noise_floor: run-to-run variation (relative sd) that baseline runs
        recorded together may not show, added to the one they do show; with a
        single baseline run it is the only estimate there is.
    :param metrics: metrics to compare, a subset of :data:`METRICS`.
    :param single_run_noise_floor: the run-to-run variation assumed when the
        baseline holds a single run, which cannot show it (short runs of one
        machine were seen to differ by 25 % and more on rare endpoints): only
        changes well beyond it can be significant.
    :param min_baseline_runs: fewer baseline runs than this never fail a test:
        findings stay "inconclusive" until the baseline has them.
    """

    alpha: float = 0.05
    minor: float = 0.10
    major: float = 0.25
    critical: float = 0.50
    error_rate_floor: float = 0.001
    noise_floor: float = 0.03
    metrics: tuple[str, ...] = METRICS
    single_run_noise_floor: float = 0.10
    min_baseline_runs: int = 1

    def __post_init__(self) -> None:
        if not 0.0 < self.alpha < 1.0:
            raise ValueError(f"alpha={self.alpha!r} must lie strictly between 0 and 1")
        if not 0.0 <= self.minor <= self.major <= self.critical:
            raise ValueError(
                f"tiers must satisfy 0 <= minor <= major <= critical, got "
                f"{self.minor!r}, {self.major!r}, {self.critical!r}"
            )
        if not 0.0 <= self.error_rate_floor < 1.0:
            raise ValueError(f"error_rate_floor={self.error_rate_floor!r} must lie in [0, 1)")
        if not 0.0 <= self.noise_floor < 1.0:
            raise ValueError(f"noise_floor={self.noise_floor!r} must lie in [0, 1)")
        if not 0.0 <= self.single_run_noise_floor < 1.0:
            raise ValueError(f"single_run_noise_floor={self.single_run_noise_floor!r} must lie in [0, 1)")
        if self.min_baseline_runs < 1:
            raise ValueError(f"min_baseline_runs={self.min_baseline_runs!r} must be at least 1")
        unknown = sorted(set(self.metrics) - set(METRICS))
        if unknown:
            raise ValueError(f"unknown metrics {unknown}; choose from {list(METRICS)}")


# ini perf_regression_<name> -> RegressionPolicy field: one table for the gate and the baseline CLI.
REGRESSION_INI: Final[dict[str, type]] = {
    "alpha": float,
    "minor": float,
    "major": float,
    "critical": float,
    "error_rate_floor": float,
    "noise_floor": float,
    "single_run_noise_floor": float,
    "min_baseline_runs": int,
}


def policy_from_ini(getini: Callable[[str], str]) -> RegressionPolicy:
    """The policy of a project's ini (``perf_regression_*``; empty = default); ValueError names a bad value."""
    values: dict[str, Any] = {}
    for field_name, kind in REGRESSION_INI.items():
        raw = getini(f"perf_regression_{field_name}")
        if raw:
            try:
                values[field_name] = kind(raw)
            except ValueError:
                raise ValueError(
                    f"ini perf_regression_{field_name}={raw!r} is not valid: expected a {kind.__name__}"
                ) from None
    try:
        return RegressionPolicy(**values)
    except ValueError as exc:
        raise ValueError(f"ini perf_regression_*: {exc}") from None


@dataclass(frozen=True)
class Finding:
    """The comparison of one metric of one endpoint.

    ``baseline`` / ``current`` are in ``unit`` (ms, req/s, or a fraction for the
    error rate); the baseline is the geometric mean over baseline runs (pooled
    for the error rate). ``change`` is ``current / baseline - 1``: positive is
    worse for latency and error rate, negative is worse for throughput. ``ci``
    is the two-sided (1 - 2 alpha) confidence interval of the relative change
    (from the window-level test for latency and throughput: its worse end
    clears 0 exactly when the one-sided test does, before multiplicity
    correction). ``p_value`` is Benjamini-Hochberg adjusted and decides the
    tier, ``p_raw`` is not adjusted. ``mde`` is the smallest worsening this
    comparison detects with 80 % power ("this run can detect >= X %").
    """

    endpoint: str
    metric: str
    tier: Tier
    baseline: float | None
    current: float | None
    change: float | None
    ci: tuple[float, float] | None
    p_value: float | None
    mde: float | None
    note: str = ""
    p_raw: float | None = None
    unit: str = ""

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Finding:
        """Inverse of :meth:`to_dict` (results travel between xdist processes as JSON)."""
        tier = data["tier"]
        if tier not in TIERS:
            raise ValueError(f"unknown tier {tier!r}")
        ci = data.get("ci")
        return cls(
            endpoint=str(data["endpoint"]),
            metric=str(data["metric"]),
            tier=tier,
            baseline=data.get("baseline"),
            current=data.get("current"),
            change=data.get("change"),
            ci=None if ci is None else (ci[0], ci[1]),
            p_value=data.get("p_value"),
            mde=data.get("mde"),
            note=str(data.get("note", "")),
            p_raw=data.get("p_raw"),
            unit=str(data.get("unit", "")),
        )

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe (non-finite numbers become null)."""
        return {
            "endpoint": self.endpoint,
            "metric": self.metric,
            "tier": self.tier,
            "baseline": _json_float(self.baseline),
            "current": _json_float(self.current),
            "change": _json_float(self.change),
            "ci": None if self.ci is None else [_json_float(self.ci[0]), _json_float(self.ci[1])],
            "p_value": _json_float(self.p_value),
            "p_raw": _json_float(self.p_raw),
            "mde": _json_float(self.mde),
            "unit": self.unit,
            "note": self.note,
        }


@dataclass(frozen=True)
class Verdict:
    """The outcome of :func:`compare`: the worst tier, every finding, and notes for the reader."""

    tier: Tier
    findings: list[Finding] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    baseline_runs: int = 0

    @property
    def regressions(self) -> list[Finding]:
        """Findings that are regressions (minor, major or critical), worst first."""
        failing = [f for f in self.findings if f.tier in FAILING_TIERS]
        return sorted(failing, key=lambda f: -tier_rank(f.tier))

    def failed(self, fail_on: str) -> bool:
        """Whether this verdict fails a test run with ``--perf-fail-on=fail_on``.

        "inconclusive" and "negligible" never fail: they are not evidence of a regression.
        """
        if fail_on not in FAIL_ON_CHOICES:
            raise ValueError(f"fail_on={fail_on!r}; choose one of {', '.join(FAIL_ON_CHOICES)}")
        if fail_on == "never" or self.tier not in FAILING_TIERS:
            return False
        return tier_rank(self.tier) >= tier_rank(fail_on)

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe, for reports and the test report under xdist."""
        return {
            "tier": self.tier,
            "baseline_runs": self.baseline_runs,
            "findings": [f.to_dict() for f in self.findings],
            "notes": list(self.notes),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Verdict:
        """Inverse of :meth:`to_dict`."""
        tier = data["tier"]
        if tier not in TIERS:
            raise ValueError(f"unknown tier {tier!r}")
        return cls(
            tier=tier,
            findings=[Finding.from_dict(f) for f in data.get("findings", [])],
            notes=[str(n) for n in data.get("notes", [])],
            baseline_runs=int(data.get("baseline_runs", 0)),
        )


def worst_tier(tiers: Iterable[Tier]) -> Tier:
    """The most severe tier of ``tiers`` ("none" for none)."""
    return max(tiers, key=tier_rank, default="none")


# ---- the comparison -------------------------------------------------------------


@dataclass(frozen=True)
class _Pending:
    """A finding before multiplicity correction and tiering."""

    endpoint: str
    metric: str
    unit: str
    baseline: float | None
    current: float | None
    change: float | None
    worsening: float | None  # relative, positive = worse
    ci: tuple[float, float] | None
    p_raw: float | None
    mde: float | None
    above_floor: bool = True
    note: str = ""


def compare(baseline: Mapping[str, Any], run: Mapping[str, Any], *, policy: RegressionPolicy | None = None) -> Verdict:
    """Compare ``run`` (a run record) with ``baseline`` (a baseline file's content).

    Raises :class:`BaselineError` when either is not a record of the expected schema.
    """
    policy = policy or RegressionPolicy()
    base = validate_baseline(baseline, "baseline")
    current = validate_run(run, "run record")
    runs: list[dict[str, Any]] = base["runs"]
    if not runs:
        return Verdict("none", [], ["the baseline holds no runs yet; nothing to compare"], 0)

    notes = _sample_size_notes(len(runs), policy)
    pending: list[_Pending] = []
    for name, base_series, run_series in _streams(runs, current, notes):
        for metric in policy.metrics:
            if metric in _LATENCY_KEYS:
                pending.append(_latency(name, metric, base_series, run_series, policy))
            elif metric == "throughput":
                pending.append(_throughput(name, base_series, run_series, policy))
            else:
                pending.append(_error_rate(name, base_series, run_series, policy))

    findings = _finalise(pending, policy)
    if len(runs) < policy.min_baseline_runs and any(f.tier in FAILING_TIERS for f in findings):
        notes.append(
            f"{len(runs)} baseline run(s) cannot tell a slowdown from run-to-run noise: regressions are "
            f"reported as inconclusive until the baseline holds {policy.min_baseline_runs} runs"
        )
        findings = [_downgrade(f) for f in findings]
    mismatch = _fingerprint_mismatch(runs, current)
    if mismatch:
        notes.append(mismatch)
        findings = [_downgrade(f) for f in findings]
    shape = _note_profile_change(runs, current, notes)
    if shape and any(f.tier in FAILING_TIERS for f in findings):
        notes.append(
            f"the load shape differs from the baseline's ({', '.join(shape)}): another load is not an A/A "
            "comparison, so regressions are reported as inconclusive; record a baseline with this profile"
        )
        findings = [_downgrade(f, "with the baseline's load profile") for f in findings]
    return Verdict(worst_tier(f.tier for f in findings), findings, notes, len(runs))


def _sample_size_notes(k: int, policy: RegressionPolicy) -> list[str]:
    if k == 1:
        return [
            f"only 1 baseline run: run-to-run variation is assumed to be {policy.single_run_noise_floor:.0%}; "
            "record more runs (--perf-save-baseline) for a calibrated verdict"
        ]
    if k == 2:
        return [
            "only 2 baseline runs: run-to-run variation rests on one degree of freedom, so only "
            "large changes can be significant; a third run sharpens the verdict a lot"
        ]
    return []


# ---- per-window samples -----------------------------------------------------------

_COLUMNS: Final = ("t_s", "count", "errors", "p50_ms", "p95_ms", "p99_ms", "mean_ms")


@dataclass(frozen=True)
class _Series:
    """One STATS object: its summary fields and its per-window arrays, in time order."""

    summary: Mapping[str, Any]
    columns: dict[str, FloatArray]
    grid: FloatArray | None  # window start times of the whole run (the total lists empty windows)


def _series(stats: Mapping[str, Any], grid: FloatArray | None, source: str) -> _Series:
    import numpy as np

    windows = stats.get("windows")
    if windows is None:
        windows = {}
    if not isinstance(windows, Mapping):
        raise BaselineError(f'{source}: "windows" must be an object of per-window arrays')
    columns: dict[str, FloatArray] = {}
    for key in _COLUMNS:
        values = windows.get(key)
        if values is None:
            continue
        try:
            array = np.asarray(values, dtype=np.float64)
        except (TypeError, ValueError) as exc:
            raise BaselineError(f'{source}: windows["{key}"] must be a list of numbers ({exc})') from exc
        if array.ndim != 1:
            raise BaselineError(f'{source}: windows["{key}"] must be a flat list of numbers')
        columns[key] = array
    sizes = {key: a.size for key, a in columns.items()}
    if len(set(sizes.values())) > 1:
        raise BaselineError(f"{source}: per-window arrays differ in length {sizes}")
    t_s = columns.get("t_s")
    if t_s is not None and t_s.size > 1 and np.any(np.diff(t_s) < 0):
        order = np.argsort(t_s, kind="stable")
        columns = {key: a[order] for key, a in columns.items()}
    return _Series(stats, columns, grid)


def _total_series(record: Mapping[str, Any], source: str) -> _Series:
    """The total's series, whose window times (empty windows included) are the run's grid."""
    import numpy as np

    series = _series(record["total"], None, f"{source} total")
    t_s = series.columns.get("t_s")
    return series if t_s is None else replace(series, grid=np.unique(np.round(t_s, 6)))


_Stream = tuple[str, list[_Series], _Series]


def _streams(runs: list[dict[str, Any]], current: Mapping[str, Any], notes: list[str]) -> list[_Stream]:
    """(name, baseline series of the runs that have it, current series) for the total and shared endpoints."""
    sources = [f"baseline run {i}" for i in range(len(runs))]
    totals = [_total_series(r, src) for r, src in zip(runs, sources, strict=True)]
    run_total = _total_series(current, "run record")
    streams: list[_Stream] = [(TOTAL, totals, run_total)]
    current_endpoints: Mapping[str, Any] = current.get("endpoints", {})
    known: set[str] = set()
    for r in runs:
        known.update(r.get("endpoints", {}))
    for name in sorted(current_endpoints):
        base_series = [
            _series(r["endpoints"][name], totals[i].grid, f"{sources[i]} endpoint {name!r}")
            for i, r in enumerate(runs)
            if name in r.get("endpoints", {})
        ]
        if base_series:
            run_series = _series(current_endpoints[name], run_total.grid, f"run record endpoint {name!r}")
            streams.append((name, base_series, run_series))
    new = sorted(set(current_endpoints) - known)
    gone = sorted(known - set(current_endpoints))
    if new:
        notes.append(f"not in the baseline, not compared: {', '.join(new)}")
    if gone:
        notes.append(f"in the baseline but not in this run: {', '.join(gone)}")
    return streams


def _latency_sample(series: _Series, key: str) -> FloatArray | None:
    """Log of a per-window latency statistic, windows without requests left out."""
    import numpy as np

    values = series.columns.get(key)
    if values is None:
        return None
    keep = np.isfinite(values) & (values > 0)
    counts = series.columns.get("count")
    if counts is not None:
        keep &= counts > 0
    return cast("FloatArray", np.log(values[keep]))


def _count_sample(series: _Series) -> FloatArray | None:
    """Requests per window; an endpoint's missing windows (no request) count as 0 on the run's grid."""
    import numpy as np

    counts = series.columns.get("count")
    t_s = series.columns.get("t_s")
    if counts is None or t_s is None or series.grid is None:
        return counts
    t_s = np.round(t_s, 6)
    grid = np.union1d(series.grid, t_s)
    per_window = np.zeros(grid.size)
    np.add.at(per_window, np.searchsorted(grid, t_s), counts)
    return per_window


# ---- the between-run Welch test ---------------------------------------------------


@dataclass(frozen=True)
class _RunMean:
    """One run's mean of a per-window sample and its autocorrelation-corrected squared SE."""

    mean: float
    se2: float
    df: float


@dataclass(frozen=True)
class _Contrast:
    diff: float  # current minus baseline, on the sample scale
    se: float
    df: float


def _run_mean(sample: FloatArray | None) -> _RunMean | None:
    if sample is None or sample.size < 2:
        return None
    mean = float(sample.mean())
    dev = sample - mean
    ss = float(dev @ dev)
    r1 = float(dev[:-1] @ dev[1:]) / ss if sample.size >= 3 and ss > 0 else 0.0
    r1 = min(max(r1, 0.0), 0.99)
    n_eff = max(1.0, sample.size * (1.0 - r1) / (1.0 + r1))
    return _RunMean(mean, ss / (sample.size - 1) / n_eff, max(1.0, n_eff - 1.0))


def _floor(policy: RegressionPolicy, k: int) -> float:
    return policy.single_run_noise_floor if k == 1 else policy.noise_floor


def _contrast(base: list[_RunMean], new: _RunMean, floor_var: float) -> _Contrast:
    """Welch with a between-run term: SE^2 = se_new^2 + mean(se_base^2)/K + (s_b^2 + floor^2)(1 + 1/K).

    ``s_b^2`` is the method-of-moments between-run variance of the K baseline
    runs. The noise floor is added to it rather than used as a lower bound:
    baseline runs are usually recorded back to back and share conditions a
    later run does not, and with K = 1 the floor is all there is. The term
    keeps K - 1 degrees of freedom (it is an estimate from K runs, however it
    is padded), which is what holds the A/A false-positive rate down when the
    runs really differ and K is small.
    """
    k = len(base)
    means = [b.mean for b in base]
    base_mean = sum(means) / k
    components = [(new.se2, new.df), *((b.se2 / k**2, b.df) for b in base)]
    between, between_df = floor_var, math.inf
    if k >= 2:
        spread = sum((m - base_mean) ** 2 for m in means) / (k - 1)
        between += max(spread - sum(b.se2 for b in base) / k, 0.0)
        between_df = float(k - 1)
    components.append((between * (1.0 + 1.0 / k), between_df))
    se2 = sum(c for c, _ in components)
    denominator = sum(c * c / df for c, df in components if c > 0)
    df = se2 * se2 / denominator if denominator > 0 else math.inf
    return _Contrast(new.mean - base_mean, math.sqrt(se2), df)


def _one_sided_p(contrast: _Contrast, higher_is_worse: bool) -> float:
    from scipy.special import stdtr

    if contrast.se <= 0:
        worse = contrast.diff > 0 if higher_is_worse else contrast.diff < 0
        return 0.0 if worse else 1.0
    t = contrast.diff / contrast.se
    return float(stdtr(contrast.df, -t if higher_is_worse else t))


def _t_quantile(df: float, q: float) -> float:
    from scipy.special import stdtrit

    return float(stdtrit(df, q))


def _geometric_mean(values: Sequence[float]) -> float | None:
    if not values or any(not math.isfinite(v) or v <= 0 for v in values):
        return None
    return math.exp(sum(math.log(v) for v in values) / len(values))


def _summary(stats: Mapping[str, Any], key: str) -> float | None:
    value = stats.get(key)
    if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
        return float(value)
    return None


def _summaries(base: list[_Series], run: _Series, key: str) -> tuple[float | None, float | None]:
    """Run-level values (from merged histograms): geometric mean over baseline runs, and this run's."""
    values = [_summary(s.summary, key) for s in base]
    known = [v for v in values if v is not None]
    baseline = _geometric_mean(known) if len(known) == len(values) else None
    return baseline, _summary(run.summary, key)


def _relative(baseline: float | None, current: float | None) -> float | None:
    return current / baseline - 1.0 if baseline and current is not None else None


def _latency(name: str, metric: str, base: list[_Series], run: _Series, policy: RegressionPolicy) -> _Pending:
    key = _LATENCY_KEYS[metric]
    baseline, current = _summaries(base, run, key)
    change = _relative(baseline, current)
    base_means = [m for m in (_run_mean(_latency_sample(s, key)) for s in base) if m is not None]
    new_mean = _run_mean(_latency_sample(run, key))
    if not base_means or new_mean is None:
        return _untested(name, metric, "ms", baseline, current, change, f"fewer than 2 windows with {key}")
    contrast = _contrast(base_means, new_mean, math.log1p(_floor(policy, len(base_means))) ** 2)
    if change is None:  # no run-level summary: fall back to the ratio of window geometric means
        change = math.expm1(contrast.diff)
    half = _t_quantile(contrast.df, 1.0 - policy.alpha) * contrast.se
    mde = half + _t_quantile(contrast.df, _POWER) * contrast.se
    ci = (math.expm1(contrast.diff - half), math.expm1(contrast.diff + half))
    p_raw = _one_sided_p(contrast, higher_is_worse=True)
    return _Pending(name, metric, "ms", baseline, current, change, change, ci, p_raw, math.expm1(mde))


def _throughput(name: str, base: list[_Series], run: _Series, policy: RegressionPolicy) -> _Pending:
    baseline, current = _summaries(base, run, "rps")
    change = _relative(baseline, current)
    usable = [c for c in (_count_sample(s) for s in base) if c is not None and c.size >= 2]
    new_sample = _count_sample(run)
    scale = sum(float(c.mean()) for c in usable) / len(usable) if usable else 0.0
    if scale <= 0 or new_sample is None or new_sample.size < 2:
        return _untested(name, "throughput", "req/s", baseline, current, change, "fewer than 2 windows", -1)
    # Relative units (baseline mean = 1), so the noise floor is the same fraction as for latency.
    base_means = [m for m in (_run_mean(c / scale) for c in usable) if m is not None]
    new_mean = _run_mean(new_sample / scale)
    assert new_mean is not None  # size >= 2
    contrast = _contrast(base_means, new_mean, _floor(policy, len(base_means)) ** 2)
    level = sum(m.mean for m in base_means) / len(base_means)
    if change is None:
        change = contrast.diff / level
    half = _t_quantile(contrast.df, 1.0 - policy.alpha) * contrast.se
    mde = (half + _t_quantile(contrast.df, _POWER) * contrast.se) / level
    ci = ((contrast.diff - half) / level, (contrast.diff + half) / level)
    p_raw = _one_sided_p(contrast, higher_is_worse=False)
    return _Pending(name, "throughput", "req/s", baseline, current, change, -change, ci, p_raw, mde)


# ---- error rate ---------------------------------------------------------------------


def _counts(series: _Series) -> tuple[float, float]:
    """(failed requests, requests) from the summary, or from the windows when the summary lacks them.

    Failed checks and journey exceptions are errors without a request of their own: they are
    left out (``request_errors``), or, in records that predate that field, capped at the requests.
    """
    requests = _summary(series.summary, "requests")
    errors = _summary(series.summary, "request_errors")
    if errors is None:
        errors = _summary(series.summary, "errors")
    if requests is None or errors is None:
        counts = series.columns.get("count")
        window_errors = series.columns.get("errors")
        requests = float(counts.sum()) if counts is not None else 0.0
        errors = float(window_errors.sum()) if window_errors is not None else 0.0
    return min(errors, requests), requests


def _window_dispersion(series: _Series) -> tuple[float, float]:
    """Pearson chi-square of per-window error counts against the run's rate, and its df."""
    import numpy as np

    counts = series.columns.get("count")
    errors = series.columns.get("errors")
    if counts is None or errors is None:
        return 0.0, 0.0
    keep = counts > 0
    counts, errors = counts[keep], np.minimum(errors[keep], counts[keep])
    total = float(counts.sum())
    if counts.size < 2 or total <= 0:
        return 0.0, 0.0
    rate = float(errors.sum()) / total
    if not 0.0 < rate < 1.0:
        return 0.0, 0.0
    expected = counts * rate
    chi2 = float(np.sum((errors - expected) ** 2 / (expected * (1.0 - rate))))
    return chi2, float(counts.size - 1)


def _dispersion(base: list[_Series], run: _Series) -> float:
    """Variance inflation of error counts over binomial: bursts within runs, drift between runs."""
    chi2, df = 0.0, 0.0
    for series in [*base, run]:
        c, d = _window_dispersion(series)
        chi2, df = chi2 + c, df + d
    within = chi2 / df if df > 0 else 1.0
    between = 1.0
    runs = [_counts(s) for s in base]
    total_errors = sum(e for e, _ in runs)
    total_requests = sum(n for _, n in runs)
    if len(runs) >= 2 and 0 < total_errors < total_requests:
        rate = total_errors / total_requests
        chi2_runs = sum((e - n * rate) ** 2 / (n * rate * (1.0 - rate)) for e, n in runs if n > 0)
        between = chi2_runs / (len(runs) - 1)
    return max(1.0, within, between)


def _error_rate(name: str, base: list[_Series], run: _Series, policy: RegressionPolicy) -> _Pending:
    from scipy.special import ndtri
    from scipy.stats import fisher_exact

    runs = [_counts(s) for s in base]
    base_errors, base_requests = sum(e for e, _ in runs), sum(n for _, n in runs)
    new_errors, new_requests = _counts(run)
    if base_requests <= 0 or new_requests <= 0:
        return _untested(name, "error_rate", "fraction", None, None, None, "no requests")
    base_rate, new_rate = base_errors / base_requests, new_errors / new_requests
    no_errors_before = math.inf if new_rate > 0 else 0.0
    change = new_rate / base_rate - 1.0 if base_rate > 0 else no_errors_before
    phi = _dispersion(base, run)
    p_raw = 1.0
    if new_rate > base_rate:
        # Design effect: overdispersed counts carry the information of fewer independent requests.
        table = [
            [round(new_errors / phi), round((new_requests - new_errors) / phi)],
            [round(base_errors / phi), round((base_requests - base_errors) / phi)],
        ]
        p_raw = float(fisher_exact(table, alternative="greater").pvalue)
    z = float(ndtri(1.0 - policy.alpha))
    ci = None
    if new_errors or base_errors:
        # Katz log risk ratio; adding 0.5 keeps it finite when one side has no errors.
        a, n1, b, n0 = new_errors + 0.5, new_requests + 0.5, base_errors + 0.5, base_requests + 0.5
        log_ratio = math.log(a / n1) - math.log(b / n0)
        se = math.sqrt(phi * (1 / a - 1 / n1 + 1 / b - 1 / n0))
        ci = (math.expm1(log_ratio - z * se), math.expm1(log_ratio + z * se))
    mde: float | None = None
    if base_rate > 0:
        pooled = (base_errors + new_errors) / (base_requests + new_requests)
        spread = math.sqrt(phi * pooled * (1 - pooled) * (1 / new_requests + 1 / base_requests))
        mde = max((z + float(ndtri(_POWER))) * spread, policy.error_rate_floor) / base_rate
    above = new_rate - base_rate >= policy.error_rate_floor
    note = ""
    if new_rate > base_rate and not above:
        note = (
            f"+{(new_rate - base_rate) * 100:.2g} percentage points is below the absolute floor of "
            f"{policy.error_rate_floor * 100:.2g}"
        )
    return _Pending(name, "error_rate", "fraction", base_rate, new_rate, change, change, ci, p_raw, mde, above, note)


# ---- tiers ----------------------------------------------------------------------------


def _untested(
    name: str,
    metric: str,
    unit: str,
    baseline: float | None,
    current: float | None,
    change: float | None,
    why: str,
    sign: int = 1,
) -> _Pending:
    worsening = None if change is None else sign * change
    return _Pending(
        name, metric, unit, baseline, current, change, worsening, None, None, None, note=f"not tested: {why}"
    )


def _finalise(pending: list[_Pending], policy: RegressionPolicy) -> list[Finding]:
    """Benjamini-Hochberg over all tests of the comparison, then a tier per finding."""
    import numpy as np
    from scipy.stats import false_discovery_control

    tested = [i for i, p in enumerate(pending) if p.p_raw is not None]
    adjusted: dict[int, float] = {}
    if tested:
        raw = np.clip(np.array([pending[i].p_raw for i in tested], dtype=np.float64), 0.0, 1.0)
        adjusted = dict(zip(tested, (float(p) for p in false_discovery_control(raw)), strict=True))
    findings = []
    for index, p in enumerate(pending):
        p_value = adjusted.get(index)
        tier, why = _tier(p, p_value, policy)
        note = "; ".join(n for n in (p.note, why) if n)
        findings.append(
            Finding(
                p.endpoint,
                p.metric,
                tier,
                p.baseline,
                p.current,
                p.change,
                p.ci,
                p_value,
                p.mde,
                note,
                p.p_raw,
                p.unit,
            )
        )
    return findings


def _tier(p: _Pending, p_value: float | None, policy: RegressionPolicy) -> tuple[Tier, str]:
    if p.worsening is None or not p.worsening > _EPSILON:
        return "none", ""
    # Thresholds are "more than": +50.0 % is major, not critical, whatever the rounding of a geometric mean.
    worse = p.worsening - _EPSILON
    significant = p_value is not None and p_value < policy.alpha
    if not significant:
        if worse > policy.minor and p.above_floor:
            if p.p_raw is None:
                return "inconclusive", "a large change that could not be tested"
            return "inconclusive", "large but not significant; more baseline runs or a longer run would tell"
        return "none", ""
    if not p.above_floor:
        return "negligible", ""
    if worse <= policy.minor:
        return "negligible", f"significant but not above the {policy.minor:.0%} minor threshold"
    if worse > policy.critical:
        return "critical", ""
    if worse > policy.major:
        return "major", ""
    return "minor", ""


def _fingerprint_mismatch(runs: list[dict[str, Any]], current: Mapping[str, Any]) -> str:
    env = current.get("environment")
    mine = env.get("fingerprint") if isinstance(env, Mapping) else None
    if mine is None:
        return ""
    theirs = {
        r["environment"]["fingerprint"]
        for r in runs
        if isinstance(r.get("environment"), Mapping) and "fingerprint" in r["environment"]
    }
    if not theirs or theirs == {mine}:
        return ""
    others = ", ".join(sorted(map(str, theirs)))
    return (
        f"environment differs from the baseline (fingerprint {mine} vs {others}): "
        "regressions are reported as inconclusive; record a baseline on this machine to compare"
    )


def _downgrade(finding: Finding, where: str = "on the baseline's machine") -> Finding:
    if finding.tier not in FAILING_TIERS:
        return finding
    note = "; ".join(n for n in (finding.note, f"would be {finding.tier} {where}") if n)
    return replace(finding, tier="inconclusive", note=note)


# Profile keys that change the load itself (a scaled run compresses its ramps: logins pile up).
_LOAD_SHAPE: Final = frozenset(
    {"model", "users", "duration", "ramp_up", "ramp_down", "stages", "start", "rate", "max_users", "think_time",
     "iterations", "workers", "scale"}
)  # fmt: skip


def _note_profile_change(runs: list[dict[str, Any]], current: Mapping[str, Any], notes: list[str]) -> list[str]:
    """Say when the load profile changed since the latest baseline run; return the load-shape keys that did."""
    profile = current.get("profile")
    previous = runs[-1].get("profile")
    if not (isinstance(profile, Mapping) and isinstance(previous, Mapping)) or dict(profile) == dict(previous):
        return []
    # The seed picks which products users view, not how much load there is; keys new in this version
    # of the plugin (absent from the baseline) are not a change of the test.
    changed = sorted(
        str(k) for k in (set(profile) | set(previous)) - {"seed"} if k in previous and profile.get(k) != previous.get(k)
    )
    if changed:
        notes.append(f"load profile differs from the latest baseline run ({', '.join(changed)})")
    return [key for key in changed if key in _LOAD_SHAPE]


def _json_float(value: float | None) -> float | None:
    return value if value is not None and math.isfinite(value) else None
