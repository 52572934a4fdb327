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

from pytest_shopflow_perf.reporting._format import run_status, shard_rows, slo_cell
from pytest_shopflow_perf.reporting.files import SUMMARY_SCHEMA
from pytest_shopflow_perf.result.schema import FAILING_TIERS, tier_rank
from pytest_shopflow_perf.result.target import RunTarget

_IMPACT = {"high": 3, "medium": 2, "low": 1}
_EFFORT = {"low": 1, "medium": 2, "high": 3}
TAIL_RATIO = 4.0
TAIL_MIN_P99_MS = 50.0


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
        "recovery": extra.get("recovery"),
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


def _bottlenecks(runs: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    rows = [
        {"scenario": run["name"], "endpoint": name, **stats}
        for run in runs
        for name, stats in run["endpoints"].items()
        if stats.get("requests")
    ]
    slowest = sorted(rows, key=lambda r: -r["p95_ms"])[:5]
    hotspots = sorted((r for r in rows if r["errors"]), key=lambda r: (-r["error_rate"], -r["errors"]))[:5]
    return {"slowest": slowest, "error_hotspots": hotspots}


def _recommend(title: str, detail: str, impact: str, effort: str, owner: str) -> dict[str, Any]:
    return {
        "title": title,
        "detail": detail,
        "impact": impact,
        "effort": effort,
        "owner": owner,
        "score": round(_IMPACT[impact] / _EFFORT[effort], 2),
    }


_KIND_ADVICE = {
    "HTTP 5": ("the service answers with server errors: read its log for the failing requests", "medium", "Dev"),
    "HTTP 4": ("client errors: the journeys' test data or requests no longer match the API", "low", "Dev"),
    "timeout": ("requests time out: a slow dependency or an exhausted pool under load", "medium", "Dev"),
    "unfinished": ("requests never completed: the service hangs under this load", "medium", "Dev"),
    "connect": ("connections are refused: raise the accept backlog or the number of workers", "low", "DevOps"),
    "reset": ("connections are reset: a proxy or the server drops keep-alive connections", "low", "DevOps"),
    "check": ("responses fail the journeys' checks: wrong content under load", "medium", "Dev"),
    "exception": ("the journeys raise exceptions: the responses are not what the journey expects", "low", "Dev"),
}


def _recommendations(runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    for run in runs:
        scenario = run["name"]
        for name, stats in run["endpoints"].items():
            requests, errors = stats.get("requests", 0), stats.get("errors", 0)
            if errors >= 5 and stats.get("error_rate", 0) > 0.01:
                kinds = stats.get("errors_by_kind") or {}
                kind = max(kinds, key=lambda k: kinds[k]) if kinds else "error"
                advice, effort, owner = next(
                    (value for prefix, value in _KIND_ADVICE.items() if kind.startswith(prefix)),
                    ("see the error breakdown", "medium", "Dev"),
                )
                found.append(
                    _recommend(
                        f"Fix the errors of {name}",
                        f"{name} fails {_pct(stats['error_rate'])} of {requests:,} requests in {scenario}, mostly "
                        f"{kind}: {advice}.",
                        "high",
                        effort,
                        owner,
                    )
                )
            p50, p99 = stats.get("p50_ms", 0.0), stats.get("p99_ms", 0.0)
            if requests >= 50 and p99 >= TAIL_MIN_P99_MS and p50 > 0 and p99 / p50 >= TAIL_RATIO:
                writes = name.split(" ", 1)[0] in ("POST", "PUT", "PATCH", "DELETE")
                cause = "lock contention or the database (it writes)" if writes else "cache misses or slow queries"
                found.append(
                    _recommend(
                        f"Cut the tail latency of {name}",
                        f"{name} p99 is {p99 / p50:.0f}x its p50 ({_ms(p99)} vs {_ms(p50)}) in {scenario}: "
                        f"a few requests wait much longer than the rest; look at {cause}.",
                        "high" if p99 >= 1000 else "medium",
                        "medium",
                        "Dev",
                    )
                )
        for row, event in (run.get("events") or {}).items():
            kinds = event.get("errors_by_kind") or {}
            if int(event.get("errors", 0)) < 5 or not kinds:
                continue
            kind = max(kinds, key=lambda k: kinds[k])
            advice, effort, owner = next(
                (value for prefix, value in _KIND_ADVICE.items() if kind.startswith(prefix)),
                ("see the error breakdown", "medium", "Dev"),
            )
            found.append(
                _recommend(
                    f"Fix {row}",
                    f"{row}: {int(event['errors']):,} error(s) in {scenario}, mostly {kind}: {advice}.",
                    "high",
                    effort,
                    owner,
                )
            )
        for outcome in run["slo"]["failed"]:
            unit = outcome.get("unit")
            shown = (lambda v: _ms(v * 1000)) if unit == "s" else (_pct if unit == "%" else (lambda v: f"{v:,.1f}"))
            found.append(
                _recommend(
                    f"Bring {outcome['endpoint']} {outcome['metric']} within its SLO",
                    f"{outcome['metric']} of {outcome['endpoint']} was {shown(outcome['measured'])} in {scenario}, "
                    f"threshold {outcome['op']} {shown(outcome['limit'])} ({outcome.get('scope', 'whole run')}).",
                    "high",
                    "medium",
                    "Dev",
                )
            )
        regression = run["regression"]
        worst_per_endpoint: dict[str, dict[str, Any]] = {}
        for finding in regression["findings"]:  # worst first
            worst_per_endpoint.setdefault(finding["endpoint"], finding)
        for finding in list(worst_per_endpoint.values())[:3]:
            if tier_rank(finding["tier"]) < tier_rank("major"):
                continue
            change = finding.get("change")
            p_value = finding.get("p_value") or 0.0
            found.append(
                _recommend(
                    f"Find the change that slowed {finding['endpoint']} ({finding['tier']} regression)",
                    f"{finding['endpoint']} {finding['metric']} changed {change * 100:+.0f}% against "
                    f"{regression.get('baseline_runs')} baseline run(s) in {scenario} (p = {p_value:.2g}): "
                    "bisect the commits since the baseline was recorded."
                    if change is not None
                    else f"{finding['endpoint']} {finding['metric']} regressed in {scenario}.",
                    "high",
                    "low",
                    "Dev",
                )
            )
        generator = run["generator"] or {}
        if generator.get("saturated"):
            found.append(
                _recommend(
                    f"Give the load generator more room in {scenario}",
                    f"the generator saturated ({'; '.join(generator.get('reasons', []))}) at "
                    f"{run['total'].get('rps', 0):,.0f} req/s: its latencies describe itself, not ShopFlow; "
                    "use fewer users per process or generate load from another machine.",
                    "medium",
                    "low",
                    "DevOps",
                )
            )
        for shard in run.get("shards") or []:
            if shard.get("lost"):
                found.append(
                    _recommend(
                        f"Find out why load generator shard {shard['worker']} died in {scenario}",
                        f"shard {shard['worker']} was {shard.get('note', 'lost')}: the load offered was not the "
                        "profile's, so this run was not judged; look for memory exhaustion (dmesg, the OOM killer) "
                        "or a crash in a journey, then run again.",
                        "high",
                        "low",
                        "DevOps",
                    )
                )
        stress = run.get("stress") or {}
        if stress.get("breaking_point"):
            point = stress["breaking_point"]
            found.append(
                _recommend(
                    "Plan capacity around the breaking point",
                    f"ShopFlow breaks at {point['users']} users ({point.get('rps', 0):,.0f} req/s, p95 "
                    f"{_ms(point.get('p95_ms', 0))}, errors {_pct(point.get('error_rate', 0))}) in {scenario}.",
                    "high",
                    "medium",
                    "Product",
                )
            )
        elif stress.get("limit") == "generator":
            last = stress["steps"][-1]
            found.append(
                _recommend(
                    "Find ShopFlow's real breaking point",
                    f"the stress test stopped at the generator's limit ({last['users']} users, {last['rps']:,.0f} "
                    f"req/s, p95 {_ms(last['p95_ms'])}) without breaking ShopFlow: generate load from a separate "
                    "machine to go further.",
                    "medium",
                    "medium",
                    "DevOps",
                )
            )
    thin = [r["name"] for r in runs if r["regression"].get("baseline_runs") in (1, 2)]
    if thin:
        found.append(
            _recommend(
                "Record more baseline runs",
                f"{len(thin)} scenario(s) compare against only 1-2 baseline runs ({', '.join(thin[:3])}): record "
                "3 with --perf-save-baseline for a sharper regression gate.",
                "low",
                "low",
                "DevOps",
            )
        )
    found.sort(key=lambda r: (-r["score"], -_IMPACT[r["impact"]]))
    return found


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
        "bottlenecks": _bottlenecks(runs),
        "regressions": [
            {"scenario": run["name"], **finding} for run in runs for finding in run["regression"]["findings"]
        ],
        "capacity": [{"scenario": run["name"], **run["stress"]} for run in runs if run.get("stress")],
        "recovery": [{"scenario": run["name"], **entry} for run in runs for entry in run.get("recovery") or []],
        "recommendations": _recommendations(runs),
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
        lines += [
            f"- {name}: `{o['threshold']}` measured {o['measured']:.4g} ({o.get('scope')})" for name, o in breaches
        ]
    bottlenecks = summary["bottlenecks"]
    lines += ["", "## Bottlenecks", "", "Slowest endpoints (by p95):", ""]
    lines += _table(
        ("endpoint", "scenario", "requests", "p50", "p95", "p99", "p99 / p50"),
        (
            (
                r["endpoint"],
                r["scenario"],
                f"{r['requests']:,}",
                _ms(r["p50_ms"]),
                _ms(r["p95_ms"]),
                _ms(r["p99_ms"]),
                f"{r['p99_ms'] / r['p50_ms']:.1f}x" if r["p50_ms"] else "-",
            )
            for r in bottlenecks["slowest"]
        ),
    )
    lines += ["", "Error hotspots:", ""]
    if bottlenecks["error_hotspots"]:
        lines += _table(
            ("endpoint", "scenario", "errors", "error rate", "kinds"),
            (
                (
                    r["endpoint"],
                    r["scenario"],
                    f"{r['errors']:,}",
                    _pct(r["error_rate"]),
                    ", ".join(f"{k} ({n})" for k, n in (r.get("errors_by_kind") or {}).items()),
                )
                for r in bottlenecks["error_hotspots"]
            ),
        )
    else:
        lines.append("none: no endpoint returned an error.")
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
    sharded = [run for run in summary["tests"] if run.get("shards")]
    if sharded:
        lines += ["", "## Load generation (shards)", ""]
        header = ("scenario", *shard_rows([])[0])
        lines += _table(header, ((run["name"], *row) for run in sharded for row in shard_rows(run["shards"])[1:]))
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
        "Ranked by impact and effort (highest impact for the least work first).",
        "",
    ]
    recommendations = summary["recommendations"]
    if recommendations:
        lines += _table(
            ("#", "recommendation", "why (from this run)", "impact", "effort", "owner"),
            (
                (i, r["title"], r["detail"], r["impact"], r["effort"], r["owner"])
                for i, r in enumerate(recommendations, 1)
            ),
        )
    else:
        worst = max(runs, key=lambda r: r["total"]["p95_ms"], default=None)
        lines.append(
            "Nothing to act on: every scenario met its thresholds"
            + (f"; the slowest p95 was {_ms(worst['total']['p95_ms'])} ({worst['name']})." if worst else ".")
        )
    return "\n".join(lines) + "\n"
