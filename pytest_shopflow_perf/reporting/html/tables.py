"""The tables of one run's block: endpoints, failed requests, checks, journey exceptions, SLOs, faults, shards.

Error-% cells are coloured by the test's own error-rate threshold (an SLO or ``assert_error_rate``
over the whole run), never by a fixed one: red when the figure breaks it, green within it, amber
for errors when the test set no threshold to judge them by.
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from html import escape
from typing import Any

from pytest_shopflow_perf.reporting._format import shard_rows
from pytest_shopflow_perf.reporting.html.markup import num, slo_value, table
from pytest_shopflow_perf.result.schema import error_percent, error_rate

_OPS: dict[str, Callable[[float, float], bool]] = {
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
    "==": operator.eq,
}
_RUN_LEVEL_METRICS = frozenset(("rps", "count"))  # of the run as a whole: no endpoint is "worst" at them


@dataclass(frozen=True)
class ErrorLimit:
    """An error-rate threshold of the test over the whole run (a fraction), as it was written."""

    op: str
    limit: float
    text: str
    endpoint: str  # "total" for the run

    def judge(self, rate: float) -> bool:
        compare = _OPS.get(self.op) or _OPS["<="]
        return bool(compare(rate, self.limit))


def error_limits(run: Mapping[str, Any]) -> dict[str, ErrorLimit]:
    """The strictest whole-run error-rate threshold per endpoint (``total``: the run's) the test judged."""
    found: dict[str, ErrorLimit] = {}
    for outcome in (run.get("extra") or {}).get("slo") or []:
        if outcome.get("metric") != "error_rate" or (outcome.get("scope") or "whole run") != "whole run":
            continue
        limit = outcome.get("limit")
        if not isinstance(limit, (int, float)):
            continue
        endpoint = str(outcome.get("endpoint") or "total")
        candidate = ErrorLimit(str(outcome.get("op") or "<="), float(limit), str(outcome.get("threshold")), endpoint)
        if endpoint not in found or candidate.limit < found[endpoint].limit:
            found[endpoint] = candidate
    return found


def error_judgement(errors: int, requests: int, limit: ErrorLimit | None, scope: str = "") -> tuple[str, str]:
    """(css class, tooltip) of an error-% cell: judged by ``limit`` when the test has one."""
    rate = error_rate(errors, requests)
    if limit is not None:
        where = "" if limit.endpoint == scope or not scope else " (the run's)"
        if limit.judge(rate):
            return "sfp-good", f"within the test's threshold {limit.text}{where}"
        return "sfp-bad", f"breaks the test's threshold {limit.text}{where}"
    if errors:
        return "sfp-warn", "errors, and no error-rate threshold on this test to judge them by"
    return "", ""


# ---- endpoints ---------------------------------------------------------------------------------------


def summary_table(run: Mapping[str, Any]) -> str:
    """Endpoints (busiest first), the rows of failed checks and journey exceptions, then the total."""
    header = ("endpoint", "requests", "req/s", "p50 ms", "p95 ms", "p99 ms", "max ms", "errors", "error %")
    limits = error_limits(run)
    run_limit = limits.get("total")
    endpoints: Mapping[str, Mapping[str, Any]] = run.get("endpoints") or {}
    rows = [
        _stats_row(name, stats, "", limits.get(name) or run_limit)
        for name, stats in sorted(endpoints.items(), key=lambda item: -int(item[1].get("requests", 0)))
    ]
    events: Mapping[str, Mapping[str, Any]] = run.get("events") or {}
    for name, row in sorted(events.items(), key=lambda item: (-int(item[1].get("errors", 0)), item[0])):
        rows.append(
            f'<tr class="sfp-event" title="errors with no request of their own"><td class="sfp-l">{escape(name)}</td>'
            + "<td>-</td>" * 6
            + f"<td>{int(row.get('errors', 0)):,}</td><td>-</td></tr>"
        )
    rows.append(_stats_row("total", run.get("total") or {}, "sfp-total", run_limit))
    return table(header, "".join(rows), "sfp-endpoints")


def _stats_row(name: str, stats: Mapping[str, Any], css: str, limit: ErrorLimit | None) -> str:
    requests = int(stats.get("requests", 0))
    errors = int(stats.get("errors", 0))
    judged, tooltip = error_judgement(errors, requests, limit, name)
    count_css = f' class="{judged}"' if judged in ("sfp-bad", "sfp-warn") else ""
    title = f' title="{escape(tooltip)}"' if tooltip else ""
    cells = [
        f'<td class="sfp-l">{escape(name)}</td>',
        f"<td>{requests:,}</td>",
        f"<td>{float(stats.get('rps', 0)):,.1f}</td>",
        *(f"<td>{num(float(stats.get(key, 0)))}</td>" for key in ("p50_ms", "p95_ms", "p99_ms", "max_ms")),
        f"<td{count_css}>{errors:,}</td>",
        f'<td class="sfp-errpct{" " + judged if judged else ""}"{title}>{error_percent(errors, requests):.2f}</td>',
    ]
    return (f'<tr class="{css}">' if css else "<tr>") + "".join(cells) + "</tr>"


# ---- what went wrong ---------------------------------------------------------------------------------


def failed_requests(run: Mapping[str, Any]) -> str:
    """HTTP and transport errors by endpoint and kind, most frequent first."""
    endpoints: Mapping[str, Mapping[str, Any]] = run.get("endpoints") or {}
    rows = []
    for name, stats in endpoints.items():
        requests = int(stats.get("requests", 0))
        for kind, count in (stats.get("errors_by_kind") or {}).items():
            share = f"{100.0 * count / requests:.2f}" if requests else "-"
            rows.append((int(count), name, str(kind), share))
    if not rows:
        return ""
    body = "".join(
        f'<tr><td class="sfp-l">{escape(name)}</td><td class="sfp-l">{escape(kind)}</td>'
        f"<td>{count:,}</td><td>{share}</td></tr>"
        for count, name, kind, share in sorted(rows, key=lambda row: (-row[0], row[1], row[2]))
    )
    return "<h4>Failed requests</h4>" + table(("endpoint", "kind", "count", "% of its requests"), body, "sfp-errors")


def checks_table(checks: Mapping[str, Mapping[str, Any]]) -> str:
    """Every check of the journeys: passes and fails per name, failing ones first."""
    if not checks:
        return ""
    rows = sorted(checks.items(), key=lambda item: (-int(item[1].get("fails", 0)), item[0]))
    passes = sum(int(c.get("passes", 0)) for _, c in rows)
    fails = sum(int(c.get("fails", 0)) for _, c in rows)
    body = ""
    for name, count in rows:
        ok, bad = int(count.get("passes", 0)), int(count.get("fails", 0))
        css, bad_css = (' class="sfp-fail"', ' class="sfp-bad"') if bad else ("", "")
        share = f"{100.0 * bad / (ok + bad):.2f}" if ok + bad else "-"
        body += (
            f'<tr{css}><td class="sfp-l">{escape(name)}</td><td>{ok:,}</td>'
            f"<td{bad_css}>{bad:,}</td><td>{share}</td></tr>"
        )
    names = f"{len(rows)} check{'s' if len(rows) != 1 else ''}"
    head = f"<h4>Checks: {passes:,} passed, {fails:,} failed ({names})</h4>"
    return head + table(("check", "passes", "fails", "% failed"), body, "sfp-checks")


def exceptions_block(run: Mapping[str, Any]) -> str:
    """Exceptions the journeys raised, by kind, each with its first traceback (the first one open)."""
    samples: Sequence[Mapping[str, Any]] = (run.get("extra") or {}).get("exceptions") or []
    if not samples:
        return ""
    ordered = sorted(samples, key=lambda s: -int(s.get("count", 1)))
    total = sum(int(s.get("count", 1)) for s in ordered)
    body = "".join(
        f'<tr><td class="sfp-l">{escape(str(s.get("kind", "exception")))}</td>'
        f'<td class="sfp-l">{escape(str(s.get("where", "?")))}</td><td>{int(s.get("count", 1)):,}</td></tr>'
        for s in ordered
    )
    html = f"<h4>Journey exceptions: {total:,} ({len(ordered)} kind{'s' if len(ordered) != 1 else ''})</h4>"
    html += table(("kind", "where", "count"), body, "sfp-exceptions")
    for index, sample in enumerate(ordered):
        html += (
            f'<details class="sfp-traceback"{" open" if index == 0 else ""}><summary>First traceback of '
            f"{escape(str(sample.get('kind', 'exception')))} in {escape(str(sample.get('where', '?')))}</summary>"
            f"<pre>{escape(str(sample.get('traceback', '')))}</pre></details>"
        )
    return html


# ---- SLOs ----------------------------------------------------------------------------------------------


def slo_table(run: Mapping[str, Any]) -> str:
    outcomes: Sequence[Mapping[str, Any]] = (run.get("extra") or {}).get("slo") or []
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
        worst = worst_row(outcome, run)
        if worst:
            endpoint += f" ({worst})"
        status = (
            '<span class="sfp-good">&#10003; pass</span>' if passed else '<span class="sfp-bad">&#10007; FAIL</span>'
        )
        css = "" if passed else ' class="sfp-fail"'
        measured = str(outcome.get("note") or "") or slo_value(outcome.get("measured"), unit)
        rows.append(
            f'<tr{css}><td class="sfp-l">{status}</td>'
            f'<td class="sfp-l"><code>{escape(str(outcome.get("threshold", "")))}</code></td>'
            f'<td class="sfp-l">{escape(endpoint)}</td><td class="sfp-l">{escape(scope)}</td>'
            f"<td>{escape(measured)}</td>"
            f"<td>{escape(str(outcome.get('op', '')))} {escape(slo_value(outcome.get('limit'), unit))}</td></tr>"
        )
    title = f"SLO checks: {len(outcomes) - failed} passed, {failed} failed"
    header = ("", "threshold", "endpoint", "scope", "measured", "limit")
    return f"<h4>{title}</h4>" + table(header, "".join(rows), "sfp-slo")


def worst_row(outcome: Mapping[str, Any], run: Mapping[str, Any]) -> str:
    """``worst: GET /x`` for a run-wide threshold where one endpoint stands out; "" where it means nothing.

    Nothing to say for one endpoint, for a figure of the run as a whole (req/s, count), for a
    threshold on one endpoint or one span, or for errors no endpoint had (the most errors are then
    a check's or a journey's row, named as such).
    """
    if str(outcome.get("endpoint") or "total") != "total" or outcome.get("at") is not None:
        return ""
    metric = str(outcome.get("metric") or "")
    endpoints: Mapping[str, Mapping[str, Any]] = run.get("endpoints") or {}
    if metric in _RUN_LEVEL_METRICS:
        return ""
    if metric.startswith("error"):  # error_rate, error_rate[kinds], errors
        rows = {name: _errors_of(s, metric) for name, s in endpoints.items()}
        rows.update({name: _errors_of(e, metric) for name, e in (run.get("events") or {}).items()})
        erring = {name: errors for name, errors in rows.items() if errors}
        if len(rows) < 2 or not erring:
            return ""
        name = max(sorted(erring), key=lambda n: erring[n])
        return f"most errors: {name}"
    worst = outcome.get("worst_endpoint")
    return f"worst: {worst}" if worst and len(endpoints) > 1 else ""


def _errors_of(row: Mapping[str, Any], metric: str) -> int:
    """A row's errors, or for ``error_rate[HTTP 5, check]`` those of the kinds named (matched by prefix)."""
    if not metric.endswith("]") or "[" not in metric:
        return int(row.get("errors", 0))
    kinds = [kind.strip() for kind in metric[metric.index("[") + 1 : -1].split(",") if kind.strip()]
    by_kind: Mapping[str, int] = row.get("errors_by_kind") or {}
    return sum(int(n) for kind, n in by_kind.items() if any(kind.startswith(wanted) for wanted in kinds))


# ---- faults and shards ------------------------------------------------------------------------------


def recovery_table(run: Mapping[str, Any]) -> str:
    entries: Sequence[Mapping[str, Any]] = (run.get("extra") or {}).get("recovery") or []
    if not entries:
        return ""
    rows = []
    for entry in entries:
        during = entry.get("during") or {}
        recovered = entry.get("recovery_s")
        rows.append(
            f'<tr><td class="sfp-l">{escape(str(entry.get("name", "")))}</td>'
            f"<td>{float(entry.get('start_s') or 0):g}-{float(entry.get('end_s') or 0):g} s</td>"
            f"<td>{num(float(during.get('p95_ms', 0)))} ms</td>"
            f"<td>{float(during.get('error_rate', 0)) * 100:.2f} %</td>"
            + (
                '<td class="sfp-bad">did not recover</td>'
                if recovered is None
                else f"<td>{float(recovered):.1f} s after it</td>"
            )
            + "</tr>"
        )
    header = ("fault", "window", "p95 during", "errors during", "recovery")
    return "<h4>Faults</h4>" + table(header, "".join(rows), "sfp-faults")


def shards_table(run: Mapping[str, Any]) -> str:
    """The processes (or cluster workers) that generated the load, merged in the figures above."""
    shards: Sequence[Mapping[str, Any]] = run.get("shards") or []
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
    return f"<h4>Load generation: {len(shards)} shards</h4>" + table(header, body, "sfp-shards")
