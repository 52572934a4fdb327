"""Fault knobs, admin access control and the cache paths of the ShopFlow service."""

from __future__ import annotations

import json
import time

import anyio
import pytest

from pytest_shopflow_perf.service import FaultSettings, ServiceConfig
from pytest_shopflow_perf.service.cache import MemoryCache
from pytest_shopflow_perf.service.faults import FaultError, Faults

pytestmark = pytest.mark.anyio


async def _timed_get(shop, url: str) -> tuple[int, float]:
    started = time.perf_counter()
    r = await shop.client.get(url)
    return r.status_code, time.perf_counter() - started


async def test_latency_fault_delays_matching_routes_only(shop):
    faults = {"latency": {"/api/categories": {"fixed_ms": 80, "jitter_ms": 0}}}
    r = await shop.client.put("/admin/faults", json=faults)
    assert r.status_code == 200
    assert r.json()["latency"] == {"/api/categories": {"fixed_ms": 80.0, "jitter_ms": 0.0}}
    status, slow = await _timed_get(shop, "/api/categories")
    assert status == 200
    assert slow >= 0.08
    await shop.client.get("/api/products/1")
    status, fast = await _timed_get(shop, "/api/products/1")
    assert status == 200
    assert fast < 0.05

    await shop.client.delete("/admin/faults")
    status, cleared = await _timed_get(shop, "/api/categories")
    assert status == 200
    assert cleared < 0.05


async def test_error_ratio_is_applied_with_the_longest_prefix(shop):
    faults = {"error_ratio": {"*": 1.0, "/api/products": 0.3, "/api/products/5": 0.0}}
    assert (await shop.client.put("/admin/faults", json=faults)).status_code == 200
    statuses = [(await shop.client.get("/api/products/7")).status_code for _ in range(300)]
    failures = statuses.count(503)
    assert set(statuses) == {200, 503}
    assert 60 <= failures <= 120, failures  # 30 % of 300, seeded RNG
    injected = await shop.client.get("/api/categories")
    assert injected.status_code == 503
    assert injected.json()["error"]["code"] == "injected_fault"
    assert all([(await shop.client.get("/api/products/5")).status_code == 200 for _ in range(20)])
    # "*" never locks out health checks or the admin API itself
    assert (await shop.client.get("/health")).status_code == 200
    assert (await shop.client.delete("/admin/faults")).status_code == 200
    assert (await shop.client.get("/api/categories")).status_code == 200


async def test_fault_randomness_is_seeded(start_service):
    async def pattern() -> list[int]:
        async with start_service(faults=FaultSettings.from_json({"error_ratio": {"/api": 0.5}})) as shop:
            return [(await shop.client.get("/api/categories")).status_code for _ in range(40)]

    first = await pattern()
    assert first == await pattern()
    assert 503 in first
    assert 200 in first


async def test_faults_from_the_environment():
    config = ServiceConfig.from_env(
        {"SHOPFLOW_FAULTS": json.dumps({"db_delay_ms": 20}), "SHOPFLOW_PRODUCTS": "50", "SHOPFLOW_SEED": "9"}
    )
    assert config.faults.db_delay_ms == 20
    assert config.products == 50
    assert config.seed == 9
    assert config.users == 1000
    assert config.db_path is None
    assert config.redis_url is None
    with pytest.raises(ValueError, match="SHOPFLOW_FAULTS"):
        ServiceConfig.from_env({"SHOPFLOW_FAULTS": "{oops"})
    with pytest.raises(ValueError, match="SHOPFLOW_USERS"):
        ServiceConfig.from_env({"SHOPFLOW_USERS": "many"})


@pytest.mark.parametrize(
    "faults",
    [
        [],
        {"latency": {"/api": 50}},
        {"latency": {"api": {"fixed_ms": 5}}},
        {"latency": {"/api": {"fixed_ms": -1}}},
        {"latency": {"/api": {"fixed_ms": 5, "extra": 1}}},
        {"error_ratio": {"/api": 1.5}},
        {"error_ratio": {"/api": "half"}},
        {"db_delay_ms": True},
        {"cache_down": "yes"},
        {"unknown": 1},
    ],
)
async def test_malformed_faults_are_422(shop, faults):
    r = await shop.client.put("/admin/faults", json=faults)
    assert r.status_code == 422, r.text
    assert r.json()["error"]["code"] in {"invalid_faults", "invalid_body"}
    assert (await shop.client.get("/admin/faults")).json()["error_ratio"] == {}


@pytest.mark.parametrize("client", [("10.0.0.5", 123), ("192.168.1.9", 80), ("::2", 5), ("testclient", 1)])
async def test_admin_refuses_non_loopback_clients(start_service, client):
    async with start_service(client=client) as shop:
        for method, url in [("GET", "/admin/faults"), ("PUT", "/admin/faults"), ("DELETE", "/admin/faults"),
                            ("POST", "/admin/cache/flush"), ("PUT", "/admin/products/1/stock"),
                            ("GET", "/admin/stats")]:  # fmt: skip
            r = await shop.client.request(method, url, json={"error_ratio": {"*": 1.0}})
            assert r.status_code == 403, (method, url)
            assert r.json()["error"]["code"] == "forbidden"
        assert (await shop.client.get("/api/products/1")).status_code == 200


@pytest.mark.parametrize("client", [("127.0.0.1", 1), ("127.8.9.10", 2), ("::1", 3), ("::ffff:127.0.0.1", 4)])
async def test_admin_accepts_loopback_clients(start_service, client):
    async with start_service(client=client) as shop:
        assert (await shop.client.get("/admin/faults")).status_code == 200


async def test_db_delay_does_not_freeze_the_event_loop(shop):
    await shop.client.get("/api/products/1")  # cached: needs no database
    await shop.client.put("/admin/faults", json={"db_delay_ms": 300})
    headers = await shop.login(5)  # login itself is delayed
    timings: dict[str, float] = {}

    async def timed(name: str, url: str, headers: dict[str, str] | None = None) -> None:
        started = time.perf_counter()
        assert (await shop.client.get(url, headers=headers)).status_code == 200
        timings[name] = time.perf_counter() - started

    started = time.perf_counter()
    async with anyio.create_task_group() as tg:
        for i in range(6):
            tg.start_soon(timed, f"cart{i}", "/api/cart", headers)
        tg.start_soon(timed, "cached", "/api/products/1")
    total = time.perf_counter() - started
    assert all(timings[f"cart{i}"] >= 0.3 for i in range(6))
    assert total < 1.0, "database delays must overlap, not queue"
    assert timings["cached"] < 0.2, "a request that needs no database must not wait"


async def test_cache_down_fault_degrades_but_serves(shop):
    await shop.client.get("/api/products/3")
    await shop.client.put("/admin/faults", json={"cache_down": True})
    assert (await shop.client.get("/health")).json()["cache"] == "degraded"
    misses = shop.service.cache.misses
    for _ in range(3):
        assert (await shop.client.get("/api/products/3")).status_code == 200
    assert shop.service.cache.misses == misses, "the cache is bypassed while down"
    await shop.client.delete("/admin/faults")
    assert (await shop.client.get("/health")).json()["cache"] == "memory"


async def test_cache_serves_hot_reads_and_flush_empties_it(shop):
    stats = (await shop.client.get("/admin/stats")).json()["cache"]
    assert stats["status"] == "memory"
    for _ in range(5):
        await shop.client.get("/api/products", params={"page": 2})
    stats = (await shop.client.get("/admin/stats")).json()["cache"]
    assert stats["hits"] == 4
    assert stats["misses"] == 1
    assert (await shop.client.post("/admin/cache/flush")).json() == {"flushed": True}
    await shop.client.get("/api/products", params={"page": 2})
    assert (await shop.client.get("/admin/stats")).json()["cache"]["misses"] == 2


async def test_concurrent_misses_share_one_query(shop):
    calls = 0
    read = shop.service._read

    async def counting_read(fn):
        nonlocal calls
        calls += 1
        await anyio.sleep(0.05)
        return await read(fn)

    shop.service._read = counting_read
    async with anyio.create_task_group() as tg:
        for _ in range(10):
            tg.start_soon(shop.client.get, "/api/products/77")
    assert calls == 1


async def test_memory_cache_expiry_and_bound():
    now = [0.0]
    cache = MemoryCache(max_entries=2, clock=lambda: now[0])
    await cache.set("a", b"1", ttl=10)
    await cache.set("b", b"2", ttl=10)
    await cache.set("c", b"3", ttl=10)  # evicts the oldest
    assert await cache.get("a") is None
    assert await cache.get("c") == b"3"
    now[0] = 11
    assert await cache.get("b") is None
    assert cache.stats() == {"hits": 1, "misses": 2, "errors": 0}


def test_fault_matching_rules():
    faults = Faults(FaultSettings.from_json({"error_ratio": {"*": 1.0, "/api/cart/": 0.0}}), seed=1)
    assert faults.should_fail("/api/products")
    assert not faults.should_fail("/api/cart/items")
    assert not faults.should_fail("/health")
    assert not faults.should_fail("/admin/faults")
    faults.settings = FaultSettings.from_json({"error_ratio": {"/api/products": 1.0, "/health": 1.0}})
    assert faults.should_fail("/api/products")
    assert faults.should_fail("/api/products/3")
    assert not faults.should_fail("/api/productsX")
    assert faults.should_fail("/health")
    faults.settings = FaultSettings.from_json({"latency": {"/": {"fixed_ms": 10, "jitter_ms": 30}}})
    delays = [faults.request_delay("/api") for _ in range(200)]
    assert min(delays) == 0.0
    assert 0.035 < max(delays) <= 0.040
    with pytest.raises(FaultError):
        FaultSettings.from_text("not json")
