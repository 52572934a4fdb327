"""``assert_no_drift``: does a per-window figure trend upward over a steady run (a leak, a growing queue)?

A soak's question is not "was p95 under 500 ms" but "is it getting worse". Comparing the
first and last third of a run (what the soak test did by hand) reads noise as drift, and
misses a slow climb. Here the trend is a Theil-Sen slope (the median of the pairwise
slopes: robust to spikes, no normality assumed) over the per-window values, with its 99 %
interval widened for the lag-1 autocorrelation of the residuals (successive windows are not
independent: ``n_eff = n (1 - r) / (1 + r)``, widened by ``sqrt(n / n_eff)``). The run fails
only when the interval's LOWER bound is above ``max_slope``: a slope that might be the limit
or below it is not a failure, however noisy the run (significance and magnitude together,
as in :mod:`pytest_shopflow_perf.verdicts.regression`).

Ramp-up and ramp-down windows, the windows after the planned duration and windows without
requests are left out; a series longer than ``MAX_POINTS`` is fitted on block medians. A run
too short to have a trend (fewer than ``MIN_WINDOWS`` windows), or without resource samples
for ``target_rss``, returns an inconclusive record with a :class:`DriftWarning`; a saturated
generator or a lost shard skips the test as inconclusive, as every ``assert_*`` helper does.
"""

from __future__ import annotations

import math
import re
import statistics
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, replace
from typing import TYPE_CHECKING, Any

from pytest_shopflow_perf._errors import hide_own_errors
from pytest_shopflow_perf.metrics.recorder import WINDOW_S
from pytest_shopflow_perf.verdicts.slo.grammar import SloError

if TYPE_CHECKING:
    from pytest_shopflow_perf.result.model import LoadResult, TimelineWindow

__all__ = [
    "MAX_POINTS",
    "METRICS",
    "MIN_WINDOWS",
    "SLOPE_FORMS",
    "Drift",
    "DriftError",
    "DriftWarning",
    "assert_no_drift",
    "measure_drift",
    "parse_slope",
]

MIN_WINDOWS = 5
CONFIDENCE = 0.99
START_WINDOWS = 5  # the start level falls back to the median of this many first windows
# Theil-Sen takes every pair of points (n^2 / 2): a 10-hour soak's 36,000 windows would need ~5 GB. Longer
# series are fitted on the medians of blocks of consecutive windows, at most this many (~0.1 s).
MAX_POINTS = 1200
_MAX_AUTOCORRELATION = 0.95  # beyond it n_eff is ~1: the interval is already as wide as it is useful

# metric -> the unit its level is shown in (the per-window value's unit)
METRICS: dict[str, str] = {"p50": "ms", "p95": "ms", "p99": "ms", "mean": "ms", "error_rate": "%", "target_rss": "MB"}
_LATENCY = ("p50", "p95", "p99", "mean")
# an absolute limit's unit -> (the metric family it fits, the factor from the level's unit)
_UNITS: dict[str, tuple[tuple[str, ...], float]] = {
    "ms": (_LATENCY, 1.0),
    "s": (_LATENCY, 1e-3),
    "MB": (("target_rss",), 1.0),
    "GB": (("target_rss",), 1e-3),
    "%": (tuple(METRICS), 1.0),  # relative to the start level (error_rate: percentage points)
}
_PER = {"s": 1.0, "sec": 1.0, "min": 60.0, "minute": 60.0, "h": 3600.0, "hour": 3600.0}
_SLOPE = re.compile(r"^\s*\+?(\d+(?:\.\d+)?|\.\d+)\s*(%|ms|s|mb|gb)\s*/\s*(s|sec|min|minute|h|hour)\s*$", re.I)
SLOPE_FORMS = (
    '"10%/min" (relative to the start level; for error_rate percentage points), "5ms/min" or "0.1s/min" '
    '(p50, p95, p99, mean), "2MB/h" or "1GB/h" (target_rss); per s, min or h'
)


class DriftError(SloError):
    """``assert_no_drift`` was given a metric, limit or endpoint it cannot judge; the message lists the valid ones."""


class DriftWarning(UserWarning):
    """A drift check that could not judge (too few windows, no resource samples): the test is not failed."""


@dataclass(frozen=True)
class Drift:
    """The trend of one metric over a run; slopes are in the limit's unit (``unit``, e.g. ``"%/min"``).

    ``start``/``end`` are the fitted levels at the first and last window (or block) used, in ``level_unit``.
    ``verdict`` is ``"fail"`` only when ``low`` is above ``limit``.
    """

    metric: str
    endpoint: str | None
    slope: float | None
    low: float | None
    high: float | None
    start: float | None
    end: float | None
    windows: int
    verdict: str  # "pass", "fail", "inconclusive"
    reason: str
    limit: float = 0.0
    unit: str = ""  # the limit's: "%/min", "ms/min", "MB/h"
    level_unit: str = ""  # the metric's: "ms", "%", "MB"
    max_slope: str = ""  # the limit as written
    autocorrelation: float = 0.0  # lag-1 autocorrelation of the residuals (floored at 0)
    first_s: float | None = None  # seconds from the start: the first and last window used
    last_s: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @property
    def name(self) -> str:
        return f"{self.metric} on {self.endpoint}" if self.endpoint else self.metric

    def describe(self) -> str:
        """One line: the slope, its interval, the levels and the limit (or why it was not judged)."""
        if self.slope is None or self.low is None or self.high is None:
            return f"{self.name} drift {self.verdict}: {self.reason}"
        span = f" ({self.first_s:g}-{self.last_s:g} s)" if self.first_s is not None else ""
        unit = self.level_unit
        return (
            f"slope {_num(self.slope)} {self.unit} "
            f"({CONFIDENCE * 100:.0f} % interval {_num(self.low)} .. {_num(self.high)} {self.unit}), "
            f"from {_level(self.start)} {unit} to {_level(self.end)} {unit} over {self.windows} windows{span}; "
            f"limit {self.max_slope}"
        )


@dataclass(frozen=True)
class _Limit:
    value: float
    unit: str  # "%", "ms", "s", "MB", "GB"
    per: str  # "s", "min", "h"
    text: str

    @property
    def label(self) -> str:
        return f"{self.unit}/{self.per}"

    @property
    def per_s(self) -> float:
        return _PER[self.per]


def _num(value: float) -> str:
    return f"{value:+,.0f}" if abs(value) >= 100 else f"{value:+.3g}"


def _level(value: float | None) -> str:
    return "-" if value is None else f"{value:.4g}"


def parse_slope(text: object, metric: str) -> _Limit:
    """``"10%/min"`` -> a limit, checked against what the metric is measured in."""
    __tracebackhide__ = hide_own_errors
    if not isinstance(text, str):
        raise DriftError(f"assert_no_drift: max_slope={text!r} must be a string with a unit: {SLOPE_FORMS}")
    match = _SLOPE.match(text)
    if match is None:
        raise DriftError(f"assert_no_drift: max_slope={text!r} could not be read: {SLOPE_FORMS}")
    number, unit, per = match.groups()
    unit = {"mb": "MB", "gb": "GB"}.get(unit.lower(), unit.lower())
    metrics, _ = _UNITS[unit]
    if metric not in metrics:
        raise DriftError(
            f"assert_no_drift: max_slope={text!r} is in {unit}, which does not fit metric={metric!r} "
            f"(measured in {METRICS[metric]}): {SLOPE_FORMS}"
        )
    return _Limit(value=float(number), unit=unit, per=per.lower(), text=text.strip())


# ---- the series -----------------------------------------------------------------------


def _steady_span(result: LoadResult) -> tuple[float, float]:
    """[start, end) in seconds of the run's steady part: after the ramp-up, before the ramp-down.

    The windows after the planned duration (in-flight requests finishing) are left out too.
    """
    profile = result.profile
    head = float(profile.get("ramp_up") or 0.0)
    stages = profile.get("stages") or []
    if stages and float(stages[0][0]) > 0 and float(stages[0][1]) != float(profile.get("start") or 0.0):
        head = max(head, float(stages[0][0]))  # the first stage climbs from the start level: a ramp
    tail = float(profile.get("ramp_down") or 0.0)
    planned = float(profile.get("duration") or 0.0)
    end = planned - tail if planned > 0 else math.inf
    return head, end


def _window_value(window: TimelineWindow, metric: str) -> float | None:
    if not window.count:
        return None
    if metric == "error_rate":
        return window.error_rate * 100
    if not (window.p50 or window.p95 or window.mean):
        return None  # every request of the window failed: no latency to trend
    return float(getattr(window, metric)) * 1000


def _series(result: LoadResult, metric: str, endpoint: str | None) -> list[tuple[float, float]]:
    """(seconds from the start, value in the metric's unit) of every window of the steady part."""
    __tracebackhide__ = hide_own_errors
    start, end = _steady_span(result)
    if metric == "target_rss":
        if endpoint is not None:
            raise DriftError("assert_no_drift: target_rss is the target's, not an endpoint's: leave endpoint=None")
        samples = result.resources.samples if result.resources is not None else ()
        rss: list[tuple[float, float]] = []
        for sample in samples:
            t, value = float(sample["t_s"]), sample.get("rss_mb")
            if isinstance(value, (int, float)) and not math.isnan(value) and start <= t < end:
                rss.append((t, float(value)))
        return rss
    if endpoint is None:
        timeline = result.timeline
    elif endpoint in result.endpoints:
        timeline = result.endpoints[endpoint].timeline
    else:
        known = ", ".join(repr(name) for name in result.endpoints) or "none"
        raise DriftError(f"assert_no_drift: no endpoint {endpoint!r} in this run; endpoints: {known}")
    points = []
    for window in timeline:
        value = _window_value(window, metric)
        if value is not None and window.t >= start - 1e-9 and window.t + WINDOW_S <= end + 1e-9:
            points.append((window.t, value))
    return points


# ---- the trend --------------------------------------------------------------------------


def _lag1(residuals: Sequence[float]) -> float:
    """Lag-1 autocorrelation, floored at 0 (a negative one would narrow the interval) and capped."""
    mean = statistics.fmean(residuals)
    centred = [e - mean for e in residuals]
    spread = sum(e * e for e in centred)
    if spread <= 0:
        return 0.0
    r = sum(a * b for a, b in zip(centred[1:], centred[:-1], strict=False)) / spread
    r += (1 + 4 * r) / len(residuals)  # the estimate is biased low over few windows (Marriott & Pope 1954)
    return min(max(r, 0.0), _MAX_AUTOCORRELATION)


def _blocks(points: Sequence[tuple[float, float]]) -> tuple[list[tuple[float, float]], int]:
    """At most ``MAX_POINTS`` points: the mean time and median value of blocks of consecutive windows."""
    size = max(1, math.ceil(len(points) / MAX_POINTS))
    if size == 1:
        return list(points), 1
    blocks = [points[i : i + size] for i in range(0, len(points), size)]
    return [(statistics.fmean(t for t, _ in b), statistics.median(v for _, v in b)) for b in blocks], size


def _trend(points: Sequence[tuple[float, float]]) -> tuple[float, float, float, float, float, float]:
    """Theil-Sen over the points: slope, low, high (per second, widened), fitted start and end, and r."""
    from scipy.stats import theilslopes  # lazy: scipy costs ~0.3 s to import

    xs = [t for t, _ in points]
    ys = [v for _, v in points]
    fit = theilslopes(ys, xs, alpha=CONFIDENCE)
    slope, intercept = float(fit[0]), float(fit[1])
    low, high = float(fit[2]), float(fit[3])
    r = _lag1([y - (intercept + slope * x) for x, y in points])
    widen = math.sqrt((1 + r) / (1 - r))  # sqrt(n / n_eff) with n_eff = n (1 - r) / (1 + r)
    low, high = slope - (slope - low) * widen, slope + (high - slope) * widen
    return slope, low, high, intercept + slope * xs[0], intercept + slope * xs[-1], r


def _inconclusive(base: Mapping[str, Any], windows: int, reason: str, **known: Any) -> Drift:
    figures: dict[str, Any] = {"slope": None, "low": None, "high": None, "start": None, "end": None} | known
    return Drift(**base, **figures, windows=windows, verdict="inconclusive", reason=reason)


def measure_drift(
    result: LoadResult, metric: str = "p95", max_slope: str = "10%/min", endpoint: str | None = None
) -> Drift:
    """The trend of ``metric`` and its verdict, without failing or recording anything."""
    __tracebackhide__ = hide_own_errors
    if metric not in METRICS:
        raise DriftError(f"assert_no_drift: metric={metric!r} is not one of {', '.join(METRICS)}")
    limit = parse_slope(max_slope, metric)
    base: dict[str, Any] = {"metric": metric, "endpoint": endpoint, "limit": limit.value, "unit": limit.label}
    base |= {"level_unit": METRICS[metric], "max_slope": limit.text}
    points = _series(result, metric, endpoint)
    if len(points) < MIN_WINDOWS:
        what = "resource samples" if metric == "target_rss" else "windows with requests"
        reason = (
            f"only {len(points)} {what} after the ramp-up (a trend needs at least {MIN_WINDOWS}): not judged"
            if points or metric != "target_rss"
            else "no resource samples of the target (result.resources is None): not judged"
        )
        return _inconclusive(base, len(points), reason)
    slope, low, high, start, end, r = _trend(_blocks(points)[0])
    scale = limit.per_s * _UNITS[limit.unit][1]
    if limit.unit == "%" and metric != "error_rate":
        if start <= 0:
            start = statistics.median(v for _, v in points[:START_WINDOWS])
        if start <= 0:
            reason = f"the start level is {start:g} {METRICS[metric]}: a relative limit needs a positive one"
            return _inconclusive(base, len(points), reason, start=start, end=end, autocorrelation=r)
        scale *= 100 / start
    slope, low, high = slope * scale, low * scale, high * scale
    failed = low > limit.value
    if failed:
        reason = f"the slope's lower bound {_num(low)} {limit.label} is above the limit {limit.text}"
    elif slope > limit.value:
        reason = f"the slope is above {limit.text}, but not significantly (its interval reaches below it)"
    else:
        reason = f"no significant upward trend above {limit.text}"
    return Drift(
        **base,
        slope=slope,
        low=low,
        high=high,
        start=start,
        end=end,
        windows=len(points),
        verdict="fail" if failed else "pass",
        reason=reason,
        autocorrelation=r,
        first_s=points[0][0],
        last_s=points[-1][0],
    )


def _record(result: LoadResult, drift: Drift) -> None:
    entries = result.extra.setdefault("drift", [])
    entries.append(drift.to_dict())


def assert_no_drift(
    result: LoadResult, metric: str = "p95", max_slope: str = "10%/min", endpoint: str | None = None
) -> Drift:
    """Fail when ``metric`` trends upward significantly faster than ``max_slope``; return the trend.

    :param metric: ``p50``, ``p95``, ``p99``, ``mean`` (per-window latency), ``error_rate``
        (per-window, in %) or ``target_rss`` (the target's memory, ``result.resources``).
    :param max_slope: ``"10%/min"`` (relative to the start level), ``"5ms/min"``, ``"2MB/h"``...
    :param endpoint: one endpoint's windows instead of the whole run's.
    :return: the :class:`Drift` (also appended to ``result.extra["drift"]`` for the reports).
    """
    __tracebackhide__ = True
    from pytest_shopflow_perf.verdicts.slo.evaluate import skip_if_saturated

    drift = measure_drift(result, metric, max_slope, endpoint)
    if result.generator.saturated or result.lost_shards:
        why = "a load generator shard was lost" if result.lost_shards else "the load generator was saturated"
        drift = replace(drift, verdict="inconclusive", reason=f"{why}: not judged")
        _record(result, drift)
        skip_if_saturated(result, [])  # a saturated generator's trend is the generator's, not the service's
    _record(result, drift)
    if drift.verdict == "inconclusive":
        warnings.warn(DriftWarning(f"{result.test or 'load run'}: {drift.describe()}"), stacklevel=2)
    elif drift.verdict == "fail":
        raise AssertionError(f"{drift.name} drifts upward: {drift.describe()}")
    return drift
