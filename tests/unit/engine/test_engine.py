"""The engine on httpx.MockTransport: fast, deterministic, no network."""

from __future__ import annotations

import contextlib
import json

import httpx
import pytest
from support.engine import MOCK_POLICY, profile, run

from pytest_shopflow_perf.engine.arrivals import arrival_times
from pytest_shopflow_perf.engine.engine import Engine
from pytest_shopflow_perf.engine.journeys import normalize_journeys


def mock(handler=None):
    def default(request: httpx.Request) -> httpx.Response:
        if request.url.path.startswith("/fail"):
            return httpx.Response(500, json={"error": "boom"})
        if request.url.path.startswith("/missing"):
            return httpx.Response(404, json={"error": "missing"})
        if request.url.path.startswith("/reset"):
            raise httpx.ReadError("connection reset by peer", request=request)
        if request.url.path.startswith("/slow"):
            raise httpx.ReadTimeout("timed out", request=request)
        if request.url.path.startswith("/refused"):
            raise httpx.ConnectError("refused", request=request)
        return httpx.Response(200, json={"items": [{"id": 1}, {"id": 2}], "path": request.url.path})

    return lambda: httpx.MockTransport(handler or default)


def test_requests_are_grouped_by_name_or_collapsed_path() -> None:
    async def journey(user):
        await user.client.get(f"/api/products/{user.random.randint(1, 10_000)}")
        await user.client.get("/api/orders/ord_8f3a2c9d", extensions={"name": "order"})
        await user.client.post("/api/cart/items", json={"product_id": 3})

    result = run(journey, users=2, iterations=20, transport_factory=mock())
    assert set(result.endpoints) == {"GET /api/products/{id}", "order", "POST /api/cart/items"}
    assert result.requests == 60
    assert all(stats.requests == 20 for stats in result.endpoints.values())


def test_errors_are_counted_by_kind_and_never_stop_the_run() -> None:
    async def journey(user):
        await user.client.get("/ok")
        await user.client.get("/fail")
        await user.client.get("/missing", extensions={"expect": {404}})
        for path in ("/reset", "/slow", "/refused"):
            with contextlib.suppress(httpx.TransportError):
                await user.client.get(path)
        raise KeyError("items")

    result = run(journey, users=2, iterations=10, transport_factory=mock())
    assert result.iterations == 10
    assert result.errors_by_kind == {
        "HTTP 500": 10,
        "reset": 10,
        "timeout": 10,
        "connect": 10,
        "exception KeyError": 10,
    }
    assert result.errors == 50
    assert result.endpoints["GET /missing"].errors == 0
    assert result.endpoints["GET /fail"].error_rate == 1.0
    # the journey's exception counts on a row of its own, never on an endpoint that answered
    assert result.endpoints["GET /refused"].errors_by_kind == {"connect": 10}
    assert result.events == {"journey journey": {"errors": 10, "errors_by_kind": {"exception KeyError": 10}}}
    assert result.request_errors == 40
    samples = result.extra["exceptions"]
    assert samples[0]["kind"] == "exception KeyError"
    assert samples[0]["count"] == 10
    assert "KeyError" in samples[0]["traceback"]
    assert sum(result.errors_by_kind.values()) == result.errors


def test_journeys_and_hooks_count_their_runs_and_raise_on_rows_of_their_own() -> None:
    """The reports' errors % of ``journey browse`` is per iteration; a hook's row names the hook."""

    async def login(user):
        await user.client.get("/login")
        if user.id == 0:
            raise PermissionError("bad password")

    async def browse(user):
        await user.client.get("/ok")
        if user.iteration % 2:
            raise KeyError("basket")

    async def buy(user):
        await user.client.get("/ok")

    result = run({browse: 1, buy: 1}, users=2, iterations=40, on_start=login, transport_factory=mock())
    runs = result.extra["journey_runs"]
    assert runs["on_start login"] == 2
    assert runs["journey browse"] + runs["journey buy"] == 40
    assert result.events["on_start login"] == {"errors": 1, "errors_by_kind": {"exception PermissionError": 1}}
    assert result.events["journey browse"]["errors_by_kind"] == {"exception KeyError": result.errors - 1}
    assert "journey buy" not in result.events
    assert result.endpoints["GET /ok"].errors == 0
    assert result.endpoints["GET /login"].errors == 0
    samples = {sample["kind"]: sample for sample in result.extra["exceptions"]}
    assert samples["exception PermissionError"]["row"] == "on_start login"
    traceback = samples["exception KeyError"]["traceback"]
    assert traceback.splitlines()[1].endswith("in browse")  # from the journey's own frame, not the engine's
    assert "_iterate" not in traceback


def test_an_unexpected_status_is_an_error_even_when_below_400() -> None:
    async def journey(user):
        await user.client.get("/ok", extensions={"expect": {201}})

    result = run(journey, users=1, iterations=3, transport_factory=mock())
    assert result.errors_by_kind == {"HTTP 200": 3}


def test_raise_for_status_is_not_counted_twice() -> None:
    async def journey(user):
        (await user.client.get("/fail")).raise_for_status()

    result = run(journey, users=1, iterations=4, transport_factory=mock())
    assert result.errors_by_kind == {"HTTP 500": 4}


def test_checks_count_on_rows_of_their_own_not_on_the_endpoint_that_answered() -> None:
    async def journey(user):
        response = await user.client.get("/api/cart")
        user.check(response.status_code == 200, "status is 200")
        user.check(len(response.json()["items"]) > 5, "cart has items")

    result = run(journey, users=2, iterations=8, transport_factory=mock())
    assert result.checks["status is 200"].passes == 8
    assert result.checks["cart has items"].fails == 8
    assert result.endpoints["GET /api/cart"].errors == 0  # the request itself succeeded
    assert result.events["check: cart has items"]["errors"] == 8
    assert result.errors == 8
    assert result.request_errors == 0
    assert result.errors_by_kind == {"check: cart has items": 8}


def test_distinct_check_names_are_capped_like_endpoint_names() -> None:
    """A check named after data (f"check {i}") grew memory without bound: 3.3 M names, 5.9 GB."""
    from pytest_shopflow_perf.engine.user import MAX_CHECKS, OVERFLOW_CHECK
    from pytest_shopflow_perf.metrics.recorder import MAX_EVENT_ROWS

    async def journey(user):
        await user.client.get("/ok")
        user.check(False, f"check {user.iteration}-{user.id}")

    result = run(journey, users=2, iterations=MAX_CHECKS + 300, transport_factory=mock())
    assert len(result.checks) == MAX_CHECKS + 1
    assert result.checks[OVERFLOW_CHECK].fails == 300
    assert len(result.events) <= MAX_EVENT_ROWS + 1
    assert result.errors == MAX_CHECKS + 300


def test_user_lifecycle_ids_state_and_seeded_random() -> None:
    started, stopped, choices = [], [], {}

    async def login(user):
        started.append(user.id)
        user.state["token"] = f"t{user.id}"

    async def logout(user):
        stopped.append((user.id, user.state["token"], user.iteration))

    async def journey(user):
        choices.setdefault(user.id, []).append(user.random.random())
        await user.client.get("/ok")

    run(journey, users=3, iterations=30, on_start=login, on_stop=logout, transport_factory=mock())
    assert sorted(started) == [0, 1, 2]
    assert sorted(s[0] for s in stopped) == [0, 1, 2]
    assert all(token == f"t{uid}" for uid, token, _ in stopped)
    assert sum(iterations for *_, iterations in stopped) == 30
    first_run = {uid: values[0] for uid, values in choices.items()}
    choices.clear()
    run(journey, users=3, iterations=30, transport_factory=mock())
    assert {uid: values[0] for uid, values in choices.items()} == first_run  # same seed, same choices


def test_weighted_journeys_follow_their_weights() -> None:
    async def browse(user):
        await user.client.get("/browse")

    async def buy(user):
        await user.client.get("/buy")

    result = run({browse: 9, buy: 1}, users=2, iterations=2000, transport_factory=mock())
    share = result.endpoints["GET /buy"].requests / result.requests
    assert 0.07 < share < 0.13


def test_journeys_must_be_async() -> None:
    def sync_journey(user):
        pass

    with pytest.raises(TypeError, match="must be an async function"):
        normalize_journeys(sync_journey)

    async def journey(user):
        pass

    with pytest.raises(TypeError, match="positive number"):
        normalize_journeys({journey: 0})


def test_closed_model_follows_stages() -> None:
    async def journey(user):
        await user.client.get("/ok")
        await user.think(0.02)

    result = run(journey, stages=[("300ms", 6), ("400ms", 6), ("300ms", 2)], transport_factory=mock())
    assert result.generator.peak_users == 6
    assert 0.9 < result.duration < 2.0
    assert result.requests > 50


@pytest.mark.timing
def test_think_time_between_iterations_paces_users() -> None:
    async def journey(user):
        await user.client.get("/ok")

    result = run(journey, users=2, duration="1s", think_time=("100ms", "100ms"), transport_factory=mock())
    # think time is a floor between iterations: at most 1 + 1 s / 100 ms per user, however fast the machine;
    # a busy machine only makes fewer (sleeps overshoot), so the lower bound is loose
    assert 8 <= result.requests <= 2 * 11


def test_open_model_runs_iterations_on_schedule() -> None:
    async def journey(user):
        await user.client.get("/ok")

    result = run(journey, rate=50, duration="1s", transport_factory=mock())
    # the last arrival is due 20 ms before the end: a busy machine may drop it, never lose it
    assert result.iterations + result.dropped_iterations == 50
    assert result.iterations >= 49
    assert result.profile["model"] == "open"
    assert result.uncorrected.requests == 50


def test_arrival_times_follow_constant_and_ramping_rates() -> None:
    constant = list(arrival_times(10, [(2.0, 10)]))
    assert len(constant) == 20
    assert constant[:3] == pytest.approx([0.0, 0.1, 0.2])
    ramp = list(arrival_times(0, [(2.0, 20)]))  # integral of the rate: 20 arrivals
    assert len(ramp) == 20
    assert ramp == sorted(ramp)
    assert ramp[10] > 1.0  # fewer arrivals early in a ramp up


def test_request_stop_ends_the_run_and_keeps_results() -> None:
    import anyio

    async def journey(user):
        await user.client.get("/ok")
        await user.think(0.01)

    async def main2():
        async with anyio.create_task_group() as tg:
            box = []

            async def run_it():
                box.append(await engine2.run())

            tg.start_soon(run_it)
            await anyio.sleep(0.5)
            engine2.request_stop("interrupted")
        return box[0]

    engine2 = Engine(
        profile(users=2, duration="30s"),
        journey,
        base_url="http://test",
        transport_factory=mock(),
        target_policy=MOCK_POLICY,
    )
    result = anyio.run(main2)
    assert result.interrupted
    assert result.duration < 5
    assert result.requests > 10


def test_result_round_trips_through_json() -> None:
    from pytest_shopflow_perf.result.model import LoadResult

    async def journey(user):
        await user.client.get("/ok")
        await user.client.get("/fail")

    result = run(journey, users=2, duration="1200ms", transport_factory=mock())
    record = json.loads(json.dumps(result.to_dict()))
    assert record["schema"] == "shopflow-perf/run/1"
    assert set(record["total"]["windows"]) >= {"t_s", "count", "errors", "p50_ms", "p95_ms", "p99_ms"}
    again = LoadResult.from_dict(record)
    assert again.requests == result.requests
    assert again.errors == result.errors
    assert again.percentile(99) == result.percentile(99)
    assert again.endpoints["GET /fail"].error_rate == 1.0
    assert len(again.timeline) == len(result.timeline) >= 2


def test_latency_figures_describe_successes_and_failures_are_shown_apart() -> None:
    from pytest_shopflow_perf.result.model import LoadResult

    async def journey(user):
        await user.client.get("/ok")
        await user.client.get("/fail")

    result = run(journey, users=1, iterations=5, transport_factory=mock())
    assert result.successes == 5
    assert result.request_errors == 5
    summary = result.summary()
    assert summary["failed"]["requests"] == 5
    assert result.endpoints["GET /fail"].successes == 0
    assert result.endpoints["GET /fail"].failed.requests == 5
    again = LoadResult.from_dict(result.to_dict())
    assert again.summary()["failed"] == summary["failed"]
    assert again.request_errors == 5
