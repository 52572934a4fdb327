"""The end-of-session table: one block per load run, one row per endpoint."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, Protocol

from pytest_shopflow_perf.reporting._events import event_rows, exception_samples
from pytest_shopflow_perf.reporting._format import (
    format_table,
    regression_label,
    run_status,
    shard_rows,
    slo_cell,
    slo_outcome,
)
from pytest_shopflow_perf.reporting.capacity import terminal_line as capacity_line
from pytest_shopflow_perf.reporting.resources import terminal_line
from pytest_shopflow_perf.result.schema import error_percent
from pytest_shopflow_perf.result.target import RunTarget

COLUMNS = ("endpoint", "requests", "req/s", "p50 ms", "p95 ms", "p99 ms", "max ms", "errors %")
EVENT_COLUMNS = ("check / journey", "runs", "ok", "errors", "errors %", "error kinds")


class Writer(Protocol):
    def write_line(self, line: str, **markup: bool) -> None: ...


def _row(name: str, stats: Mapping[str, Any]) -> tuple[str, ...]:
    requests = int(stats["requests"])
    errors = int(stats["errors"])
    error_pct = error_percent(errors, requests)
    return (
        name,
        f"{requests:,}",
        f"{stats['rps']:.1f}",
        f"{stats['p50_ms']:.1f}",
        f"{stats['p95_ms']:.1f}",
        f"{stats['p99_ms']:.1f}",
        f"{stats['max_ms']:.1f}",
        f"{error_pct:.2f}",
    )


def _heading(summary: Mapping[str, Any]) -> str:
    profile = summary.get("profile") or {}
    label = summary.get("name") or summary.get("test") or "load run"
    parts = [f"{summary.get('model', 'closed')} model", f"{summary.get('duration_s', 0):.1f} s"]
    generator = summary.get("generator") or {}
    if generator.get("peak_users"):
        parts.append(f"{generator['peak_users']} users peak")
    if profile.get("rate"):
        parts.append(f"{profile['rate']:g}/s arrivals")
    if summary.get("shards"):
        parts.append(f"{len(summary['shards'])} shards")
    if summary.get("interrupted"):
        parts.append("INTERRUPTED: partial results")
    return f"{label} ({', '.join(parts)})"


def _slo_cell(summary: Mapping[str, Any]) -> str:
    outcomes = (summary.get("extra") or {}).get("slo") or []
    failed = sum(1 for o in outcomes if not o.get("passed"))
    status, _ = run_status(summary)
    if status == "INTERRUPTED":
        return "INTERRUPTED"  # what was judged before the stop is not the run's verdict
    if status == "ABORTED":
        return f"ABORTED: {failed} FAILED" if failed else "ABORTED"
    if status == "NOT JUDGED":
        return "not judged"  # no threshold, and no baseline either (the regression column says why)
    if status == "SKIPPED":
        return "skipped"
    # skipped as inconclusive: the thresholds were not judged
    return slo_cell(len(outcomes) - failed, failed, inconclusive=status == "INCONCLUSIVE")


def _regression_cell(summary: Mapping[str, Any]) -> str:
    extra = summary.get("extra") or {}
    return regression_label((extra.get("regression") or {}).get("tier"), extra.get("regression_note"))


def _notes(summary: Mapping[str, Any]) -> list[str]:
    generator = summary.get("generator") or {}
    notes = []
    if summary.get("interrupted"):
        notes.append("INTERRUPTED: partial results")
    if generator.get("dropped_iterations"):
        notes.append(f"{generator['dropped_iterations']} dropped iterations")
    if generator.get("late_iterations"):
        late_ms = generator.get("max_lateness_ms", 0)
        notes.append(f"{generator['late_iterations']} late iterations (max {late_ms:.0f} ms late)")
    if generator.get("saturated"):
        notes.append("GENERATOR SATURATED: " + "; ".join(generator.get("reasons", [])))
    for shard in summary.get("shards") or []:
        if shard.get("lost"):
            notes.append(f"SHARD LOST: {shard['worker']} {shard.get('note', '')}")
    failing = event_rows(summary, passing=False)
    if failing:
        shown = ", ".join(f"{row.name} {row.errors:,}" for row in failing[:3]) + (", ..." if len(failing) > 3 else "")
        notes.append(f"errors not from a request (no endpoint failed for them): {shown}")
    extra = summary.get("extra") or {}
    if extra.get("truncated_bodies"):
        notes.append(
            f"{extra['truncated_bodies']} response bodies longer than max_body were truncated (read, not kept)"
        )
    if extra.get("start_failures"):
        notes.append(str(extra["start_failures"]))
    if extra.get("baseline_note"):
        notes.append(f"baseline {extra['baseline_note']}")
    stop = extra.get("stop_reason", "")
    if str(stop).startswith("aborted"):
        notes.append(str(stop))
    for entry in extra.get("recovery") or []:
        during = entry.get("during") or {}
        recovered = entry.get("recovery_s")
        window = f"fault {entry['name']} ({entry['start_s']:g}-{entry['end_s']:g} s)"
        if "band" not in entry and entry.get("note"):  # e.g. a fault from t=0: nothing to recover to
            notes.append(f"{window}: {entry['note']}")
            continue
        notes.append(
            f"{window}: p95 {during.get('p95_ms', 0):.0f} ms "
            f"and {during.get('error_rate', 0) * 100:.2f} % errors during it, "
            + ("did not recover in the run" if recovered is None else f"recovered {recovered:.1f} s after it")
        )
    refused = extra.get("refused") or {}
    if refused.get("requests"):
        hosts = ", ".join(refused.get("hosts") or {}) or "?"
        notes.append(
            f"{refused['requests']} requests refused (not an allowed host: {hosts}); allow with --perf-allow-host"
        )
    for error in extra.get("fault_errors") or []:
        notes.append(f"fault could not be applied: {error}")
    return notes


def _target_lines(summaries: list[Mapping[str, Any]]) -> list[str]:
    """``target: ...`` under the table: one line per target, naming its runs when there are several targets."""
    runs: dict[str, list[str]] = {}
    for summary in summaries:
        if summary.get("target"):
            name = str(summary.get("name") or summary.get("test"))
            runs.setdefault(str(RunTarget.from_value(summary["target"])), []).append(name)
    if len(runs) == 1:
        return [f"target: {label}" for label in runs]
    return [
        f"target: {label} ({', '.join(names[:3])}{f' and {len(names) - 3} more' if len(names) > 3 else ''})"
        for label, names in runs.items()
    ]


def _write_shards(writer: Writer, shards: list[Mapping[str, Any]]) -> None:
    if not shards:
        return
    writer.write_line(f"  {len(shards)} shards, merged in the figures above:")
    for line in format_table(shard_rows(shards)):
        writer.write_line("    " + line, yellow=line.endswith(("LOST", "SATURATED")) or ": " in line)


def _write_event_rows(writer: Writer, summary: Mapping[str, Any]) -> None:
    """Checks, journeys and hooks on rows of their own (never on an endpoint), then each exception's first traceback."""
    rows = event_rows(summary)
    if any(row.group == "check" or row.errors for row in rows):  # journeys that only ran: nothing to add
        table: list[tuple[str, ...]] = [EVENT_COLUMNS]
        for row in rows:
            runs = "-" if row.runs is None else f"{row.runs:,}"
            ok = "-" if row.ok is None else f"{row.ok:,}"
            rate = "-" if row.error_rate is None else f"{row.error_rate * 100:.2f}"
            table.append((row.name, runs, ok, f"{row.errors:,}", rate, row.kinds))
        writer.write_line("  checks and journeys (their errors are in the total, not on an endpoint):")
        for line in format_table(table):
            writer.write_line("    " + line)
    for sample in exception_samples(summary):
        count = int(sample.get("count", 0))
        writer.write_line(
            f"  {sample['kind']} in {sample.get('where', '?')}: {count:,} time(s), first traceback:", yellow=True
        )
        for line in str(sample.get("traceback", "")).rstrip().splitlines():
            writer.write_line("    " + line)


def write_summary(writer: Writer, summaries: Iterable[Mapping[str, Any]], *, verbose: bool = False) -> None:
    """One row per load run with its SLO and regression verdicts; ``-v`` adds a block per run with endpoints."""
    summaries = list(summaries)
    rows: list[tuple[str, ...]] = [("load run", *COLUMNS[1:], "SLO", "regression")]
    for summary in summaries:
        label = str(summary.get("name") or str(summary.get("test") or "load run").rsplit("/", 1)[-1])
        rows.append((*_row(label, summary["total"]), _slo_cell(summary), _regression_cell(summary)))
    for line in format_table(rows):
        writer.write_line(line)
    for line in _target_lines(summaries):
        writer.write_line(line, bold=True)
    for summary in summaries:
        notes = _notes(summary)
        if notes:
            writer.write_line(f"{summary.get('name') or summary.get('test')}: {'; '.join(notes)}", yellow=True)
    if not verbose:
        return
    for summary in summaries:
        writer.write_line("")
        writer.write_line(_heading(summary), bold=True)
        if summary.get("target"):
            writer.write_line(f"  target: {RunTarget.from_value(summary['target'])}")
        endpoint_rows: list[tuple[str, ...]] = [COLUMNS]
        endpoints: Mapping[str, Mapping[str, Any]] = summary.get("endpoints", {})
        for name, stats in sorted(endpoints.items(), key=lambda item: -item[1]["requests"]):
            endpoint_rows.append(_row(name, stats))
        endpoint_rows.append(_row("total", summary["total"]))
        for line in format_table(endpoint_rows):
            writer.write_line("  " + line)
        _write_shards(writer, summary.get("shards") or [])
        resources = terminal_line(summary)
        if resources is not None:
            writer.write_line(resources)
        capacity = capacity_line(summary)
        if capacity is not None:
            writer.write_line(capacity)
        _write_event_rows(writer, summary)
        failed = (summary["total"] or {}).get("failed")
        if failed:
            writer.write_line(
                f"  failed requests ({failed['requests']:,}, not in the latency above): p50 {failed['p50_ms']:.1f} ms, "
                f"p95 {failed['p95_ms']:.1f} ms, max {failed['max_ms']:.1f} ms"
            )
        extra = summary.get("extra") or {}
        verdict = extra.get("regression")
        if verdict:
            worst = [f for f in verdict.get("findings", []) if f.get("tier") == verdict["tier"]][:3]
            detail = ", ".join(f"{f['endpoint']} {f['metric']} {(f.get('change') or 0) * 100:+.0f}%" for f in worst)
            tier = verdict["tier"]
            writer.write_line(
                f"  regression vs {verdict.get('baseline_runs', 0)} baseline run(s): {tier}"
                + (f" ({detail})" if detail and tier != "none" else ""),
                red=tier in ("major", "critical"),
                yellow=tier in ("minor", "inconclusive"),
            )
            # What could not be judged, and what would decide it (the notes say "run longer" or "record more").
            for item in verdict.get("findings", []):
                if item.get("insufficient") or item.get("tier") == "inconclusive":
                    label = "not judged" if item.get("insufficient") else "inconclusive"
                    writer.write_line(f"    {label}: {item['endpoint']} {item['metric']}: {item.get('note', '')}")
        elif extra.get("regression_note"):
            writer.write_line(f"  regression: {extra['regression_note']}")
        for outcome in extra.get("slo") or []:
            if not outcome.get("passed"):
                writer.write_line(f"  SLO failed: {slo_outcome(outcome)}", red=True)
