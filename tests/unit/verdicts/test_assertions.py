"""SLO helpers against real runs on a local server with known latency and errors."""

from __future__ import annotations

import time
from dataclasses import replace

import pytest
from support.engine import run

from pytest_shopflow_perf import Slo, assert_error_rate, assert_latency, assert_slo, assert_throughput
from pytest_shopflow_perf.verdicts.assertions import SloError, abort_reason, check_declared, parse_threshold


@pytest.fixture(scope="module")
def mixed_result(delay_server):
    """Three 20 ms requests and one 500 per iteration: 25 % errors, p50 ~20 ms."""

    async def journey(user):
        for _ in range(3):
            await user.client.get("/delay/20", extensions={"name": "ok"})
        await user.client.get("/status/500", extensions={"name": "fail"})

    return run(journey, base_url=delay_server, users=2, duration="1500ms", think_time=(0, "10ms"))


def test_passing_thresholds_are_recorded(mixed_result) -> None:
    before = len(mixed_result.extra.get("slo", []))
    assert_latency(mixed_result, p50="100ms", max=5, endpoint="ok")
    assert_throughput(mixed_result, min_rps=10)
    recorded = mixed_result.extra["slo"][before:]
    assert [o["passed"] for o in recorded] == [True, True, True]
    assert {o["metric"] for o in recorded} == {"p50", "max", "rps"}


def test_every_breach_is_listed_in_a_table(mixed_result) -> None:
    with pytest.raises(AssertionError) as failure:
        assert_slo(mixed_result, "error_rate<1%", "fail: rate<=10%", "p(50)<5ms", "count>1000000", "p(99)<10s")
    message = str(failure.value)
    assert message.startswith("SLO breached: 4 of 5 threshold(s) failed")
    lines = [line.split() for line in message.splitlines()[1:]]
    assert lines[0] == ["metric", "endpoint", "measured", "threshold", "margin", "worst", "endpoint"]
    assert ["error_rate", "total", "25.00", "%", "error_rate<1%", "+2400.0%", "fail"] in lines
    assert ["error_rate", "fail", "100.00", "%", "fail:", "rate<=10%", "+900.0%"] in lines
    p50 = next(line for line in lines if line[0] == "p50")
    assert p50[1] == "total"
    assert 20.0 <= float(p50[2]) < 30.0
    assert p50[-1] == "ok"
    assert any(line[0] == "count" for line in lines)
    assert not any(line[0] == "p99" for line in lines)


def test_error_rate_by_endpoint_and_kind(mixed_result) -> None:
    assert_error_rate(mixed_result, max="30%")
    assert_error_rate(mixed_result, max=0, endpoint="ok")
    assert_error_rate(mixed_result, max="1%", kinds=["timeout", "connect"])
    with pytest.raises(AssertionError, match=r"error_rate\[HTTP 5\]"):
        assert_error_rate(mixed_result, max="1%", kinds=["HTTP 5"])


@pytest.mark.parametrize(
    ("expression", "metric", "op", "value", "endpoint"),
    [
        ("p(95)<500ms", "p95", "<", 0.5, None),
        ("p(99.9) <= 1s", "p99.9", "<=", 1.0, None),
        ("avg<200", "mean", "<", 0.2, None),
        ("med<100us", "p50", "<", 0.0001, None),
        ("error_rate<1%", "error_rate", "<", 0.01, None),
        ("rate<0.05", "error_rate", "<", 0.05, None),
        ("rps>50", "rps", ">", 50, None),
        ("GET /api/products/{id}: p(95)<300ms", "p95", "<", 0.3, "GET /api/products/{id}"),
    ],
)
def test_grammar(expression, metric, op, value, endpoint) -> None:
    threshold = parse_threshold(expression)
    assert (threshold.metric, threshold.op, threshold.endpoint) == (metric, op, endpoint)
    assert threshold.value == pytest.approx(value)


def test_grammar_of_scopes() -> None:
    assert parse_threshold("error_rate<5% over any 10s").span == 10
    assert parse_threshold("p(95)<800ms during stage 2").stage == 2
    assert parse_threshold("p(95)<500ms during 20s..end").between == (20.0, float("inf"))
    assert parse_threshold("checkout: p(99)<1s over any 5s during 10s..30s").between == (10.0, 30.0)


@pytest.mark.parametrize(
    "bad",
    ["p95<500ms", "p(95)<fast", "latency<1s", "error_rate<200%", "rps>>5", "", "p(95)<1s during stage 0",
     "p(95)<1s during 20s..10s", "p(95)<1s over any soon"],
)  # fmt: skip
def test_bad_expressions_name_the_grammar(bad) -> None:
    with pytest.raises(SloError, match=r"expected \[ENDPOINT: \]METRIC OP VALUE"):
        parse_threshold(bad)


def test_an_empty_run_is_not_a_pass(delay_server) -> None:
    async def journey(user):
        pass

    result = run(journey, base_url=delay_server, users=1, duration="200ms")
    with pytest.raises(AssertionError, match="no request was measured"):
        assert_latency(result, p95="1s")


def test_windowed_thresholds_catch_a_burst_the_whole_run_hides(delay_server) -> None:
    """503s only from 1 s to 2 s of a 3 s run: a third overall, but 100 % in some 1 s window."""

    async def journey(user):
        await user.client.get(f"/burst/1/1/503/{token}", extensions={"name": "burst"})
        await user.think(0.01)

    token = time.monotonic_ns()  # a fresh path: the server starts its clock at our first request
    result = run(journey, base_url=delay_server, users=2, duration="3s")
    assert 0.15 < result.error_rate < 0.5
    assert_slo(result, "error_rate<60%", "burst: error_rate<20% during 0s..0.9s")
    with pytest.raises(AssertionError) as failure:
        assert_slo(result, "error_rate<60% over any 1s", "burst: error_rate<20% during 0s..0.9s")
    message = str(failure.value)
    assert "1 of 2 threshold(s) failed" in message
    assert "any 1 s (worst at" in message


def test_phase_thresholds_use_the_stages(delay_server) -> None:
    async def journey(user):
        await user.client.get("/delay/5")
        await user.think(0.01)

    result = run(journey, base_url=delay_server, stages=[("1s", 1), ("1s", 4), ("1s", 1)])
    assert_slo(result, "rps>10 during stage 2", "p(95)<100ms during stage 2", "count>5 during stage 3")
    stage2 = result.span(1.0, 2.0)
    assert stage2.requests > result.span(0.0, 1.0).requests
    with pytest.raises(SloError, match="no stage 4"):
        assert_slo(result, "p(95)<1s during stage 4")


def test_abort_on_fail_stops_the_run_early(delay_server) -> None:
    slos = [Slo("error_rate<5%", abort=True, grace="1s"), Slo("p(95)<1s")]

    async def journey(user):
        await user.client.get("/status/503")
        await user.think(0.01)

    result = run(journey, base_url=delay_server, users=2, duration="20s",
                 watchdog=lambda rec, t, d, left: abort_reason(slos, rec, t, d, left))  # fmt: skip
    assert result.duration < 10  # of 20 s planned
    assert result.extra["stop_reason"].startswith("aborted: 'error_rate<5%' is breached beyond recovery")
    with pytest.raises(AssertionError, match=r"load aborted early: 'error_rate<5%' is breached beyond recovery"):
        check_declared(result, slos)


def test_abort_waits_while_the_threshold_can_still_be_met(delay_server) -> None:
    """A few early errors in a long run are recoverable: no abort."""
    slos = [Slo("error_rate<20%", abort=True, grace="500ms")]

    async def journey(user):
        await user.client.get("/status/503" if user.iteration <= 2 else "/delay/5")
        await user.think(0.01)

    result = run(journey, base_url=delay_server, users=2, duration="2s",
                 watchdog=lambda rec, t, d, left: abort_reason(slos, rec, t, d, left))  # fmt: skip
    assert "stop_reason" not in result.extra
    assert result.errors == 4


def test_a_saturated_generator_is_inconclusive_not_pass_or_fail(delay_server) -> None:
    """A journey that burns the event loop: the generator measures itself, so the test is skipped."""

    async def journey(user):
        await user.client.get("/delay/1")
        deadline = time.perf_counter() + 0.08
        while time.perf_counter() < deadline:  # blocks the loop: every other user waits
            pass

    result = run(journey, base_url=delay_server, users=3, duration="1500ms")
    assert result.generator.saturated
    assert any("event-loop lag" in reason or "CPU" in reason for reason in result.generator.reasons)
    for helper in (lambda: assert_latency(result, p95="10s"), lambda: assert_slo(result, "p(95)<1ms")):
        with pytest.raises(pytest.skip.Exception, match="inconclusive: the load generator was saturated"):
            helper()


def test_saturation_skips_even_a_breach(mixed_result) -> None:
    saturated = replace(mixed_result.generator, saturated=True, reasons=("generator CPU 97 % > 90 % of a core",))
    mixed_result.generator, original = saturated, mixed_result.generator
    try:
        with pytest.raises(pytest.skip.Exception, match=r"CPU 97 %.*error_rate 25.00 % breaks <= 1.00 %"):
            assert_error_rate(mixed_result, max="1%")
    finally:
        mixed_result.generator = original


def test_a_phase_without_traffic_fails_instead_of_passing(mixed_result) -> None:
    """A 1.5 s run has no window in 10s..end: the threshold passed vacuously with 0.0 measured."""
    with pytest.raises(AssertionError) as failure:
        assert_slo(mixed_result, "p(95)<1us during 10s..end", "error_rate<0.0001% during 10s..16s")
    message = str(failure.value)
    assert "2 of 2 threshold(s) failed" in message
    assert "no request was measured in that scope" in message
    assert_slo(mixed_result, "count>=0 during 10s..end")  # counts and rates of nothing are 0, honestly


def test_latency_of_an_endpoint_that_only_failed_is_not_a_pass(mixed_result) -> None:
    """Latency describes successful requests; an endpoint with none must not pass a latency threshold."""
    with pytest.raises(AssertionError, match="no successful request was measured"):
        assert_latency(mixed_result, p95="10s", endpoint="fail")
    assert mixed_result.endpoints["fail"].failed.requests == mixed_result.endpoints["fail"].requests


def test_abort_spares_a_closed_model_run_that_recovers() -> None:
    """Slow failures after fast successes: extrapolating the average rate so far aborted a run that passes.

    The service fails from 1 s to 5 s of an 8 s run; users back off 0.3 s after a failure and pause
    20 ms after a success. The errors end near 6 % of all requests, under the 10 % threshold.
    """
    import httpx

    first: list[float] = []

    def handler(request: httpx.Request) -> httpx.Response:
        now = time.monotonic()
        first.append(now) if not first else None
        return httpx.Response(503 if 1.0 <= now - first[0] < 5.0 else 200)

    async def journey(user):
        response = await user.client.get("/shop")
        await user.think(0.3 if response.status_code == 503 else 0.02)

    slos = [Slo("error_rate<10%", abort=True, grace="1s")]
    result = run(journey, users=2, duration="8s", transport_factory=lambda: httpx.MockTransport(handler),
                 watchdog=lambda rec, t, d, left: abort_reason(slos, rec, t, d, left))  # fmt: skip
    assert "stop_reason" not in result.extra
    assert 0 < result.error_rate < 0.10
    check_declared(result, slos)


def test_declared_spans_are_judged_while_the_run_goes(delay_server) -> None:
    """Old windows are merged to keep a soak's memory flat; declared `over any` spans are tracked live."""
    import functools

    from pytest_shopflow_perf.verdicts.assertions import watch

    token = time.monotonic_ns()

    async def journey(user):
        await user.client.get(f"/burst/0/1/503/{token}")
        await user.think(0.02)

    slos = [Slo("error_rate<5% over any 2s")]
    tracked: dict = {}
    result = run(journey, base_url=delay_server, users=2, duration="5s", window_detail=2,
                 watchdog=functools.partial(watch, slos, tracked))  # fmt: skip
    assert tracked["error_rate<5% over any 2s"][0] > 0.3  # the burst of the first second
    with pytest.raises(AssertionError, match="SLO breached: 1 of 1"):
        check_declared(result, slos, tracked)
    with pytest.raises(SloError, match="declare the threshold on the marker"):
        assert_slo(result, "error_rate<5% over any 2s")  # not declared: the early windows are merged
