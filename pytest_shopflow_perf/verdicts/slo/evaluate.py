"""Thresholds against a finished ``LoadResult``: measure, judge, and fail with a readable table.

Every breach is listed, not just the first; every outcome, passing ones too, is
recorded on the result (``result.extra["slo"]``) so reports can show them.
Whole-run figures hide a crash in the last seconds, so a threshold can be
scoped to a phase (``during stage 2``, ``during 10s..20s``) or to every span of
a given width (``over any 10s``). A result measured by a saturated generator
says nothing about the service: it is then skipped as inconclusive instead of
passing or failing.
"""

from __future__ import annotations

import difflib
import math
from collections.abc import Collection, Iterable, Sequence
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING

from pytest_shopflow_perf._errors import hide_own_errors
from pytest_shopflow_perf.reporting._format import slo_margin, slo_unit, slo_value
from pytest_shopflow_perf.result.model import Span
from pytest_shopflow_perf.verdicts.slo.grammar import OPS, SloError, Threshold

if TYPE_CHECKING:
    from pytest_shopflow_perf.result.model import LoadResult, Stats
    from pytest_shopflow_perf.verdicts.slo.abort import Tracked


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
    display_unit: str = ""  # the threshold's own unit (ms, s, us, %, req/s): measured and limit are shown in it

    def margin(self) -> float:
        """Relative distance to the limit; positive means breached by that much."""
        return slo_margin(self.measured, self.limit, self.op, self.passed)


# ---- names -----------------------------------------------------------------------


def unknown_endpoint(name: str, known: Collection[str], rows: Collection[str] = (), when: str = "in this run") -> str:
    """Why an SLO's endpoint is not in a run: the closest name, and every name there is.

    ``rows`` are the run's rows without requests of their own (failed checks, journey exceptions).
    """
    names = sorted(known)
    close = difflib.get_close_matches(name, names, n=1, cutoff=0.5)
    hint = f"did you mean {close[0]!r}? " if close else ""
    if name in rows:
        return (
            f"{name!r} counts errors without requests of its own (a check or a journey's exception), so it has no "
            f"latency or rate of its own: hold errors or error_rate of the whole run instead; endpoints: "
            f"{', '.join(repr(n) for n in names) or 'none'}"
        )
    return (
        f"no endpoint {name!r} {when}; {hint}endpoints: {', '.join(repr(n) for n in names) or 'none'} "
        '(names are "METHOD path" with ids as {id}, or the extensions={"name": ...} of the requests)'
    )


def _scope_of(result: LoadResult, threshold: Threshold) -> LoadResult | Stats:
    """The run, or the threshold's endpoint; a name the run does not have is an SloError naming those it has."""
    __tracebackhide__ = hide_own_errors
    if threshold.endpoint is None:
        return result
    if threshold.endpoint not in result.endpoints:
        message = unknown_endpoint(threshold.endpoint, list(result.endpoints), list(result.events))
        raise SloError(f"{threshold.text!r}: {message}")
    return result.endpoints[threshold.endpoint]


def _kind_rate(stats: Stats, kinds: Sequence[str]) -> float:
    """The share of requests that failed with one of ``kinds`` (exact or by prefix: "HTTP 5" is every 5xx)."""
    errors = sum(n for kind, n in stats.errors_by_kind.items() if any(kind.startswith(k) for k in kinds))
    return min(1.0, errors / stats.requests) if stats.requests else (1.0 if errors else 0.0)


# ---- measuring -----------------------------------------------------------------


def measure(stats: Stats | Span, metric: str) -> float:
    """The value of ``metric`` (a ``Threshold.metric``) on a run, an endpoint or a span."""
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


def nothing_to_judge(stats: Stats | Span, threshold: Threshold, where: str) -> str:
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
        relevant = [span for span in spans if not nothing_to_judge(span, threshold, "")]
    if not relevant:
        return 0.0, None, nothing_to_judge(spans[0], threshold, "in that scope") if spans else "no window in scope"
    values = [(measure(span, threshold.metric), span.start) for span in relevant]
    lower_is_worse = threshold.op in (">", ">=")
    value, at = min(values) if lower_is_worse else max(values)
    return value, at, ""


def evaluate(result: LoadResult, thresholds: Iterable[Threshold], tracked: Tracked | None = None) -> list[CheckOutcome]:
    """Every threshold against ``result``; ``tracked`` holds the live-judged spans a long run merged away."""
    from pytest_shopflow_perf.metrics.recorder import CoarsenedError

    __tracebackhide__ = hide_own_errors
    outcomes = []
    for threshold in thresholds:
        at: float | None = None
        if threshold.is_resource:
            from pytest_shopflow_perf.verdicts.slo.resources import judge_resources

            measured, at, note = judge_resources(result, threshold, *_phase(result, threshold))
            outcomes.append(_outcome(threshold, measured, at, note if not note else f"{note} ({threshold.scope})"))
            continue
        stats = _scope_of(result, threshold)
        if threshold.kinds is not None:
            note = "" if stats.requests or stats.errors else "no request was measured in the run"
            measured = _kind_rate(stats, threshold.kinds)
        elif threshold.span is None and threshold.stage is None and threshold.between is None:
            note = nothing_to_judge(stats, threshold, "in the run")
            measured = 0.0 if note else measure(stats, threshold.metric)
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
            if threshold.kinds is not None:
                kinds = threshold.kinds
                worst = max(result.endpoints, key=lambda name: _kind_rate(result.endpoints[name], kinds))
            else:
                worst = max(result.endpoints, key=lambda name: measure(result.endpoints[name], threshold.metric))
        outcomes.append(_outcome(threshold, measured, at, note, worst))
    return outcomes


def _outcome(
    threshold: Threshold, measured: float, at: float | None, note: str, worst: str | None = None
) -> CheckOutcome:
    return CheckOutcome(
        threshold=threshold.text,
        metric=threshold.metric if threshold.kinds is None else f"error_rate[{', '.join(threshold.kinds)}]",
        endpoint=threshold.endpoint or ("target" if threshold.is_resource else "total"),
        measured=measured,
        limit=threshold.value,
        op=threshold.op,
        passed=not note and bool(OPS[threshold.op](measured, threshold.value)),
        worst_endpoint=worst,
        unit="s" if threshold.is_latency else ("%" if threshold.metric in ("error_rate", "target_cpu") else ""),
        scope=threshold.scope,
        at=at,
        note=note,
        display_unit=threshold.display_unit,
    )


def show(value: float, unit: str) -> str:
    """A measured value or limit in a display unit (``Threshold.display_unit``; "s" of old records: ms)."""
    return slo_value(value, unit)


def format_failure(outcomes: list[CheckOutcome], head: str | None = None) -> str:
    """The table of the failed outcomes, under ``head`` (default: how many failed)."""
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
                o.note or show(o.measured, slo_unit(o.display_unit, o.unit)),
                o.threshold,  # the expression as the grammar reads it: it can be pasted into slo=[...]
                "-" if o.note else f"{o.margin() * 100:+.1f}%",
                o.worst_endpoint or "",
            )
        )
    head = head or f"SLO breached: {len(failed)} of {len(outcomes)} threshold(s) failed"
    return "\n".join([head, *("  " + line for line in format_table(rows))])


def skip_if_saturated(result: LoadResult, outcomes: list[CheckOutcome]) -> None:
    """A saturated generator measured itself: skip as inconclusive, naming the figure and what it saw."""
    __tracebackhide__ = True
    generator = result.generator
    lost = result.lost_shards
    if not generator.saturated and not lost:
        return
    import pytest

    seen = "; ".join(
        f"{o.metric} {show(o.measured, slo_unit(o.display_unit, o.unit))} {'meets' if o.passed else 'breaks'} "
        f"{o.op} {show(o.limit, slo_unit(o.display_unit, o.unit))}"
        for o in outcomes
    )
    if lost:
        shards = "; ".join(f"shard {shard.worker} {shard.note}" for shard in lost)
        pytest.skip(
            f"inconclusive: {shards}. The load offered was not what the profile asked for, so the thresholds "
            f"were not judged ({seen or 'none'}). Find out why the shard died (memory, a crash in a journey) "
            "and run again."
        )
    pytest.skip(
        f"inconclusive: the load generator was saturated ({'; '.join(generator.reasons)}), so its latencies "
        f"describe the generator, not the service; thresholds not judged ({seen}). Lower the load per "
        "generator or give it more CPU."
    )


def check(
    result: LoadResult, thresholds: list[Threshold], *, head: str | None = None, tracked: Tracked | None = None
) -> None:
    """Judge ``thresholds``, record every outcome on the result, and fail with the table of breaches."""
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
    skip_if_saturated(result, outcomes)
    if head is not None or not all(o.passed for o in outcomes):
        raise AssertionError(format_failure(outcomes, head))
