"""The shards folded into one ``LoadResult``: what every assertion, baseline and report reads.

Histograms add (per endpoint and per window: exact percentiles), counts add, errors by kind
add; the generator's figures are the worst shard's for lag, CPU and lateness and the sum for
users and iterations, saturated if any shard was (its reasons name the shard). ``result.shards``
keeps each shard's own figures, and a lost one with the time and why.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from pytest_shopflow_perf.engine.summary import summarize
from pytest_shopflow_perf.result.model import CheckCount, GeneratorStats, LoadResult, ShardRecord

if TYPE_CHECKING:
    from pytest_shopflow_perf.engine.shards.merged import MergedRecorder
    from pytest_shopflow_perf.engine.shards.wire import ShardFinal
    from pytest_shopflow_perf.profile.resolve import LoadProfile

MAX_EXCEPTION_SAMPLES = 10
_SUMMED = ("users_target", "users_started", "users_failed_to_start", "iterations", "late_iterations")
_WORST = ("loop_lag_p50_ms", "loop_lag_p99_ms", "loop_lag_max_ms", "cpu_percent", "cpu_max_percent", "max_lateness_ms")


def merge_generators(parts: Sequence[tuple[str, GeneratorStats]], peak_users: int) -> GeneratorStats:
    """One generator's figures from the shards': a saturated shard distorts what it measured."""
    if not parts:
        return GeneratorStats()
    first = parts[0][1]
    figures: dict[str, Any] = {name: max(getattr(g, name) for _, g in parts) for name in _WORST}
    figures.update({name: sum(getattr(g, name) for _, g in parts) for name in _SUMMED})
    return GeneratorStats(
        **figures,
        peak_users=peak_users,
        dropped_iterations=sum(g.dropped_iterations for _, g in parts),
        clamped_values=sum(g.clamped_values for _, g in parts),
        saturated=any(g.saturated for _, g in parts),
        reasons=tuple(f"{worker}: {reason}" for worker, g in parts for reason in g.reasons),
        client=first.client,
        transport=first.transport,
        event_loop=first.event_loop,
    )


def merge_extras(extras: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Exceptions by kind (counts added, the first traceback kept), refusals, counters and journey runs added."""
    merged: dict[str, Any] = {}
    samples: dict[str, dict[str, Any]] = {}
    for extra in extras:
        for sample in extra.get("exceptions", []):
            kept = samples.get(sample["kind"])
            if kept is not None:
                kept["count"] += sample["count"]
            elif len(samples) < MAX_EXCEPTION_SAMPLES:
                samples[sample["kind"]] = dict(sample)
        for key in ("unfinished_requests", "truncated_bodies", "fast_transport_delegated"):
            if extra.get(key):
                merged[key] = merged.get(key, 0) + extra[key]
        for row, runs in (extra.get("journey_runs") or {}).items():
            into_runs = merged.setdefault("journey_runs", {})
            into_runs[row] = into_runs.get(row, 0) + runs
        refused = extra.get("refused")
        if refused:
            into = merged.setdefault("refused", {"requests": 0, "hosts": {}})
            into["requests"] += refused["requests"]
            for host, count in refused["hosts"].items():
                into["hosts"][host] = into["hosts"].get(host, 0) + count
    if samples:
        merged["exceptions"] = list(samples.values())
    return merged


def merged_result(
    merged: MergedRecorder,
    finals: Mapping[int, ShardFinal],
    lost: Mapping[int, tuple[float, str]],
    *,
    profile: LoadProfile,
    workers: Sequence[str],
    started_at: str,
    stop_reason: str | None,
    base_url: str,
    test: str,
    environment: Mapping[str, Any],
) -> LoadResult:
    merged.complete([finals[index] for index in sorted(finals)])
    ends = [final.elapsed_s for final in finals.values()] + [elapsed for elapsed, _ in lost.values()]
    duration = max([*ends, 1e-9])
    endpoints, total = summarize(merged, duration, open_model=profile.is_open)
    generators = [(workers[i], GeneratorStats.from_dict(finals[i].generator)) for i in sorted(finals)]
    extra = merge_extras([finals[i].extra for i in sorted(finals)])
    if stop_reason:
        extra["stop_reason"] = stop_reason
    shards = []
    for index, worker in enumerate(workers):
        tally = merged.tallies[index]
        final = finals.get(index)
        lost_at = lost.get(index)
        shard_generator = GeneratorStats.from_dict(final.generator) if final is not None else GeneratorStats()
        note = ""
        if lost_at is not None:
            note = f"lost at {lost_at[0]:.1f} s ({lost_at[1]}); its requests until then are counted"
        elif shard_generator.saturated:
            note = "saturated: " + "; ".join(shard_generator.reasons)
        shards.append(
            ShardRecord(
                worker=worker,
                users=tally.peak_users if final is None else max(tally.peak_users, shard_generator.peak_users),
                requests=tally.requests,
                errors=tally.errors,
                generator=shard_generator,
                lost=lost_at is not None,
                note=note,
                lost_at_s=None if lost_at is None else round(lost_at[0], 3),
            )
        )
    generator = merge_generators(generators, sum(shard.users for shard in shards))
    if generator.users_failed_to_start and generator.users_failed_to_start >= generator.users_started:
        extra["start_failures"] = (
            f"every virtual user failed in on_start ({generator.users_failed_to_start} of "
            f"{generator.users_started}): no iteration ran"
        )
    checks = {name: CheckCount(passes, fails) for name, (passes, fails) in merged.checks().items()}
    return LoadResult(
        total=total,
        endpoints=endpoints,
        profile=profile.to_dict(),
        started_at=started_at,
        generator=generator,
        checks=checks,
        environment=environment,
        interrupted=stop_reason is not None,
        target=base_url,
        test=test,
        extra=extra,
        events={
            name: {"errors": event.errors, "errors_by_kind": dict(event.errors_by_kind)}
            for name, event in merged.events.items()
        },
        shards=shards,
    )
