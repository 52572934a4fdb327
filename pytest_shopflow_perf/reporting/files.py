"""``--perf-report-dir``: raw results a script can read (JSON, CSV) and a summary a person can.

Per load run: ``<test>.json`` (``LoadResult.to_dict()``, schema ``shopflow-perf/run/1``),
``<test>-endpoints.csv`` (one row per endpoint, per check or journey with errors, and the total) and
``<test>-timeline.csv`` (one row per 1-second window and endpoint), and when the target's resources
were sampled ``<test>-resources.csv`` (one row per sample: CPU, RSS, threads, connections, every
gauge and rate). Per session:
``summary.json`` (schema ``shopflow-perf/summary/1``) and ``summary.md``.
Every file is written to a temporary name and renamed, so a reader (or an
interrupted run) never sees half a file.
"""

from __future__ import annotations

import csv
import io
import json
import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pytest_shopflow_perf._atomic import write_atomically
from pytest_shopflow_perf._names import report_stem

if TYPE_CHECKING:
    from pytest_shopflow_perf.result.model import LoadResult

SUMMARY_SCHEMA = "shopflow-perf/summary/1"
ENDPOINT_COLUMNS = (
    "endpoint", "requests", "errors", "error_rate", "rps", "mean_ms", "p50_ms", "p90_ms", "p95_ms", "p99_ms", "max_ms",
)  # fmt: skip
TIMELINE_COLUMNS = ("t_s", "endpoint", "count", "errors", "p50_ms", "p95_ms", "p99_ms", "mean_ms", "max_ms")


def _write(path: Path, text: str) -> None:
    write_atomically(path, text)


def stem(test: str) -> str:
    """A file-system-safe, stable name for a test, unique per node id (readable like its baseline's)."""
    return report_stem(test)


def _csv(rows: Iterable[Iterable[Any]]) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerows(rows)
    return buffer.getvalue()


def _endpoint_rows(record: Mapping[str, Any]) -> list[list[Any]]:
    """Endpoints, then checks and journeys on rows of their own (no requests, no latency), then the total.

    The ``errors`` column adds up to the total's; a check's or journey's ``error_rate`` is per
    run (``runs``: check evaluations, iterations, hook calls), an endpoint's per request.
    """
    from pytest_shopflow_perf.reporting._events import event_rows

    rows: list[list[Any]] = [[*ENDPOINT_COLUMNS, "row", "runs"]]
    for name, stats in record.get("endpoints", {}).items():
        rows.append([name, *(stats[c] for c in ENDPOINT_COLUMNS[1:]), "endpoint", ""])
    for event in event_rows(record, passing=False):
        blank: dict[str, Any] = {c: "" for c in ENDPOINT_COLUMNS[1:]}
        blank.update(errors=event.errors, error_rate="" if event.error_rate is None else round(event.error_rate, 6))
        rows.append([event.name, *(blank[c] for c in ENDPOINT_COLUMNS[1:]), event.group, event.runs or ""])
    rows.append(["total", *(record["total"][c] for c in ENDPOINT_COLUMNS[1:]), "total", ""])
    return rows


def write_result(directory: Path, result: LoadResult) -> list[Path]:
    """The files of one run (three, four with resources); returns their paths."""
    name = stem(result.test or "load-run")
    record = result.to_dict()
    paths = [directory / f"{name}.json", directory / f"{name}-endpoints.csv", directory / f"{name}-timeline.csv"]
    _write(paths[0], json.dumps(record, indent=1, allow_nan=False) + "\n")
    stats: dict[str, Mapping[str, Any]] = {**record.get("endpoints", {}), "total": record["total"]}
    _write(paths[1], _csv(_endpoint_rows(record)))
    rows: list[list[Any]] = [list(TIMELINE_COLUMNS)]
    for endpoint, data in stats.items():
        windows = data["windows"]
        for i, t_s in enumerate(windows["t_s"]):
            rows.append([t_s, endpoint, *(windows[c][i] for c in TIMELINE_COLUMNS[2:])])
    rows[1:] = sorted(rows[1:], key=lambda row: (row[0], row[1] != "total", row[1]))
    _write(paths[2], _csv(rows))
    if record.get("resources"):
        from pytest_shopflow_perf.reporting.resources import csv_rows

        paths.append(directory / f"{name}-resources.csv")
        _write(paths[3], _csv(csv_rows(record["resources"])))
    return paths


def write_summary(
    directory: Path, tests: Sequence[Mapping[str, Any]], context: Mapping[str, Any], warnings: list[str] | None = None
) -> tuple[Path, Path]:
    """``summary.json`` and ``summary.md`` for the session; returns their paths.

    A step summary that cannot be written is a warning (appended to ``warnings``), never a failed session.
    """
    from pytest_shopflow_perf.reporting.summary import build_summary, render_markdown

    summary = build_summary(tests, context)
    json_path, md_path = directory / "summary.json", directory / "summary.md"
    _write(json_path, json.dumps(summary, indent=1, allow_nan=False) + "\n")
    markdown = render_markdown(summary)
    _write(md_path, markdown)
    step_summary = os.environ.get("GITHUB_STEP_SUMMARY")
    if step_summary:
        try:
            with open(step_summary, "a", encoding="utf-8") as handle:
                handle.write(markdown + "\n")
        except OSError as exc:
            if warnings is None:
                raise
            warnings.append(f"could not append to GITHUB_STEP_SUMMARY={step_summary}: {exc}")
    return json_path, md_path
