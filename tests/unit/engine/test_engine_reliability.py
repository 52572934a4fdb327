"""The engine never lies about a run: hostile journeys and hostile targets end as errors, on time."""

from __future__ import annotations

import asyncio
import contextlib
import math
import time

import anyio
import httpx
import pytest
from support.engine import run
from support.slow_servers import endless_chunked, fixed_body, serve, trickle_body, trickle_headers

from pytest_shopflow_perf.engine import engine as engine_module
from pytest_shopflow_perf.engine.arrivals import arrival_times


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
        if user.id == 0:
            raise asyncio.CancelledError("from on_start")

    async def journey(user):
        await user.client.get("/ok")
        await user.think(0.01)

    result = run(journey, users=2, duration="1s", on_start=on_start, transport_factory=ok_transport)
    assert not result.interrupted
    assert result.duration >= 1.0
    assert result.errors_by_kind == {"exception CancelledError": 1}
    assert result.generator.users_failed_to_start == 1
    assert result.iterations > 10


# ---- 2. spawning is paced and bounded by the run's clock ---------------------------------------


def test_a_huge_user_count_is_paced_ends_on_time_and_is_saturated() -> None:
    async def journey(user):
        await user.client.get("/ok")
        await user.think(0.05)

    result = run(journey, users=20_000, duration="1s", graceful_stop="1s", transport_factory=ok_transport)
    generator = result.generator
    # at most the rate for the run's duration, plus one burst
    assert generator.peak_users <= engine_module.SPAWN_RATE_PER_S * 1.0 + engine_module.SPAWN_BURST + 1
    assert generator.users_started == generator.peak_users
    assert generator.users_target == 20_000
    assert generator.saturated
    behind = [reason for reason in generator.reasons if "behind the profile" in reason]
    assert behind
    assert f"of 20,000 (spawning is paced at {engine_module.SPAWN_RATE_PER_S:,}/s)" in behind[0]


def test_a_normal_profile_is_not_behind() -> None:
    async def journey(user):
        await user.client.get("/ok")
        await user.think(0.01)

    result = run(journey, users=5, duration="1s", transport_factory=ok_transport)
    assert result.generator.users_target == 5
    assert result.generator.users_started == 5
    assert not any("behind" in reason for reason in result.generator.reasons)


def test_a_ramp_is_not_behind() -> None:
    async def journey(user):
        await user.client.get("/ok")
        await user.think(0.01)

    result = run(journey, users=20, duration="1s", ramp_up="800ms", transport_factory=ok_transport)
    assert not any("behind" in reason for reason in result.generator.reasons)


# ---- 5. a user whose on_start failed stays failed -----------------------------------------------


def test_a_failed_on_start_is_not_retried() -> None:
    calls = []

    async def on_start(user):
        calls.append(user.id)
        await user.client.get("/login")
        raise RuntimeError("login refused")

    async def journey(user):
        await user.client.get("/ok")

    result = run(journey, users=2, duration="1s", on_start=on_start, transport_factory=ok_transport)
    assert sorted(calls) == [0, 1]
    assert result.generator.users_failed_to_start == 2
    assert result.iterations == 0
    assert result.errors_by_kind == {"exception RuntimeError": 2}
    assert "every virtual user failed in on_start" in result.extra["start_failures"]

    from pytest_shopflow_perf.verdicts.assertions import check

    with pytest.raises(AssertionError, match="every virtual user failed in on_start"):
        check(result, [])


def test_some_failed_starts_leave_the_others_running() -> None:
    async def on_start(user):
        if user.id == 0:
            raise RuntimeError("login refused")

    async def journey(user):
        await user.client.get("/ok")
        await user.think(0.01)

    result = run(journey, users=3, duration="1s", on_start=on_start, transport_factory=ok_transport)
    assert result.generator.users_failed_to_start == 1
    assert result.generator.users_started == 3
    assert result.iterations > 10
    assert "start_failures" not in result.extra


# ---- 7. open model: every planned arrival is started or dropped ------------------------------


def test_dropped_iterations_count_every_arrival_the_dispatcher_never_reached() -> None:
    async def journey(user):
        await user.client.get("/ok")

    result = run(journey, rate=200_000, duration="1s", graceful_stop="1s", transport_factory=ok_transport)
    planned = 200_000
    assert abs(result.iterations + result.generator.dropped_iterations - planned) <= 1
    assert result.generator.dropped_iterations > 0


def test_open_model_on_schedule_drops_nothing() -> None:
    async def journey(user):
        await user.client.get("/ok")

    result = run(journey, rate=50, duration="1s", transport_factory=ok_transport)
    assert result.iterations == 50
    assert result.generator.dropped_iterations == 0


def test_profile_integral_is_closed_form() -> None:
    from support.engine import profile

    ramp = profile(rate=100, duration="2s", ramp_up="1s")  # 0 -> 100/s over 1 s, then 100/s
    assert ramp.integral(1.0) == pytest.approx(50.0)
    assert ramp.integral(2.0) == pytest.approx(150.0)
    assert ramp.integral(5.0) == pytest.approx(450.0)  # after the stages the last target holds
    stages = profile(rate=10, stages=[("1s", 30), ("500ms", 30), ("700ms", 3)])
    for until in (0.3, 1.0, 1.2, 2.2):
        due = sum(1 for t in arrival_times(stages.start, stages.stages) if t < until)
        assert due == math.ceil(stages.integral(until) - 1e-9)


# ---- 3. timeout is a deadline for the whole request ---------------------------------------------


@pytest.mark.parametrize("handler", [trickle_headers, trickle_body], ids=["headers", "body"])
def test_timeout_is_a_deadline_for_the_whole_request(handler) -> None:
    seen: list[BaseException] = []

    async def journey(user):
        try:
            await user.client.get("/")
        except httpx.TimeoutException as exc:
            seen.append(exc)

    with serve(handler) as url:
        result = run(journey, users=1, duration="1500ms", timeout="500ms", graceful_stop="1s", base_url=url)
    assert result.errors_by_kind.get("timeout", 0) >= 2  # cut at 0.5 s, not held to the end of the run
    assert "unfinished" not in result.errors_by_kind
    assert seen
    assert "deadline" in str(seen[0])


@pytest.mark.parametrize("http_transport", ["fast", "httpcore"])
def test_a_request_the_fast_transport_delegates_keeps_the_deadline(http_transport: str) -> None:
    """A body of unknown length goes to httpcore: the deadline the fast transport holds still cuts it."""
    seen: list[BaseException] = []

    async def body():
        yield b"part"

    async def journey(user):
        try:
            await user.client.post("/", content=body())
        except httpx.TimeoutException as exc:
            seen.append(exc)

    with serve(trickle_headers) as url:
        result = run(
            journey,
            users=1,
            duration="1500ms",
            timeout="500ms",
            graceful_stop="1s",
            base_url=url,
            http_transport=http_transport,
        )
    assert result.errors_by_kind.get("timeout", 0) >= 2
    assert "unfinished" not in result.errors_by_kind
    assert "deadline" in str(seen[0])
    if http_transport == "fast":
        assert result.extra["fast_transport_delegated"] == result.requests


def test_a_request_timeout_overrides_the_profile_deadline() -> None:
    async def journey(user):
        with contextlib.suppress(httpx.TimeoutException):
            await user.client.get("/", timeout=0.3)

    with serve(trickle_body) as url:
        result = run(journey, users=1, duration="1s", timeout="30s", graceful_stop="1s", base_url=url)
    assert result.errors_by_kind.get("timeout", 0) >= 2
    assert "unfinished" not in result.errors_by_kind


# ---- 4. bounded memory for response bodies ----------------------------------------------------


def test_an_endless_body_is_capped_in_memory_and_ends_at_the_deadline() -> None:
    kept: list[int] = []
    truncated: list[bool] = []

    async def journey(user):
        size = 0
        try:
            async with user.client.stream("GET", "/") as response:
                async for chunk in response.aiter_raw():
                    size += len(chunk)
        except httpx.TimeoutException:
            pass
        kept.append(size)
        truncated.append(bool(response.extensions.get("shopflow_perf.truncated")))

    with serve(endless_chunked) as url:
        result = run(journey, users=1, duration="1500ms", timeout="500ms", max_body="64KiB", base_url=url)
    assert kept
    assert max(kept) <= 64 * 1024
    assert all(truncated)
    assert result.errors_by_kind.get("timeout", 0) == len(kept)
    assert result.extra["truncated_bodies"] == len(kept)


def test_max_body_keeps_the_first_bytes_and_a_request_can_lift_it() -> None:
    sizes: dict[str, int] = {}
    flags: dict[str, bool] = {}

    async def journey(user):
        capped = await user.client.get("/a")
        whole = await user.client.get("/b", extensions={"max_body": None})
        sizes.update(capped=len(capped.content), whole=len(whole.content))
        flags.update(
            capped=bool(capped.extensions.get("shopflow_perf.truncated")),
            whole=bool(whole.extensions.get("shopflow_perf.truncated")),
        )

    with serve(fixed_body(200_000)) as url:
        result = run(journey, users=1, iterations=3, max_body="100KB", base_url=url)
    assert sizes == {"capped": 100_000, "whole": 200_000}
    assert flags == {"capped": True, "whole": False}
    assert result.errors == 0
    assert result.extra["truncated_bodies"] == 3


def test_max_body_is_a_profile_key_with_sizes() -> None:
    from support.engine import profile

    from pytest_shopflow_perf.profile.resolve import ProfileError

    assert profile().max_body == 16 * 1024 * 1024
    assert profile(max_body="512KB").max_body == 512_000
    assert profile(max_body="1MiB").max_body == 1024 * 1024
    assert profile(max_body=4096).max_body == 4096
    with pytest.raises(ProfileError, match="max_body"):
        profile(max_body="lots")


# ---- 6. connect and pool wait are measured ----------------------------------------------------


def one_connection() -> httpx.AsyncBaseTransport:
    return httpx.AsyncHTTPTransport(limits=httpx.Limits(max_connections=1))


async def two_at_once(user) -> None:
    """The second request waits ~0.2 s for the user's only connection."""
    import anyio

    async with anyio.create_task_group() as task_group:
        task_group.start_soon(user.client.get, "/a")
        task_group.start_soon(user.client.get, "/b")


def test_connect_and_pool_wait_are_reported_apart_from_the_wire_latency() -> None:
    from pytest_shopflow_perf.result.model import LoadResult

    with serve(fixed_body(10, delay=0.2)) as url:
        result = run(two_at_once, users=1, iterations=3, base_url=url, transport_factory=one_connection)
    summary = result.summary()
    assert result.errors == 0
    assert summary["connect_ms_max"] > 0  # the one new connection
    assert summary["wait_ms_max"] >= 150  # the request queued behind the other one
    assert result.max < 0.35  # closed model: the wire latency (~0.2 s), without the wait
    again = LoadResult.from_dict(result.to_dict())
    assert again.summary()["wait_ms_max"] == summary["wait_ms_max"]


def test_open_model_latency_includes_connect_and_pool_wait() -> None:
    with serve(fixed_body(10, delay=0.2)) as url:
        result = run(two_at_once, rate=3, duration="1s", base_url=url, transport_factory=one_connection)
    assert result.errors == 0
    assert result.summary()["wait_ms_max"] >= 150
    # half the requests waited ~0.2 s: from the intended start that is part of their latency
    assert result.mean - result.uncorrected.mean >= 0.05


def test_when_every_start_failed_an_iterations_run_ends_instead_of_waiting_for_its_cap() -> None:
    async def on_start(user):
        raise RuntimeError("login refused")

    async def journey(user):
        await user.client.get("/ok")

    result = run(journey, users=2, iterations=10, on_start=on_start, transport_factory=ok_transport)
    assert result.generator.users_failed_to_start == 2
    assert result.duration < 60  # not the 10 min cap of an iterations run
    assert not result.interrupted


def test_open_model_stops_starting_workers_while_every_start_fails() -> None:
    calls = []

    async def on_start(user):
        calls.append(user.id)
        raise RuntimeError("login refused")

    async def journey(user):
        await user.client.get("/ok")

    result = run(journey, rate=200, duration="1s", on_start=on_start, transport_factory=ok_transport)
    assert result.iterations == 0
    assert len(calls) <= 10  # the first workers, not one login per arrival
    assert result.generator.users_failed_to_start == len(calls)
    assert "every virtual user failed in on_start" in result.extra["start_failures"]


def test_the_second_ctrl_c_is_the_only_keyboard_interrupt_that_stops_a_run() -> None:
    import signal

    from support.engine import MOCK_POLICY, profile

    from pytest_shopflow_perf.engine.engine import Engine
    from pytest_shopflow_perf.plugin.fixtures import _stop_on_interrupt

    async def journey(user):
        await user.client.get("/ok")

    engine = Engine(
        profile(users=1, duration="1s"),
        journey,
        base_url="http://test",
        transport_factory=ok_transport,
        target_policy=MOCK_POLICY,
    )
    with _stop_on_interrupt(engine):
        signal.raise_signal(signal.SIGINT)
        assert engine.stop_reason == "interrupted"
        assert not engine.hard_stop
        with pytest.raises(KeyboardInterrupt):
            signal.raise_signal(signal.SIGINT)
    assert engine.hard_stop

    async def interrupted(user):
        await user.client.get("/ok")
        if user.iteration == 3:
            hard.hard_stop = True  # as the second Ctrl-C does, just before it raises
            raise KeyboardInterrupt

    import anyio

    hard = Engine(
        profile(users=1, duration="2s"),
        interrupted,
        base_url="http://test",
        transport_factory=ok_transport,
        target_policy=MOCK_POLICY,
    )
    with pytest.raises(KeyboardInterrupt):
        anyio.run(hard.run)


def test_generator_cpu_is_weighted_by_time_not_by_sample() -> None:
    """A short run was judged on its partial last sample: 46.6 % reported against 31 % over the call."""
    from pytest_shopflow_perf.engine.monitor import cpu_figures

    mean, peak = cpu_figures([(1.0, 0.9), (1.0, 0.2), (0.1, 0.09)])  # start-up, steady, a busy 0.1 s teardown
    assert mean == pytest.approx(100 * 0.29 / 1.1)
    assert peak == pytest.approx(20.0)  # the 0.1 s tail is too short to be a peak
    short_mean, _ = cpu_figures([(0.6, 0.3), (0.2, 0.2)])
    assert short_mean == pytest.approx(100 * 0.5 / 0.8)  # under a second of samples: all of them, weighted


def test_an_exception_escaping_a_user_task_fails_the_run_instead_of_vanishing() -> None:
    """Users run as bare asyncio tasks (memory): an engine bug in one must still surface, as in a task group."""
    from support.engine import profile

    from pytest_shopflow_perf.engine.engine import Engine

    async def journey(user):
        await anyio.sleep(0.01)

    engine = Engine(profile(users=3, duration="30s"), journey, base_url="http://test")
    built = engine.clients.new

    def new(context):
        if len(engine._slots) == 3:  # the third user's client cannot be built
            raise RuntimeError("engine bug under test")
        return built(context)

    engine.clients.new = new  # type: ignore[method-assign]
    started = time.monotonic()
    with pytest.raises(RuntimeError, match="engine bug under test"):
        anyio.run(engine.run)
    assert time.monotonic() - started < 10  # at once, as a task group ends: not at the end of the 30 s
