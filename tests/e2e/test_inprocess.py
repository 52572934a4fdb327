"""In-process smoke runs (``load.run(..., app=...)``): the ShopFlow journeys against the real app, no server."""

from __future__ import annotations

from pathlib import Path

import pytest

pytest_plugins = ["pytester"]
INNER_ARGS = ("-p", "no:cacheprovider", "-o", "asyncio_default_fixture_loop_scope=function")


def test_shopflow_journeys_run_in_process(pytester: pytest.Pytester) -> None:
    """Catches drift between the suite's journeys and the service's API in plain (unit) CI."""
    pytester.syspathinsert(str(pytester.path))
    journeys = (Path(__file__).parents[1] / "performance" / "journeys.py").read_text()
    pytester.makepyfile(
        journeys=journeys,
        test_smoke="""
import pytest
from journeys import SHOPPING_MIX, login, hurried_login
from pytest_shopflow_perf.service import create_app

@pytest.mark.load(users=3, duration="2s")
def test_smoke(load):
    result = load.run(SHOPPING_MIX, on_start=hurried_login, app=create_app())
    assert result.requests > 20
    assert result.errors == 0, (result.errors_by_kind, result.extra.get("exceptions"))
    assert {"POST /api/login", "GET /api/products", "GET /api/products/{id}"} <= set(result.endpoints)
    assert all(count.fails == 0 for count in result.checks.values()), result.checks
""",
    )
    result = pytester.runpytest_subprocess(*INNER_ARGS)
    result.assert_outcomes(passed=1)


def test_apps_without_lifespan_support_still_run(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
import pytest

async def app(scope, receive, send):
    assert scope["type"] == "http", "no lifespan here"
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"ok"})

async def journey(user):
    await user.client.get("/")

@pytest.mark.load(users=1, duration="500ms")
def test_x(load):
    assert load.run(journey, app=app).requests > 5
"""
    )
    result = pytester.runpytest_subprocess(*INNER_ARGS)
    result.assert_outcomes(passed=1)
