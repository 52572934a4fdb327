"""The executive summary: what a product manager reads after a load-test session.

Built from the plain per-test data that travels on reports (so it works on an
xdist controller), as a JSON-safe dict (``summary.json``) rendered to Markdown
(``summary.md``). Recommendations are derived from the figures of this run,
each citing them; when nothing needs doing, it says so with the margin.
"""

from __future__ import annotations

import datetime
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from pytest_shopflow_perf.reporting._events import event_rows, exception_samples
from pytest_shopflow_perf.reporting._format import run_status, shard_rows, slo_cell, slo_outcome
from pytest_shopflow_perf.reporting.bottlenecks import RULE, bottlenecks, min_requests
from pytest_shopflow_perf.reporting.capacity import markdown_lines as capacity_lines
from pytest_shopflow_perf.reporting.drift import drift_lines
from pytest_shopflow_perf.reporting.files import SUMMARY_SCHEMA
from pytest_shopflow_perf.reporting.recommendations import recommendations
from pytest_shopflow_perf.reporting.resources import markdown_lines as resource_lines
from pytest_shopflow_perf.reporting.scenarios import scenario_facts
from pytest_shopflow_perf.result.schema import FAILING_TIERS, tier_rank
from pytest_shopflow_perf.result.target import RunTarget


def _label(run: Mapping[str, Any]) -> str:
    return str(run.get("name") or run.get("test") or "load run")


def _pct(value: float) -> str:
    return f"{value * 100:.2f} %"


def _ms(value: float) -> str:
    return f"{value:,.0f} ms" if value >= 100 else f"{value:.1f} ms"


def _run_entry(test: Mapping[str, Any], run: Mapping[str, Any]) -> dict[str, Any]:
    extra = run.get("extra") or {}
    slo = extra.get("slo") or []
    regression = extra.get("regression") or {}
    findings = [f for f in regression.get("findings", []) if f.get("tier") in FAILING_TIERS]
    findings.sort(key=lambda f: (-tier_rank(f["tier"]), -(f.get("change") or 0)))
    return {
        "test": run.get("test"),
        "name": _label(run),
        "outcome": test.get("outcome"),
        "reason": test.get("reason"),
        "model": run.get("model"),
        "duration_s": run.get("duration_s"),
        "interrupted": bool(run.get("interrupted")),
        "total": run.get("total"),
        "endpoints": run.get("endpoints", {}),
        "events": run.get("events", {}),
        "scenario": scenario_facts(run),
        "checks": run.get("checks") or {},
        "event_rows": [row.to_dict() for row in event_rows(run)],
        "exceptions": exception_samples(run),
        "generator": run.get("generator", {}),
        "shards": run.get("shards") or [],
        "slo": {
            "passed": sum(1 for o in slo if o.get("passed")),
            "failed": [o for o in slo if not o.get("passed")],
        },
        "regression": {
            "tier": regression.get("tier"),
            "baseline_runs": regression.get("baseline_runs"),
            "findings": findings,
            "note": extra.get("regression_note"),
            "fail_on": extra.get("regression_fail_on", "major"),
        },
        "stress": extra.get("stress"),
        "capacity_search": extra.get("capacity"),
        "recovery": extra.get("recovery"),
        "drift": extra.get("drift") or [],
        "resources": run.get("resources"),
    }


def _judgement(test: Mapping[str, Any], run: Mapping[str, Any]) -> dict[str, Any]:
    """The run's status (PASS only when judged and passed) and why, and its target."""
    status, why = run_status(run, test.get("outcome"), test.get("reason"))
    target = RunTarget.from_value(run["target"]).to_dict() if run.get("target") else None
    return {"status": status, "status_reason": why, "target": target}


def _names(runs: Sequence[Mapping[str, Any]]) -> str:
    return ", ".join(str(r["name"]) for r in runs[:5]) + (f" and {len(runs) - 5} more" if len(runs) > 5 else "")


def _verdict(runs: list[dict[str, Any]], tests: Sequence[Mapping[str, Any]]) -> tuple[str, str]:
    """FAIL (or ABORTED) > INTERRUPTED > INCONCLUSIVE > NOT JUDGED > PASS: the session is PASS only when a
    judged run passed and no run failed, was stopped or was inconclusive."""
    failed = [t for t in tests if t.get("outcome") in ("failed", "error")]
    by_status: dict[str, list[dict[str, Any]]] = {}
    for run in runs:
        by_status.setdefault(run["status"], []).append(run)
    interrupted = by_status.get("INTERRUPTED", [])
    stopped = f"; interrupted during {_names(interrupted)} (not judged)" if interrupted else ""
    if failed:
        reasons = "; ".join(f"{t['nodeid'].rsplit('::', 1)[-1]}: {t.get('reason') or 'failed'}" for t in failed[:5])
        return "FAIL", f"{len(failed)} of {len(tests)} load test(s) failed ({reasons}){stopped}"
    aborted = by_status.get("ABORTED", [])
    if aborted:  # the test caught the failure, but a threshold was breached beyond recovery
        return "FAIL", f"abort-on-fail stopped {_names(aborted)} ({aborted[0]['status_reason']}){stopped}"
    if interrupted:
        before = len(runs) - len(interrupted)
        return "INTERRUPTED", (
            f"{_names(interrupted)}: {interrupted[0]['status_reason']}; {before} other run(s) finished before "
            "it and none failed; the tests after it were not run"
        )
    inconclusive = by_status.get("INCONCLUSIVE", [])
    if inconclusive:
        why = "; ".join(f"{r['name']}: {r['status_reason']}" for r in inconclusive[:5])
        return "INCONCLUSIVE", f"no test failed, but {len(inconclusive)} run(s) could not be judged ({why})"
    judged = by_status.get("PASS", [])
    unjudged = [r for r in runs if r["status"] != "PASS"]
    if not judged:
        return "NOT JUDGED", (
            f"no test failed, but no run had a threshold or a baseline to judge it ({_names(unjudged)}): declare "
            "slo=, call an assert_* helper, or record a baseline with --perf-save-baseline"
        )
    if unjudged:
        return "PASS", (
            f"{len(judged)} run(s) met their thresholds; not counted as passed: {_names(unjudged)} "
            f"({unjudged[0]['status']}: {unjudged[0]['status_reason']})"
        )
    return "PASS", f"all {len(tests)} load test(s) met their thresholds"


def build_summary(tests: Sequence[Mapping[str, Any]], context: Mapping[str, Any]) -> dict[str, Any]:
    runs = [_run_entry(test, run) | _judgement(test, run) for test in tests for run in test.get("runs", [])]
    verdict, headline = _verdict(runs, tests)
    return {
        "schema": SUMMARY_SCHEMA,
        "generated_at": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "verdict": verdict,
        "headline": headline,
        "context": dict(context),
        "tests": runs,
        "bottlenecks": bottlenecks(runs),
        "regressions": [
            {"scenario": run["name"], **finding} for run in runs for finding in run["regression"]["findings"]
        ],
        "capacity": [{"scenario": run["name"], **run["stress"]} for run in runs if run.get("stress")],
        "recovery": [{"scenario": run["name"], **entry} for run in runs for entry in run.get("recovery") or []],
        "recommendations": recommendations(runs),
    }


# ---- Markdown ---------------------------------------------------------------------------


def _table(header: Iterable[str], rows: Iterable[Iterable[Any]]) -> list[str]:
    head = list(header)
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join("---" for _ in head) + "|"]
    lines += ["| " + " | ".join(str(cell).replace("|", "\\|") for cell in row) + " |" for row in rows]
    return lines


def _slo_cell(run: Mapping[str, Any]) -> str:
    inconclusive = run.get("status") == "INCONCLUSIVE"  # skipped as inconclusive, saturated, a lost shard
    return slo_cell(run["slo"]["passed"], len(run["slo"]["failed"]), inconclusive=inconclusive, emphasis=_bold)


def _status_cell(run: Mapping[str, Any]) -> str:
    """PASS, or the status in bold with why (FAIL's reasons are in the headline)."""
    status = run.get("status") or "-"
    if status in ("PASS", "FAIL", "-"):
        return status if status != "FAIL" else _bold(status)
    return f"{_bold(status)}: {run.get('status_reason', '')}"


def _bold(text: str) -> str:
    return f"**{text}**"


def _regression_cell(run: Mapping[str, Any]) -> str:
    tier = run["regression"].get("tier")
    if tier is None:
        return "no baseline" if run["regression"].get("note") else "-"
    return _bold(tier) if tier in FAILING_TIERS else str(tier)


def _scenario_lines(runs: Sequence[Mapping[str, Any]]) -> list[str]:
    """What load each scenario was under: model, users or rate, duration planned and run."""
    lines = ["", "## Scenarios", ""]
    lines += _table(
        ("scenario", "model", "load", "planned", "ran", "iterations", "peak users"),
        (
            (
                run["name"],
                facts["model"],
                facts["load"],
                facts["planned"],
                facts["ran"],
                f"{facts['iterations']:,}"
                + (f" ({facts['dropped_iterations']:,} dropped)" if facts["dropped_iterations"] else ""),
                f"{facts['peak_users']:,}",
            )
            for run in runs
            for facts in [run["scenario"]]
        ),
    )
    return lines


def _bottleneck_lines(found: Mapping[str, Any]) -> list[str]:
    """The slowest endpoints with enough requests for their p95, the rest named; then error hotspots."""
    lines = ["", "## Bottlenecks", "", f"Slowest endpoints (by p95). {RULE}", ""]
    if found["slowest"]:
        lines += _table(
            ("endpoint", "scenario", "requests", "p50", "p95", "p99", "p99 / p50"),
            (
                (
                    r["endpoint"],
                    r["scenario"],
                    f"{r['requests']:,}",
                    _ms(r["p50_ms"]),
                    _ms(r["p95_ms"]),
                    _ms(r["p99_ms"]) if r["requests"] >= min_requests(99) else "-",
                    f"{r['p99_ms'] / r['p50_ms']:.1f}x" if r["p50_ms"] and r["requests"] >= min_requests(99) else "-",
                )
                for r in found["slowest"]
            ),
        )
    else:
        lines.append(f"none: no endpoint served the {min_requests(95)} requests a p95 needs.")
    if found.get("not_ranked"):
        shown = ", ".join(f"{r['endpoint']} ({r['requests']:,}, {r['scenario']})" for r in found["not_ranked"][:8])
        more = len(found["not_ranked"]) - 8
        lines += [
            "",
            f"Not ranked (fewer than {min_requests(95)} requests): {shown}" + (f", {more} more." if more > 0 else "."),
        ]
    lines += ["", "Error hotspots (endpoints, and checks and journeys on rows of their own):", ""]
    if found["error_hotspots"]:
        lines += _table(
            ("endpoint / row", "scenario", "errors", "error rate", "kinds"),
            (
                (
                    r["endpoint"],
                    r["scenario"],
                    f"{r['errors']:,}",
                    "-" if r["error_rate"] is None else _pct(r["error_rate"]),
                    ", ".join(f"{k} ({n})" for k, n in (r.get("errors_by_kind") or {}).items() if k != r["endpoint"]),
                )
                for r in found["error_hotspots"]
            ),
        )
    else:
        lines.append("none: no endpoint returned an error, and no check or journey failed.")
    return lines


def _event_lines(runs: Sequence[Mapping[str, Any]]) -> list[str]:
    """Checks (passes, fails), journeys and hooks (runs, exceptions), and each exception's first traceback."""
    rows = [(run["name"], row) for run in runs for row in run.get("event_rows") or []]
    if not any(row["group"] == "check" or row["errors"] for _, row in rows):
        return []  # journeys that only ran: their iterations are in the scenarios table
    lines = ["", "## Checks and journeys", ""]
    lines.append(
        "Failed checks and journey exceptions count in the scenario's errors on rows of their own, never on the "
        "endpoint that answered: for a check, runs are its evaluations and ok its passes; for a journey or hook, "
        "runs are its iterations or calls and errors the exceptions it raised."
    )
    lines.append("")
    lines += _table(
        ("scenario", "check / journey", "runs", "ok", "errors", "error rate", "kinds"),
        (
            (
                scenario,
                row["name"],
                "-" if row["runs"] is None else f"{row['runs']:,}",
                "-" if row["runs"] is None else f"{max(0, row['runs'] - row['errors']):,}",
                f"{row['errors']:,}",
                "-" if row["error_rate"] is None else _pct(row["error_rate"]),
                ", ".join(f"{k} ({n:,})" for k, n in row["errors_by_kind"].items() if k != row["name"]),
            )
            for scenario, row in rows
        ),
    )
    samples = [(run["name"], sample) for run in runs for sample in run.get("exceptions") or []]
    if samples:
        lines += ["", "### Journey exceptions", ""]
        for scenario, sample in samples:
            lines += [
                f"**{sample['kind']}** in `{sample.get('where', '?')}` ({scenario}): "
                f"{int(sample.get('count', 0)):,} time(s); the first traceback:",
                "",
                "```text",
                *str(sample.get("traceback", "")).rstrip().splitlines(),
                "```",
                "",
            ]
        lines.pop()
    return lines


def render_markdown(summary: Mapping[str, Any]) -> str:
    context = summary.get("context", {})
    runs = summary["tests"]
    lines = [
        f"# {context.get('title') or 'Performance summary'}",
        "",
        f"**Verdict: {summary['verdict']}** - {summary['headline']}.",
        "",
        f"Run {summary['generated_at']} against {context.get('target', '-')}; commit "
        f"{context.get('commit') or '-'}; machine {context.get('machine', '-')}.",
        "",
        "## KPIs",
        "",
    ]
    lines += _table(
        ("scenario", "outcome", "requests", "req/s", "p50", "p95", "p99", "errors", "SLO", "regression"),
        (
            (
                run["name"],
                _status_cell(run),
                f"{run['total']['requests']:,}",
                f"{run['total']['rps']:,.1f}",
                _ms(run["total"]["p50_ms"]),
                _ms(run["total"]["p95_ms"]),
                _ms(run["total"]["p99_ms"]),
                _pct(run["total"]["error_rate"]),
                _slo_cell(run),
                _regression_cell(run),
            )
            for run in runs
        ),
    )
    breaches = [(run["name"], o) for run in runs if _slo_cell(run) != "inconclusive" for o in run["slo"]["failed"]]
    if breaches:
        lines += ["", "**SLO breaches**", ""]
        lines += [f"- {name}: {slo_outcome(o, code=lambda text: f'`{text}`')}" for name, o in breaches]
    lines += _scenario_lines(runs)
    lines += _bottleneck_lines(summary["bottlenecks"])
    lines += _event_lines(runs)
    lines += ["", "## Regressions", ""]
    if summary["regressions"]:
        lines += _table(
            ("scenario", "tier", "endpoint", "metric", "baseline", "current", "change", "95 % CI", "p"),
            (
                (
                    f["scenario"],
                    f"**{f['tier']}**",
                    f["endpoint"],
                    f["metric"],
                    f"{f['baseline']:.4g} {f.get('unit', '')}" if f.get("baseline") is not None else "-",
                    f"{f['current']:.4g} {f.get('unit', '')}" if f.get("current") is not None else "-",
                    f"{f['change'] * 100:+.1f} %" if f.get("change") is not None else "new",
                    f"{f['ci'][0] * 100:+.0f} % .. {f['ci'][1] * 100:+.0f} %"
                    if f.get("ci") and None not in f["ci"]
                    else "-",
                    f"{f['p_value']:.2g}" if f.get("p_value") is not None else "-",
                )
                for f in summary["regressions"]
            ),
        )
    else:
        compared = [run for run in runs if run["regression"].get("tier") is not None]
        lines.append(
            f"No significant regression in the {len(compared)} scenario(s) compared with their baselines."
            if compared
            else "No scenario had a baseline to compare with (record one with --perf-save-baseline)."
        )
    if summary["capacity"]:
        lines += ["", "## Capacity (stress)", ""]
        for entry in summary["capacity"]:
            steps = ", ".join(
                f"{s['users']} users: {s['rps']:,.0f} req/s, p95 {_ms(s['p95_ms'])}" for s in entry.get("steps", [])
            )
            point = entry.get("breaking_point")
            verdict = (
                f"breaking point at {point['users']} users" if point else f"no breaking point ({entry.get('limit')})"
            )
            lines.append(f"- {entry['scenario']}: {verdict}; steps: {steps}.")
    lines += capacity_lines(runs, _table)
    sharded = [run for run in summary["tests"] if run.get("shards")]
    if sharded:
        lines += ["", "## Load generation (shards)", ""]
        header = ("scenario", *shard_rows([])[0])
        lines += _table(header, ((run["name"], *row) for run in sharded for row in shard_rows(run["shards"])[1:]))
    lines += resource_lines(runs, _table)
    lines += drift_lines(runs, _table)
    if summary["recovery"]:
        lines += ["", "## Recovery", ""]
        lines += _table(
            ("scenario", "fault", "window", "p95 before", "p95 during", "errors during", "recovery"),
            (
                (
                    entry["scenario"],
                    entry.get("name", "fault"),
                    f"{entry['start_s']:g}-{entry['end_s']:g} s",
                    _ms((entry.get("baseline") or {}).get("p95_ms", 0.0)),
                    _ms((entry.get("during") or {}).get("p95_ms", 0.0)),
                    _pct((entry.get("during") or {}).get("error_rate", 0.0)),
                    "did not recover in the run"
                    if entry.get("recovery_s") is None
                    else f"{entry['recovery_s']:.1f} s after the fault",
                )
                for entry in summary["recovery"]
            ),
        )
    lines += [
        "",
        "## Recommendations",
        "",
        "Ranked by impact and effort (highest impact for the least work first). Each is listed once with the "
        "scenarios it applies to; its owner and effort follow from the figures it cites.",
        "",
    ]
    found = summary["recommendations"]
    if found:
        lines += _table(
            ("#", "recommendation", "why (from this run)", "scenarios", "cites", "impact", "effort", "owner"),
            (
                (
                    i,
                    r["title"],
                    r["detail"],
                    ", ".join(r.get("scenarios") or []) or "-",
                    ", ".join(r.get("cites") or []) or "-",
                    r["impact"],
                    r["effort"],
                    r["owner"],
                )
                for i, r in enumerate(found, 1)
            ),
        )
    else:
        worst = max(runs, key=lambda r: r["total"]["p95_ms"], default=None)
        slowest = f"; the slowest p95 was {_ms(worst['total']['p95_ms'])} ({worst['name']})." if worst else "."
        if summary["verdict"] == "PASS":
            lines.append("Nothing to act on: every judged scenario met its thresholds" + slowest)
        else:  # an interrupted or unjudged session did not meet anything: say what the figures do not show
            lines.append(
                f"No recommendation follows from these figures, but the verdict is {summary['verdict']} "
                f"(see above): nothing here says the thresholds were met" + slowest
            )
    return "\n".join(lines) + "\n"
