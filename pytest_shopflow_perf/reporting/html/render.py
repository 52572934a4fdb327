"""pytest-html 4 rendering: per-test extras, results-table cells and a regression banner, from run summaries.

The hooks live in ``plugin/html.py`` (registered only when pytest-html is installed, so no
``pytest_html_*`` hook exists without its spec) and import this module on their first call.
It stays one module (~550 lines) because the table cells, the banner and the per-run block share
one set of escaping and formatting helpers. The extras are built in
the process that ran the test (an xdist worker too: they travel on the report
as plain dicts); the columns and the banner read ``report.shopflow_perf``,
the JSON summaries the plugin puts on every call report, so they work on the
xdist controller. Charts are inline SVG in ``extras.html``: they render the
same in normal and ``--self-contained-html`` reports and need no asset files,
no JavaScript and no network. Every string from a run is HTML-escaped.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from html import escape
from typing import TYPE_CHECKING, Any

from pytest_shopflow_perf.reporting._format import regression_label, shard_rows
from pytest_shopflow_perf.result.schema import FAILING_TIERS, error_percent, tier_rank

if TYPE_CHECKING:
    from pytest_shopflow_perf.result.model import LoadResult

TIER_COLORS = {
    "critical": "#b30000",
    "major": "#d7301f",
    "minor": "#d98200",
    "inconclusive": "#7a6a00",
    "negligible": "#2e7d32",
    "none": "#2e7d32",
}
COLUMNS = (  # (data-column-type, header label); the type is also the cell class "col-<type>"
    ("perfp95", "p95 (ms)"),
    ("perferrors", "error %"),
    ("perfrps", "req/s"),
    ("perfregression", "regression"),
)
MAX_FINDINGS_SHOWN = 12
INSTALL_HINT = "pip install 'pytest-shopflow-perf[html]'"

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
#results-table .sfp table.sfp-table tr.sfp-fail td { background: #fdecea; }
#results-table .sfp .sfp-bad { color: #c62828; font-weight: bold; }
#results-table .sfp .sfp-good { color: #2e7d32; font-weight: bold; }
.sfp .sfp-charts { display: flex; flex-wrap: wrap; gap: 12px; align-items: flex-start; }
.sfp .sfp-chart { flex: 1 1 560px; max-width: 760px; }
.sfp .sfp-chart svg { width: 100%; height: auto; }
.sfp details { margin: 4px 0; }
.sfp summary { cursor: pointer; color: #333; }
.sfp pre { background: #f6f6f6; border: 1px solid #e3e3e3; padding: 6px; color: #222; white-space: pre-wrap;
  font-size: 12px; max-height: 320px; overflow: auto; }
.sfp ul { margin: 2px 0 6px; padding-left: 20px; color: #222; }
</style>"""
BANNER_STYLE = (
    "border: 2px solid #b71c1c; background: #fdecea; color: #7f0000; border-radius: 4px; padding: 8px 14px; "
    "margin: 8px 0 12px; font-size: 14px; max-width: 1100px"
)
NOTE_STYLE = (
    "border: 1px solid #e0b000; background: #fff8e1; color: #5d4300; border-radius: 4px; padding: 6px 12px; "
    "margin: 6px 0 10px; font-size: 13px; max-width: 1100px"
)


def shown_run(runs: Sequence[Mapping[str, Any]]) -> Mapping[str, Any]:
    """The run a test's row stands for: the worst regression tier, the last run among equals."""
    best = runs[-1]
    for run in runs:
        if tier_rank(_verdict(run).get("tier")) > tier_rank(_verdict(best).get("tier")):
            best = run
    return best


def _verdict(run: Mapping[str, Any]) -> Mapping[str, Any]:
    return (run.get("extra") or {}).get("regression") or {}


def _sort_key(value: float) -> str:
    """pytest-html sorts cells as strings: a hidden zero-padded key makes numbers sort as numbers."""
    return f"<!--{max(value, 0.0):016.4f}-->"


def table_cells(runs: Sequence[Mapping[str, Any]]) -> list[str]:
    """The four cells of a row: empty when the test has no load run, so columns stay aligned."""
    if not runs:
        return [f'<td class="col-{kind}"></td>' for kind, _ in COLUMNS]
    run = shown_run(runs)
    total = run.get("total") or {}
    requests = int(total.get("requests", 0))
    errors = int(total.get("errors", 0))
    error_pct = error_percent(errors, requests)
    p95 = float(total.get("p95_ms", 0.0))
    rps = float(total.get("rps", 0.0))
    tier, label = _tier_of(run)
    title = f' title="run {runs.index(run) + 1} of {len(runs)}"' if len(runs) > 1 else ""
    error_style = ' style="color:#c62828;font-weight:bold"' if errors else ""
    tier_color = TIER_COLORS.get(tier or "", "#666")
    tier_weight = "bold" if tier in FAILING_TIERS else "normal"
    return [
        f'<td class="col-perfp95"{title}>{_sort_key(p95)}{_num(p95)}</td>',
        f'<td class="col-perferrors"{error_style}>{_sort_key(error_pct)}{error_pct:.2f}</td>',
        f'<td class="col-perfrps">{_sort_key(rps)}{rps:,.1f}</td>',
        f'<td class="col-perfregression" style="color:{tier_color};font-weight:{tier_weight}">'
        f"<!--{tier_rank(tier) + 2}-->{escape(label)}</td>",
    ]


def _tier_of(run: Mapping[str, Any]) -> tuple[str | None, str]:
    """(tier or None, what the regression cell says)."""
    tier = _verdict(run).get("tier")
    label = regression_label(tier, (run.get("extra") or {}).get("regression_note"))
    return (str(tier) if tier else None), label


# ---- banner ---------------------------------------------------------------------------------------


def regression_banner(tests: Iterable[tuple[str, Sequence[Mapping[str, Any]]]]) -> list[str]:
    """A red banner of the tests that regressed at or above their fail-on tier; a softer note for the rest."""
    failing: list[str] = []
    softer: list[str] = []
    for nodeid, runs in tests:
        for index, run in enumerate(runs):
            verdict = _verdict(run)
            tier = str(verdict.get("tier") or "")
            if tier not in ("inconclusive", *FAILING_TIERS):
                continue
            fail_on = str((run.get("extra") or {}).get("regression_fail_on") or "major")
            name = str(run.get("test") or nodeid)
            if len(runs) > 1:
                name += f" (run {index + 1} of {len(runs)}" + (f": {run['name']}" if run.get("name") else "") + ")"
            worst = _worst_finding(verdict)
            line = (
                f"<li><b>{escape(name)}</b>: {_badge(tier)}"
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
    what = f"{finding.get('endpoint')} {finding.get('metric')} {_change(finding.get('change'))}"
    details = f"{_value(finding.get('baseline'), unit)} \u2192 {_value(finding.get('current'), unit)}"
    p_value = finding.get("p_value")
    if isinstance(p_value, (int, float)) and math.isfinite(p_value):
        details += ", p < 0.001" if p_value < 0.001 else f", p = {p_value:.3f}"
    return f"{what} ({details})"


# ---- extras -----------------------------------------------------------------------------------------


def run_extras(results: Sequence[LoadResult]) -> list[dict[str, Any]]:
    """pytest-html extras of a test's load runs: one HTML block per run, the style sheet first."""
    from pytest_html import extras

    from pytest_shopflow_perf.reporting.html.run_charts import result_charts

    blocks = []
    for index, result in enumerate(results):
        try:
            charts = result_charts(result)
        except ImportError:
            charts = [f'<p class="sfp-meta">Charts need matplotlib: <code>{escape(INSTALL_HINT)}</code></p>']
        except Exception as exc:  # a chart must never cost the report of the test
            charts = [f'<p class="sfp-bad">Charts could not be drawn: {escape(f"{type(exc).__name__}: {exc}")}</p>']
        heading = f"Load run {index + 1} of {len(results)}" if len(results) > 1 else "Load run"
        blocks.append(render_run(result.summary_dict(), charts, heading=heading))
    return [extras.html(STYLE + blocks[0]), *(extras.html(block) for block in blocks[1:])]


def render_run(run: Mapping[str, Any], charts: Sequence[str] = (), *, heading: str = "Load run") -> str:
    """One run as an HTML block: facts, summary table, charts, errors, SLO checks, regression verdict."""
    extra = run.get("extra") or {}
    parts = [
        '<div class="sfp">',
        f"<h3>{escape(heading)}: {escape(str(run.get('name') or run.get('test') or ''))}</h3>",
        _facts(run),
        "<h4>Requests by endpoint</h4>",
        _summary_table(run),
    ]
    if charts:
        parts.append('<div class="sfp-charts">' + "".join(f'<div class="sfp-chart">{c}</div>' for c in charts))
        parts.append("</div>")
    parts.append(_shards(run.get("shards") or []))
    parts.append(_errors(run))
    parts.append(_slo_table(extra.get("slo") or []))
    parts.append(_recovery(extra.get("recovery") or []))
    parts.append(_regression(extra))
    parts.append("</div>")
    return "".join(part for part in parts if part)


def _facts(run: Mapping[str, Any]) -> str:
    profile = run.get("profile") or {}
    generator = run.get("generator") or {}
    total = run.get("total") or {}
    extra = run.get("extra") or {}
    facts = [f"{run.get('model', 'closed')} model", f"{float(run.get('duration_s') or 0):.1f} s"]
    if generator.get("peak_users"):
        facts.append(f"{generator['peak_users']} users peak")
    if profile.get("rate"):
        facts.append(f"{float(profile['rate']):g} arrivals/s")
    facts.append(f"{int(total.get('requests', 0)):,} requests")
    facts.append(f"{float(total.get('rps', 0)):,.1f} req/s")
    if generator.get("cpu_max_percent") or generator.get("loop_lag_p99_ms"):
        facts.append(
            f"generator CPU max {float(generator.get('cpu_max_percent', 0)):.0f} %, "
            f"event-loop lag p99 {float(generator.get('loop_lag_p99_ms', 0)):.1f} ms"
        )
    badges = []
    slo = extra.get("slo") or []
    if slo:
        failed = sum(1 for outcome in slo if not outcome.get("passed"))
        badges.append(
            _badge_text(f"SLO {failed} failed", "#c62828")
            if failed
            else _badge_text(f"SLO {len(slo)}/{len(slo)} passed", "#2e7d32")
        )
    tier, label = _tier_of(run)
    if tier:
        badges.append(_badge(tier, prefix="regression "))
    elif label != "-":
        badges.append(_badge_text(f"regression: {label}", "#777"))
    html = f'<p class="sfp-meta">{"".join(badges)}{escape(" · ".join(facts))}</p>'
    return html + "".join(f'<p class="sfp-bad">{escape(warning)}</p>' for warning in _warnings(run))


def _warnings(run: Mapping[str, Any]) -> list[str]:
    """What makes the figures of a run less trustworthy than they look."""
    generator = run.get("generator") or {}
    extra = run.get("extra") or {}
    warnings = []
    if run.get("interrupted"):
        warnings.append("Interrupted: partial results.")
    if str(extra.get("stop_reason") or "").startswith("aborted"):
        warnings.append(str(extra["stop_reason"]))
    if generator.get("saturated"):
        reasons = "; ".join(str(reason) for reason in generator.get("reasons") or [])
        warnings.append(f"The load generator saturated: latency figures are not reliable ({reasons}).")
    for shard in run.get("shards") or []:
        if shard.get("lost"):
            warnings.append(
                f"Shard {shard['worker']} was {shard.get('note', 'lost')}: the load offered was not the profile's."
            )
    if generator.get("dropped_iterations"):
        warnings.append(f"{int(generator['dropped_iterations']):,} iterations dropped.")
    if generator.get("late_iterations"):
        warnings.append(
            f"{int(generator['late_iterations']):,} iterations started late "
            f"(up to {float(generator.get('max_lateness_ms', 0)):.0f} ms)."
        )
    if extra.get("unfinished_requests"):
        warnings.append(f"{int(extra['unfinished_requests']):,} requests unanswered at the end, counted as errors.")
    warnings += [f"Fault could not be applied: {error}" for error in extra.get("fault_errors") or []]
    return warnings


def _shards(shards: Sequence[Mapping[str, Any]]) -> str:
    """The processes (or cluster workers) that generated the load, merged in the figures above."""
    if not shards:
        return ""
    header, *rows = shard_rows(shards)
    body = "".join(
        ('<tr class="sfp-bad">' if row[-1] != "ok" else "<tr>")
        + "".join(
            f'<td class="sfp-l">{escape(c)}</td>' if i in (0, 6) else f"<td>{escape(c)}</td>" for i, c in enumerate(row)
        )
        + "</tr>"
        for row in rows
    )
    return f"<h4>Load generation: {len(shards)} shards</h4>" + _table(header, body)


def _summary_table(run: Mapping[str, Any]) -> str:
    header = ("endpoint", "requests", "req/s", "p50 ms", "p95 ms", "p99 ms", "max ms", "errors", "error %")
    rows = []
    endpoints: Mapping[str, Mapping[str, Any]] = run.get("endpoints") or {}
    for name, stats in sorted(endpoints.items(), key=lambda item: -int(item[1].get("requests", 0))):
        rows.append(_stats_row(name, stats, ""))
    rows.append(_stats_row("total", run.get("total") or {}, "sfp-total"))
    return _table(header, "".join(rows))


def _stats_row(name: str, stats: Mapping[str, Any], css: str) -> str:
    requests = int(stats.get("requests", 0))
    errors = int(stats.get("errors", 0))
    error_pct = error_percent(errors, requests)
    bad = ' class="sfp-bad"' if errors else ""
    cells = [
        f'<td class="sfp-l">{escape(name)}</td>',
        f"<td>{requests:,}</td>",
        f"<td>{float(stats.get('rps', 0)):,.1f}</td>",
        *(f"<td>{_num(float(stats.get(key, 0)))}</td>" for key in ("p50_ms", "p95_ms", "p99_ms", "max_ms")),
        f"<td{bad}>{errors:,}</td>",
        f"<td{bad}>{error_pct:.2f}</td>",
    ]
    return f'<tr class="{css}">' + "".join(cells) + "</tr>" if css else "<tr>" + "".join(cells) + "</tr>"


def _errors(run: Mapping[str, Any]) -> str:
    extra = run.get("extra") or {}
    endpoints: Mapping[str, Mapping[str, Any]] = run.get("endpoints") or {}
    rows = []
    for name, stats in endpoints.items():
        requests = int(stats.get("requests", 0))
        for kind, count in (stats.get("errors_by_kind") or {}).items():
            share = f"{100.0 * count / requests:.2f}" if requests else "-"
            rows.append((int(count), name, str(kind), share))
    exceptions = extra.get("exceptions") or []
    if not rows and not exceptions:
        return ""
    html = "<h4>Errors</h4>"
    if rows:
        body = "".join(
            f'<tr><td class="sfp-l">{escape(name)}</td><td class="sfp-l">{escape(kind)}</td>'
            f"<td>{count:,}</td><td>{share}</td></tr>"
            for count, name, kind, share in sorted(rows, key=lambda row: (-row[0], row[1], row[2]))
        )
        html += _table(("endpoint", "kind", "count", "% of its requests"), body)
    for sample in exceptions:
        html += (
            f"<details><summary>{escape(str(sample.get('kind', 'exception')))} in "
            f"{escape(str(sample.get('where', '?')))} ({int(sample.get('count', 1)):,}&times;): first traceback"
            f"</summary><pre>{escape(str(sample.get('traceback', '')))}</pre></details>"
        )
    return html


def _slo_table(outcomes: Sequence[Mapping[str, Any]]) -> str:
    if not outcomes:
        return ""
    failed = sum(1 for outcome in outcomes if not outcome.get("passed"))
    rows = []
    for outcome in sorted(outcomes, key=lambda o: bool(o.get("passed"))):
        passed = bool(outcome.get("passed"))
        unit = str(outcome.get("unit") or "")
        scope = str(outcome.get("scope") or "whole run")
        if outcome.get("at") is not None:
            scope += f" (worst at {float(outcome['at']):g} s)"
        endpoint = str(outcome.get("endpoint") or "")
        if outcome.get("worst_endpoint"):
            endpoint += f" (worst: {outcome['worst_endpoint']})"
        status = (
            '<span class="sfp-good">&#10003; pass</span>' if passed else '<span class="sfp-bad">&#10007; FAIL</span>'
        )
        css = "" if passed else ' class="sfp-fail"'
        rows.append(
            f'<tr{css}><td class="sfp-l">{status}</td>'
            f'<td class="sfp-l"><code>{escape(str(outcome.get("threshold", "")))}</code></td>'
            f'<td class="sfp-l">{escape(endpoint)}</td><td class="sfp-l">{escape(scope)}</td>'
            f"<td>{escape(_slo_value(outcome.get('measured'), unit))}</td>"
            f"<td>{escape(str(outcome.get('op', '')))} {escape(_slo_value(outcome.get('limit'), unit))}</td></tr>"
        )
    title = f"SLO checks: {len(outcomes) - failed} passed, {failed} failed"
    return f"<h4>{title}</h4>" + _table(("", "threshold", "endpoint", "scope", "measured", "limit"), "".join(rows))


def _slo_value(value: object, unit: str) -> str:
    if not isinstance(value, (int, float)) or not math.isfinite(value):
        return "-"
    if unit == "s":
        return f"{_num(value * 1000)} ms"
    if unit == "%":
        return f"{value * 100:.2f} %"
    return f"{value:,.1f}"


def _recovery(entries: Sequence[Mapping[str, Any]]) -> str:
    if not entries:
        return ""
    rows = []
    for entry in entries:
        during = entry.get("during") or {}
        recovered = entry.get("recovery_s")
        rows.append(
            f'<tr><td class="sfp-l">{escape(str(entry.get("name", "")))}</td>'
            f"<td>{float(entry.get('start_s') or 0):g}-{float(entry.get('end_s') or 0):g} s</td>"
            f"<td>{_num(float(during.get('p95_ms', 0)))} ms</td>"
            f"<td>{float(during.get('error_rate', 0)) * 100:.2f} %</td>"
            + (
                '<td class="sfp-bad">did not recover</td>'
                if recovered is None
                else f"<td>{float(recovered):.1f} s after it</td>"
            )
            + "</tr>"
        )
    return "<h4>Faults</h4>" + _table(("fault", "window", "p95 during", "errors during", "recovery"), "".join(rows))


def _regression(extra: Mapping[str, Any]) -> str:
    verdict = extra.get("regression")
    if not verdict:
        note = extra.get("regression_note")
        return f"<h4>Regression</h4><p>{escape(str(note))}</p>" if note else ""
    tier = str(verdict.get("tier", "none"))
    fail_on = str(extra.get("regression_fail_on") or "major")
    runs = int(verdict.get("baseline_runs", 0))
    html = (
        f"<h4>Regression vs {runs} baseline run{'s' if runs != 1 else ''}: {_badge(tier)}"
        f'<span class="sfp-meta" style="font-weight:normal">fails at {escape(fail_on)} or worse</span></h4>'
    )
    findings = sorted(
        verdict.get("findings") or [], key=lambda f: (-tier_rank(f.get("tier")), -abs(f.get("change") or 0.0))
    )
    notable = [f for f in findings if f.get("tier") not in ("none", "negligible")]
    quiet = [f for f in findings if f.get("tier") in ("none", "negligible")]
    header = ("tier", "endpoint", "metric", "baseline", "current", "change", "95% CI", "p", "note")
    if notable:
        html += _table(header, "".join(_finding_row(f) for f in notable[:MAX_FINDINGS_SHOWN]))
        if len(notable) > MAX_FINDINGS_SHOWN:
            hidden = len(notable) - MAX_FINDINGS_SHOWN
            html += f'<p class="sfp-meta">{hidden} more finding{"s" if hidden > 1 else ""} not shown.</p>'
    else:
        html += "<p>No metric got significantly worse.</p>"
    if quiet:
        html += (
            f"<details><summary>{len(quiet)} metric{'s' if len(quiet) != 1 else ''} without a regression</summary>"
            + _table(header, "".join(_finding_row(f) for f in quiet))
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
        f"[{_change(ci[0], 0)}, {_change(ci[1], 0)}]"
        if isinstance(ci, (list, tuple)) and len(ci) == 2 and None not in ci
        else "-"
    )
    tier = str(finding.get("tier", ""))
    css = ' class="sfp-fail"' if tier in FAILING_TIERS else ""
    return (
        f'<tr{css}><td class="sfp-l">{_badge(tier)}</td>'
        f'<td class="sfp-l">{escape(str(finding.get("endpoint", "")))}</td>'
        f'<td class="sfp-l">{escape(str(finding.get("metric", "")))}</td>'
        f"<td>{escape(_value(finding.get('baseline'), unit))}</td>"
        f"<td>{escape(_value(finding.get('current'), unit))}</td>"
        f"<td>{escape(_change(finding.get('change')))}</td><td>{escape(ci_text)}</td>"
        f"<td>{escape(_p(finding.get('p_value')))}</td>"
        f'<td class="sfp-l sfp-wrap">{escape(str(finding.get("note") or ""))}</td></tr>'
    )


# ---- formatting --------------------------------------------------------------------------------------


_TEXT_COLUMNS = frozenset(("", "tier", "endpoint", "kind", "threshold", "scope", "metric", "note", "fault", "state"))


def _table(header: Sequence[str], body: str) -> str:
    head = "".join(
        f'<th class="sfp-l">{escape(h)}</th>' if i == 0 or h in _TEXT_COLUMNS else f"<th>{escape(h)}</th>"
        for i, h in enumerate(header)
    )
    return f'<table class="sfp-table"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


def _badge(tier: str, prefix: str = "") -> str:
    return _badge_text(prefix + tier, TIER_COLORS.get(tier, "#777"))


def _badge_text(text: str, color: str) -> str:
    # Inline style: badges also appear in the banner, outside the extras' style sheet.
    return (
        f'<span class="sfp-badge" style="background:{color};color:#fff;border-radius:3px;padding:1px 7px;'
        f'font-weight:bold;font-size:12px;white-space:nowrap">{escape(text)}</span>'
    )


def _num(value: float) -> str:
    """Milliseconds: one decimal below 100, whole numbers above."""
    if not math.isfinite(value):
        return "-"
    return f"{value:,.1f}" if abs(value) < 100 else f"{value:,.0f}"


def _value(value: object, unit: str) -> str:
    if not isinstance(value, (int, float)) or not math.isfinite(value):
        return "-"
    if unit == "fraction":
        return f"{value * 100:.2f} %"
    if unit == "ms":
        return f"{_num(value)} ms"
    return f"{value:,.1f} {unit}".rstrip()


def _change(value: object, decimals: int = 1) -> str:
    if not isinstance(value, (int, float)) or not math.isfinite(value):
        return "-"
    return f"{value * 100:+.{decimals}f} %"


def _p(value: object) -> str:
    if not isinstance(value, (int, float)) or not math.isfinite(value):
        return "-"
    return "< 0.001" if value < 0.001 else f"{value:.3f}"
