"""The statistics of the regression verdict: per-window samples, run means, the between-run tests.

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
  Latency has one too (``latency_floor_ms``): 1.8 -> 2.6 ms is not a "+44 %" one.
* Benjamini-Hochberg across every test of the comparison, then tiers by
  effect size: a finding needs both significance and a relative change above
  ``minor`` / ``major`` / ``critical``. Large but not significant is
  "inconclusive" (run more), significant but small is "negligible";
  improvements are never flagged.

Each metric's test gives a ``Pending`` finding (effect, interval, raw p-value);
:mod:`.verdict` corrects them for multiplicity and tiers them. Heavy imports
(numpy, scipy) happen inside functions: this module is imported in every
pytest run that has the plugin installed.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, Final, cast

from pytest_shopflow_perf.verdicts.baseline import BaselineError

if TYPE_CHECKING:
    import numpy as np
    from numpy.typing import NDArray

    from pytest_shopflow_perf.verdicts.regression.verdict import RegressionPolicy

    FloatArray = NDArray[np.float64]

TOTAL: Final = "total"
"""Endpoint name of the findings on the whole run (all endpoints together)."""

LATENCY_KEYS: Final = {"p50": "p50_ms", "p95": "p95_ms", "p99": "p99_ms", "mean": "mean_ms"}
_POWER: Final = 0.80  # for the minimum detectable effect


@dataclass(frozen=True)
class Pending:
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
    requests: int | None = None  # in the current run's stream: how much longer a run would need to be


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


def streams(runs: list[dict[str, Any]], current: Mapping[str, Any], notes: list[str]) -> list[_Stream]:
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


def compare_latency(name: str, metric: str, base: list[_Series], run: _Series, policy: RegressionPolicy) -> Pending:
    key = LATENCY_KEYS[metric]
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
    above, note = True, ""
    if baseline is not None and current is not None and current - baseline < policy.latency_floor_ms:
        above = False
        note = f"{current - baseline:+.2g} ms is below the absolute floor of {policy.latency_floor_ms:g} ms"
    return Pending(
        name, metric, "ms", baseline, current, change, change, ci, p_raw, math.expm1(mde), above, note, _requests(run)
    )


def _requests(run: _Series) -> int | None:
    counts = run.columns.get("count")
    return int(counts.sum()) if counts is not None else None


def compare_throughput(name: str, base: list[_Series], run: _Series, policy: RegressionPolicy) -> Pending:
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
    return Pending(
        name, "throughput", "req/s", baseline, current, change, -change, ci, p_raw, mde, requests=_requests(run)
    )


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


def compare_error_rate(name: str, base: list[_Series], run: _Series, policy: RegressionPolicy) -> Pending:
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
    return Pending(name, "error_rate", "fraction", base_rate, new_rate, change, change, ci, p_raw, mde, above, note)


# ---- findings that could not be tested ---------------------------------------------


def _untested(
    name: str,
    metric: str,
    unit: str,
    baseline: float | None,
    current: float | None,
    change: float | None,
    why: str,
    sign: int = 1,
) -> Pending:
    worsening = None if change is None else sign * change
    return Pending(
        name, metric, unit, baseline, current, change, worsening, None, None, None, note=f"not tested: {why}"
    )
