"""The regression verdict in HTML: the red banner over the report, and each run's findings table."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from html import escape
from typing import Any

from pytest_shopflow_perf.reporting.html.markup import badge, change_text, p_text, table, value_text
from pytest_shopflow_perf.result.schema import FAILING_TIERS, tier_rank

MAX_FINDINGS_SHOWN = 12
BANNER_STYLE = (
    "border: 2px solid #b71c1c; background: #fdecea; color: #7f0000; border-radius: 4px; padding: 8px 14px; "
    "margin: 8px 0 12px; font-size: 14px; max-width: 1100px"
)
NOTE_STYLE = (
    "border: 1px solid #e0b000; background: #fff8e1; color: #5d4300; border-radius: 4px; padding: 6px 12px; "
    "margin: 6px 0 10px; font-size: 13px; max-width: 1100px"
)


def verdict_of(run: Mapping[str, Any]) -> Mapping[str, Any]:
    return (run.get("extra") or {}).get("regression") or {}


def regression_banner(tests: Iterable[tuple[str, Sequence[Mapping[str, Any]]]]) -> list[str]:
    """A red banner of the tests that regressed at or above their fail-on tier; a softer note for the rest."""
    failing: list[str] = []
    softer: list[str] = []
    for nodeid, runs in tests:
        for index, run in enumerate(runs):
            verdict = verdict_of(run)
            tier = str(verdict.get("tier") or "")
            if tier not in ("inconclusive", *FAILING_TIERS):
                continue
            fail_on = str((run.get("extra") or {}).get("regression_fail_on") or "major")
            name = str(run.get("test") or nodeid)
            if len(runs) > 1:
                name += f" (run {index + 1} of {len(runs)}" + (f": {run['name']}" if run.get("name") else "") + ")"
            worst = _worst_finding(verdict)
            line = (
                f"<li><b>{escape(name)}</b>: {badge(tier)}"
                + (f" {escape(_describe(worst))}" if worst else "")
                + (f" <i>(fails at {escape(fail_on)} or worse)</i>" if fail_on != "major" else "")
                + "</li>"
            )
            if tier in FAILING_TIERS and fail_on != "never" and tier_rank(tier) >= tier_rank(fail_on):
                failing.append(line)
            else:
                softer.append(line)
    html: list[str] = []
    if failing:
        html.append(
            f'<div class="sfp-banner" style="{BANNER_STYLE}"><div style="font-weight:bold;font-size:16px">'
            f"&#9888; Performance regression in {len(failing)} load run{'s' if len(failing) > 1 else ''}</div>"
            f'<ul style="margin:6px 0 2px;padding-left:22px">{"".join(failing)}</ul></div>'
        )
    if softer:
        html.append(
            f'<div class="sfp-note" style="{NOTE_STYLE}"><b>Below the fail-on tier or not significant</b> '
            f"(reported, not failed):"
            f'<ul style="margin:4px 0 2px;padding-left:22px">{"".join(softer)}</ul></div>'
        )
    return html


def _worst_finding(verdict: Mapping[str, Any]) -> Mapping[str, Any] | None:
    findings: list[Mapping[str, Any]] = [
        f for f in verdict.get("findings") or [] if f.get("tier") == verdict.get("tier")
    ]
    return max(findings, key=lambda f: abs(f.get("change") or 0.0)) if findings else None


def _describe(finding: Mapping[str, Any]) -> str:
    """``GET /x p95 +62.0 % (38.1 ms -> 61.7 ms, p = 0.001)``."""
    unit = str(finding.get("unit") or "")
    what = f"{finding.get('endpoint')} {finding.get('metric')} {change_text(finding.get('change'))}"
    details = f"{value_text(finding.get('baseline'), unit)} \u2192 {value_text(finding.get('current'), unit)}"
    p_value = finding.get("p_value")
    if isinstance(p_value, (int, float)) and math.isfinite(p_value):
        details += ", p < 0.001" if p_value < 0.001 else f", p = {p_value:.3f}"
    return f"{what} ({details})"


def regression_section(extra: Mapping[str, Any]) -> str:
    """The verdict against the baseline (which file, how many runs), its findings worst first."""
    verdict = extra.get("regression")
    if not verdict:
        note = extra.get("regression_note")
        return f"<h4>Regression</h4><p>{escape(str(note))}</p>" if note else ""
    tier = str(verdict.get("tier", "none"))
    fail_on = str(extra.get("regression_fail_on") or "major")
    runs = int(verdict.get("baseline_runs", 0))
    where = f" ({escape(str(extra['baseline_file']))})" if extra.get("baseline_file") else ""
    html = (
        f"<h4>Regression vs {runs} baseline run{'s' if runs != 1 else ''}{where}: {badge(tier)}"
        f'<span class="sfp-meta" style="font-weight:normal">fails at {escape(fail_on)} or worse</span></h4>'
    )
    findings = sorted(
        verdict.get("findings") or [], key=lambda f: (-tier_rank(f.get("tier")), -abs(f.get("change") or 0.0))
    )
    notable = [f for f in findings if f.get("tier") not in ("none", "negligible")]
    quiet = [f for f in findings if f.get("tier") in ("none", "negligible")]
    header = ("tier", "endpoint", "metric", "baseline", "current", "change", "95% CI", "p", "note")
    if notable:
        html += table(header, "".join(_finding_row(f) for f in notable[:MAX_FINDINGS_SHOWN]), "sfp-findings")
        if len(notable) > MAX_FINDINGS_SHOWN:
            hidden = len(notable) - MAX_FINDINGS_SHOWN
            html += f'<p class="sfp-meta">{hidden} more finding{"s" if hidden > 1 else ""} not shown.</p>'
    else:
        html += "<p>No metric got significantly worse.</p>"
    if quiet:
        html += (
            f"<details><summary>{len(quiet)} metric{'s' if len(quiet) != 1 else ''} without a regression</summary>"
            + table(header, "".join(_finding_row(f) for f in quiet), "sfp-findings")
            + "</details>"
        )
    notes = verdict.get("notes") or []
    if notes:
        html += "<ul>" + "".join(f"<li>{escape(str(note))}</li>" for note in notes) + "</ul>"
    return html


def _finding_row(finding: Mapping[str, Any]) -> str:
    unit = str(finding.get("unit") or "")
    ci = finding.get("ci")
    ci_text = (
        f"[{change_text(ci[0], 0)}, {change_text(ci[1], 0)}]"
        if isinstance(ci, (list, tuple)) and len(ci) == 2 and None not in ci
        else "-"
    )
    tier = str(finding.get("tier", ""))
    css = ' class="sfp-fail"' if tier in FAILING_TIERS else ""
    return (
        f'<tr{css}><td class="sfp-l">{badge(tier)}</td>'
        f'<td class="sfp-l">{escape(str(finding.get("endpoint", "")))}</td>'
        f'<td class="sfp-l">{escape(str(finding.get("metric", "")))}</td>'
        f"<td>{escape(value_text(finding.get('baseline'), unit))}</td>"
        f"<td>{escape(value_text(finding.get('current'), unit))}</td>"
        f"<td>{escape(change_text(finding.get('change')))}</td><td>{escape(ci_text)}</td>"
        f"<td>{escape(p_text(finding.get('p_value')))}</td>"
        f'<td class="sfp-l sfp-wrap">{escape(str(finding.get("note") or ""))}</td></tr>'
    )
