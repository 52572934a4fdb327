"""The public assertion helpers: ``assert_latency``, ``assert_slo``, ``assert_recovery``, ``assert_no_regression``...

Each builds thresholds (:mod:`.slo.grammar`) and judges them on a ``LoadResult``
(:mod:`.slo.evaluate`); ``check_declared`` judges a test's declared SLOs after its
run. The grammar, the evaluation and the live watchdog names are re-exported
here, where they have always been importable.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

from pytest_shopflow_perf._errors import hide_own_errors
from pytest_shopflow_perf.profile.units import UnitError, parse_duration, parse_fraction
from pytest_shopflow_perf.result.schema import FAILING_TIERS, tier_rank
from pytest_shopflow_perf.verdicts.slo.abort import Tracked, abort_reason, track_spans, watch
from pytest_shopflow_perf.verdicts.slo.evaluate import (
    CheckOutcome,
    check,
    evaluate,
    format_failure,
    show,
    skip_if_saturated,
)
from pytest_shopflow_perf.verdicts.slo.grammar import (
    DEFAULT_ABORT_GRACE_S,
    GRAMMAR,
    Slo,
    SloError,
    Threshold,
    as_slos,
    expression,
    latency_unit,
    parse_threshold,
)

if TYPE_CHECKING:
    from pytest_shopflow_perf.result.capacity import Capacity
    from pytest_shopflow_perf.result.model import LoadResult
    from pytest_shopflow_perf.verdicts.regression.verdict import Verdict

__all__ = [
    "DEFAULT_ABORT_GRACE_S",
    "GRAMMAR",
    "CheckOutcome",
    "PerformanceRegressionWarning",
    "Slo",
    "SloError",
    "Threshold",
    "Tracked",
    "abort_reason",
    "as_slos",
    "assert_error_rate",
    "assert_latency",
    "assert_no_regression",
    "assert_recovery",
    "assert_slo",
    "assert_throughput",
    "check",
    "check_declared",
    "evaluate",
    "expression",
    "format_failure",
    "format_regression",
    "parse_threshold",
    "track_spans",
    "watch",
]


class PerformanceRegressionWarning(UserWarning):
    """A significant slowdown below ``--perf-fail-on``: reported, not failed."""


# ---- the helpers ---------------------------------------------------------------------


def _latency_threshold(metric: str, limit: object, endpoint: str | None) -> Threshold:
    __tracebackhide__ = hide_own_errors
    try:
        value = parse_duration(limit, what=metric)
    except UnitError as exc:
        raise SloError(f"assert_latency: {exc}") from None
    return Threshold(metric=metric, op="<=", value=value, endpoint=endpoint, unit=latency_unit(limit))


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
    limits: dict[str, Any] = {"p50": p50, "p90": p90, "p95": p95, "p99": p99, "p99.9": p999, "max": max, "mean": mean}
    thresholds = []
    for metric, limit in limits.items():  # a loop, not a comprehension: its frame could not hide (Python < 3.12)
        if limit is not None:
            thresholds.append(_latency_threshold(metric, limit, endpoint))
    if not thresholds:
        raise SloError("assert_latency needs at least one limit, e.g. assert_latency(result, p95='500ms')")
    check(result, thresholds)


def assert_error_rate(
    result: LoadResult, max: float | str = "1%", *, endpoint: str | None = None, kinds: Iterable[str] | None = None
) -> None:
    """Fail when more than ``max`` (0.01 or "1%") of requests failed; ``kinds`` counts only those error kinds.

    A kind matches exactly or by prefix: ``kinds=["HTTP 5"]`` counts every 5xx, ``["check"]`` every failed check.
    """
    __tracebackhide__ = True
    try:
        limit = parse_fraction(max, what="max")
    except UnitError as exc:
        raise SloError(f"assert_error_rate: {exc}") from None
    wanted = None
    if kinds is not None:
        if isinstance(kinds, str):
            raise SloError(f"assert_error_rate: kinds={kinds!r} must be a list of error kinds, e.g. kinds=[{kinds!r}]")
        wanted = tuple(str(kind) for kind in kinds)
        if not wanted or not all(kind.strip() and "]" not in kind and '"' not in kind for kind in wanted):
            raise SloError(
                f'assert_error_rate: kinds={kinds!r} must name error kinds (without ] or "), '
                "e.g. kinds=['HTTP 5', 'timeout']"
            )
    check(result, [Threshold("error_rate", "<=", limit, endpoint, kinds=wanted)])


def assert_throughput(result: LoadResult, min_rps: float, *, endpoint: str | None = None) -> None:
    """Fail when fewer than ``min_rps`` requests per second completed."""
    __tracebackhide__ = True
    if isinstance(min_rps, bool) or not isinstance(min_rps, (int, float)) or min_rps < 0:
        raise SloError(f"assert_throughput: min_rps={min_rps!r} must be a non-negative number of requests per second")
    check(result, [Threshold("rps", ">=", float(min_rps), endpoint)])


def assert_slo(result: LoadResult, *expressions: str | Slo) -> None:
    """k6-style thresholds: ``assert_slo(result, "p(95)<500ms", "error_rate<1%", "rps>50")``."""
    __tracebackhide__ = True
    if not expressions:
        raise SloError(f"assert_slo needs at least one expression: {GRAMMAR}")
    check(result, [slo.threshold for slo in as_slos(expressions, "assert_slo")])


def check_declared(result: LoadResult, slos: Sequence[Slo], tracked: Tracked | None = None) -> None:
    """The marker's and ini's SLOs, after a run; an aborted run fails with its reason."""
    __tracebackhide__ = True
    reason = str(result.extra.get("stop_reason", ""))
    head = f"load aborted early: {reason.removeprefix('aborted: ')}" if reason.startswith("aborted") else None
    if slos or head:
        check(result, [slo.threshold for slo in slos], head=head, tracked=tracked)


def assert_recovery(
    result: LoadResult,
    *,
    within: float | str = "30s",
    max_error_rate_during: float | str | None = None,
    max_p95_during: float | str | None = None,
) -> None:
    """Fail unless the service came back within ``within`` after every fault of the run.

    Recovery means ``CONSECUTIVE`` windows in a row back inside the band measured
    before the fault (rolling p95 and error rate; see :mod:`pytest_shopflow_perf.recovery`).
    Optionally the damage during the fault is bounded too.
    """
    __tracebackhide__ = True
    from pytest_shopflow_perf.reporting._format import format_table

    entries = result.extra.get("recovery")
    if not entries:
        raise SloError("assert_recovery needs a run with faults (marker faults=[...] or the faults fixture)")
    try:
        limit = parse_duration(within, what="within")
        error_limit = None if max_error_rate_during is None else parse_fraction(max_error_rate_during, what="max")
        p95_limit = None if max_p95_during is None else parse_duration(max_p95_during, what="max_p95_during")
    except UnitError as exc:
        raise SloError(str(exc)) from None
    skip_if_saturated(result, [])
    rows: list[tuple[str, ...]] = [("fault", "window", "p95 during", "errors during", "recovered after", "limit")]
    failures = 0
    for entry in entries:
        during = entry.get("during") or {}
        problems = []
        recovery = entry.get("recovery_s")
        if "band" not in entry:
            problems.append(entry.get("note", "no band"))
        elif recovery is None or recovery > limit:
            problems.append("recovery")
        if error_limit is not None and during.get("error_rate", 0.0) > error_limit:
            problems.append("errors")
        if p95_limit is not None and during.get("p95_ms", 0.0) / 1000 > p95_limit:
            problems.append("p95")
        failures += bool(problems)
        rows.append(
            (
                str(entry["name"]) + (" (FAILED: " + ", ".join(problems) + ")" if problems else ""),
                f"{entry['start_s']:g}-{entry['end_s']:g} s",
                f"{during.get('p95_ms', 0):.1f} ms" + (f" (< {p95_limit * 1000:.0f})" if p95_limit else ""),
                show(during.get("error_rate", 0.0), "%") + (f" (< {error_limit * 100:.0f} %)" if error_limit else ""),
                "did not recover" if recovery is None else f"{recovery:.1f} s",
                f"{limit:g} s",
            )
        )
    result.extra["recovery_check"] = {"within_s": limit, "failed": failures}
    if failures:
        table = "\n".join("  " + line for line in format_table(rows))
        raise AssertionError(f"no recovery: {failures} of {len(entries)} fault(s) failed\n{table}")


def assert_no_regression(result: LoadResult | Capacity, *, fail_on: str | None = None) -> None:
    """Fail when the run (or a capacity search) regressed against its baseline at or above ``fail_on``."""
    __tracebackhide__ = True
    from pytest_shopflow_perf.result.capacity import Capacity
    from pytest_shopflow_perf.result.schema import FAIL_ON_CHOICES
    from pytest_shopflow_perf.verdicts.regression import Verdict

    if isinstance(result, Capacity):
        _capacity_regression(result, fail_on)
        return
    fail_on = fail_on or str(result.extra.get("regression_fail_on", "major"))
    if fail_on not in FAIL_ON_CHOICES:
        raise SloError(f"fail_on={fail_on!r} is not valid: expected one of {', '.join(FAIL_ON_CHOICES)}")
    record = result.extra.get("regression")
    if record is None:
        return  # no baseline yet, or comparison disabled: the reason is in result.extra["regression_note"]
    skip_if_saturated(result, [])  # a saturated generator measured itself: no verdict on the service
    verdict = Verdict.from_dict(record)
    if verdict.failed(fail_on):
        raise AssertionError(format_regression(verdict, fail_on))
    if verdict.regressions:
        import warnings

        worst = verdict.regressions[0]
        warnings.warn(
            PerformanceRegressionWarning(
                f"{result.test}: {verdict.tier} regression below --perf-fail-on={fail_on}: {worst.endpoint} "
                f"{worst.metric} {(worst.change or 0) * 100:+.1f}% (p={worst.p_value or 0:.3g})"
            ),
            stacklevel=2,
        )


def _capacity_regression(capacity: Capacity, fail_on: str | None) -> None:
    """A drop of the sustainable level at or above ``fail_on`` fails; a generator-limited search is inconclusive."""
    __tracebackhide__ = True
    from pytest_shopflow_perf.result.schema import FAIL_ON_CHOICES

    record = dict(capacity.regression or {})
    fail_on = fail_on or str(record.get("fail_on", "major"))
    if fail_on not in FAIL_ON_CHOICES:
        raise SloError(f"fail_on={fail_on!r} is not valid: expected one of {', '.join(FAIL_ON_CHOICES)}")
    tier = record.get("tier")
    if tier is None:
        return  # nothing stored yet, or comparison disabled: the note says which
    if tier == "inconclusive":
        import pytest

        pytest.skip(f"inconclusive: capacity regression not judged: {record.get('note', '')}")
    if tier in FAILING_TIERS and fail_on != "never" and tier_rank(tier) >= tier_rank(fail_on):
        change = record.get("change")
        raise AssertionError(
            f"capacity regression: {tier} (fails at {fail_on} or worse): max sustainable "
            f"{capacity.max_sustainable if capacity.max_sustainable is not None else 'none'} {capacity.unit} against "
            f"{record.get('baseline_max_sustainable')} stored ({(change or 0) * 100:+.0f} %) over "
            f"{record.get('baseline_runs')} stored search(es); {record.get('note', '')}"
        )


def format_regression(verdict: Verdict, fail_on: str) -> str:
    """A table of the findings at or above ``fail_on``, worst first."""
    from pytest_shopflow_perf.reporting._format import format_table
    from pytest_shopflow_perf.verdicts.regression.verdict import finding_row

    findings = sorted(verdict.findings, key=lambda f: (-tier_rank(f.tier), f.endpoint, f.metric))
    shown = [f for f in findings if f.tier in FAILING_TIERS and tier_rank(f.tier) >= tier_rank(fail_on)]
    columns = ("tier", "endpoint", "metric", "baseline", "current", "change", "95% CI", "p")
    rows = [columns, *(finding_row(f, columns) for f in shown)]
    head = f"performance regression: {verdict.tier} (fails at {fail_on} or worse)"
    notes = [f"  note: {note}" for note in verdict.notes]
    return "\n".join([head, *("  " + line for line in format_table(rows)), *notes])
