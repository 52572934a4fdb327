"""The engine never lies about a run: hostile journeys and hostile targets end as errors, on time."""

from __future__ import annotations

import asyncio

import httpx
import pytest
from support.engine import run


def ok_transport() -> httpx.AsyncBaseTransport:
    return httpx.MockTransport(lambda request: httpx.Response(200, text="ok"))


# ---- 1. journey exceptions of any class are that iteration's error ----------------------------

BASE_EXCEPTIONS = [asyncio.CancelledError, KeyboardInterrupt, SystemExit, GeneratorExit]


@pytest.mark.parametrize("every", [False, True], ids=["once", "every-iteration"])
@pytest.mark.parametrize("exc_type", BASE_EXCEPTIONS, ids=lambda t: t.__name__)
def test_a_base_exception_from_a_journey_is_an_error_not_the_end_of_the_run(
    exc_type: type[BaseException], every: bool
) -> None:
    async def journey(user):
        await user.client.get("/ok")
        await user.think(0.01)
        if every or (user.id == 0 and user.iteration == 3):
            raise exc_type("from journey")

    result = run(journey, users=2, duration="1s", transport_factory=ok_transport)
    assert not result.interrupted
    assert result.duration >= 1.0  # the run lasted its duration
    kind = f"exception {exc_type.__name__}"
    assert set(result.errors_by_kind) == {kind}
    if every:
        # every iteration but the last of each user (stopped in its think time) raised
        assert result.iterations - 2 <= result.errors_by_kind[kind] <= result.iterations
        assert result.iterations > 10
    else:
        assert result.errors_by_kind[kind] == 1
        assert result.iterations > 10


def test_a_base_exception_from_on_start_is_that_users_failed_start() -> None:
    async def on_start(user):
        raise asyncio.CancelledError("from on_start")

    async def journey(user):
        await user.client.get("/ok")

    result = run(journey, users=2, duration="1s", on_start=on_start, transport_factory=ok_transport)
    assert not result.interrupted
    assert result.duration >= 1.0
    assert result.errors_by_kind["exception CancelledError"] >= 2
