"""SLO assertions: thresholds on a ``LoadResult`` that fail a test with a readable table.

Every breach is listed, not just the first; every outcome, passing ones too, is
recorded on the result (``result.extra["slo"]``) so reports can show them.
Whole-run figures hide a crash in the last seconds, so a threshold can be
scoped to a phase (``during stage 2``, ``during 10s..20s``) or to every span of
a given width (``over any 10s``). A result measured by a saturated generator
says nothing about the service: the helpers then skip the test as
inconclusive instead of passing or failing it.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

from pytest_shopflow_perf.profile.units import UnitError, parse_duration, parse_fraction
from pytest_shopflow_perf.result.model import Span
from pytest_shopflow_perf.result.schema import FAILING_TIERS, tier_rank

if TYPE_CHECKING:
    from pytest_shopflow_perf.metrics.recorder import Recorder
    from pytest_shopflow_perf.result.model import LoadResult, Stats

GRAMMAR = (
    "[ENDPOINT: ]METRIC OP VALUE [over any DURATION] [during stage N | during START..END], where METRIC is "
    "p(N), avg, med, min, max (latency; VALUE in us, ms or s, ms when no unit), error_rate or rate (VALUE as "
    "1% or 0.01), rps, count or errors (numbers), and OP is <, <=, >, >= or ==; e.g. 'p(95)<500ms', "
    "'error_rate<1%', 'rps>50', 'GET /api/products: p(99)<1s', 'error_rate<5% over any 10s', "
    "'p(95)<800ms during stage 2', 'p(95)<500ms during 20s..end'"
)
_EXPRESSION = re.compile(
    r"^\s*(?:(?P<endpoint>.+?)\s*:\s+)?(?P<metric>p\(\s*\d+(?:\.\d+)?\s*\)|[a-z_]+)\s*"
    r"(?P<op><=|>=|==|<|>)\s*(?P<value>[^\s]+?)"
    r"(?:\s+over\s+any\s+(?P<span>\S+))?"
    r"(?:\s+during\s+(?:stage\s+(?P<stage>\d+)|(?P<start>[^\s.]+)\.\.(?P<end>\S+)))?\s*$"
)
_LATENCY_METRICS = {"avg": "mean", "mean": "mean", "med": "p50", "min": "min", "max": "max"}
_OPS = {
    "<": lambda a, b: a < b,
    "<=": lambda a, b: a <= b,
    ">": lambda a, b: a > b,
    ">=": lambda a, b: a >= b,
    "==": lambda a, b: a == b,
}
DEFAULT_ABORT_GRACE_S = 5.0


class SloError(ValueError):
    """An SLO expression or threshold could not be read; the message gives the grammar."""


class PerformanceRegressionWarning(UserWarning):
    """A significant slowdown below ``--perf-fail-on``: reported, not failed."""


@dataclass(frozen=True)
class Threshold:
    """One parsed threshold: ``metric op value`` on an endpoint (None = the whole run), maybe scoped in time."""

    metric: str  # "p95", "p99.9", "mean", "min", "max", "error_rate", "rps", "count", "errors"
    op: str
    value: float  # seconds for latency, fraction for rates
    endpoint: str | None = None
    text: str = ""
    span: float | None = None  # "over any 10s": every span of this width must hold
    stage: int | None = None  # "during stage 2" (1-based)
    between: tuple[float, float] | None = None  # "during 10s..20s" (end may be inf)

    @property
    def is_latency(self) -> bool:
        return self.metric.startswith("p") or self.metric in ("mean", "min", "max")

    @property
    def scope(self) -> str:
        parts = []
        if self.span is not None:
            parts.append(f"any {self.span:g} s")
        if self.stage is not None:
            parts.append(f"stage {self.stage}")
        if self.between is not None:
            start, end = self.between
            parts.append(f"{start:g}-{'end' if math.isinf(end) else f'{end:g}'} s")
        return ", ".join(parts) or "whole run"


@dataclass(frozen=True)
class Slo:
    """A declared threshold (marker ``slo=[...]``, ``@pytest.mark.slo``, ini ``perf_slo``), checked after each run.

    :param abort: stop the load early once the threshold is breached beyond
        recovery (no remaining requests could bring it back), after ``grace``.
    """

    expression: str
    abort: bool = False
    grace: float | str = DEFAULT_ABORT_GRACE_S

    def __post_init__(self) -> None:
        parse_threshold(self.expression)  # fail at declaration, with the grammar
        try:
            parse_duration(self.grace, what="grace")
        except UnitError as exc:
            raise SloError(str(exc)) from None

    @property
    def threshold(self) -> Threshold:
        return parse_threshold(self.expression)

    @property
    def grace_s(self) -> float:
        return parse_duration(self.grace, what="grace")


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
    scope: str = "whole run"
    at: float | None = None  # start of the worst span, seconds into the run
    note: str = ""  # why there is no measured value (an empty phase, no successful request)

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
        span = parse_duration(match.group("span"), what="over any") if match.group("span") else None
        if span is not None and span <= 0:
            raise SloError("'over any' needs a span longer than 0 s")
        stage = int(match.group("stage")) if match.group("stage") else None
        if stage is not None and stage < 1:
            raise SloError("stages are numbered from 1")
        between = None
        if match.group("start"):
            end_text = match.group("end")
            end = math.inf if end_text == "end" else parse_duration(end_text, what="during end")
            between = (parse_duration(match.group("start"), what="during start"), end)
            if between[1] <= between[0]:
                raise SloError("'during START..END' needs END after START")
    except (UnitError, ValueError) as exc:
        raise SloError(f"cannot read SLO expression {expression!r}: {exc}; expected {GRAMMAR}") from None
    return Threshold(
        metric=metric,
        op=op,
        value=value,
        endpoint=match.group("endpoint"),
        text=expression.strip(),
        span=span,
        stage=stage,
        between=between,
    )


def as_slos(items: Iterable[object], source: str) -> list[Slo]:
    """Strings and ``Slo`` objects from a marker or ini, validated (errors name the source)."""
    slos = []
    for item in items:
        if isinstance(item, Slo):
            slos.append(item)
        elif isinstance(item, str):
            try:
                slos.append(Slo(item))
            except SloError as exc:
                raise SloError(f"{source}: {exc}") from None
        else:
            raise SloError(f"{source}: {item!r} is not an SLO; give strings like 'p(95)<500ms' or Slo(...) objects")
    return slos


def _latency_value(text: str) -> float:
    stripped = text.strip()
    try:
        return float(stripped) / 1000.0  # k6: a bare number is milliseconds
    except ValueError:
        return parse_duration(stripped, what="latency")


# ---- measuring -----------------------------------------------------------------


def _measure(stats: Stats | Span, metric: str) -> float:
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


def _phase(result: LoadResult, threshold: Threshold) -> tuple[float, float]:
    if threshold.stage is not None:
        stages = result.profile.get("stages") or []
        if threshold.stage > len(stages):
            raise SloError(f"{threshold.text!r}: the run has {len(stages)} stage(s), no stage {threshold.stage}")
        start = sum(float(stage[0]) for stage in stages[: threshold.stage - 1])
        return start, start + float(stages[threshold.stage - 1][0])
    if threshold.between is not None:
        # Stated on the profile's clock: a scaled run (--perf-scale) scales its phases as its stages.
        scale = float(result.profile.get("scale") or 1.0)
        start, end = threshold.between
        return start * scale, end * scale
    return 0.0, math.inf


def _successes(stats: Stats | Span) -> int:
    if isinstance(stats, Span) or not hasattr(stats, "successes"):
        counts = getattr(stats, "counts", None)
        return int(counts.sum()) if counts is not None else 0
    return int(stats.successes)


def _nothing_to_judge(stats: Stats | Span, threshold: Threshold, where: str) -> str:
    """Why ``stats`` cannot hold ``threshold`` (a vacuous pass otherwise), or "" when it can."""
    if threshold.metric in ("rps", "count", "errors"):
        return ""
    if not stats.requests and not stats.errors:
        return f"no request was measured {where}"
    if threshold.is_latency and not _successes(stats):
        return f"no successful request was measured {where} ({stats.requests} failed): latency is of successes"
    return ""


def _worst(spans: Sequence[Span], threshold: Threshold) -> tuple[float, float | None, str]:
    """The value of the span furthest on the wrong side of the limit, where it starts, and why none could be."""
    if threshold.metric in ("rps", "count", "errors"):
        relevant = list(spans)
    else:
        relevant = [span for span in spans if not _nothing_to_judge(span, threshold, "")]
    if not relevant:
        return 0.0, None, _nothing_to_judge(spans[0], threshold, "in that scope") if spans else "no window in scope"
    values = [(_measure(span, threshold.metric), span.start) for span in relevant]
    lower_is_worse = threshold.op in (">", ">=")
    value, at = min(values) if lower_is_worse else max(values)
    return value, at, ""


def evaluate(result: LoadResult, thresholds: Iterable[Threshold], tracked: Tracked | None = None) -> list[CheckOutcome]:
    from pytest_shopflow_perf.metrics.recorder import CoarsenedError

    outcomes = []
    for threshold in thresholds:
        stats = result if threshold.endpoint is None else result.endpoints[threshold.endpoint]
        at: float | None = None
        if threshold.span is None and threshold.stage is None and threshold.between is None:
            note = _nothing_to_judge(stats, threshold, "in the run")
            measured = 0.0 if note else _measure(stats, threshold.metric)
        else:
            start, end = _phase(result, threshold)
            try:
                spans = stats.spans(threshold.span, start, end) if threshold.span else [stats.span(start, end)]
                measured, at, note = _worst(spans, threshold)
            except CoarsenedError as exc:
                if tracked is None or threshold.text not in tracked:
                    raise SloError(f"{threshold.text!r}: {exc}") from None
                (measured, at), note = tracked[threshold.text], ""
            if note:
                note = f"{note} ({threshold.scope})"
        worst = None
        whole_run = at is None and threshold.endpoint is None
        if whole_run and len(result.endpoints) > 1 and threshold.metric not in ("rps", "count") and not note:
            worst = max(result.endpoints, key=lambda name: _measure(result.endpoints[name], threshold.metric))
        outcomes.append(
            CheckOutcome(
                threshold=threshold.text,
                metric=threshold.metric,
                endpoint=threshold.endpoint or "total",
                measured=measured,
                limit=threshold.value,
                op=threshold.op,
                passed=not note and bool(_OPS[threshold.op](measured, threshold.value)),
                worst_endpoint=worst,
                unit="s" if threshold.is_latency else ("%" if threshold.metric == "error_rate" else ""),
                scope=threshold.scope,
                at=at,
                note=note,
            )
        )
    return outcomes


def _show(value: float, unit: str) -> str:
    if unit == "s":
        return f"{value * 1000:.1f} ms"
    if unit == "%":
        return f"{value * 100:.2f} %"
    return f"{value:,.1f}"


def format_failure(outcomes: list[CheckOutcome], head: str | None = None) -> str:
    from pytest_shopflow_perf.reporting._format import format_table

    failed = [o for o in outcomes if not o.passed]
    scoped = any(o.scope != "whole run" for o in failed)
    scope_column = ("scope",) if scoped else ()
    header = ("metric", "endpoint", *scope_column, "measured", "threshold", "margin", "worst endpoint")
    rows: list[tuple[str, ...]] = [header]
    for o in failed:
        scope = (f"{o.scope}" + (f" (worst at {o.at:g} s)" if o.at is not None else ""),) if scoped else ()
        rows.append(
            (
                o.metric,
                o.endpoint,
                *scope,
                o.note or _show(o.measured, o.unit),
                f"{o.op} {_show(o.limit, o.unit)}",
                "-" if o.note else f"{o.margin() * 100:+.1f}%",
                o.worst_endpoint or "",
            )
        )
    head = head or f"SLO breached: {len(failed)} of {len(outcomes)} threshold(s) failed"
    return "\n".join([head, *("  " + line for line in format_table(rows))])


def _judgeable(result: LoadResult, outcomes: list[CheckOutcome]) -> None:
    """A saturated generator measured itself: skip as inconclusive, naming the figure and what it saw."""
    __tracebackhide__ = True
    generator = result.generator
    if not generator.saturated:
        return
    import pytest

    seen = "; ".join(
        f"{o.metric} {_show(o.measured, o.unit)} {'meets' if o.passed else 'breaks'} {o.op} {_show(o.limit, o.unit)}"
        for o in outcomes
    )
    pytest.skip(
        f"inconclusive: the load generator was saturated ({'; '.join(generator.reasons)}), so its latencies "
        f"describe the generator, not the service; thresholds not judged ({seen}). Lower the load per "
        "generator or give it more CPU."
    )


def check(
    result: LoadResult, thresholds: list[Threshold], *, head: str | None = None, tracked: Tracked | None = None
) -> None:
    __tracebackhide__ = True
    generator = result.generator
    if generator.users_failed_to_start and generator.users_failed_to_start >= generator.users_started:
        raise AssertionError(
            f"every virtual user failed in on_start ({generator.users_failed_to_start} of "
            f"{generator.users_started}): no iteration ran, so there is nothing to hold the thresholds against "
            "(see the run's exceptions for why on_start failed)"
        )
    if not result.requests and not result.errors:
        raise AssertionError(
            "no request was measured in this run: there is nothing to hold the thresholds against "
            "(did every user fail in on_start, or did the journeys make no requests?)"
        )
    outcomes = evaluate(result, thresholds, tracked)
    result.extra.setdefault("slo", []).extend(asdict(o) for o in outcomes)
    _judgeable(result, outcomes)
    if head is not None or not all(o.passed for o in outcomes):
        raise AssertionError(format_failure(outcomes, head))


# ---- abort on fail -----------------------------------------------------------------


def abort_reason(
    slos: Sequence[Slo], recorder: Recorder, elapsed: float, duration: float, remaining: float = math.inf
) -> str | None:
    """Why the run should stop now: an abort threshold that no remaining request can bring back.

    Called once per closed window. ``remaining`` bounds the requests the rest of the run can
    still make (the engine derives it from the planned arrivals or user-seconds and the best
    rate seen); they are assumed perfect (no errors, zero latency), so a reason is only given
    when the threshold is lost whatever happens next. Counts that only grow (errors, count,
    max) need no such bound.
    """
    from pytest_shopflow_perf.metrics.recorder import count_above, mean_us

    for slo in slos:
        threshold = slo.threshold
        if not slo.abort or elapsed < slo.grace_s or threshold.op in (">", ">="):
            continue
        if threshold.stage is not None or threshold.between is not None:
            continue  # a phase is judged when the run ends
        endpoints = [e for name, e in recorder.endpoints.items() if threshold.endpoint in (None, name)]
        requests = sum(e.requests for e in endpoints)
        if not requests:
            continue
        if threshold.span is not None:
            if _span_breached(threshold, recorder):
                return f"{threshold.text!r} breached in a {threshold.span:g} s span"
            continue
        errors = sum(e.errors for e in endpoints)
        if threshold.endpoint is None:
            errors += sum(event.errors for event in recorder.events.values())
        metric, limit = threshold.metric, threshold.value
        if metric == "errors":
            bound = float(errors)
        elif metric == "count":
            bound = float(requests)
        elif metric == "max":
            bound = max(e.hist.get_max_value() for e in endpoints) / 1e6
        elif math.isinf(remaining):
            continue  # no bound on what is still to come: rates and percentiles can always recover
        elif metric == "error_rate":
            bound = errors / (requests + remaining)
        elif metric.startswith("p"):
            # pN of successes stays above the limit once more than (100 - N) % of all of them are above it.
            successes = sum(e.hist.get_total_count() for e in endpoints) + remaining
            above = sum(count_above(e.hist, limit * 1e6) for e in endpoints)
            bound = limit * 2 if above > (1 - float(metric[1:]) / 100) * successes else 0.0
        else:  # mean of successes
            successes = sum(e.hist.get_total_count() for e in endpoints)
            bound = sum(mean_us(e.hist) * e.hist.get_total_count() for e in endpoints) / (successes + remaining) / 1e6
        if not _OPS[threshold.op](bound, limit):
            return f"{threshold.text!r} is breached beyond recovery after {elapsed:.0f} s"
    return None


def _latest_span(threshold: Threshold, recorder: Recorder) -> Span | None:
    """The span of ``threshold.span`` seconds that ends with the newest closed window, or None before any."""
    from pytest_shopflow_perf.metrics.recorder import WINDOW_S, merge_snapshots

    if threshold.endpoint is None:
        series = recorder.total_series
    elif threshold.endpoint in recorder.endpoints:
        series = recorder.endpoints[threshold.endpoint].series
    else:
        return None
    newest = len(recorder.total_series.t_s)
    if not newest:
        return None
    width = max(1, round((threshold.span or WINDOW_S) / WINDOW_S))
    end = newest * WINDOW_S
    start = max(0.0, end - width * WINDOW_S)
    chosen = [i for i in range(max(0, len(series.t_s) - width), len(series.t_s)) if series.t_s[i] >= start - 1e-9]
    snapshots = [snap for i in chosen if (snap := series.snapshots[i]) is not None]
    return Span(
        start=start,
        end=end,
        requests=sum(series.count[i] for i in chosen),
        errors=sum(series.errors[i] for i in chosen),
        counts=merge_snapshots(snapshots) if snapshots else None,
    )


def _span_breached(threshold: Threshold, recorder: Recorder) -> bool:
    """Whether the span ending at the newest closed window breaks the threshold."""
    span = _latest_span(threshold, recorder)
    if span is None or _nothing_to_judge(span, threshold, ""):
        return False
    return not _OPS[threshold.op](_measure(span, threshold.metric), threshold.value)


Tracked = dict[str, tuple[float, float]]
"""Declared ``over any`` thresholds judged while the run goes: expression -> (worst value, its start)."""


def track_spans(slos: Sequence[Slo], recorder: Recorder, tracked: Tracked) -> None:
    """Keep the worst span of every declared ``over any`` threshold, once per closed window.

    A soak's old windows are merged into blocks to keep memory flat; the spans of its declared
    thresholds are judged here, on the 1-second windows, before that happens.
    """
    for slo in slos:
        threshold = slo.threshold
        if threshold.span is None or threshold.stage is not None or threshold.between is not None:
            continue
        span = _latest_span(threshold, recorder)
        if span is None or _nothing_to_judge(span, threshold, ""):
            continue
        value = _measure(span, threshold.metric)
        worst = tracked.get(threshold.text)
        lower_is_worse = threshold.op in (">", ">=")
        if worst is None or (value < worst[0] if lower_is_worse else value > worst[0]):
            tracked[threshold.text] = (value, span.start)


def watch(
    slos: Sequence[Slo],
    tracked: Tracked,
    recorder: Recorder,
    elapsed: float,
    duration: float,
    remaining: float = math.inf,
) -> str | None:
    """The engine's watchdog for declared SLOs: track their spans, and say when to abort."""
    track_spans(slos, recorder, tracked)
    return abort_reason(slos, recorder, elapsed, duration, remaining)


# ---- the helpers ---------------------------------------------------------------------


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
    limits: dict[str, Any] = {"p50": p50, "p90": p90, "p95": p95, "p99": p99, "p99.9": p999, "max": max, "mean": mean}
    thresholds = [_latency_threshold(m, v, endpoint) for m, v in limits.items() if v is not None]
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
        raise SloError(str(exc)) from None
    if kinds is None:
        check(result, [Threshold("error_rate", "<=", limit, endpoint, f"error_rate<={max}")])
        return
    wanted = [str(kind) for kind in kinds]
    stats = result if endpoint is None else result.endpoints[endpoint]
    errors = sum(n for kind, n in stats.errors_by_kind.items() if any(kind.startswith(w) for w in wanted))
    measured = min(1.0, errors / stats.requests) if stats.requests else (1.0 if errors else 0.0)
    outcome = CheckOutcome(
        threshold=f"error_rate[{', '.join(wanted)}]<={max}",
        metric=f"error_rate[{', '.join(wanted)}]",
        endpoint=endpoint or "total",
        measured=measured,
        limit=limit,
        op="<=",
        passed=measured <= limit,
        unit="%",
    )
    result.extra.setdefault("slo", []).append(asdict(outcome))
    _judgeable(result, [outcome])
    if not outcome.passed:
        raise AssertionError(format_failure([outcome]))


def assert_throughput(result: LoadResult, min_rps: float, *, endpoint: str | None = None) -> None:
    """Fail when fewer than ``min_rps`` requests per second completed."""
    __tracebackhide__ = True
    if isinstance(min_rps, bool) or not isinstance(min_rps, (int, float)) or min_rps < 0:
        raise SloError(f"min_rps={min_rps!r} must be a non-negative number")
    check(result, [Threshold("rps", ">=", float(min_rps), endpoint, f"rps>={min_rps}")])


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
    _judgeable(result, [])
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
                _show(during.get("error_rate", 0.0), "%") + (f" (< {error_limit * 100:.0f} %)" if error_limit else ""),
                "did not recover" if recovery is None else f"{recovery:.1f} s",
                f"{limit:g} s",
            )
        )
    result.extra["recovery_check"] = {"within_s": limit, "failed": failures}
    if failures:
        table = "\n".join("  " + line for line in format_table(rows))
        raise AssertionError(f"no recovery: {failures} of {len(entries)} fault(s) failed\n{table}")


def assert_no_regression(result: LoadResult, *, fail_on: str | None = None) -> None:
    """Fail when the run regressed against its baseline at or above ``fail_on`` (``--perf-fail-on``)."""
    __tracebackhide__ = True
    from pytest_shopflow_perf.result.schema import FAIL_ON_CHOICES
    from pytest_shopflow_perf.verdicts.regression import Verdict

    fail_on = fail_on or str(result.extra.get("regression_fail_on", "major"))
    if fail_on not in FAIL_ON_CHOICES:
        raise SloError(f"fail_on={fail_on!r} is not valid: expected one of {', '.join(FAIL_ON_CHOICES)}")
    record = result.extra.get("regression")
    if record is None:
        return  # no baseline yet, or comparison disabled: the reason is in result.extra["regression_note"]
    _judgeable(result, [])  # a saturated generator measured itself: no verdict on the service
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


def format_regression(verdict: Any, fail_on: str) -> str:
    """A table of the findings at or above ``fail_on``, worst first."""
    from pytest_shopflow_perf.reporting._format import format_table

    findings = sorted(verdict.findings, key=lambda f: (-tier_rank(f.tier), f.endpoint, f.metric))
    shown = [f for f in findings if f.tier in FAILING_TIERS and tier_rank(f.tier) >= tier_rank(fail_on)]
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
