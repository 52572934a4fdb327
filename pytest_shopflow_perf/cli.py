"""Inspect and maintain baseline files from the shell (no load is generated).

    python -m pytest_shopflow_perf baseline show [PATH ...]
    python -m pytest_shopflow_perf baseline diff BASELINE [RUN.json]
    python -m pytest_shopflow_perf baseline prune [PATH ...] --keep N [--dry-run]

PATH is a baseline file or a directory of them (default ``baselines/``). ``diff``
compares a run record (a per-test JSON of ``--perf-report-dir``, or any
``LoadResult.to_dict()``) with a baseline; without RUN it compares the newest
run of the baseline with the runs before it (is the last run an outlier?).
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pytest_shopflow_perf.reporting._format import format_table
from pytest_shopflow_perf.verdicts.baseline import BaselineError, check_types, load_baseline, prune, validate_run

if TYPE_CHECKING:
    from pytest_shopflow_perf.verdicts.regression import RegressionPolicy

DEFAULT_DIR = Path("baselines")


def _files(paths: Iterable[str]) -> list[Path]:
    found: list[Path] = []
    for raw in paths or [str(DEFAULT_DIR)]:
        path = Path(raw)
        if path.is_dir():
            found += sorted(p for p in path.glob("*.json") if not p.name.startswith("."))
        elif path.exists():
            found.append(path)
        else:
            raise BaselineError(f"{path}: no such baseline file or directory")
    return found


def _run_row(run: dict[str, Any]) -> tuple[str, ...]:
    total = run.get("total", {})
    requests = int(total.get("requests", 0))
    errors = int(total.get("errors", 0))
    commit = (run.get("environment", {}).get("git_commit") or "-")[:10]
    return (
        str(run.get("started_at", "-")),
        commit,
        f"{float(run.get('duration_s', 0)):.1f}",
        f"{requests:,}",
        f"{float(total.get('rps', 0)):.1f}",
        f"{float(total.get('p50_ms', 0)):.1f}",
        f"{float(total.get('p95_ms', 0)):.1f}",
        f"{float(total.get('p99_ms', 0)):.1f}",
        f"{100.0 * errors / requests if requests else 0.0:.2f}",
    )


def show(paths: Sequence[str]) -> int:
    """Every baseline's runs; a file that cannot be used is said (naming the field) and the others still shown."""
    failed = 0
    for path in _files(paths):
        try:
            baseline = load_baseline(path)
        except BaselineError as exc:
            print(f"error: {exc}\n")
            failed += 1
            continue
        assert baseline is not None
        runs = baseline["runs"]
        machines = {str(r.get("environment", {}).get("fingerprint", "")).removeprefix("sha256:")[:8] for r in runs}
        print(f"{baseline.get('test', path.stem)}  ({path}, {len(runs)} run(s), machine {', '.join(sorted(machines))})")
        header = ("started", "commit", "s", "requests", "req/s", "p50 ms", "p95 ms", "p99 ms", "errors %")
        for line in format_table([header, *(_run_row(run) for run in runs)]):
            print("  " + line)
        print()
    return 2 if failed else 0


def project_ini(start: Path) -> dict[str, str]:
    """The pytest ini values of the project around ``start``, found as pytest finds its config file.

    pytest.ini, pyproject.toml ``[tool.pytest.ini_options]``, tox.ini ``[pytest]``, setup.cfg
    ``[tool:pytest]``, in this directory or the nearest parent that has one.
    """
    import configparser

    for directory in [start, *start.parents]:
        for name, section in (("pytest.ini", "pytest"), ("pyproject.toml", None), ("tox.ini", "pytest"),
                              ("setup.cfg", "tool:pytest")):  # fmt: skip
            path = directory / name
            if not path.is_file():
                continue
            if section is None:
                try:
                    import tomllib  # type: ignore[import-not-found,unused-ignore]
                except ImportError:  # Python 3.10: no TOML reader in the standard library
                    continue
                options = tomllib.loads(path.read_text(encoding="utf-8")).get("tool", {}).get("pytest", {})
                if "ini_options" in options:
                    return {key: str(value) for key, value in options["ini_options"].items()}
                continue
            parser = configparser.ConfigParser(interpolation=None)
            parser.read(path, encoding="utf-8")
            if parser.has_section(section) or name == "pytest.ini":
                return dict(parser.items(section)) if parser.has_section(section) else {}
    return {}


def project_policy(start: Path) -> RegressionPolicy:
    """The regression policy the gate uses in this project (``perf_regression_*``), so both agree."""
    from pytest_shopflow_perf.verdicts.regression import policy_from_ini

    values = project_ini(start)
    try:
        return policy_from_ini(lambda name: values.get(name, ""))
    except ValueError as exc:
        raise BaselineError(str(exc)) from None


def diff(baseline_path: str, run_path: str | None, fail_on: str) -> int:
    from pytest_shopflow_perf.verdicts.assertions import format_regression
    from pytest_shopflow_perf.verdicts.regression import compare, finding_row

    baseline = load_baseline(Path(baseline_path))
    if baseline is None:
        raise BaselineError(f"{baseline_path}: no such baseline file")
    if run_path is None:
        if len(baseline["runs"]) < 2:
            raise BaselineError(f"{baseline_path}: needs 2 runs or more to compare its newest run with the others")
        *older, newest = baseline["runs"]
        baseline = {**baseline, "runs": older}
        label = f"newest run ({newest.get('started_at')}) vs the {len(older)} before it"
    else:
        try:
            record = json.loads(Path(run_path).read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise BaselineError(f"{run_path}: cannot read the run record ({exc})") from exc
        newest = validate_run(record, run_path)
        check_types(newest, run_path, run=True)
        label = f"{run_path} vs {len(baseline['runs'])} baseline run(s)"
    verdict = compare(baseline, newest, policy=project_policy(Path.cwd()))
    print(f"{baseline.get('test')}: {label}: {verdict.tier}")
    columns = ("tier", "endpoint", "metric", "baseline", "current", "change", "p", "detectable")
    ordered = sorted(verdict.findings, key=lambda f: (f.endpoint != "total", f.endpoint, f.metric))
    rows = [columns, *(finding_row(f, columns) for f in ordered if f.tier != "none")]
    if len(rows) > 1:
        for line in format_table(rows):
            print("  " + line)
    for note in verdict.notes:
        print(f"  note: {note}")
    if verdict.failed(fail_on):
        print(format_regression(verdict, fail_on))
        return 1
    return 0


def prune_files(paths: Sequence[str], keep: int, dry_run: bool) -> int:
    for path in _files(paths):
        baseline = load_baseline(path)
        assert baseline is not None
        count = len(baseline["runs"])
        if count <= keep:
            print(f"{path}: {count} run(s), kept")
            continue
        if dry_run:
            print(f"{path}: would drop {count - keep} oldest run(s), keep {keep}")
        else:
            before, after = prune(path, keep)
            print(f"{path}: dropped {before - after} oldest run(s), kept {after}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m pytest_shopflow_perf", description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    baseline = commands.add_parser("baseline", help="inspect and maintain baseline files")
    actions = baseline.add_subparsers(dest="action", required=True)
    show_parser = actions.add_parser("show", help="the runs of each baseline: when, commit, key figures")
    show_parser.add_argument("paths", nargs="*", help="baseline files or directories (default: baselines/)")
    diff_parser = actions.add_parser("diff", help="regression verdict of a run record against a baseline")
    diff_parser.add_argument("baseline", help="baseline file")
    diff_parser.add_argument("run", nargs="?", help="run record JSON (default: the baseline's newest run)")
    diff_parser.add_argument("--fail-on", default="major", choices=("minor", "major", "critical", "never"))
    prune_parser = actions.add_parser("prune", help="keep only the newest runs")
    prune_parser.add_argument("paths", nargs="*", help="baseline files or directories (default: baselines/)")
    prune_parser.add_argument("--keep", type=int, required=True, help="runs to keep in each baseline (>= 1)")
    prune_parser.add_argument("--dry-run", action="store_true", help="say what would change, write nothing")
    args = parser.parse_args(argv)
    try:
        if args.action == "show":
            return show(args.paths)
        if args.action == "diff":
            return diff(args.baseline, args.run, args.fail_on)
        if args.keep < 1:
            parser.error("--keep must be at least 1")
        return prune_files(args.paths, args.keep, args.dry_run)
    except BaselineError as exc:
        print(f"error: {exc}")
        return 2
