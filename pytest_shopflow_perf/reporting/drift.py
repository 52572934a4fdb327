"""The "Drift" section of summary.md: the slope of every ``assert_no_drift`` of the session.

A soak passes or fails on its slope; the reader needs the slope itself, its interval and
the levels it went between, failed or not, to see how close a run came to its limit.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

Table = Callable[[Iterable[str], Iterable[Iterable[Any]]], list[str]]
HEADER = ("scenario", "metric", "endpoint", "slope", "99 % interval", "start -> end", "windows", "limit", "verdict")


def _slope(value: object) -> str:
    if not isinstance(value, (int, float)):
        return "-"
    return f"{value:+,.0f}" if abs(value) >= 100 else f"{value:+.3g}"


def _level(value: object, unit: str) -> str:
    return f"{value:.4g} {unit}" if isinstance(value, (int, float)) else "-"


def drift_rows(runs: Sequence[Mapping[str, Any]]) -> list[tuple[str, ...]]:
    """One row per drift record of each run (``run["drift"]``, from ``result.extra["drift"]``)."""
    rows: list[tuple[str, ...]] = []
    for run in runs:
        for entry in run.get("drift") or []:
            unit = str(entry.get("unit", ""))
            level_unit = str(entry.get("level_unit", ""))
            verdict = str(entry.get("verdict", "-"))
            known = entry.get("slope") is not None
            rows.append(
                (
                    str(run.get("name", "-")),
                    str(entry.get("metric", "-")),
                    str(entry.get("endpoint") or "total"),
                    f"{_slope(entry.get('slope'))} {unit}" if known else "-",
                    f"{_slope(entry.get('low'))} .. {_slope(entry.get('high'))}" if known else "-",
                    f"{_level(entry.get('start'), level_unit)} -> {_level(entry.get('end'), level_unit)}"
                    if known
                    else "-",
                    str(entry.get("windows", "-")),
                    str(entry.get("max_slope", "-")),
                    f"**{verdict}**" if verdict == "fail" else verdict + ("" if known else f": {entry.get('reason')}"),
                )
            )
    return rows


def drift_lines(runs: Sequence[Mapping[str, Any]], table: Table) -> list[str]:
    """The section's Markdown lines (none when no run checked its drift); ``table`` renders the rows."""
    rows = drift_rows(runs)
    if not rows:
        return []
    return [
        "",
        "## Drift",
        "",
        "Trend of each per-window figure over the steady part of the run (Theil-Sen slope; the interval is "
        "widened for autocorrelation). A run fails only when the whole interval is above its limit.",
        "",
        *table(HEADER, rows),
    ]
