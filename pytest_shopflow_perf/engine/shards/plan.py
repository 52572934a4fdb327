"""The shard plan: one profile split into N profiles whose sum is the profile asked for.

Users, stage targets, ``max_users`` and ``iterations`` are divided with the remainder spread
over the first shards; an arrival rate is divided evenly, and each shard takes every N-th
arrival of the whole schedule (``Engine(shard=(i, n))``), so the shards' arrivals together are
exactly the schedule of one process. User ids stay those of one process (shard i of n runs
users i, i + n, ...), and each user's random is seeded from ``--perf-seed`` and its id, so a
seeded run is reproducible for a given number of shards.
"""

from __future__ import annotations

import dataclasses
import math
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pytest_shopflow_perf.profile.resolve import LoadProfile


def usable_cores() -> int:
    """Cores this process may run on (its CPU affinity, as taskset or a container sets it)."""
    import os

    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return max(1, os.cpu_count() or 1)


def resolve_workers(workers: int | str, base_url: str) -> int:
    """``"auto"``: one shard per core, minus the core that a target on this machine (loopback) needs."""
    if workers != "auto":
        return int(workers)
    from urllib.parse import urlsplit

    from pytest_shopflow_perf.target.policy import is_loopback_host

    local = is_loopback_host(urlsplit(base_url).hostname or "")
    return max(1, usable_cores() - (1 if local else 0))


def split_count(total: int, parts: int) -> list[int]:
    """``total`` in ``parts`` whole shares, the remainder on the first ones: 5 in 2 is [3, 2]."""
    base, remainder = divmod(total, parts)
    return [base + (1 if index < remainder else 0) for index in range(parts)]


def _split_level(level: float, parts: int, *, whole: bool) -> list[float]:
    """A stage target in shares: users as whole numbers (remainder first), rates evenly."""
    if whole and float(level).is_integer():
        return [float(share) for share in split_count(int(level), parts)]
    return [level / parts] * parts


def shard_count(profile: LoadProfile, workers: int) -> int:
    """How many shards the profile can use: no shard without a user, an iteration or a user slot."""
    # open: no shard without a user slot; closed: none without a user
    count = min(workers, profile.max_users if profile.is_open else max(1, math.ceil(profile.peak)))
    if profile.iterations is not None:
        count = min(count, profile.iterations)
    return max(1, count)


def plan_shards(profile: LoadProfile, workers: int) -> list[LoadProfile]:
    """The profile of each shard, in shard order (``Engine(shard=(index, len(plan)))`` runs each)."""
    count = shard_count(profile, workers)
    if count == 1:
        return [dataclasses.replace(profile, workers=1)]
    whole = not profile.is_open
    starts = _split_level(profile.start, count, whole=whole)
    stage_shares = [_split_level(target, count, whole=whole) for _, target in profile.stages]
    max_users = split_count(profile.max_users, count)
    iterations = split_count(profile.iterations, count) if profile.iterations is not None else None
    plans = []
    for index in range(count):
        stages = tuple(
            (duration, shares[index]) for (duration, _), shares in zip(profile.stages, stage_shares, strict=True)
        )
        peak = max([starts[index], *(target for _, target in stages)])
        plans.append(
            dataclasses.replace(
                profile,
                start=starts[index],
                stages=stages,
                users=max(1, math.ceil(peak)) if whole else profile.users,
                rate=None if profile.rate is None else profile.rate / count,
                max_users=max_users[index],
                iterations=None if iterations is None else iterations[index],
                workers=1,
            )
        )
    return plans
