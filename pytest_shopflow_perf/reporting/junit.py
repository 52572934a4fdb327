"""JUnit XML: ``perf.*`` properties per test, where CI dashboards pick them up."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pytest_shopflow_perf.result.model import LoadResult


def junit_properties(results: Sequence[LoadResult]) -> list[tuple[str, object]]:
    """The figures of the test's last run (``report.user_properties``: valid for every junit family)."""
    if not results:
        return []
    result = results[-1]
    verdict = result.extra.get("regression") or {}
    stopped = result.interrupted and result.extra.get("stop_reason", "interrupted") == "interrupted"
    properties: list[tuple[str, object]] = [
        ("perf.p95_ms", round(result.percentile(95) * 1000, 3)),
        ("perf.p99_ms", round(result.percentile(99) * 1000, 3)),
        ("perf.error_rate", round(result.error_rate, 6)),
        ("perf.rps", round(result.rps, 3)),
        ("perf.regression", verdict.get("tier", "not judged (interrupted)" if stopped else "no baseline")),
        # what was load-tested, and why (an embedded reference service says so)
        ("perf.target", result.target.url),
        ("perf.target_source", result.target.source),
        ("perf.target_label", str(result.target)),
    ]
    if stopped:  # Ctrl-C / SIGTERM: partial figures of a run that was never judged
        properties += [("perf.interrupted", "true"), ("perf.duration_s", round(result.duration, 3))]
    return properties
