"""Run the engine directly (no pytest plugin in between) in the plugin's own tests."""

from __future__ import annotations

from typing import Any

import anyio

from pytest_shopflow_perf.engine.engine import Engine
from pytest_shopflow_perf.profile.resolve import LoadProfile, Source, resolve_profile
from pytest_shopflow_perf.result.model import LoadResult
from pytest_shopflow_perf.target.policy import TargetPolicy

# The mock transports of these tests answer for "http://test"; any other host stays refused.
MOCK_POLICY = TargetPolicy(["test"])


def profile(**marker: Any) -> LoadProfile:
    empty = Source("none", {})
    return resolve_profile(ini=empty, marker=Source("@pytest.mark.load", marker), env=empty, cli=empty, seed=1)


def run_sharded(journeys: Any, *, workers: int, base_url: str, **marker: Any) -> LoadResult:
    """The same run on ``workers`` shard processes (``workers=N``), merged by the coordinator."""
    from pytest_shopflow_perf.engine.shards.coordinator import ShardedEngine

    engine = ShardedEngine(profile(**marker), journeys, workers=workers, base_url=base_url)
    return anyio.run(engine.run)


def run(journeys: Any, *, base_url: str = "http://test", **kwargs: Any) -> LoadResult:
    """``run(journey, users=2, duration=1, transport_factory=...)``: engine kwargs and marker keys."""
    engine_keys = {
        "transport_factory",
        "on_start",
        "on_stop",
        "on_progress",
        "watchdog",
        "on_clock_start",
        "window_detail",
        "target_policy",
        "http_transport",
    }
    engine_kwargs = {k: kwargs.pop(k) for k in list(kwargs) if k in engine_keys}
    engine_kwargs.setdefault("target_policy", MOCK_POLICY)
    engine = Engine(profile(**kwargs), journeys, base_url=base_url, **engine_kwargs)
    return anyio.run(engine.run)
