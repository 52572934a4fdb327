"""What every report and verdict message shares: plain-text tables and the wording of the SLO and regression cells.

The terminal table, summary.md, the HTML report and the assertion messages say the same
thing in the same words; each only adds its own emphasis (Markdown bold, HTML colour).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

__all__ = ["format_table", "regression_label", "slo_cell"]


def format_table(rows: Sequence[tuple[str, ...]]) -> list[str]:
    """Rows as aligned text: the first row is the header, the first column left-aligned, the rest right-aligned."""
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = []
    for index, row in enumerate(rows):
        cells = [row[0].ljust(widths[0])] + [
            cell.rjust(width) for cell, width in zip(row[1:], widths[1:], strict=False)
        ]
        lines.append("  ".join(cells).rstrip())
        if index == 0:
            lines.append("  ".join("-" * width for width in widths))
    return lines


def slo_cell(passed: int, failed: int, *, inconclusive: bool = False, emphasis: Callable[[str], str] = str) -> str:
    """``3/3 ok``, ``1 FAILED``, ``inconclusive`` (thresholds not judged) or ``-`` (none declared)."""
    if inconclusive:
        return "inconclusive"
    if not passed and not failed:
        return "-"
    return f"{passed}/{passed + failed} ok" if not failed else emphasis(f"{failed} FAILED")


def regression_label(tier: object, note: object = "") -> str:
    """The tier, or why there is none: ``no baseline``, ``off`` (disabled) or ``-``."""
    if tier:
        return str(tier)
    text = str(note or "")
    if "no baseline" in text:
        return "no baseline"
    if "disabled" in text:
        return "off"
    return "-"


def shard_rows(shards: Iterable[Mapping[str, Any]]) -> list[tuple[str, ...]]:
    """One row per shard: its users, requests, errors, CPU (% of one core), loop lag and state."""
    rows: list[tuple[str, ...]] = [("shard", "users", "requests", "errors", "CPU %", "lag p99 ms", "state")]
    for shard in shards:
        generator = shard.get("generator") or {}
        state = "LOST" if shard.get("lost") else ("SATURATED" if generator.get("saturated") else "ok")
        rows.append(
            (
                str(shard["worker"]),
                f"{int(shard.get('users', 0)):,}",
                f"{int(shard.get('requests', 0)):,}",
                f"{int(shard.get('errors', 0)):,}",
                f"{float(generator.get('cpu_percent', 0.0)):.0f}",
                f"{float(generator.get('loop_lag_p99_ms', 0.0)):.1f}",
                state + (f": {shard['note']}" if shard.get("note") else ""),
            )
        )
    return rows
