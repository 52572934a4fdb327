"""The capacity search as a pure function: levels against a service whose limit the test sets."""

from __future__ import annotations

import json

import pytest

from pytest_shopflow_perf import Capacity, CapacityError, CapacityStep, assert_no_regression
from pytest_shopflow_perf.verdicts.baseline import BaselineError
from pytest_shopflow_perf.verdicts.capacity.baseline import (
    append_capacity,
    capacity_path,
    compare_capacity,
    load_capacity,
)
from pytest_shopflow_perf.verdicts.capacity.search import search


def service(limit: float, saturates_at: float = float("inf")):
    """A level passes below ``limit``; at ``saturates_at`` and above the generator is the bottleneck."""
    levels: list[float] = []

    def run_level(level: float) -> CapacityStep:
        levels.append(level)
        return CapacityStep(level=level, passed=level <= limit, saturated=level >= saturates_at)

    return run_level, levels


def test_geometric_steps_then_bisection_find_the_limit_within_the_resolution() -> None:
    run_level, levels = service(limit=340)
    capacity = search(run_level, model="rate", start=50, max=10_000, factor=2.0, refine=3)
    assert levels == [50, 100, 200, 400, 300, 350, 325]
    assert capacity.max_sustainable == 325
    assert capacity.limit == "service"
    assert capacity.breaking is not None
    assert capacity.breaking.level == 350
    assert 340 - 325 <= (400 - 200) / 2**3  # within the resolution the refinements give


def test_users_are_whole_numbers_and_bisection_stops_between_neighbours() -> None:
    run_level, levels = service(limit=5)
    capacity = search(run_level, model="users", start=1, max=100, factor=2.0, refine=5)
    assert levels == [1, 2, 4, 8, 6, 5]
    assert capacity.max_sustainable == 5
    assert all(level == int(level) for level in levels)


def test_a_saturated_generator_ends_the_search_without_claiming_a_service_limit() -> None:
    run_level, levels = service(limit=10_000, saturates_at=400)
    capacity = search(run_level, model="rate", start=50, max=10_000)
    assert capacity.limit == "generator"
    assert capacity.max_sustainable == 200
    assert capacity.breaking is None
    assert levels == [50, 100, 200, 400]


def test_max_passing_is_the_limit_max() -> None:
    run_level, levels = service(limit=10_000)
    capacity = search(run_level, model="rate", start=100, max=300)
    assert levels == [100, 200, 300]
    assert (capacity.limit, capacity.max_sustainable) == ("max", 300)


def test_a_first_level_that_fails_sustains_nothing() -> None:
    run_level, levels = service(limit=10)
    capacity = search(run_level, model="rate", start=50, max=1000)
    assert levels == [50]
    assert capacity.max_sustainable is None
    assert capacity.limit == "service"


@pytest.mark.parametrize(
    ("kwargs", "problem"),
    [
        ({"model": "threads"}, "expected 'rate'"),
        ({"start": 0}, "above 0"),
        ({"max": 10}, "at least start"),
        ({"factor": 1.0}, "factor > 1"),
        ({"refine": -1}, "whole number"),
        ({"start": float("nan")}, "finite number"),
    ],
)
def test_a_search_that_cannot_run_says_why(kwargs: dict[str, object], problem: str) -> None:
    arguments: dict[str, object] = {"model": "rate", "start": 50, "max": 1000, "factor": 2.0, "refine": 2, **kwargs}
    with pytest.raises(CapacityError, match=problem):
        search(service(1)[0], **arguments)  # type: ignore[arg-type]


def record(sustainable: float | None, breaking: float | None = None, limit: str = "service") -> dict[str, object]:
    return {
        "model": "rate",
        "max_sustainable": sustainable,
        "limit": limit,
        "breaking": {"level": breaking} if breaking is not None else None,
        "steps": [],
    }


POLICY = {"minor": 0.10, "major": 0.25, "critical": 0.50}


def test_a_drop_beyond_the_resolution_is_a_tier_and_a_rise_never_fails() -> None:
    stored = [record(500, 550), record(520, 560), record(500, 550)]
    assert compare_capacity(stored, record(300, 325), **POLICY)["tier"] == "major"
    assert compare_capacity(stored, record(200, 225), **POLICY)["tier"] == "critical"
    assert compare_capacity(stored, record(None, 50), **POLICY)["tier"] == "critical"
    assert compare_capacity(stored, record(900, 950), **POLICY)["tier"] == "none"
    within = compare_capacity(stored, record(460, 480), **POLICY)  # 8 % below, within the 50 of resolution
    assert within["tier"] == "none"
    assert "resolution" in within["note"]


def test_a_generator_limited_search_is_inconclusive_and_never_stored(tmp_path) -> None:
    stored = [record(500, 550)]
    verdict = compare_capacity(stored, record(200, limit="generator"), **POLICY)
    assert verdict["tier"] == "inconclusive"
    path = capacity_path(tmp_path, "tests/test_x.py::test_cap")
    assert not append_capacity(path, "tests/test_x.py::test_cap", record(200, limit="generator"), keep=5)
    assert not path.exists()


def test_stored_searches_keep_the_newest_and_refuse_a_corrupt_file(tmp_path) -> None:
    nodeid = "tests/test_x.py::test_cap"
    path = capacity_path(tmp_path, nodeid)
    assert path.name == "tests_test_x.py__test_cap-capacity.json"
    for level in (100, 200, 300):
        assert append_capacity(path, nodeid, record(level, level + 50), keep=2)
    stored = load_capacity(path, nodeid=nodeid)
    assert stored is not None
    assert [run["max_sustainable"] for run in stored["runs"]] == [200, 300]
    json.loads(path.read_text())  # plain JSON
    path.write_text("{not json")
    with pytest.raises(BaselineError, match="corrupt capacity baseline"):
        append_capacity(path, nodeid, record(400, 450), keep=2)
    assert path.read_text() == "{not json"  # never overwritten


def test_assert_no_regression_fails_a_capacity_drop_at_fail_on() -> None:
    capacity = Capacity(
        model="rate",
        slo=("p(95)<60ms",),
        max_sustainable=300,
        limit="service",
        steps=(),
        regression={"tier": "major", "change": -0.4, "baseline_max_sustainable": 500, "baseline_runs": 3},
    )
    with pytest.raises(AssertionError, match=r"capacity regression: major .* 300 arrivals/s against 500 stored"):
        assert_no_regression(capacity)
    assert_no_regression(capacity, fail_on="critical")


def test_stored_capacities_of_another_machine_or_step_length_are_inconclusive() -> None:
    here = {"fingerprint": "sha256:aaaa", "step_duration_s": 6.0}
    stored = [{**record(500, 550), "conditions": {"fingerprint": "sha256:bbbb", "step_duration_s": 6.0}}]
    current = {**record(100, 150), "conditions": here}
    verdict = compare_capacity(stored, current, **POLICY)
    assert verdict["tier"] == "inconclusive"
    assert "another machine" in verdict["note"]
    stored.append({**record(500, 550), "conditions": here})
    assert compare_capacity(stored, current, **POLICY)["tier"] == "critical"
