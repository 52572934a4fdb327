"""What every part of the HTML report shares: the style sheet, tables, badges and number formats.

Every string from a run goes through ``escape`` before it reaches the page; the helpers here
take plain text and return markup.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from html import escape

TIER_COLORS = {
    "critical": "#b30000",
    "major": "#d7301f",
    "minor": "#d98200",
    "inconclusive": "#7a6a00",
    "negligible": "#2e7d32",
    "none": "#2e7d32",
}
BAD_COLOR = "#c62828"
GOOD_COLOR = "#2e7d32"
WARN_COLOR = "#9a6700"  # errors seen, no threshold of the test's own to judge them by
INTERRUPTED_COLOR = "#6a1b9a"

STYLE = """<style>
#results-table .sfp, .sfp { color: #222; font-size: 13px; line-height: 1.4; margin: 6px 0 18px; }
.sfp h3 { font-size: 15px; margin: 4px 0 2px; color: #111; }
.sfp h4 { font-size: 13px; margin: 14px 0 4px; color: #111; }
.sfp p { margin: 2px 0 6px; color: #222; }
.sfp .sfp-meta { color: #555; }
.sfp .sfp-badge { display: inline-block; margin-right: 6px; }
#results-table .sfp table.sfp-table { border-collapse: collapse; margin: 2px 0 6px; min-width: 420px; }
#results-table .sfp table.sfp-table th, #results-table .sfp table.sfp-table td { border: none;
  border-bottom: 1px solid #e3e3e3; padding: 3px 10px; text-align: right; white-space: nowrap; color: #222; }
#results-table .sfp table.sfp-table th { background: #f3f5f7; color: #333; font-weight: bold; }
#results-table .sfp table.sfp-table .sfp-l { text-align: left; }
#results-table .sfp table.sfp-table td.sfp-wrap { white-space: normal; max-width: 420px; }
#results-table .sfp table.sfp-table tr.sfp-total td { font-weight: bold; border-top: 2px solid #bbb; }
#results-table .sfp table.sfp-table tr.sfp-event td { color: #555; font-style: italic; }
#results-table .sfp table.sfp-table tr.sfp-fail td { background: #fdecea; }
#results-table .sfp .sfp-bad, #results-table .sfp table.sfp-table td.sfp-bad { color: #c62828; font-weight: bold; }
#results-table .sfp .sfp-good, #results-table .sfp table.sfp-table td.sfp-good { color: #2e7d32; }
#results-table .sfp .sfp-warn, #results-table .sfp table.sfp-table td.sfp-warn { color: #9a6700; }
.sfp .sfp-interrupted { border-left: 4px solid #6a1b9a; padding-left: 8px; }
.sfp .sfp-charts { display: flex; flex-wrap: wrap; gap: 12px; align-items: flex-start; }
.sfp .sfp-chart { flex: 1 1 560px; max-width: 760px; }
.sfp .sfp-chart svg { width: 100%; height: auto; }
.sfp .sfp-chart .sfp-meta { font-size: 12px; margin: 0 0 4px 8px; }
.sfp details { margin: 4px 0; }
.sfp summary { cursor: pointer; color: #333; }
.sfp pre { background: #f6f6f6; border: 1px solid #e3e3e3; padding: 6px; color: #222; white-space: pre-wrap;
  font-size: 12px; max-height: 320px; overflow: auto; }
.sfp ul { margin: 2px 0 6px; padding-left: 20px; color: #222; }
</style>"""

_TEXT_COLUMNS = frozenset(
    ("", "tier", "endpoint", "kind", "threshold", "scope", "metric", "note", "fault", "state", "check", "where")
)


def table(header: Sequence[str], body: str, css: str = "") -> str:
    """A ``sfp-table`` (``css`` adds classes): text columns left-aligned, figures right-aligned."""
    head = "".join(
        f'<th class="sfp-l">{escape(h)}</th>' if i == 0 or h in _TEXT_COLUMNS else f"<th>{escape(h)}</th>"
        for i, h in enumerate(header)
    )
    classes = f"sfp-table {css}".strip()
    return f'<table class="{classes}"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


def badge(tier: str, prefix: str = "") -> str:
    return badge_text(prefix + tier, TIER_COLORS.get(tier, "#777"))


def badge_text(text: str, color: str, css: str = "") -> str:
    # Inline style: badges also appear in the banner and the overview, outside the extras' style sheet.
    classes = f"sfp-badge {css}".strip()
    return (
        f'<span class="{classes}" style="background:{color};color:#fff;border-radius:3px;padding:1px 7px;'
        f'font-weight:bold;font-size:12px;white-space:nowrap">{escape(text)}</span>'
    )


def num(value: float) -> str:
    """Milliseconds: one decimal below 100, whole numbers above."""
    if not math.isfinite(value):
        return "-"
    return f"{value:,.1f}" if abs(value) < 100 else f"{value:,.0f}"


def value_text(value: object, unit: str) -> str:
    if not isinstance(value, (int, float)) or not math.isfinite(value):
        return "-"
    if unit == "fraction":
        return f"{value * 100:.2f} %"
    if unit == "ms":
        return f"{num(value)} ms"
    return f"{value:,.1f} {unit}".rstrip()


def change_text(value: object, decimals: int = 1) -> str:
    if not isinstance(value, (int, float)) or not math.isfinite(value):
        return "-"
    return f"{value * 100:+.{decimals}f} %"


def p_text(value: object) -> str:
    if not isinstance(value, (int, float)) or not math.isfinite(value):
        return "-"
    return "< 0.001" if value < 0.001 else f"{value:.3f}"


def slo_value(value: object, unit: str) -> str:
    """A measured value or limit of an SLO outcome (unit ``s``, ``%`` or none), as the threshold reads."""
    if not isinstance(value, (int, float)) or not math.isfinite(value):
        return "-"
    if unit == "s":
        return f"{num(value * 1000)} ms"
    if unit == "%":
        return f"{value * 100:.2f} %"
    return f"{value:,.1f}"
