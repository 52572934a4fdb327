"""Failure scenarios against the real ShopFlow service: kill its redis-server under load."""

from __future__ import annotations

import httpx
from support.engine import run

from pytest_shopflow_perf import assert_error_rate, assert_recovery
from pytest_shopflow_perf.faults.actions import action
from pytest_shopflow_perf.faults.run import FaultRun
from pytest_shopflow_perf.verdicts import recovery


async def browse(user):
    await user.client.get("/api/products", params={"page": user.random.randint(1, 20)})
    await user.client.get(f"/api/products/{user.random.randint(1, 5000)}")
    await user.think(0.02, 0.05)


def test_kill_redis_under_load_degrades_without_failing(shopflow_with_redis) -> None:
    service, redis = shopflow_with_redis
    assert httpx.get(f"{service.base_url}/health", trust_env=False).json()["cache"] == "redis"
    kill = action("kill redis-server", redis.kill, redis.restart, at="3s", duration="3s")
    with FaultRun([kill]) as fault_run:
        result = run(browse, base_url=service.base_url, users=6, duration="12s", on_clock_start=fault_run.clock_started)
    fault_run.annotate(result)
    recovery.annotate(result)
    assert redis.kills == 1
    assert "fault_errors" not in result.extra
    assert result.requests > 500
    assert_error_rate(result, max="1%")  # the service serves from the database: slower, not failing
    assert_recovery(result, within="5s", max_error_rate_during="1%")
    (entry,) = result.extra["recovery"]
    assert entry["during"]["requests"] > 100
    health = httpx.get(f"{service.base_url}/health", trust_env=False).json()
    assert health["cache"] == "redis"  # reconnected after the restart
