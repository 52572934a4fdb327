"""Was the machine measurably busier during this run than during the baseline's?

A slowdown measured while another job took a core says nothing of the service:
reported as critical, it blames an unchanged service (seen on a shared runner:
p99 4.2 -> 6.4 ms with nothing changed). The run records what else the machine
was doing (metrics/machine.py); this compares it with the baseline runs' median
and names what differs, so the verdict can say "inconclusive" and why.

The rules, each alone enough:
- processes other than the generator and the target used at least
  ``max(FOREIGN_MIN_CORES, FOREIGN_SHARE * cores)`` more cores than during the baseline;
- the hypervisor stole at least ``STEAL_MORE`` more of the CPU time;
- the micro-benchmark around the run was at least ``BENCH_SLOWER`` times slower.
A quieter machine than the baseline's is never a reason: a faster run is just faster.
"""

from __future__ import annotations

import statistics
from collections.abc import Mapping, Sequence
from typing import Any, Final

__all__ = ["busier_than_baseline"]

FOREIGN_MIN_CORES: Final = 0.25
FOREIGN_SHARE: Final = 0.05
STEAL_MORE: Final = 0.05
BENCH_SLOWER: Final = 1.3


def _load(run: Mapping[str, Any]) -> Mapping[str, Any] | None:
    env = run.get("environment")
    load = env.get("machine_load") if isinstance(env, Mapping) else None
    return load if isinstance(load, Mapping) and load else None


def _number(value: object) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def _median_of(loads: Sequence[Mapping[str, Any]], pick: Any) -> float | None:
    values = [v for v in (pick(load) for load in loads) if v is not None]
    return statistics.median(values) if values else None


def _bench(load: Mapping[str, Any]) -> float | None:
    bench = load.get("bench_us")
    if not isinstance(bench, Mapping):
        return None
    values = [v for v in (_number(bench.get("before")), _number(bench.get("after"))) if v is not None and v > 0]
    return statistics.fmean(values) if values else None


def _who(load: Mapping[str, Any]) -> str:
    top = load.get("foreign_top")
    if not isinstance(top, list) or not top:
        return ""
    shown = ", ".join(
        f"{p.get('name', '?')} pid {p.get('pid', '?')} {float(p.get('cpu_cores', 0)):.2f}"
        for p in top
        if isinstance(p, Mapping)
    )
    return f" ({shown})" if shown else ""


def busier_than_baseline(runs: Sequence[Mapping[str, Any]], current: Mapping[str, Any]) -> str:
    """Why this run's machine was busier than the baseline's, or "" when it was not (or nothing tells)."""
    mine = _load(current)
    theirs = [load for load in (_load(run) for run in runs) if load is not None]
    if mine is None or not theirs:
        return ""
    reasons: list[str] = []
    cores = _number(mine.get("cpu_count")) or 1.0
    foreign = _number(mine.get("foreign_cpu_cores"))
    base_foreign = _median_of(theirs, lambda load: _number(load.get("foreign_cpu_cores")))
    more = max(FOREIGN_MIN_CORES, FOREIGN_SHARE * cores)
    if foreign is not None and base_foreign is not None and foreign - base_foreign >= more:
        reasons.append(
            f"other processes used {foreign:.2f} of {cores:.0f} cores{_who(mine)}, "
            f"{base_foreign:.2f} during the baseline"
        )
    steal = _number(mine.get("steal_share"))
    base_steal = _median_of(theirs, lambda load: _number(load.get("steal_share")))
    if steal is not None and base_steal is not None and steal - base_steal >= STEAL_MORE:
        reasons.append(f"the hypervisor stole {steal:.0%} of the CPU time, {base_steal:.0%} during the baseline")
    bench, base_bench = _bench(mine), _median_of(theirs, _bench)
    if bench is not None and base_bench is not None and bench >= BENCH_SLOWER * base_bench:
        reasons.append(f"a {bench / 1000:.2f} ms micro-benchmark took {bench / base_bench:.1f}x the baseline's")
    return "; ".join(reasons)
