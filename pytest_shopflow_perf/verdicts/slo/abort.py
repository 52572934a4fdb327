"""The live watchdog of declared SLOs: track their ``over any`` spans, and say when to abort a run.

Called by the engine once per closed window; it reads the run only through
:class:`~pytest_shopflow_perf.metrics.live.LiveView`. A threshold is given up only
when no remaining request could bring it back.
"""

from __future__ import annotations

import difflib
import math
from collections.abc import Collection, Sequence
from typing import TYPE_CHECKING

from pytest_shopflow_perf.result.model import Span
from pytest_shopflow_perf.verdicts.slo.evaluate import measure, nothing_to_judge, unknown_endpoint
from pytest_shopflow_perf.verdicts.slo.grammar import OPS, Slo, Threshold

if TYPE_CHECKING:
    from pytest_shopflow_perf.metrics.live import LiveView


def abort_reason(
    slos: Sequence[Slo], view: LiveView, elapsed: float, duration: float, remaining: float = math.inf
) -> str | None:
    """Why the run should stop now: an abort threshold that no remaining request can bring back.

    Called once per closed window. ``remaining`` bounds the requests the rest of the run can
    still make (the engine derives it from the planned arrivals or user-seconds and the best
    rate seen); they are assumed perfect (no errors, zero latency), so a reason is only given
    when the threshold is lost whatever happens next. Counts that only grow (errors, count,
    max) need no such bound.
    """
    for slo in slos:
        threshold = slo.threshold
        if not slo.abort or elapsed < slo.grace_s or threshold.op in (">", ">=") or threshold.is_resource:
            continue
        if threshold.stage is not None or threshold.between is not None:
            continue  # a phase is judged when the run ends
        totals = view.totals(threshold.endpoint)
        requests = totals.requests
        if not requests:
            continue
        if threshold.span is not None:
            if _span_breached(threshold, view):
                return f"{threshold.text!r} breached in a {threshold.span:g} s span"
            continue
        errors = totals.errors
        metric, limit = threshold.metric, threshold.value
        if metric == "errors":
            bound = float(errors)
        elif metric == "count":
            bound = float(requests)
        elif metric == "max":
            bound = totals.max_us / 1e6
        elif math.isinf(remaining):
            continue  # no bound on what is still to come: rates and percentiles can always recover
        elif metric == "error_rate":
            bound = errors / (requests + remaining)
        elif metric.startswith("p"):
            # pN of successes stays above the limit once more than (100 - N) % of all of them are above it.
            successes = totals.successes + remaining
            above = totals.count_above(limit * 1e6)
            bound = limit * 2 if above > (1 - float(metric[1:]) / 100) * successes else 0.0
        else:  # mean of successes
            bound = totals.sum_us() / (totals.successes + remaining) / 1e6
        if not OPS[threshold.op](bound, limit):
            return f"{threshold.text!r} is breached beyond recovery after {elapsed:.0f} s"
    return None


def _latest_span(threshold: Threshold, view: LiveView) -> Span | None:
    """The span of ``threshold.span`` seconds that ends with the newest closed window, or None before any."""
    span = view.newest_span(threshold.endpoint, threshold.span or 0.0)
    return None if span is None else Span(span.start, span.end, span.requests, span.errors, span.counts)


def _span_breached(threshold: Threshold, view: LiveView) -> bool:
    """Whether the span ending at the newest closed window breaks the threshold."""
    span = _latest_span(threshold, view)
    if span is None or nothing_to_judge(span, threshold, ""):
        return False
    return not OPS[threshold.op](measure(span, threshold.metric), threshold.value)


Tracked = dict[str, tuple[float, float]]
"""Declared ``over any`` thresholds judged while the run goes: expression -> (worst value, its start)."""


def track_spans(slos: Sequence[Slo], view: LiveView, tracked: Tracked) -> None:
    """Keep the worst span of every declared ``over any`` threshold, once per closed window.

    A soak's old windows are merged into blocks to keep memory flat; the spans of its declared
    thresholds are judged here, on the 1-second windows, before that happens.
    """
    for slo in slos:
        threshold = slo.threshold
        if (
            threshold.span is None
            or threshold.stage is not None
            or threshold.between is not None
            or threshold.is_resource
        ):
            continue
        span = _latest_span(threshold, view)
        if span is None or nothing_to_judge(span, threshold, ""):
            continue
        value = measure(span, threshold.metric)
        worst = tracked.get(threshold.text)
        lower_is_worse = threshold.op in (">", ">=")
        if worst is None or (value < worst[0] if lower_is_worse else value > worst[0]):
            tracked[threshold.text] = (value, span.start)


def watch(
    slos: Sequence[Slo],
    tracked: Tracked,
    view: LiveView,
    elapsed: float,
    duration: float,
    remaining: float = math.inf,
) -> str | None:
    """The engine's watchdog for declared SLOs: track their spans, and say when to abort."""
    track_spans(slos, view, tracked)
    return abort_reason(slos, view, elapsed, duration, remaining)


# An endpoint name this close to one the run has is a misspelling, said at once; any other missing name may
# just not have come up yet (a checkout after browsing, a rare journey) and is said at half the run.
MISSPELT_RATIO = 0.85


def _nested(path: str, other: str) -> bool:
    """``/api/products`` and ``/api/products/{id}``: one a path prefix of the other, two endpoints."""
    short, long = sorted((path.rstrip("/"), other.rstrip("/")), key=len)
    return long.startswith(short + "/")


def _misspelt(name: str, names: Collection[str]) -> bool:
    """``GET /post`` when the run has ``POST /post``, or a name a character or two off one the run has
    (never a sub-path of it: ``GET /api/products/{id}`` may simply come after ``GET /api/products``)."""
    path = name.partition(" ")[2]
    for other in names:
        other_path = other.partition(" ")[2]
        if path and other_path == path:
            return True
        if not _nested(path, other_path) and difflib.SequenceMatcher(None, name, other).ratio() >= MISSPELT_RATIO:
            return True
    return False


def unseen_endpoints(
    slos: Sequence[Slo], view: LiveView, elapsed: float, warned: set[str], duration: float = 0.0
) -> list[str]:
    """Declared thresholds on an endpoint the run has not shown, each said once (``warned``).

    Called once per closed window: a misspelt endpoint (``GET /post`` for ``POST /post``) is said at the
    first window with requests; a name like no other only once half the planned ``duration`` has gone by
    without it, so an endpoint that comes late in the journeys is no false alarm. Either way the SloError
    at the end of the run stays the verdict.
    """
    names = view.endpoint_names()
    if not names:
        return []
    patient = elapsed < duration / 2
    messages = []
    for slo in slos:
        threshold = slo.threshold
        if threshold.endpoint is None or threshold.endpoint in names or threshold.text in warned:
            continue
        if patient and not _misspelt(threshold.endpoint, names):
            continue
        warned.add(threshold.text)
        why = unknown_endpoint(threshold.endpoint, names, when=f"after {elapsed:.0f} s of the run")
        messages.append(f"SLO {threshold.text!r}: {why}; unless it shows up, the threshold fails when the run ends")
    return messages
