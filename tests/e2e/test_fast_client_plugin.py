"""client="fast" as users meet it: the marker key and --perf-client, through the plugin, with pytester."""

from __future__ import annotations

import pytest

pytest_plugins = ["pytester"]

TESTS = """
import httpx
import pytest
from pytest_shopflow_perf import User
from pytest_shopflow_perf import FastClient

async def browse(user: User) -> None:
    assert isinstance(user.client, EXPECTED)
    r = await user.client.get("/api/products")
    item = user.random.choice(r.json()["items"])
    (await user.client.get(f"/api/products/{item['id']}")).raise_for_status()

@pytest.mark.load(users=2, duration="1s", client="fast")
def test_marker(load):
    result = load.run(browse)
    assert result.requests > 10 and result.errors == 0, result.extra
    assert result.generator.client == "fast"

@pytest.mark.load(users=2, duration="1s")
def test_option(load):
    result = load.run(browse)
    assert result.requests > 10 and result.errors == 0, result.extra
    assert result.generator.client == CLIENT
"""


@pytest.fixture(autouse=True)
def _quiet_pytest_asyncio(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PYTEST_ADDOPTS", "-o asyncio_default_fixture_loop_scope=function")


@pytest.mark.parametrize(("option", "client"), [((), "httpx"), (("--perf-client", "fast"), "fast")])
def test_client_fast_from_the_marker_and_the_command_line(
    pytester: pytest.Pytester, delay_server: str, option: tuple[str, ...], client: str
) -> None:
    expected = {"httpx": "httpx.AsyncClient", "fast": "FastClient"}[client]
    path = pytester.makepyfile(TESTS.replace("EXPECTED", expected).replace("CLIENT", repr(client)))
    result = pytester.runpytest_subprocess("--perf-base-url", delay_server, *option, f"{path.name}::test_option")
    result.assert_outcomes(passed=1)
    if client == "fast":  # the marker's client="fast", the command line saying nothing
        result = pytester.runpytest_subprocess("--perf-base-url", delay_server, f"{path.name}::test_marker")
        result.assert_outcomes(passed=1)


def test_client_fast_with_an_in_process_app_is_a_clear_error(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
import pytest
from starlette.applications import Starlette

async def ping(user):
    await user.client.get("/")

@pytest.mark.load(users=1, iterations=1, client="fast")
def test_x(load):
    load.run(ping, app=Starlette())
"""
    )
    result = pytester.runpytest_subprocess()
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(['*client="fast"*cannot use a transport_factory*use client="httpx" with it*'])
