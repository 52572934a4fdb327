"""The rows of errors that are not requests: checks and journeys (and hooks), with what they were out of.

A failed ``user.check`` or an exception out of a journey has no HTTP request of its own; the
recorder counts it on its own row (``check: cart has items``, ``journey browse``,
``on_start login``), never on the endpoint that answered last. Every report (terminal ``-v``,
summary.md, the endpoints CSV) shows those rows from here, each with its runs (check
evaluations, iterations, hook calls) so its errors % means what an endpoint's does.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from pytest_shopflow_perf.metrics.recorder import CHECK_ROW_PREFIX, JOURNEY_ROW_PREFIX

__all__ = ["EventRow", "event_rows", "exception_samples"]

_HOOK_PREFIXES = ("on_start ", "on_stop ")


@dataclass(frozen=True)
class EventRow:
    """One check, journey or hook of a run: how often it ran, how often it failed and how."""

    name: str  # "check: cart has items", "journey browse", "on_start login"
    group: str  # "check", "journey", "hook" or "other" (the overflow row of many names)
    runs: int | None  # check evaluations, iterations or hook calls; None when the record does not say
    errors: int
    errors_by_kind: dict[str, int] = field(default_factory=dict)

    @property
    def ok(self) -> int | None:
        return None if self.runs is None else max(0, self.runs - self.errors)

    @property
    def error_rate(self) -> float | None:
        """Errors per run, capped at 1; None without runs to divide by."""
        if not self.runs:
            return None
        return min(1.0, self.errors / self.runs)

    @property
    def kinds(self) -> str:
        """``exception KeyError 20``; empty for a check (its only kind is its own name)."""
        shown = {kind: count for kind, count in self.errors_by_kind.items() if kind != self.name}
        return ", ".join(f"{kind} {count:,}" for kind, count in sorted(shown.items(), key=lambda kv: (-kv[1], kv[0])))

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "group": self.group,
            "runs": self.runs,
            "errors": self.errors,
            "error_rate": None if self.error_rate is None else round(self.error_rate, 6),
            "errors_by_kind": dict(self.errors_by_kind),
        }


def _group(name: str) -> str:
    if name.startswith(CHECK_ROW_PREFIX):
        return "check"
    if name.startswith(JOURNEY_ROW_PREFIX):
        return "journey"
    if name.startswith(_HOOK_PREFIXES):
        return "hook"
    return "other"


_ORDER = {"check": 0, "journey": 1, "hook": 2, "other": 3}


def event_rows(run: Mapping[str, Any], *, passing: bool = True) -> list[EventRow]:
    """The check, journey and hook rows of a run (a run record or the summary on a test report).

    With ``passing``, checks and journeys without an error are rows too (their runs are a fact
    of the run); without it, only rows with errors. Sorted checks, journeys, hooks, then by name:
    the same order in every report, whichever shard or user failed first.
    """
    events: Mapping[str, Mapping[str, Any]] = run.get("events") or {}
    checks: Mapping[str, Mapping[str, Any]] = run.get("checks") or {}
    runs_by_row: Mapping[str, int] = (run.get("extra") or {}).get("journey_runs") or {}
    rows: dict[str, EventRow] = {}
    for name, count in checks.items():
        row = f"{CHECK_ROW_PREFIX}{name}"
        event = events.get(row) or {}
        passes, fails = int(count.get("passes", 0)), int(count.get("fails", 0))
        rows[row] = EventRow(
            row, "check", passes + fails, int(event.get("errors", fails)), dict(event.get("errors_by_kind") or {})
        )
    for row, runs in runs_by_row.items():
        event = events.get(row) or {}
        rows[row] = EventRow(
            row, _group(row), int(runs), int(event.get("errors", 0)), dict(event.get("errors_by_kind") or {})
        )
    for row, event in events.items():
        if row not in rows:  # an older record without runs, or the overflow row of many names
            rows[row] = EventRow(
                row, _group(row), None, int(event.get("errors", 0)), dict(event.get("errors_by_kind") or {})
            )
    chosen = [row for row in rows.values() if passing or row.errors]
    return sorted(chosen, key=lambda row: (_ORDER[row.group], row.name))


def exception_samples(run: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The first traceback of each exception kind a journey or hook raised, most frequent first."""
    samples: list[dict[str, Any]] = list((run.get("extra") or {}).get("exceptions") or [])
    return sorted(samples, key=lambda sample: (-int(sample.get("count", 0)), str(sample.get("kind"))))
