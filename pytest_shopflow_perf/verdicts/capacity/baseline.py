"""The capacity a test found, kept next to its baseline and compared with the next search.

``baselines/<sanitised node id>-capacity.json``::

    {"schema": "shopflow-perf/capacity-baseline/1", "test": "<node id>",
     "runs": [<Capacity.to_dict()>, ...]}   # oldest first, the newest ``keep``

A drop of the sustainable level is a regression tier by the regression policy's thresholds
(minor/major/critical on the relative drop from the baseline's median); a rise never fails.
A drop no larger than the search's own resolution (the gap between the level that passed and
the one that failed) is not a finding: the search cannot tell those levels apart. A search
the generator limited found no service capacity: it is neither saved nor judged.
"""

from __future__ import annotations

import json
import statistics
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Final

from pytest_shopflow_perf._atomic import write_atomically
from pytest_shopflow_perf.verdicts.baseline import BaselineError, _dumps_baseline, _lock, baseline_path

__all__ = ["CAPACITY_SCHEMA", "append_capacity", "capacity_path", "compare_capacity", "load_capacity"]

CAPACITY_SCHEMA: Final = "shopflow-perf/capacity-baseline/1"
_FIX = "restore it from version control (git checkout -- {path}) or move it away and record again"


def capacity_path(directory: Path, nodeid: str) -> Path:
    plain = baseline_path(directory, nodeid)
    return plain.with_name(plain.stem + "-capacity.json")


def load_capacity(path: Path, *, nodeid: str) -> dict[str, Any] | None:
    """The stored searches of a test; None when there are none. A file it cannot read is a BaselineError."""
    fix = _FIX.format(path=path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError) as exc:
        raise BaselineError(f"{path}: cannot read the capacity baseline ({exc}); {fix}") from exc
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise BaselineError(f"{path}: corrupt capacity baseline (invalid JSON: {exc}); {fix}") from exc
    if not isinstance(data, dict) or data.get("schema") != CAPACITY_SCHEMA or not isinstance(data.get("runs"), list):
        raise BaselineError(f"{path}: not a capacity baseline (expected schema {CAPACITY_SCHEMA!r}); {fix}")
    for index, run in enumerate(data["runs"]):
        sustainable = run.get("max_sustainable") if isinstance(run, dict) else "?"
        if not isinstance(run, dict) or not (sustainable is None or isinstance(sustainable, (int, float))):
            raise BaselineError(f"{path}: run {index} has no max_sustainable level; {fix}")
    if data.get("test") not in (None, nodeid):
        raise BaselineError(f"{path} holds the capacity of {data['test']!r}, not of {nodeid!r}")
    return data


def append_capacity(path: Path, nodeid: str, capacity: Mapping[str, Any], keep: int) -> bool:
    """Add a search to the file (atomically, locked); False when it found no service capacity to keep."""
    if capacity.get("limit") == "generator":
        return False
    with _lock(path):
        existing = load_capacity(path, nodeid=nodeid)
        runs = [*(existing or {}).get("runs", []), {k: v for k, v in capacity.items() if k != "regression"}]
        write_atomically(path, _dumps_baseline({"schema": CAPACITY_SCHEMA, "test": nodeid, "runs": runs[-keep:]}))
    return True


def _resolution(capacity: Mapping[str, Any]) -> float:
    """How far the true capacity may lie above the level found: up to the lowest failing level."""
    sustainable = capacity.get("max_sustainable")
    breaking = capacity.get("breaking") or {}
    if sustainable is None or "level" not in breaking:
        return 0.0
    return max(0.0, float(breaking["level"]) - float(sustainable))


def compare_capacity(
    runs: Sequence[Mapping[str, Any]], current: Mapping[str, Any], *, minor: float, major: float, critical: float
) -> dict[str, Any]:
    """The regression record of a search against the stored ones (``Capacity.regression``)."""
    same_model = [r for r in runs if r.get("limit") != "generator" and r.get("model") == current.get("model")]
    conditions = current.get("conditions") or {}
    usable = [r for r in same_model if not conditions or (r.get("conditions") or {}) == conditions]
    verdict: dict[str, Any] = {"tier": None, "change": None, "baseline_max_sustainable": None}
    verdict["baseline_runs"] = len(usable)
    if same_model and not usable:
        verdict.update(
            tier="inconclusive",
            note="the stored capacities were measured on another machine or with steps of another length "
            f"({conditions}); record this machine's with --perf-save-baseline",
        )
        return verdict
    if not usable:
        verdict["note"] = "no stored capacity of this model to compare with; record one with --perf-save-baseline"
        return verdict
    levels = [float(run.get("max_sustainable") or 0.0) for run in usable]
    base = statistics.median(levels)
    verdict["baseline_max_sustainable"] = base
    if current.get("limit") == "generator":
        verdict.update(
            tier="inconclusive",
            note="the generator saturated before the service broke: its capacity was not reached (add workers)",
        )
        return verdict
    now = float(current.get("max_sustainable") or 0.0)
    if base <= 0:
        verdict.update(tier="none", note="the stored capacity is 0: nothing to drop from")
        return verdict
    change = (now - base) / base
    verdict["change"] = round(change, 4)
    slack = max(_resolution(current), *(_resolution(run) for run in usable))
    drop = -change
    if now >= base - slack or drop <= minor:
        within = " (within the search's resolution)" if drop > 0 else ""
        verdict.update(tier="none", note=f"sustains {now:g} against {base:g} stored{within}")
        return verdict
    tier = "critical" if drop > critical else "major" if drop > major else "minor"
    verdict.update(tier=tier, note=f"sustains {now:g}, {drop * 100:.0f} % below the stored {base:g}")
    return verdict
