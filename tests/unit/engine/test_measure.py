"""``user.measure`` / ``user.record``: any operation is a row like an HTTP endpoint."""

from __future__ import annotations

import asyncio
import math

import httpx
import pytest
from support.engine import run

from pytest_shopflow_perf import MeasureError
from pytest_shopflow_perf.verdicts.assertions import assert_slo


def ok_transport():
    return lambda: httpx.MockTransport(lambda request: httpx.Response(200, json={}))


def test_a_measured_block_is_a_row_with_its_own_percentiles() -> None:
    async def journey(user):
        async with user.measure("queue publish"):
            await asyncio.sleep(0)
        with user.measure("parse"):
            pass
        await user.client.get("/api/products")

    result = run(journey, users=2, iterations=10, transport_factory=ok_transport())
    assert set(result.endpoints) == {"queue publish", "parse", "GET /api/products"}
    assert result.endpoints["queue publish"].requests == 10
    assert result.endpoints["parse"].requests == 10
    assert result.errors == 0
    assert_slo(result, "queue publish: p(95)<1s", "parse: error_rate<1%")


def test_an_exception_inside_is_an_error_of_that_name_counted_once() -> None:
    async def journey(user):
        async with user.measure("queue publish"):
            raise ConnectionResetError("broker went away")

    result = run(journey, users=1, iterations=6, transport_factory=ok_transport())
    publish = result.endpoints["queue publish"]
    assert publish.requests == 6
    assert publish.errors_by_kind == {"exception ConnectionResetError": 6}
    assert result.errors == 6  # not again on the journey's row
    assert "journey journey" not in result.events
    sample = result.extra["exceptions"][0]
    assert sample["row"] == "queue publish"
    assert "broker went away" in sample["traceback"]


def test_an_exception_the_journey_catches_still_counts_on_the_measured_row() -> None:
    async def journey(user):
        try:
            with user.measure("db query"):
                raise TimeoutError
        except TimeoutError:
            pass

    result = run(journey, users=1, iterations=4, transport_factory=ok_transport())
    assert result.endpoints["db query"].errors_by_kind == {"exception TimeoutError": 4}
    assert result.errors == 4


def test_nested_measures_count_an_error_once_on_the_innermost_name() -> None:
    async def journey(user):
        async with user.measure("checkout flow"), user.measure("payment"):
            raise ValueError("declined")

    result = run(journey, users=1, iterations=3, transport_factory=ok_transport())
    assert result.endpoints["payment"].errors == 3
    assert "checkout flow" not in result.endpoints or result.endpoints["checkout flow"].errors == 0
    assert result.errors == 3


def test_a_failed_request_inside_a_measure_is_counted_on_the_request_only() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(503, json={})

    async def journey(user):
        async with user.measure("search flow"):
            response = await user.client.get("/api/search")
            response.raise_for_status()

    result = run(journey, users=1, iterations=3, transport_factory=lambda: httpx.MockTransport(handler))
    assert result.endpoints["GET /api/search"].errors_by_kind == {"HTTP 503": 3}
    assert result.errors == 3


def test_recorded_durations_go_into_the_row_and_errors_by_their_kind() -> None:
    async def journey(user):
        user.record("consume latency", 0.040)
        user.record("consume latency", -0.000_002)  # two clocks a hair apart: clamped to 0, never dropped
        user.record("consume latency", 1.5, error="timeout")

    result = run(journey, users=1, iterations=5, transport_factory=ok_transport())
    latency = result.endpoints["consume latency"]
    assert latency.requests == 15
    assert latency.errors_by_kind == {"timeout": 5}
    assert latency.percentile(99) == pytest.approx(0.040, rel=0.01)
    assert latency.percentile(1) < 0.001  # the clamped one counts as 0


@pytest.mark.parametrize("name", ["", "   ", None, 3])
def test_a_name_that_cannot_be_a_row_is_a_clear_error(name: object) -> None:
    caught: list[BaseException] = []

    async def journey(user):
        try:
            user.measure(name)
        except MeasureError as error:
            caught.append(error)

    run(journey, users=1, iterations=1, transport_factory=ok_transport())
    assert "non-empty name" in str(caught[0])


@pytest.mark.parametrize("seconds", [math.nan, math.inf, "40ms", True, None])
def test_a_duration_that_is_not_a_finite_number_is_a_clear_error(seconds: object) -> None:
    caught: list[BaseException] = []

    async def journey(user):
        try:
            user.record("consume latency", seconds)
        except MeasureError as error:
            caught.append(error)

    run(journey, users=1, iterations=1, transport_factory=ok_transport())
    assert "finite number" in str(caught[0])
    assert isinstance(caught[0], ValueError)
