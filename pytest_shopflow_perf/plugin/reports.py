"""Reading the runs back from test reports, in collection order: what the table, summary.md and banner list."""

from __future__ import annotations

from typing import Any


def outcome_of(report: Any) -> str:
    """passed/failed/skipped, or ``inconclusive`` for a skip that says so (a saturated generator)."""
    if report.outcome == "skipped" and "inconclusive" in str(reason_of(report)):
        return "inconclusive"
    return str(report.outcome)


def collected_runs(stats: dict[str, list[Any]]) -> list[tuple[Any, list[dict[str, Any]]]]:
    """(call report, run summaries) per load test, in collection order, with what teardown added.

    The call report carries the runs (and the outcome); the teardown report carries
    notes written after the test (``baseline_saved``), merged in here so every
    reporter sees them.
    """
    notes: dict[str, dict[str, Any]] = {}
    calls: list[tuple[Any, list[dict[str, Any]]]] = []
    for reports in stats.values():
        for report in reports:
            notes.update(getattr(report, "shopflow_perf_notes", None) or {})
            runs = getattr(report, "shopflow_perf", None)
            if runs and getattr(report, "when", None) == "call":
                calls.append((report, runs))
    for _, runs in calls:
        for run in runs:
            extra = notes.get(str(run.get("test")))
            if extra:
                run.setdefault("extra", {}).update(extra)
    calls.sort(key=lambda pair: tuple(pair[1][0].get("order") or (1 << 30, 0)))
    return calls


def reason_of(report: Any) -> str | None:
    """One line on why a test did not pass: the skip reason or the failure's message."""
    if report.outcome == "passed":
        return None
    longrepr = report.longrepr
    if isinstance(longrepr, tuple) and len(longrepr) == 3:
        return str(longrepr[2]).removeprefix("Skipped: ")
    crash = getattr(longrepr, "reprcrash", None)
    message = getattr(crash, "message", None) or str(longrepr)
    return message.splitlines()[0][:300] if message else None
