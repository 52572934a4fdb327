"""pytest-html 4 rendering: per-test extras and results-table cells, from run summaries.

The hooks live in ``plugin/html.py`` (registered only when pytest-html is installed, so no
``pytest_html_*`` hook exists without its spec) and import this module on their first call.
The extras are built in the process that ran the test (an xdist worker too: they travel on
the report as plain dicts); the columns, the overview and the banner read ``report.shopflow_perf``,
the JSON summaries the plugin puts on every call report, so they work on the xdist controller.
Charts are inline SVG in ``extras.html``: they render the same in normal and
``--self-contained-html`` reports and need no asset files, no JavaScript and no network.
Every string from a run is HTML-escaped. The pieces: ``tables`` (the tables of a run),
``regression`` (banner and findings), ``overview`` (the run-level header), ``run_charts``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from html import escape
from typing import TYPE_CHECKING, Any

from pytest_shopflow_perf.reporting._format import regression_label
from pytest_shopflow_perf.reporting.html.markup import (
    GOOD_COLOR,
    INTERRUPTED_COLOR,
    STYLE,
    TIER_COLORS,
    badge,
    badge_text,
    num,
)
from pytest_shopflow_perf.reporting.html.regression import regression_section, verdict_of
from pytest_shopflow_perf.reporting.html.tables import (
    checks_table,
    error_judgement,
    error_limits,
    exceptions_block,
    failed_requests,
    recovery_table,
    shards_table,
    slo_table,
    summary_table,
)
from pytest_shopflow_perf.result.schema import FAILING_TIERS, error_percent, tier_rank

if TYPE_CHECKING:
    from pytest_shopflow_perf.reporting.html.run_charts import Chart
    from pytest_shopflow_perf.result.model import LoadResult

# The baseline a run was compared with: (file as shown, its usable run records), or None.
BaselineRuns = Callable[[str], "tuple[str, list[dict[str, Any]]] | None"]

COLUMNS = (  # (data-column-type, header label); the type is also the cell class "col-<type>"
    ("perfp95", "p95 (ms)"),
    ("perferrors", "error %"),
    ("perfrps", "req/s"),
    ("perfregression", "regression"),
)
INSTALL_HINT = "pip install 'pytest-shopflow-perf[html]'"
_CELL_COLORS = {"sfp-bad": "#c62828", "sfp-good": GOOD_COLOR, "sfp-warn": "#9a6700"}


def interrupted(run: Mapping[str, Any]) -> bool:
    """Stopped by Ctrl-C or SIGTERM (not aborted by a threshold): partial figures, nothing judged."""
    return bool(run.get("interrupted")) and (run.get("extra") or {}).get("stop_reason", "interrupted") == "interrupted"


def shown_run(runs: Sequence[Mapping[str, Any]]) -> Mapping[str, Any]:
    """The run a test's row stands for: the interrupted one, else the worst regression tier, the last among equals."""
    stopped = [run for run in runs if interrupted(run)]
    if stopped:
        return stopped[-1]
    best = runs[-1]
    for run in runs:
        if tier_rank(verdict_of(run).get("tier")) > tier_rank(verdict_of(best).get("tier")):
            best = run
    return best


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
    judged, tooltip = error_judgement(errors, requests, error_limits(run).get("total"), "total")
    error_style = (
        f' style="color:{_CELL_COLORS[judged]};font-weight:{"bold" if judged == "sfp-bad" else "normal"}"'
        if judged
        else ""
    )
    error_title = f' title="{escape(tooltip)}"' if tooltip else ""
    if interrupted(run):
        tier_color, tier_weight = INTERRUPTED_COLOR, "bold"
    else:
        tier_color = TIER_COLORS.get(tier or "", "#666")
        tier_weight = "bold" if tier in FAILING_TIERS else "normal"
    return [
        f'<td class="col-perfp95"{title}>{_sort_key(p95)}{num(p95)}</td>',
        f'<td class="col-perferrors"{error_style}{error_title}>{_sort_key(error_pct)}{error_pct:.2f}</td>',
        f'<td class="col-perfrps">{_sort_key(rps)}{rps:,.1f}</td>',
        f'<td class="col-perfregression" style="color:{tier_color};font-weight:{tier_weight}">'
        f"<!--{tier_rank(tier) + 2}-->{escape(label)}</td>",
    ]


def _tier_of(run: Mapping[str, Any]) -> tuple[str | None, str]:
    """(tier or None, what the regression cell says); an interrupted run was never compared."""
    tier = verdict_of(run).get("tier")
    if not tier and interrupted(run):
        return None, "interrupted"
    if not tier and str((run.get("extra") or {}).get("stop_reason") or "").startswith("aborted"):
        return None, "aborted"
    label = regression_label(tier, (run.get("extra") or {}).get("regression_note"))
    return (str(tier) if tier else None), label


# ---- extras -----------------------------------------------------------------------------------------


def run_extras(results: Sequence[LoadResult], baseline_runs: BaselineRuns | None = None) -> list[dict[str, Any]]:
    """pytest-html extras of a test's load runs: one HTML block per run, the style sheet first.

    ``baseline_runs(test)`` gives the baseline a compared run was judged against, for the overlays.
    """
    from pytest_html import extras

    blocks = []
    for index, result in enumerate(results):
        charts: Sequence[Chart | str]
        try:
            charts = _charts(result, baseline_runs)
        except ImportError:
            charts = [f'<p class="sfp-meta">Charts need matplotlib: <code>{escape(INSTALL_HINT)}</code></p>']
        except Exception as exc:  # a chart must never cost the report of the test
            charts = [f'<p class="sfp-bad">Charts could not be drawn: {escape(f"{type(exc).__name__}: {exc}")}</p>']
        heading = f"Load run {index + 1} of {len(results)}" if len(results) > 1 else "Load run"
        run = {
            **result.summary_dict(),
            "checks": {name: {"passes": c.passes, "fails": c.fails} for name, c in result.checks.items()},
        }
        blocks.append(render_run(run, charts, heading=heading))
    return [extras.html(STYLE + blocks[0]), *(extras.html(block) for block in blocks[1:])]


def _charts(result: LoadResult, baseline_runs: BaselineRuns | None) -> list[Chart]:
    from pytest_shopflow_perf.reporting.html.run_charts import result_charts

    baseline = None
    if baseline_runs is not None and result.extra.get("regression"):
        found = baseline_runs(result.test)
        if found is not None:
            from pytest_shopflow_perf.reporting.html.baseline_view import baseline_view
            from pytest_shopflow_perf.reporting.html.charts import percentile_levels

            levels = percentile_levels(max(1, int(result.histogram.get_total_count())))
            baseline = baseline_view(found[0], found[1], levels)
    return result_charts(result, baseline)


def render_run(run: Mapping[str, Any], charts: Sequence[Chart | str] = (), *, heading: str = "Load run") -> str:
    """One run as an HTML block: facts, tables, charts, what failed, SLO checks, regression verdict."""
    extra = run.get("extra") or {}
    stopped = interrupted(run)
    name = escape(str(run.get("name") or run.get("test") or ""))
    mark = badge_text("INTERRUPTED", INTERRUPTED_COLOR, "sfp-interrupted-badge") if stopped else ""
    parts = [
        f'<div class="sfp{" sfp-interrupted" if stopped else ""}" data-test="{escape(str(run.get("test", "")))}">',
        f"<h3>{mark}{escape(heading)}: {name}</h3>",
        _facts(run),
        "<h4>Requests by endpoint</h4>",
        summary_table(run),
    ]
    if charts:
        parts.append('<div class="sfp-charts">' + "".join(_chart_block(chart) for chart in charts) + "</div>")
    parts += [
        shards_table(run),
        failed_requests(run),
        checks_table(run.get("checks") or {}),
        exceptions_block(run),
        slo_table(run),
        recovery_table(run),
        regression_section(extra),
        "</div>",
    ]
    return "".join(part for part in parts if part)


def _chart_block(chart: Chart | str) -> str:
    if isinstance(chart, str):
        return f'<div class="sfp-chart">{chart}</div>'
    caption = f'<p class="sfp-meta sfp-caption">{escape(chart.caption)}</p>' if chart.caption else ""
    return f'<div class="sfp-chart" data-chart="{escape(chart.kind)}">{chart.svg}{caption}</div>'


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
            badge_text(f"SLO {failed} failed", "#c62828")
            if failed
            else badge_text(f"SLO {len(slo)}/{len(slo)} passed", GOOD_COLOR)
        )
    tier, label = _tier_of(run)
    if tier:
        badges.append(badge(tier, prefix="regression "))
    elif label not in ("-", "interrupted", "aborted"):
        badges.append(badge_text(f"regression: {label}", "#777"))
    html = f'<p class="sfp-meta">{"".join(badges)}{escape(" · ".join(facts))}</p>'
    return html + "".join(f'<p class="sfp-bad">{escape(warning)}</p>' for warning in _warnings(run))


def _warnings(run: Mapping[str, Any]) -> list[str]:
    """What makes the figures of a run less trustworthy than they look."""
    generator = run.get("generator") or {}
    extra = run.get("extra") or {}
    warnings = []
    if interrupted(run):
        planned = float((run.get("profile") or {}).get("duration") or 0.0)
        of = f" of {planned:g} s planned" if planned else ""
        warnings.append(
            f"Interrupted (Ctrl-C or SIGTERM) after {float(run.get('duration_s') or 0):.1f} s{of}: partial "
            "results; its thresholds and the regression check were not judged."
        )
    elif run.get("interrupted") and not str(extra.get("stop_reason") or "").startswith("aborted"):
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
