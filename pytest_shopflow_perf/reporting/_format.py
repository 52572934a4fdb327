"""What every report and verdict message shares: plain-text tables and the wording of the SLO and regression cells.

The terminal table, summary.md, the HTML report and the assertion messages say the same
thing in the same words; each only adds its own emphasis (Markdown bold, HTML colour).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

__all__ = [
    "NOT_PASSED",
    "format_table",
    "regression_label",
    "run_status",
    "slo_cell",
    "slo_margin",
    "slo_outcome",
    "slo_unit",
    "slo_value",
]


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


NOT_PASSED = ("FAIL", "ABORTED", "INTERRUPTED", "INCONCLUSIVE", "NOT JUDGED", "SKIPPED")
"""Every status of a run but PASS, worst first: a run that was stopped or never judged is never PASS."""


def _capacity_level(run: Mapping[str, Any]) -> str:
    """Why a level of a capacity search is no failure of the test: the search judges levels, the test the search."""
    extra = run.get("extra") or {}
    if (run.get("generator") or {}).get("saturated"):
        return "a capacity search level: the generator saturated here, so the search stopped"
    if any(not o.get("passed") for o in extra.get("slo") or []) or str(extra.get("stop_reason") or "").startswith(
        "aborted"
    ):
        return "a capacity search level that broke its SLOs: the search's upper bound"
    return "a capacity search level that held its SLOs"


def run_status(run: Mapping[str, Any], outcome: object = None, reason: object = None) -> tuple[str, str]:
    """One word for a run and why: ``PASS`` only for a run of a passed test that a threshold or a baseline judged.

    :param outcome: the test's (passed, failed, error, skipped; ``inconclusive`` or ``interrupted`` where a
        reporter already knows); default ``run["outcome"]``.
    :param reason: the test's skip reason or failure message.

    Judged means: a threshold (declared, an ``assert_*`` helper, ``assert_recovery``, a judged
    ``assert_no_drift``) or a baseline comparison.
    """
    outcome = str(outcome or run.get("outcome") or "")
    why = str(reason or "")
    extra = run.get("extra") or {}
    stop = str(extra.get("stop_reason") or "")
    if outcome == "interrupted" or stop == "interrupted":
        planned = (run.get("profile") or {}).get("duration")
        of = f" of {planned:g} s" if isinstance(planned, (int, float)) else ""
        return "INTERRUPTED", (
            f"stopped by Ctrl-C or SIGTERM after {float(run.get('duration_s') or 0):.1f} s{of}: "
            "its thresholds were never judged"
        )
    if extra.get("capacity_step") and outcome not in ("failed", "error"):
        return "PASS", _capacity_level(run)  # a level that broke is what a capacity search looks for
    if stop.startswith("aborted"):
        return "ABORTED", f"abort-on-fail stopped the load early: {stop.removeprefix('aborted: ')}"
    if outcome in ("failed", "error"):
        return "FAIL", why or "the test failed"
    lost = [str(shard.get("worker")) for shard in run.get("shards") or [] if shard.get("lost")]
    generator = run.get("generator") or {}
    if outcome == "inconclusive" or (outcome == "skipped" and "inconclusive" in why):
        return "INCONCLUSIVE", why.removeprefix("inconclusive: ") or "the thresholds were not judged"
    if lost:
        return "INCONCLUSIVE", f"load generator shard(s) lost ({', '.join(lost)}): the load was not the profile's"
    if generator.get("saturated"):
        reasons = "; ".join(generator.get("reasons") or []) or "saturated"
        return "INCONCLUSIVE", f"the load generator was saturated ({reasons}): it measured itself"
    if outcome == "skipped":
        return "SKIPPED", why or "skipped"
    drift = [d for d in extra.get("drift") or [] if isinstance(d, Mapping) and d.get("verdict") in ("pass", "fail")]
    judged = bool(extra.get("slo") or extra.get("recovery_check") or drift)  # assert_* helpers, SLOs, recovery, drift
    regression = extra.get("regression") or {}
    if not judged and not regression:
        return "NOT JUDGED", (
            "no threshold and no baseline judged it: declare slo=, call an assert_* helper, or record "
            "a baseline with --perf-save-baseline"
        )
    return "PASS", "met its thresholds" if judged else f"compared with its baseline: {regression.get('tier')}"


# ---- SLO outcomes (``CheckOutcome`` as a dict: ``result.extra["slo"]``) ------------------------------


def slo_unit(display_unit: object, unit: object = "") -> str:
    """The unit an outcome is shown in: its threshold's own (ms, s, us, %, req/s), else by its base unit.

    Records written before thresholds kept their unit only have ``unit`` (s: latency, shown in ms).
    """
    if display_unit:
        return str(display_unit)
    return {"s": "ms", "%": "%"}.get(str(unit or ""), "")


def slo_value(value: float, unit: str) -> str:
    """A measured value or a limit (seconds, fractions, counts) in a display unit: 612.0 ms, 0.612 s, 2.50 %."""
    if unit == "ms":
        return f"{value * 1000:,.1f} ms"
    if unit == "s":
        if abs(value) >= 0.1 or value == 0:
            return f"{value:,.3f} s"
        decimals = 2 - math.floor(math.log10(abs(value)))  # three significant digits, never an exponent
        return f"{value:.{decimals}f} s"
    if unit == "us":
        return f"{value * 1e6:,.0f} us"
    if unit == "%":
        return f"{value * 100:.2f} %"
    if unit == "req/s":
        return f"{value:,.1f} req/s"
    if unit == "MB":
        return f"{value:,.1f} MB"
    return f"{value:,.0f}" if float(value).is_integer() else f"{value:,.1f}"


def slo_margin(measured: float, limit: float, op: str, passed: bool) -> float:
    """Relative distance of ``measured`` to ``limit``; positive means breached by that much."""
    if limit == 0:
        return 0.0 if passed else 1.0
    change = (measured - limit) / abs(limit)
    return change if op in ("<", "<=", "==") else -change


def slo_outcome(outcome: Mapping[str, Any], code: Callable[[str], str] = str) -> str:
    """One threshold's outcome in words, as the terminal, summary.md and skip reasons say it.

    ``p(95)<500ms: measured 612.0 ms against < 500.0 ms (margin +22.4 %)``: the measured value in
    the threshold's own unit, the threshold repeated, the margin; ``code`` marks the expression up.
    """
    text = code(str(outcome.get("threshold", "")))
    if outcome.get("note"):
        return f"{text}: {outcome['note']}"
    unit = slo_unit(outcome.get("display_unit"), outcome.get("unit"))
    measured, limit = float(outcome.get("measured", 0.0)), float(outcome.get("limit", 0.0))
    op = str(outcome.get("op", ""))
    where = f" (worst span at {float(outcome['at']):g} s)" if outcome.get("at") is not None else ""
    margin = slo_margin(measured, limit, op, bool(outcome.get("passed")))
    return (
        f"{text}: measured {slo_value(measured, unit)}{where} against {op} {slo_value(limit, unit)} "
        f"(margin {margin * 100:+.1f} %)"
    )


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
