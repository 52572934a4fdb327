"""Recommendations for summary.md, from the figures of this run only, ranked by impact and effort.

- **Said once.** A finding that shows up in several scenarios is one recommendation that lists
  them; the total and an endpoint never say the same thing twice: a regression of the total
  next to the endpoints that regressed, an error-rate SLO next to the errors that broke it, a
  latency SLO next to the tail of its worst endpoint (the endpoint's recommendation carries it).
- **Enough requests for the percentile** (:mod:`.bottlenecks`): a latency tail (p99 against
  p50) is only judged on an endpoint with the 100 requests a p99 needs.
- **Owner and effort from the data** (:mod:`.advice`): the error kinds and how many endpoints
  share them, whether a check or journey always or only sometimes fails, connection set-up and
  pool waits in a tail, the generator's figures. Each recommendation names the figures it
  cites (``cites``) and the scenarios it applies to (``scenarios``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from pytest_shopflow_perf.reporting._format import slo_unit, slo_value
from pytest_shopflow_perf.reporting.advice import (
    TEST_OWNER,
    error_advice,
    event_advice,
    kind_class,
    tail_advice,
)
from pytest_shopflow_perf.reporting.bottlenecks import min_requests
from pytest_shopflow_perf.reporting.capacity import findings as capacity_findings
from pytest_shopflow_perf.reporting.resources import findings as resource_findings
from pytest_shopflow_perf.result.schema import tier_rank

__all__ = ["recommendations"]

_IMPACT = {"high": 3, "medium": 2, "low": 1}
_EFFORT = {"low": 1, "medium": 2, "high": 3}
TAIL_RATIO = 4.0
TAIL_MIN_P99_MS = 50.0
MIN_ERRORS = 5  # fewer errors than this are noise for a recommendation (they still show in the tables)
MIN_ERROR_RATE = 0.01


def _pct(value: float) -> str:
    return f"{value * 100:.2f} %"


def _ms(value: float) -> str:
    return f"{value:,.0f} ms" if value >= 100 else f"{value:.1f} ms"


# ---- drafts: one per finding, merged across scenarios -----------------------------------------


@dataclass
class _Draft:
    """A recommendation being built: the same key in another scenario adds its figures and scenario."""

    title: str
    subject: str  # "GET /api/search fails": what every scenario's figures complete
    advice: str
    impact: str
    effort: str
    owner: str
    cites: list[str]
    fragments: list[str] = field(default_factory=list)  # the figures of each scenario, "... in <scenario>"
    scenarios: list[str] = field(default_factory=list)
    breaks: list[str] = field(default_factory=list)  # SLOs folded into this one ("`error_rate<1%` in peak")
    echoes: list[str] = field(default_factory=list)  # checks that failed exactly as often, folded into this one
    about: tuple[str, ...] = ()  # the endpoints or rows it is about (not shown): where an SLO folds in
    weight: float = 0.0  # its errors, to pick the one an error-rate SLO folds into

    def merge(self, other: _Draft) -> None:
        for scenario in other.scenarios:
            if scenario not in self.scenarios:
                self.scenarios.append(scenario)
        self.fragments += other.fragments
        self.breaks += [b for b in other.breaks if b not in self.breaks]
        self.echoes += other.echoes
        self.cites += [c for c in other.cites if c not in self.cites]
        if _IMPACT[other.impact] > _IMPACT[self.impact]:
            self.impact = other.impact
        if _EFFORT[other.effort] > _EFFORT[self.effort]:
            self.effort = other.effort
        owners = self.owner.split(", ")
        for owner in other.owner.split(", "):
            if owner not in owners:
                owners.append(owner)
        self.owner = ", ".join(owners)

    def render(self) -> dict[str, Any]:
        figures = ", ".join(self.fragments)
        breaks = f"; it breaks {', '.join(self.breaks)}" if self.breaks else ""
        echoes = (
            f"; {', '.join(self.echoes)} failed as often: the same failures, seen by the check" if self.echoes else ""
        )
        return {
            "title": self.title,
            "detail": f"{self.subject} {figures}{breaks}{echoes}: {self.advice}.",
            "impact": self.impact,
            "effort": self.effort,
            "owner": self.owner,
            "scenarios": list(self.scenarios),
            "cites": list(self.cites),
            "score": round(_IMPACT[self.impact] / _EFFORT[self.effort], 2),
        }


def _draft(title: str, subject: str, fragment: str, scenario: str, **values: Any) -> _Draft:
    return _Draft(title=title, subject=subject, fragments=[f"{fragment} in {scenario}"], scenarios=[scenario], **values)


# ---- errors of requests -----------------------------------------------------------------


def _errors_of_requests(run: Mapping[str, Any]) -> list[_Draft]:
    """Failing endpoints, grouped by their dominant kind: one endpoint alone, or several sharing a cause."""
    scenario = run["name"]
    failing: dict[str, list[tuple[str, Mapping[str, Any], str]]] = {}
    for name, stats in run["endpoints"].items():
        if stats.get("errors", 0) >= MIN_ERRORS and stats.get("error_rate", 0) > MIN_ERROR_RATE:
            kinds = stats.get("errors_by_kind") or {"error": stats["errors"]}
            kind = max(sorted(kinds), key=lambda k: kinds[k])
            failing.setdefault(kind_class(kind), []).append((name, stats, kind))
    for members in failing.values():
        members.sort(key=lambda member: member[0])
    drafts = []
    for group, members in sorted(failing.items()):
        names = [name for name, _, _ in members]
        advice, effort, owner = error_advice(members[0][2], len(members))
        figures = ", ".join(
            f"{stats['error_rate'] * 100:.2f} % of {stats['requests']:,} requests"
            + (f" on {name}" if names[1:] else "")
            for name, stats, _ in members
        )
        kinds = ", ".join(sorted({kind for _, _, kind in members}))
        subject = f"{names[0]} fails" if len(members) == 1 else f"{len(members)} endpoints fail with {group}:"
        impact = "high" if any(stats["error_rate"] >= 0.05 for _, stats, _ in members) else "medium"
        drafts.append(
            _draft(
                f"Fix the errors of {names[0]}"
                if len(members) == 1
                else f"Fix the {group} errors of {', '.join(names)}",
                subject,
                f"{figures} (mostly {kinds})",
                scenario,
                advice=advice,
                impact=impact,
                effort=effort,
                owner=owner,
                cites=["errors by kind", "error rate", "requests per endpoint"],
                about=tuple(names),
                weight=float(sum(stats["errors"] for _, stats, _ in members)),
            )
        )
    return drafts


# ---- checks, journeys and hooks -----------------------------------------------------------


def _last_line(traceback: str) -> str:
    lines = [line for line in traceback.strip().splitlines() if line.strip()]
    return lines[-1].strip() if lines else ""


def _event_drafts(run: Mapping[str, Any]) -> list[_Draft]:
    """Failed checks, and journeys and hooks that raised, from their own rows."""
    scenario = run["name"]
    drafts = []
    samples = {sample.get("row"): sample for sample in run.get("exceptions") or [] if sample.get("row")}
    for event in run.get("event_rows") or []:
        errors, runs, rate, group, name = (event[k] for k in ("errors", "runs", "error_rate", "group", "name"))
        if errors < MIN_ERRORS:
            continue
        unit = {"check": "runs", "journey": "iterations"}.get(group, "calls")
        share = f"{errors:,} of {runs:,} {unit} ({_pct(rate)})" if runs and rate is not None else f"{errors:,} times"
        advice, effort, owner = event_advice(group, name, rate)
        if group == "check":
            subject, cites = f"{name} fails", ["check passes and fails"]
        else:
            kinds = event.get("errors_by_kind") or {}
            kind = max(sorted(kinds), key=lambda k: kinds[k]) if kinds else "an error"
            where = _last_line(str((samples.get(name) or {}).get("traceback", "")))
            subject = f"{name} raises {kind}" + (f" (`{where}`)" if where else "") + " in"
            cites = [
                "exceptions by kind",
                f"{unit} per {'journey' if group == 'journey' else 'hook'}",
                "first traceback",
            ]
        drafts.append(
            _draft(
                f"Fix {name}",
                subject,
                share,
                scenario,
                advice=advice,
                impact="high" if rate is None or rate >= 0.05 else "medium",
                effort=effort,
                owner=owner,
                cites=cites,
                about=(name,),
                weight=float(errors),
            )
        )
    return drafts


# ---- latency -------------------------------------------------------------------------------


def _tail_drafts(run: Mapping[str, Any]) -> dict[str, _Draft]:
    """Endpoints whose p99 is far above their p50, with at least ``min_requests(99)`` requests."""
    scenario = run["name"]
    drafts: dict[str, _Draft] = {}
    for name, stats in run["endpoints"].items():
        requests = stats.get("requests", 0)
        p50, p99 = stats.get("p50_ms", 0.0), stats.get("p99_ms", 0.0)
        if requests < min_requests(99) or p99 < TAIL_MIN_P99_MS or p50 <= 0 or p99 / p50 < TAIL_RATIO:
            continue
        connect, wait = stats.get("connect_ms_p95", 0.0), stats.get("wait_ms_p95", 0.0)
        advice, effort, owner = tail_advice(p99 - p50, connect, wait)
        drafts[name] = _draft(
            f"Cut the tail latency of {name}",
            f"{name} p99 is",
            f"{p99 / p50:.0f}x its p50 ({_ms(p99)} vs {_ms(p50)}, {requests:,} requests)",
            scenario,
            advice=advice,
            impact="high" if p99 >= 1000 else "medium",
            effort=effort,
            owner=owner,
            cites=["p50", "p99", "requests", "connect and pool-wait time"],
        )
    return drafts


def _show_slo(outcome: Mapping[str, Any]) -> Callable[[float], str]:
    """Measured and limit in the threshold's own unit (ms, s, %, req/s), as every report shows an SLO."""
    unit = slo_unit(outcome.get("display_unit"), outcome.get("unit"))
    return lambda value: slo_value(value, unit)


def _slo_drafts(
    run: Mapping[str, Any], errors: list[_Draft], tails: Mapping[str, _Draft], saturated: _Draft | None
) -> list[_Draft]:
    """Failed SLOs; folded into the recommendation that already says it (errors, a tail, the generator)."""
    scenario = run["name"]
    drafts = []
    for outcome in run["slo"]["failed"]:
        endpoint, metric = outcome["endpoint"], outcome["metric"]
        folded = f"`{outcome['threshold']}` in {scenario}"
        worst = outcome.get("worst_endpoint")
        if metric == "error_rate":
            # the errors of the total are those of its endpoints, checks and journeys
            candidates = [d for d in errors if endpoint == "total" or endpoint in d.about]
            if candidates:
                max(candidates, key=lambda d: d.weight).breaks.append(folded)
                continue
        elif metric == "rps":
            if saturated is not None:
                saturated.breaks.append(folded)
                continue
        elif (endpoint if endpoint != "total" else worst or "") in tails:
            tails[endpoint if endpoint != "total" else worst or ""].breaks.append(folded)
            continue
        shown = _show_slo(outcome)
        drafts.append(
            _draft(
                f"Bring {endpoint} {metric} within its SLO",
                f"{metric} of {endpoint} was",
                f"{shown(outcome['measured'])} (threshold {outcome['op']} {shown(outcome['limit'])}, "
                f"{outcome.get('scope', 'whole run')}" + (f", worst endpoint {worst})" if worst else ")"),
                scenario,
                advice="the service misses its target at this load: start with "
                + (f"{worst}, the worst endpoint" if worst else "the endpoint's slowest requests"),
                impact="high",
                effort="medium",
                owner="Dev",
                cites=["the SLO's measured value and threshold"] + (["worst endpoint"] if worst else []),
            )
        )
    return drafts


# ---- regressions, generator, shards, stress ------------------------------------------------


def _regression_drafts(run: Mapping[str, Any]) -> list[_Draft]:
    """The worst major-or-worse finding of each endpoint; the total only when no endpoint explains it."""
    scenario = run["name"]
    regression = run["regression"]
    worst: dict[str, Mapping[str, Any]] = {}
    for finding in regression["findings"]:  # worst first
        if tier_rank(finding["tier"]) >= tier_rank("major"):
            worst.setdefault(finding["endpoint"], finding)
    if len(worst) > 1:
        worst.pop("total", None)
    drafts = []
    for endpoint, finding in list(worst.items())[:3]:
        metric, change, p_value = finding["metric"], finding.get("change"), finding.get("p_value") or 0.0
        verb = {"error_rate": "raised the error rate of", "rps": "cut the throughput of"}.get(metric, "slowed")
        fragment = (
            f"{change * 100:+.0f}% ({finding['tier']}, p = {p_value:.2g}) against "
            f"{regression.get('baseline_runs')} baseline run(s)"
            if change is not None
            else f"regressed ({finding['tier']})"
        )
        drafts.append(
            _draft(
                f"Find the change that {verb} {endpoint}",
                f"{endpoint} {metric}",
                fragment,
                scenario,
                advice="bisect the commits since the baseline was recorded",
                impact="high",
                effort="low",
                owner="Dev",
                cites=["regression findings (change, tier, p-value)", "baseline runs"],
            )
        )
    return drafts


def _generator_draft(run: Mapping[str, Any]) -> _Draft | None:
    generator = run["generator"] or {}
    if not generator.get("saturated"):
        return None
    workers = max(1, len(run.get("shards") or []))
    return _draft(
        "Give the load generator more room: add workers",
        "the generator saturated",
        f"({'; '.join(generator.get('reasons', []))}; CPU {generator.get('cpu_percent', 0):.0f} % of a core, "
        f"loop lag p99 {_ms(generator.get('loop_lag_p99_ms', 0.0))}) at {run['total'].get('rps', 0):,.0f} req/s "
        f"with {workers} worker(s)",
        run["name"],
        advice="its latencies describe itself, not the service; add workers (workers=N, --perf-workers), use "
        'client="fast", or generate load from other machines (--perf-cluster)',
        impact="medium",
        effort="low",
        owner=TEST_OWNER,
        cites=["generator CPU", "event-loop lag", "req/s", "workers"],
    )


def _shard_drafts(run: Mapping[str, Any]) -> list[_Draft]:
    return [
        _draft(
            "Find out why a load generator shard died",
            "shard",
            f"{shard['worker']} was {shard.get('note', 'lost')}",
            run["name"],
            advice="the load offered was not the profile's, so the run was not judged; look for memory exhaustion "
            "(dmesg, the OOM killer) or a crash in a journey, then run again",
            impact="high",
            effort="low",
            owner="DevOps",
            cites=["shards (lost, when, why)"],
        )
        for shard in run.get("shards") or []
        if shard.get("lost")
    ]


def _stress_drafts(run: Mapping[str, Any]) -> list[_Draft]:
    stress = run.get("stress") or {}
    scenario = run["name"]
    if stress.get("breaking_point"):
        point = stress["breaking_point"]
        return [
            _draft(
                f"Plan capacity around the breaking point of {scenario}",
                "the service breaks at",
                f"{point['users']} users ({point.get('rps', 0):,.0f} req/s, p95 {_ms(point.get('p95_ms', 0))}, "
                f"errors {_pct(point.get('error_rate', 0))})",
                scenario,
                advice="size production and alerts below it",
                impact="high",
                effort="medium",
                owner="Product",
                cites=["stress steps (users, req/s, p95, errors)"],
            )
        ]
    if stress.get("limit") == "generator":
        last = stress["steps"][-1]
        return [
            _draft(
                f"Find the real breaking point of {scenario}",
                "the stress test stopped at the generator's limit",
                f"({last['users']} users, {last['rps']:,.0f} req/s, p95 {_ms(last['p95_ms'])})",
                scenario,
                advice="the service did not break; add workers or generate load from other machines to go further",
                impact="medium",
                effort="medium",
                owner=TEST_OWNER,
                cites=["stress steps (users, req/s, p95)", "generator saturation"],
            )
        ]
    return []


def _fold_echoing_checks(scenario: str, requests: list[_Draft], events: list[_Draft]) -> list[_Draft]:
    """A check that failed exactly as often as one failing endpoint (``status == 200``) says the same thing."""
    kept = list(requests)
    for event in events:
        same = [d for d in requests if len(d.about) == 1 and d.weight == event.weight]
        if event.title.startswith("Fix check: ") and len(same) == 1:
            same[0].echoes.append(f"{event.about[0]} ({event.weight:,.0f} in {scenario})")
            continue
        kept.append(event)
    return kept


def recommendations(runs: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Every recommendation once (its scenarios listed), highest impact for the least work first."""
    merged: dict[str, _Draft] = {}
    for run in runs:
        errors = _fold_echoing_checks(run["name"], _errors_of_requests(run), _event_drafts(run))
        tails = _tail_drafts(run)
        saturated = _generator_draft(run)
        drafts = [
            *errors,
            *_slo_drafts(run, errors, tails, saturated),
            *tails.values(),
            *_regression_drafts(run),
            *([saturated] if saturated else []),
            *_shard_drafts(run),
            *_stress_drafts(run),
            *(_draft(scenario=run["name"], **finding) for finding in resource_findings(run)),
            *(_draft(scenario=run["name"], **finding) for finding in capacity_findings(run)),
        ]
        for draft in drafts:
            if draft.title in merged:
                merged[draft.title].merge(draft)
            else:
                merged[draft.title] = draft
    found = [draft.render() for draft in merged.values()]
    thin = [r["name"] for r in runs if r["regression"].get("baseline_runs") in (1, 2)]
    if thin:
        found.append(
            {
                "title": "Record more baseline runs",
                "detail": f"{len(thin)} scenario(s) compare against only 1-2 baseline runs ({', '.join(thin[:3])}): "
                "record 3 with --perf-save-baseline for a sharper regression gate.",
                "impact": "low",
                "effort": "low",
                "owner": TEST_OWNER,
                "scenarios": thin,
                "cites": ["baseline runs"],
                "score": round(_IMPACT["low"] / _EFFORT["low"], 2),
            }
        )
    found.sort(key=lambda r: (-r["score"], -_IMPACT[r["impact"]], r["title"]))
    return found
