"""SLO thresholds: the expression grammar, their evaluation on a result, and the live abort watchdog."""

from __future__ import annotations

from pytest_shopflow_perf.verdicts.slo.abort import Tracked, abort_reason, track_spans, watch
from pytest_shopflow_perf.verdicts.slo.evaluate import CheckOutcome, check, evaluate, format_failure
from pytest_shopflow_perf.verdicts.slo.grammar import (
    GRAMMAR,
    Slo,
    SloError,
    Threshold,
    as_slos,
    expression,
    parse_threshold,
)

__all__ = [
    "GRAMMAR",
    "CheckOutcome",
    "Slo",
    "SloError",
    "Threshold",
    "Tracked",
    "abort_reason",
    "as_slos",
    "check",
    "evaluate",
    "expression",
    "format_failure",
    "parse_threshold",
    "track_spans",
    "watch",
]
