"""The shard plan: the shards together are the profile asked for (users, rates, arrivals, iterations)."""

from __future__ import annotations

import pytest
from support.engine import profile

from pytest_shopflow_perf.engine.arrivals import arrival_times, dropped_iterations
from pytest_shopflow_perf.engine.shards.plan import plan_shards, resolve_workers, split_count, usable_cores


def test_remainders_go_to_the_first_shards():
    assert split_count(5, 2) == [3, 2]
    assert split_count(7, 3) == [3, 2, 2]
    assert split_count(2, 4) == [1, 1, 0, 0]


def test_closed_model_users_and_stages_add_up_at_every_stage():
    whole = profile(stages=[("2s", 5), ("3s", 11), ("1s", 0)])
    shards = plan_shards(whole, 3)
    assert len(shards) == 3
    for stage in range(len(whole.stages)):
        assert sum(shard.stages[stage][1] for shard in shards) == whole.stages[stage][1]
        assert {shard.stages[stage][0] for shard in shards} == {whole.stages[stage][0]}
    assert [shard.users for shard in shards] == [4, 4, 3]
    assert all(shard.workers == 1 and shard.duration == whole.duration for shard in shards)


def test_user_ids_of_the_shards_are_those_of_one_process():
    """Shard i of n runs users i, i + n, ...: user.id partitions test data as in one process."""
    shards = plan_shards(profile(users=5), 2)
    ids = sorted(local * len(shards) + index for index, shard in enumerate(shards) for local in range(shard.users))
    assert ids == [0, 1, 2, 3, 4]


def test_no_shard_without_a_user_or_an_iteration():
    assert len(plan_shards(profile(users=1), 4)) == 1
    assert len(plan_shards(profile(users=10, iterations=3), 4)) == 3
    assert len(plan_shards(profile(rate=50, max_users=2), 4)) == 2


def test_iterations_and_max_users_are_split_with_their_remainders():
    closed = plan_shards(profile(users=4, iterations=7), 2)
    assert [shard.iterations for shard in closed] == [4, 3]
    opened = plan_shards(profile(rate=100, max_users=5, iterations=9), 2)
    assert [shard.max_users for shard in opened] == [3, 2]
    assert [shard.iterations for shard in opened] == [5, 4]


@pytest.mark.parametrize("count", [2, 3])
def test_the_shards_arrivals_together_are_the_whole_schedule(count: int):
    """A ramp 0 -> 40/s, a plateau, a ramp down: every intended start, none twice, none moved."""
    whole = profile(rate=40, ramp_up="3s", duration="8s", ramp_down="2s")
    expected = [t for t in arrival_times(whole.start, whole.stages) if t < whole.duration]
    shards = plan_shards(whole, count)
    merged = sorted(
        t
        for index, shard in enumerate(shards)
        for t in arrival_times(shard.start, shard.stages, index / count)
        if t < shard.duration
    )
    assert len(merged) == len(expected)
    assert max(abs(a - b) for a, b in zip(merged, expected, strict=True)) < 1e-6
    assert [shard.rate for shard in shards] == [40 / count] * count


def test_dropped_iterations_of_the_shards_add_up_to_those_of_one_process():
    whole = profile(rate=30, duration="4s")
    shards = plan_shards(whole, 2)
    planned_whole = dropped_iterations(whole, 2.5, 0)
    assert sum(dropped_iterations(shard, 2.5, 0, index / 2) for index, shard in enumerate(shards)) == planned_whole


def test_auto_is_one_per_core_minus_one_for_a_target_here():
    cores = usable_cores()
    assert resolve_workers("auto", "http://127.0.0.1:8000") == max(1, cores - 1)
    assert resolve_workers("auto", "https://shop.example.com") == cores
    assert resolve_workers(3, "http://127.0.0.1:8000") == 3
