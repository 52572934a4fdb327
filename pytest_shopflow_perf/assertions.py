"""SLO assertions: thresholds on a ``LoadResult`` that fail a test with a readable table.

Every breach is listed, not just the first; passing checks are recorded on the
result (``result.extra["slo"]``) so reports can show them too.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

from .units import UnitError, parse_duration, parse_fraction

if TYPE_CHECKING:
    from .result import LoadResult, Stats

GRAMMAR = (
    "[ENDPOINT: ]METRIC OP VALUE, where METRIC is p(N), avg, med, min, max (latency; VALUE in us, ms or s, "
    "ms when no unit), error_rate or rate (VALUE as 1% or 0.01), rps, count or errors (numbers), and OP is "
    "<, <=, >, >= or ==; e.g. 'p(95)<500ms', 'error_rate<1%', 'rps>50', 'GET /api/products: p(99)<1s'"
)
_EXPRESSION = re.compile(
    r"^\s*(?:(?P<endpoint>.+?)\s*:\s+)?(?P<metric>p\(\s*\d+(?:\.\d+)?\s*\)|[a-z_]+)\s*"
    r"(?P<op><=|>=|==|<|>)\s*(?P<value>[^\s].*?)\s*$"
)
_LATENCY_METRICS = {"avg": "mean", "mean": "mean", "med": "p50", "min": "min", "max": "max"}
_OPS = {
    "<": lambda a, b: a < b,
    "<=": lambda a, b: a <= b,
    ">": lambda a, b: a > b,
    ">=": lambda a, b: a >= b,
    "==": lambda a, b: a == b,
}


class SloError(ValueError):
    """An SLO expression or threshold could not be read; the message gives the grammar."""


@dataclass(frozen=True)
class Threshold:
    """One parsed threshold: ``metric op value`` on an endpoint (None = the whole run)."""

    metric: str  # "p95", "p99.9", "mean", "min", "max", "error_rate", "rps", "count", "errors"
    op: str
    value: float  # seconds for latency, fraction for rates
    endpoint: str | None = None
    text: str = ""

    @property
    def is_latency(self) -> bool:
        return self.metric.startswith("p") or self.metric in ("mean", "min", "max")


@dataclass(frozen=True)
class CheckOutcome:
    """A threshold against what was measured, kept for reports whether it passed or not."""

    threshold: str
    metric: str
    endpoint: str
    measured: float
    limit: float
    op: str
    passed: bool
    worst_endpoint: str | None = None
    unit: str = ""

    def margin(self) -> float:
        """Relative distance to the limit; positive means breached by that much."""
        if self.limit == 0:
            return 0.0 if self.passed else 1.0
        change = (self.measured - self.limit) / abs(self.limit)
        return change if self.op in ("<", "<=", "==") else -change


def _percentile_metric(text: str) -> str:
    number = float(text[2:-1].strip())
    if not 0 < number <= 100:
        raise SloError(f"percentile {text!r} must lie in (0, 100]")
    return f"p{number:g}"


def parse_threshold(expression: str) -> Threshold:
    """``"GET /api/products: p(95)<300ms"`` -> Threshold; errors name the expression and the grammar."""
    match = _EXPRESSION.match(expression) if isinstance(expression, str) else None
    if match is None:
        raise SloError(f"cannot read SLO expression {expression!r}; expected {GRAMMAR}")
    metric_text = match.group("metric").replace(" ", "")
    op, value_text = match.group("op"), match.group("value")
    try:
        if metric_text.startswith("p("):
            metric = _percentile_metric(metric_text)
            value = _latency_value(value_text)
        elif metric_text in _LATENCY_METRICS:
            metric = _LATENCY_METRICS[metric_text]
            value = _latency_value(value_text)
        elif metric_text in ("rate", "error_rate"):
            metric, value = "error_rate", parse_fraction(value_text, what=metric_text)
        elif metric_text in ("rps", "count", "errors"):
            metric, value = metric_text, float(value_text)
        else:
            raise SloError(f"unknown metric {metric_text!r}")
    except (UnitError, ValueError) as exc:
        raise SloError(f"cannot read SLO expression {expression!r}: {exc}; expected {GRAMMAR}") from None
    return Threshold(metric=metric, op=op, value=value, endpoint=match.group("endpoint"), text=expression.strip())


def _latency_value(text: str) -> float:
    stripped = text.strip()
    try:
        return float(stripped) / 1000.0  # k6: a bare number is milliseconds
    except ValueError:
        return parse_duration(stripped, what="latency")


def _measure(stats: Stats, metric: str) -> float:
    if metric.startswith("p"):
        return stats.percentile(float(metric[1:]))
    if metric == "mean":
        return stats.mean
    if metric == "min":
        return stats.min
    if metric == "max":
        return stats.max
    if metric == "error_rate":
        return stats.error_rate
    if metric == "rps":
        return stats.rps
    if metric == "count":
        return float(stats.requests)
    if metric == "errors":
        return float(stats.errors)
    raise SloError(f"unknown metric {metric!r}")


def _scope(result: LoadResult, endpoint: str | None) -> Stats:
    if endpoint is None:
        return result
    return result.endpoints[endpoint]


def evaluate(result: LoadResult, thresholds: Iterable[Threshold]) -> list[CheckOutcome]:
    outcomes = []
    for threshold in thresholds:
        stats = _scope(result, threshold.endpoint)
        measured = _measure(stats, threshold.metric)
        worst = None
        if threshold.endpoint is None and len(result.endpoints) > 1 and threshold.metric not in ("rps", "count"):
            worst = max(result.endpoints, key=lambda name: _measure(result.endpoints[name], threshold.metric))
        outcomes.append(
            CheckOutcome(
                threshold=threshold.text,
                metric=threshold.metric,
                endpoint=threshold.endpoint or "total",
                measured=measured,
                limit=threshold.value,
                op=threshold.op,
                passed=bool(_OPS[threshold.op](measured, threshold.value)),
                worst_endpoint=worst,
                unit="s" if threshold.is_latency else ("%" if threshold.metric == "error_rate" else ""),
            )
        )
    return outcomes


def _show(value: float, unit: str) -> str:
    if unit == "s":
        return f"{value * 1000:.1f} ms"
    if unit == "%":
        return f"{value * 100:.2f} %"
    return f"{value:,.1f}"


def format_failure(outcomes: list[CheckOutcome]) -> str:
    from .reporting.terminal import format_table

    failed = [o for o in outcomes if not o.passed]
    rows: list[tuple[str, ...]] = [("metric", "endpoint", "measured", "threshold", "margin", "worst endpoint")]
    for o in failed:
        rows.append(
            (
                o.metric,
                o.endpoint,
                _show(o.measured, o.unit),
                f"{o.op} {_show(o.limit, o.unit)}",
                f"{o.margin() * 100:+.1f}%",
                o.worst_endpoint or "",
            )
        )
    head = f"SLO breached: {len(failed)} of {len(outcomes)} threshold(s) failed"
    return "\n".join([head, *("  " + line for line in format_table(rows))])


def check(result: LoadResult, thresholds: list[Threshold]) -> None:
    __tracebackhide__ = True
    if not result.requests and not result.errors:
        raise AssertionError(
            "no request was measured in this run: there is nothing to hold the thresholds against "
            "(did every user fail in on_start, or did the journeys make no requests?)"
        )
    outcomes = evaluate(result, thresholds)
    result.extra.setdefault("slo", []).extend(asdict(o) for o in outcomes)
    if not all(o.passed for o in outcomes):
        raise AssertionError(format_failure(outcomes))


def _latency_threshold(metric: str, limit: object, endpoint: str | None) -> Threshold:
    try:
        value = parse_duration(limit, what=metric)
    except UnitError as exc:
        raise SloError(str(exc)) from None
    return Threshold(metric=metric, op="<=", value=value, endpoint=endpoint, text=f"{metric}<={limit}")


def assert_latency(
    result: LoadResult,
    *,
    p50: float | str | None = None,
    p90: float | str | None = None,
    p95: float | str | None = None,
    p99: float | str | None = None,
    p999: float | str | None = None,
    max: float | str | None = None,
    mean: float | str | None = None,
    endpoint: str | None = None,
) -> None:
    """Fail unless every given latency is at or under its limit (seconds or "500ms")."""
    __tracebackhide__ = True
    limits: dict[str, Any] = {
        "p50": p50,
        "p90": p90,
        "p95": p95,
        "p99": p99,
        "p99.9": p999,
        "max": max,
        "mean": mean,
    }
    thresholds = [_latency_threshold(m, v, endpoint) for m, v in limits.items() if v is not None]
    if not thresholds:
        raise SloError("assert_latency needs at least one limit, e.g. assert_latency(result, p95='500ms')")
    check(result, thresholds)


def assert_error_rate(result: LoadResult, max: float | str = "1%", *, endpoint: str | None = None) -> None:
    """Fail when more than ``max`` (0.01 or "1%") of requests failed."""
    __tracebackhide__ = True
    try:
        limit = parse_fraction(max, what="max")
    except UnitError as exc:
        raise SloError(str(exc)) from None
    check(result, [Threshold("error_rate", "<=", limit, endpoint, f"error_rate<={max}")])


def assert_throughput(result: LoadResult, min_rps: float, *, endpoint: str | None = None) -> None:
    """Fail when fewer than ``min_rps`` requests per second completed."""
    __tracebackhide__ = True
    if isinstance(min_rps, bool) or not isinstance(min_rps, (int, float)) or min_rps < 0:
        raise SloError(f"min_rps={min_rps!r} must be a non-negative number")
    check(result, [Threshold("rps", ">=", float(min_rps), endpoint, f"rps>={min_rps}")])


def assert_slo(result: LoadResult, *expressions: str) -> None:
    """k6-style thresholds: ``assert_slo(result, "p(95)<500ms", "error_rate<1%", "rps>50")``."""
    __tracebackhide__ = True
    if not expressions:
        raise SloError(f"assert_slo needs at least one expression: {GRAMMAR}")
    check(result, [parse_threshold(expression) for expression in expressions])


def assert_no_regression(result: LoadResult, *, fail_on: str | None = None) -> None:
    """Fail when the run regressed against its baseline at or above ``fail_on`` (``--perf-fail-on``)."""
    __tracebackhide__ = True
    from .regression import FAIL_ON_CHOICES, Verdict

    fail_on = fail_on or str(result.extra.get("regression_fail_on", "major"))
    if fail_on not in FAIL_ON_CHOICES:
        raise SloError(f"fail_on={fail_on!r} is not valid: expected one of {', '.join(FAIL_ON_CHOICES)}")
    record = result.extra.get("regression")
    if record is None:
        return  # no baseline yet, or comparison disabled: the reason is in result.extra["regression_note"]
    verdict = Verdict.from_dict(record)
    if verdict.failed(fail_on):
        raise AssertionError(format_regression(verdict, fail_on))


def format_regression(verdict: Any, fail_on: str) -> str:
    """A table of the findings at or above ``fail_on``, worst first."""
    from .regression import TIERS
    from .reporting.terminal import format_table

    rank: dict[str, int] = {tier: index for index, tier in enumerate(TIERS)}
    findings = sorted(verdict.findings, key=lambda f: (-rank[f.tier], f.endpoint, f.metric))
    shown = [f for f in findings if f.tier in ("minor", "major", "critical") and rank[f.tier] >= rank[fail_on]]
    rows: list[tuple[str, ...]] = [("tier", "endpoint", "metric", "baseline", "current", "change", "95% CI", "p")]
    for f in shown:
        low, high = (math.nan if v is None else v for v in f.ci) if f.ci else (math.nan, math.nan)
        rows.append(
            (
                f.tier,
                f.endpoint,
                f.metric,
                f"{f.baseline:.4g}{f.unit}" if f.baseline is not None else "-",
                f"{f.current:.4g}{f.unit}" if f.current is not None else "-",
                f"{f.change * 100:+.1f}%" if f.change is not None and math.isfinite(f.change) else "new",
                f"[{low * 100:+.0f}%, {high * 100:+.0f}%]" if math.isfinite(low) and math.isfinite(high) else "-",
                f"{f.p_value:.3g}" if f.p_value is not None else "-",
            )
        )
    head = f"performance regression: {verdict.tier} (fails at {fail_on} or worse)"
    notes = [f"  note: {note}" for note in verdict.notes]
    return "\n".join([head, *("  " + line for line in format_table(rows)), *notes])
