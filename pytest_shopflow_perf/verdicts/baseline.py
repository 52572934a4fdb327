"""Baseline files: where they live, how they are read, validated and written.

A baseline is committed to the repository next to the tests, so every write is
atomic (a crash never leaves half a file behind) and every read refuses a file
it does not understand instead of silently starting a new one: a regression
gate that quietly forgets its history would pass everything.

File layout (``baselines/<sanitised node id>.json``)::

    {"schema": "shopflow-perf/baseline/1", "test": "<node id>",
     "runs": [<run record "shopflow-perf/run/1">, ...]}   # oldest first

Each run record is written on a line of its own, so appending a run and dropping
the oldest one shows up in ``git diff`` as one added and one removed line.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import re
import subprocess
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Final

from pytest_shopflow_perf._atomic import write_atomically as _write_atomically
from pytest_shopflow_perf._errors import ShopflowPerfError
from pytest_shopflow_perf._names import node_hash, sanitised
from pytest_shopflow_perf.result.record_types import BASELINE_TYPES, RUN_TYPES, type_problems
from pytest_shopflow_perf.result.schema import BASELINE_SCHEMA, RUN_SCHEMA, SCHEMA_PREFIX

__all__ = [
    "BASELINE_SCHEMA",
    "RUN_SCHEMA",
    "BaselineError",
    "append_run",
    "baseline_path",
    "check_types",
    "environment_fingerprint",
    "git_commit",
    "load_baseline",
    "prune",
    "validate_baseline",
    "validate_run",
]

DEFAULT_KEEP: Final = 5

_HOW_TO_FIX = (
    "restore it from version control (git checkout -- {path}) or move it away and "
    "record a new baseline with --perf-save-baseline"
)
_FINGERPRINT_FIELDS: Final = (
    "cpu_model",
    "cpu_count",
    "cpu_quota",
    "python",
    "implementation",
    "machine",
    "system",
)


class BaselineError(ShopflowPerfError, ValueError):
    """A baseline file or run record cannot be used; the message says which and how to fix it."""


# ---- schema validation ------------------------------------------------------


def _check_schema(data: object, kind: str, expected: str, source: str) -> dict[str, Any]:
    if not isinstance(data, dict):
        raise BaselineError(f'{source}: expected a JSON object with "schema": "{expected}", got {type(data).__name__}')
    schema = data.get("schema")
    if schema == expected:
        return data
    if isinstance(schema, str) and schema.startswith(f"{SCHEMA_PREFIX}/{kind}/"):
        raise BaselineError(
            f"{source}: unsupported schema version {schema!r}; this version of pytest-shopflow-perf "
            f"reads {expected!r} (upgrade the plugin, or record a new baseline)"
        )
    raise BaselineError(f'{source}: "schema" is {schema!r}, expected {expected!r}')


def validate_run(record: object, source: str = "run record") -> dict[str, Any]:
    """Check that ``record`` is a run record this version understands, and return it.

    Only the structure the comparison relies on is checked; extra fields are
    welcome (the schema grows by addition).
    """
    data = _check_schema(record, "run", RUN_SCHEMA, source)
    if not isinstance(data.get("total"), Mapping):
        raise BaselineError(f'{source}: "total" must be an object of statistics')
    endpoints = data.get("endpoints", {})
    if not isinstance(endpoints, Mapping) or not all(isinstance(v, Mapping) for v in endpoints.values()):
        raise BaselineError(f'{source}: "endpoints" must map endpoint names to objects of statistics')
    return data


def validate_baseline(data: object, source: str = "baseline") -> dict[str, Any]:
    """Check that ``data`` is a baseline file this version understands, and return it."""
    baseline = _check_schema(data, "baseline", BASELINE_SCHEMA, source)
    runs = baseline.get("runs")
    if not isinstance(runs, list):
        raise BaselineError(f'{source}: "runs" must be a list of run records')
    if not isinstance(baseline.get("test", ""), str):
        raise BaselineError(f'{source}: "test" must be the test\'s node id (a string)')
    for index, run in enumerate(runs):
        validate_run(run, f"{source}: run {index}")
    return baseline


def check_types(data: object, source: str, *, run: bool = False) -> None:
    """Refuse a baseline (or, with ``run``, a run record) read from a file whose fields have the wrong types.

    Each problem names the field by its path (``runs[2].endpoints["GET /x"].p95_ms: expected a number,
    got "fast"``): a hand-edited file is fixed where it went wrong, never used with a string for a number.
    """
    problems = type_problems(data, RUN_TYPES if run else BASELINE_TYPES)
    if not problems:
        return
    shown = "; ".join(problems[:3]) + (f" (and {len(problems) - 3} more)" if len(problems) > 3 else "")
    noun = "run record" if run else "baseline"
    raise BaselineError(f"{source}: {len(problems)} field(s) of the {noun} have the wrong type: {shown}")


# ---- file names -------------------------------------------------------------


def baseline_path(directory: Path, nodeid: str) -> Path:
    """The baseline file of a test: ``directory / "<sanitised node id>.json"``.

    Path separators, ``::`` and the brackets of parameter ids map to ``_`` so the
    name stays readable and stable across machines. Any other character outside
    ``[A-Za-z0-9._-]`` (spaces, unicode, ``:`` ...) is replaced too, and then a
    short hash of the full node id is appended so two ids that differ only in
    such characters cannot share a file. Ids that still coincide (``a/b.py``
    and ``a_b.py``) are caught when the file is read: it records its node id.
    """
    stem, lossy = sanitised(nodeid)
    if lossy:
        stem = f"{stem}-{node_hash(nodeid)}"
    return Path(directory) / f"{stem}.json"


def _lock(path: Path) -> Any:
    """A lock across processes for one baseline, kept in the temp dir so it never litters baselines/."""
    import tempfile

    from filelock import FileLock

    digest = hashlib.sha256(str(Path(path).resolve()).encode("utf-8", "surrogatepass")).hexdigest()[:16]
    return FileLock(os.path.join(tempfile.gettempdir(), f"shopflow-perf-baseline-{digest}.lock"))


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a number a baseline can hold")


_COUNT_FIELDS: Final = ("requests", "errors")
_NUMBER_FIELDS: Final = ("rps", "mean_ms", "p50_ms", "p90_ms", "p95_ms", "p99_ms", "max_ms", "error_rate")


def _check_statistics(run: Mapping[str, Any], source: str) -> None:
    """The fields compare() relies on: an empty ``total`` would make a meaningless baseline pass the gate."""
    groups = [("total", run["total"]), *((f"endpoint {k!r}", v) for k, v in run.get("endpoints", {}).items())]
    for label, stats in groups:
        for name in _COUNT_FIELDS:
            value = stats.get(name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                raise BaselineError(f'{source} {label}: "{name}" must be a whole number >= 0, got {value!r}')
        for name in _NUMBER_FIELDS:
            value = stats.get(name)
            if value is not None and (not isinstance(value, (int, float)) or isinstance(value, bool)):
                raise BaselineError(f'{source} {label}: "{name}" must be a number, got {value!r}')


# ---- reading and writing ----------------------------------------------------


def load_baseline(path: Path, *, nodeid: str | None = None) -> dict[str, Any] | None:
    """Read and validate a baseline file; ``None`` when it does not exist.

    A corrupt file, a wrong schema or an unknown schema version raise
    :class:`BaselineError` naming the file: a baseline is never silently replaced.
    When ``nodeid`` is given, a file recorded for another test (two ids that map
    to the same name, e.g. on a case-insensitive file system) is refused too.
    """
    path = Path(path)
    fix = _HOW_TO_FIX.format(path=path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    except UnicodeDecodeError as exc:
        raise BaselineError(f"{path}: corrupt baseline file (not UTF-8 text: {exc.reason}); {fix}") from exc
    except OSError as exc:
        raise BaselineError(f"{path}: cannot read baseline file ({exc}); {fix}") from exc
    try:
        data = json.loads(text, parse_constant=_reject_constant)
    except ValueError as exc:
        if not isinstance(exc, json.JSONDecodeError):
            raise BaselineError(f"{path}: corrupt baseline file ({exc}); {fix}") from exc
        raise BaselineError(
            f"{path}: corrupt baseline file (invalid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}); {fix}"
        ) from exc
    try:
        _check_schema(data, "baseline", BASELINE_SCHEMA, str(path))
    except BaselineError as exc:
        raise BaselineError(f"{exc}; {fix}") from None
    try:
        check_types(data, str(path))
    except BaselineError as exc:
        raise BaselineError(f"{exc}; correct them by hand, or {fix}") from None
    try:
        baseline = validate_baseline(data, str(path))
        for index, run in enumerate(baseline["runs"]):
            _check_statistics(run, f"{path}: run {index}")
    except BaselineError as exc:
        raise BaselineError(f"{exc}; {fix}") from None
    recorded = baseline.get("test")
    if nodeid is not None and recorded is not None and recorded != nodeid:
        raise BaselineError(
            f"{path} holds the baseline of {recorded!r}, not of {nodeid!r} (their names map to the same "
            f"file); rename one of the tests or use another --perf-baseline-dir"
        )
    return baseline


def append_run(path: Path, nodeid: str, run_record: Mapping[str, Any], keep: int = DEFAULT_KEEP) -> dict[str, Any]:
    """Append ``run_record`` to the baseline at ``path``, keep the newest ``keep`` runs, write atomically.

    Creates the file (and its directory) when missing. Refuses to touch a file
    it cannot read (:class:`BaselineError`), so a corrupt baseline is never
    overwritten. Returns the baseline as written.
    """
    if keep < 1:
        raise ValueError(f"keep={keep!r}: a baseline must keep at least one run")
    record = validate_run(dict(run_record), "run record to save")
    path = Path(path)
    with _lock(path):  # read-modify-write: two savers must not lose each other's runs
        return _append_locked(path, nodeid, record, keep)


def _append_locked(path: Path, nodeid: str, record: dict[str, Any], keep: int) -> dict[str, Any]:
    existing = load_baseline(path, nodeid=nodeid)
    if existing is None:
        baseline: dict[str, Any] = {"schema": BASELINE_SCHEMA, "test": nodeid, "runs": []}
    else:
        baseline = dict(existing)
        baseline["test"] = nodeid
    baseline["runs"] = [*baseline["runs"], record][-keep:]
    try:
        text = _dumps_baseline(baseline)
    except (TypeError, ValueError) as exc:
        raise BaselineError(f"run record to save is not JSON-safe ({exc}); nothing was written") from exc
    _write_atomically(path, text)
    return baseline


def prune(path: Path, keep: int) -> tuple[int, int]:
    """Keep the newest ``keep`` runs of a baseline (atomic write). Returns (runs before, runs after)."""
    if keep < 1:
        raise ValueError(f"keep={keep!r}: a baseline must keep at least one run")
    with _lock(Path(path)):
        baseline = load_baseline(path)
        if baseline is None:
            raise BaselineError(f"{path}: no such baseline file")
        before = len(baseline["runs"])
        if before > keep:
            baseline["runs"] = baseline["runs"][-keep:]
            _write_atomically(Path(path), _dumps_baseline(baseline))
    return before, min(before, keep)


def _dumps_baseline(baseline: Mapping[str, Any]) -> str:
    """Pretty at the top, one compact line per run: small, valid JSON and one-line git diffs."""

    def dump(value: object) -> str:
        return json.dumps(value, ensure_ascii=False, allow_nan=False)

    head = [f"  {dump(key)}: {dump(value)}" for key, value in baseline.items() if key != "runs"]
    runs = ",\n".join(f"    {dump(run)}" for run in baseline["runs"])
    body = ",\n".join([*head, f'  "runs": [\n{runs}\n  ]' if runs else '  "runs": []'])
    return "{\n" + body + "\n}\n"


# ---- environment ------------------------------------------------------------


def environment_fingerprint() -> dict[str, Any]:
    """Describe the machine a run was measured on, plus a ``fingerprint`` hash of what matters.

    The hash covers the CPU model, usable cores, cgroup CPU quota, Python
    major.minor and implementation, OS and architecture: things that move
    latency. Kernel release and plugin version are recorded but left out of the
    hash, so routine upgrades do not invalidate every baseline.
    """
    info: dict[str, Any] = {
        "cpu_model": _cpu_model(),
        "cpu_count": _cpu_count(),
        "cpu_quota": _cpu_quota(),
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "system": platform.system(),
        "machine": platform.machine(),
        "platform": platform.platform(),
        "plugin_version": _plugin_version(),
    }
    hashed = {name: info[name] for name in _FINGERPRINT_FIELDS}
    hashed["python"] = ".".join(platform.python_version_tuple()[:2])
    digest = hashlib.sha256(json.dumps(hashed, sort_keys=True).encode()).hexdigest()
    info["fingerprint"] = f"sha256:{digest[:16]}"
    return info


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as handle:
            for line in handle:
                key, _, value = line.partition(":")
                if key.strip() in ("model name", "Hardware", "Processor", "cpu model") and value.strip():
                    return value.strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown"


def _cpu_count() -> int:
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def _cpu_quota() -> float | None:
    """CPUs granted by a cgroup v2 quota (containers, CI runners), None when unlimited or unknown."""
    try:
        quota, period = Path("/sys/fs/cgroup/cpu.max").read_text(encoding="ascii").split()[:2]
        return None if quota == "max" else round(int(quota) / int(period), 2)
    except (OSError, ValueError):
        return None


def _plugin_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("pytest-shopflow-perf")
    except PackageNotFoundError:
        return "unknown"


def git_commit(cwd: Path | None = None) -> str | None:
    """The commit being measured (``git rev-parse HEAD``), or None outside a git checkout or without git."""
    try:
        completed = subprocess.run(
            ["git", "rev-parse", "--verify", "HEAD"],
            cwd=cwd,
            capture_output=True,
            text=True,
            timeout=5,
            stdin=subprocess.DEVNULL,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    commit = completed.stdout.strip()
    if completed.returncode != 0 or not re.fullmatch(r"[0-9a-f]{40}|[0-9a-f]{64}", commit):
        return None
    return commit
