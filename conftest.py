"""What the ShopFlow load suite shares; nothing here belongs to the plugin."""

from __future__ import annotations

import httpx
import pytest

SEEDED_CUSTOMER = ("customer0@shopflow.test", "secret0")


@pytest.fixture
def shopflow_test_data(load) -> None:
    """Fail fast, before any load, when the target lacks the suite's test data.

    The journeys log in as seeded customers and browse seeded products: a deployment
    without them would turn every iteration into errors and say nothing about performance.
    """
    with httpx.Client(base_url=load.base_url, timeout=10, trust_env=False) as client:
        try:
            health = client.get("/health")
        except httpx.TransportError as exc:
            pytest.fail(f"ShopFlow at {load.base_url} is unreachable ({exc}); start it or fix SHOPFLOW_BASE_URL")
        if health.status_code != 200:
            pytest.fail(f"ShopFlow at {load.base_url} is unhealthy: GET /health -> {health.status_code}")
        total = client.get("/api/products", params={"per_page": 1}).json().get("total", 0)
        login = client.post("/api/login", json=dict(zip(("email", "password"), SEEDED_CUSTOMER, strict=True)))
    if total < 100 or login.status_code != 200:
        pytest.fail(
            f"ShopFlow at {load.base_url} is not seeded for the load suite (products: {total}, login of "
            f"{SEEDED_CUSTOMER[0]}: HTTP {login.status_code}); see tests/performance/PLAN.md, test data"
        )
