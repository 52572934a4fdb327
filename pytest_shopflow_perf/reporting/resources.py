"""The target's resources in the reports: a terminal line, ``<test>-resources.csv``, summary.md, findings.

They read the run record's ``"resources"`` (``Resources.to_dict()`` or ``summary_dict()``), never
the sampler. The findings are the facts a recommendation needs (CPU-bound, memory growing, a
connection pool near exhaustion); ``recommendations.py`` ranks and words them with the others.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

__all__ = [
    "CPU_BOUND_PERCENT",
    "csv_rows",
    "findings",
    "markdown_lines",
    "terminal_line",
]

Table = Callable[[Iterable[str], Iterable[Iterable[Any]]], list[str]]
CPU_BOUND_PERCENT = 90.0  # of one core, at the worst sample: the service is then waiting on its own CPU
LEAK_MB_PER_H = 50.0  # RSS growth that, over a run of a minute or more, is worth a look
LEAK_MIN_S = 60.0
POOL_NEAR_FULL = 0.75  # the e-commerce plan's "connection pool usage < 75 %"
SAMPLE_COLUMNS = ("t_s", "cpu_percent", "rss_mb", "threads", "connections")


def _resources(run: Mapping[str, Any]) -> Mapping[str, Any] | None:
    resources = run.get("resources")
    return resources if isinstance(resources, Mapping) and resources else None


def _gauges_max(resources: Mapping[str, Any]) -> dict[str, float]:
    if "gauges_max" in resources:  # summary_dict(): the samples are left out
        return {str(k): float(v) for k, v in resources["gauges_max"].items() if v is not None}
    from pytest_shopflow_perf.result.resources import Resources

    record = Resources.from_dict(resources)
    if record is None:
        return {}
    return {name: value for name in record.gauge_names() if (value := record.gauge_max(name)) is not None}


def _growth(resources: Mapping[str, Any], run: Mapping[str, Any]) -> str:
    """RSS growth per hour, only from a run long enough for it (a few seconds of warm-up read as GB/h)."""
    if float(run.get("duration_s") or 0.0) < LEAK_MIN_S:
        return f"growth not judged under {LEAK_MIN_S:.0f} s"
    growth = float(resources.get("rss_mb_growth_per_h") or 0.0)
    return f"{growth:+,.1f} MB/h"


def terminal_line(run: Mapping[str, Any]) -> str | None:
    """``target resources (pid 812): CPU mean 41 %, max 88 % of one core; RSS max 120.3 MB (+3.1 MB/h)``."""
    resources = _resources(run)
    if resources is None:
        return None
    count = resources.get("samples_count", len(resources.get("samples") or []))
    line = (
        f"  target resources ({resources.get('source') or 'sampled'}, {count} samples): "
        f"CPU mean {float(resources.get('cpu_percent_mean') or 0):.0f} %, "
        f"max {float(resources.get('cpu_percent_max') or 0):.0f} % of one core; "
        f"RSS max {float(resources.get('rss_mb_max') or 0):,.1f} MB ({_growth(resources, run)})"
    )
    pool = _pool_use(_gauges_max(resources))
    if pool is not None:
        line += f"; DB pool max {pool[1]:.0f} of {pool[2]:.0f} in use"
    notes = resources.get("notes") or []
    if notes:
        line += f"; not read: {'; '.join(str(n) for n in notes[:3])}"
    return line


def csv_rows(resources: Mapping[str, Any]) -> list[list[Any]]:
    """One row per sample: the psutil figures, then every gauge and rate that any sample had (sorted)."""
    samples: Sequence[Mapping[str, Any]] = resources.get("samples") or []
    gauges = sorted({name for s in samples for name in (s.get("gauges") or {})})
    rates = sorted({name for s in samples for name in (s.get("rates") or {})})
    rows: list[list[Any]] = [[*SAMPLE_COLUMNS, *gauges, *(f"rate {name}" for name in rates)]]
    for sample in samples:
        row = ["" if sample.get(column) is None else sample[column] for column in SAMPLE_COLUMNS]
        row += [(sample.get("gauges") or {}).get(name, "") for name in gauges]
        row += [(sample.get("rates") or {}).get(name, "") for name in rates]
        rows.append(row)
    return rows


def markdown_lines(runs: Sequence[Mapping[str, Any]], table: Table) -> list[str]:
    """The "Target resources" section: one row per run that sampled its target."""
    rows = []
    for run in runs:
        resources = _resources(run)
        if resources is None:
            continue
        pool = _pool_use(_gauges_max(resources))
        rows.append(
            (
                str(run.get("name", "-")),
                str(resources.get("source") or "-"),
                f"{float(resources.get('cpu_percent_mean') or 0):.0f} %",
                f"{float(resources.get('cpu_percent_max') or 0):.0f} %",
                f"{float(resources.get('rss_mb_max') or 0):,.1f} MB",
                _growth(resources, run),
                f"{pool[1]:.0f} / {pool[2]:.0f}" if pool is not None else "-",
                "; ".join(str(n) for n in resources.get("notes") or []) or "-",
            )
        )
    if not rows:
        return []
    header = ("scenario", "sampled", "CPU mean", "CPU max", "RSS max", "RSS growth", "DB pool in use (max)", "notes")
    return ["", "## Target resources", "", "CPU in % of one core (200 % = two cores busy).", "", *table(header, rows)]


def _pool_use(gauges: Mapping[str, float]) -> tuple[str, float, float] | None:
    """(prefix, most in use, size) of a connection pool the target exposes: ``X_in_use`` beside ``X_pool_size``."""
    for name, in_use in sorted(gauges.items()):
        if "{" in name or not name.endswith("_in_use"):
            continue
        stem = name[: -len("_in_use")]
        prefix = stem.rsplit("_connections", 1)[0]
        for size_name in (f"{prefix}_pool_size", f"{stem}_max", f"{prefix}_pool_max", f"{stem}_limit"):
            size = gauges.get(size_name)
            if size:
                return prefix, in_use, size
    return None


def _peak_users(run: Mapping[str, Any]) -> str:
    users = (run.get("generator") or {}).get("peak_users")
    return f" at {users} users" if users else ""


def findings(run: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Facts for recommendations: title, subject, fragment, advice, impact, effort, owner, cites."""
    resources = _resources(run)
    if resources is None:
        return []
    found = []
    source = str(resources.get("source") or "the target")
    cpu_max = float(resources.get("cpu_percent_max") or 0)
    if cpu_max >= CPU_BOUND_PERCENT:
        found.append(
            {
                "title": "The service is CPU-bound: profile it",
                "subject": "the target's CPU reached",
                "fragment": f"{cpu_max:.0f} % of one core{_peak_users(run)} (mean "
                f"{float(resources.get('cpu_percent_mean') or 0):.0f} %)",
                "advice": "latency then waits on the CPU; profile the hot path under this load (py-spy record "
                "--pid PID, or cProfile) and cut its work, or add worker processes or cores",
                "impact": "high",
                "effort": "medium",
                "owner": "Backend",
                "cites": ["target CPU (max, mean)", "users"],
            }
        )
    growth = float(resources.get("rss_mb_growth_per_h") or 0)
    duration = float(run.get("duration_s") or 0)
    if growth >= LEAK_MB_PER_H and duration >= LEAK_MIN_S:
        found.append(
            {
                "title": "The service's memory grows under steady load: look for a leak",
                "subject": "the target's RSS grew",
                "fragment": f"{growth:,.0f} MB/h over {duration:,.0f} s (max "
                f"{float(resources.get('rss_mb_max') or 0):,.1f} MB)",
                "advice": 'run a soak with assert_no_drift(metric="target_rss") and trace the allocations '
                "(tracemalloc snapshots, memray) of the growing objects: caches without bounds, sessions kept",
                "impact": "high",
                "effort": "medium",
                "owner": "Backend",
                "cites": ["target RSS (growth per hour, max)", "duration"],
            }
        )
    pool = _pool_use(_gauges_max(resources))
    if pool is not None and pool[2] and pool[1] / pool[2] >= POOL_NEAR_FULL:
        prefix, in_use, size = pool
        found.append(
            {
                "title": "The connection pool is near exhaustion: size it or shorten its holds",
                "subject": f"{prefix} connections in use reached",
                "fragment": f"{in_use:.0f} of {size:.0f} ({in_use / size * 100:.0f} %){_peak_users(run)}",
                "advice": "requests then queue for a connection; raise the pool size if the database has room, or "
                "shorten what holds a connection (a query per request, not per row; no I/O inside a transaction)",
                "impact": "medium",
                "effort": "low",
                "owner": "Backend",
                "cites": [f"gauge {prefix}_* (max in use, size) from {source}"],
            }
        )
    return found
