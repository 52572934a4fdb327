"""The ShopFlow suite's own journeys, unchanged, under both clients: same endpoints, checks, no errors.

Not a load scenario (no ``load`` mark): a short, bounded run of each client against the reference
service, so that a journey the lean client cannot run fails the ordinary test suite.
"""

from __future__ import annotations

from typing import Any

import pytest
from journeys import SHOPPING_MIX, login
from support.engine import run

from pytest_shopflow_perf.target.policy import TargetPolicy


async def login_without_thinking(user: Any) -> None:
    user.state["think"] = 0.0  # the journeys' think times scaled to nothing: a short run
    await login(user)


@pytest.mark.parametrize("client", ["httpx", "fast"])
def test_the_shopping_mix_runs_unchanged_under_each_client(shopflow_service: str, client: str) -> None:
    result = run(
        SHOPPING_MIX,
        base_url=shopflow_service,
        on_start=login_without_thinking,
        users=1,  # one seeded user: the same sequence of journeys every run, checkout included
        iterations=40,
        duration=60,
        target_policy=TargetPolicy(),
        client=client,
    )
    assert result.generator.client == client
    assert result.errors == 0, (result.errors_by_kind, result.extra.get("exceptions"))
    assert result.iterations == 40
    # every journey of the mix ran (browse 6 : search 3 : checkout 1, the seeded user's 40 choices)
    assert {"POST /api/login", "GET /api/products", "GET /api/products/{id}", "GET /api/search"} <= set(
        result.endpoints
    )
    assert {"POST /api/cart/items", "GET /api/cart", "POST /api/checkout"} <= set(result.endpoints)
    assert result.endpoints["POST /api/login"].requests == 1
    assert all(check.fails == 0 for check in result.checks.values()), result.checks
    assert {"login succeeds", "category page lists products", "search finds products"} <= set(result.checks)
