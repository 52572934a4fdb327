"""What the memory cuts of issue 13 must keep: seeded draws, journey choices, stop during think time.

A user's ``random.Random`` is built on its first use now (most journeys never draw): the
draws, and the weighted journey choice made from them, must stay those of a generator built
up front from ``f"{seed}:{id}"``. Memory itself is measured by benchmarks/user_memory.py and
benchmarks/scale.py, never asserted here.
"""

from __future__ import annotations

import random

import anyio
import httpx
import pytest
from support.engine import MOCK_POLICY, profile, run

from pytest_shopflow_perf.engine.engine import Engine
from pytest_shopflow_perf.engine.user import StopUser, User, UserContext, wake
from pytest_shopflow_perf.metrics.recorder import Recorder


def mock():
    return lambda: httpx.MockTransport(lambda request: httpx.Response(200))


def context() -> UserContext:
    return UserContext(Recorder(open_model=False, start=0.0), {})


# Journeys picked for seed 1, user 0, weights a=3 b=1 c=1, as the engine picked them before the
# generator became lazy (random.Random("1:0"), target = random() * total, first cumulative >= target).
PINNED_CHOICES = "baaacaaaaccaacaaabaaaaaa"


def test_the_weighted_journey_choice_keeps_its_sequence_for_a_seed() -> None:
    picked: list[str] = []

    async def a(user):
        picked.append("a")

    async def b(user):
        picked.append("b")

    async def c(user):
        picked.append("c")

    run({a: 3, b: 1, c: 1}, users=1, iterations=len(PINNED_CHOICES), transport_factory=mock())
    assert "".join(picked) == PINNED_CHOICES


def test_a_users_draws_are_those_of_its_seed_string_whenever_the_first_draw_comes() -> None:
    draws: dict[int, list[float]] = {}

    async def journey(user):
        if user.iteration > 2:  # no draw in the first iterations: the generator does not exist yet
            draws.setdefault(user.id, []).append(user.random.random())
        await user.client.get("/")

    run(journey, users=3, iterations=30, transport_factory=mock())
    assert set(draws) == {0, 1, 2}
    for user_id, values in draws.items():
        expected = random.Random(f"1:{user_id}")  # the profile's seed is 1 in these tests
        assert values == [expected.random() for _ in values]


def test_a_user_that_never_draws_builds_no_generator() -> None:
    users: list[User] = []

    async def keep(user):
        users.append(user)

    async def journey(user):
        await user.client.get("/")

    run(journey, users=2, iterations=4, on_stop=keep, transport_factory=mock())
    assert len(users) == 2
    assert all(user._random is None for user in users)
    assert users[0].random.random() == random.Random(f"1:{users[0].id}").random()


def test_user_random_given_or_seeded() -> None:
    given = random.Random(7)
    user = User(id=3, client=httpx.AsyncClient(), context=context(), rng=given)
    assert user.random is given
    seeded = User(id=3, client=httpx.AsyncClient(), context=context(), seed="9:3")
    expected = random.Random("9:3")
    assert [seeded.random.random() for _ in range(3)] == [expected.random() for _ in range(3)]
    plain = User(id=5, client=httpx.AsyncClient(), context=context())
    assert plain.random.random() == random.Random(5).random()  # no seed: the id, as random.Random(id)


def test_user_state_is_a_dict_of_its_own_and_journeys_may_add_attributes() -> None:
    first = User(id=0, client=httpx.AsyncClient(), context=context())
    second = User(id=1, client=httpx.AsyncClient(), context=context())
    first.state["token"] = "t0"
    assert second.state == {}
    assert first.state == {"token": "t0"}
    first.cart = "c-1"  # type: ignore[attr-defined]
    assert first.cart == "c-1"  # type: ignore[attr-defined]
    second.state = {"x": 1}
    assert second.state == {"x": 1}


@pytest.mark.parametrize("backend", ["asyncio", "trio"])
def test_wake_ends_a_think_time_and_the_user_stops(backend: str) -> None:
    if backend == "trio":
        pytest.importorskip("trio", minversion="0.31", reason="trio 0.31+ is not installed (anyio 4.12+ needs it)")
    ctx = context()
    stop = [False]
    ctx.should_stop = lambda: stop[0]
    user = User(id=0, client=httpx.AsyncClient(), context=ctx)
    outcome: list[str] = []

    async def main() -> None:
        async def thinker() -> None:
            try:
                await user.think(30)
            except StopUser:
                outcome.append("stopped")

        with anyio.fail_after(5):
            async with anyio.create_task_group() as tg:
                tg.start_soon(thinker)
                while ctx.wake is None:
                    await anyio.sleep(0.001)
                stop[0] = True
                wake(ctx)

    anyio.run(main, backend=backend)
    assert outcome == ["stopped"]
    assert ctx.wake is None
    wake(ctx)  # outside a think time: nothing to end


def test_a_think_time_ends_on_its_own_and_cancellation_reaches_it() -> None:
    ctx = context()
    user = User(id=0, client=httpx.AsyncClient(), context=ctx)

    async def main() -> None:
        with anyio.fail_after(5):
            await user.think(0.01)  # returns, the user goes on
        with anyio.move_on_after(0.01) as scope:
            await user.think(30)
        assert scope.cancelled_caught
        assert ctx.wake is None

    anyio.run(main)


def test_stopping_the_run_wakes_every_thinking_user() -> None:
    async def journey(user):
        await user.client.get("/")

    engine = Engine(
        profile(users=20, duration="30s", think_time="60s"),
        journey,
        base_url="http://test",
        transport_factory=mock(),
        target_policy=MOCK_POLICY,
    )

    async def main():
        async with anyio.create_task_group() as tg:

            async def stop_soon() -> None:
                while engine.monitor.iterations < 20:
                    await anyio.sleep(0.01)
                engine.request_stop("test")

            tg.start_soon(stop_soon)
            with anyio.fail_after(10):  # the users think 60 s: only being woken ends the run this soon
                result = await engine.run()
        return result

    result = anyio.run(main)
    assert result.requests == 20
    assert result.extra["stop_reason"] == "test"
    assert "unfinished_requests" not in result.extra
