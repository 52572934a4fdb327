"""SLO helpers against real (mock-transport) results: messages, grammar, empty runs."""

from __future__ import annotations

import httpx
import pytest
from support.engine import run

from pytest_shopflow_perf import assert_error_rate, assert_latency, assert_slo, assert_throughput
from pytest_shopflow_perf.assertions import SloError, parse_threshold


def result_with_errors():
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(500 if request.url.path == "/fail" else 200, json={})

    async def journey(user):
        await user.client.get("/ok")
        await user.client.get("/ok")
        await user.client.get("/ok")
        await user.client.get("/fail")

    return run(journey, users=1, iterations=50, transport_factory=lambda: httpx.MockTransport(handler))


def test_passing_thresholds_are_recorded() -> None:
    result = result_with_errors()
    assert_latency(result, p95="1s", max=5)
    assert_throughput(result, min_rps=1)
    assert [o["passed"] for o in result.extra["slo"]] == [True, True, True]


def test_every_breach_is_listed_in_a_table() -> None:
    result = result_with_errors()
    with pytest.raises(AssertionError) as failure:
        assert_slo(result, "error_rate<1%", "GET /fail: rate<=10%", "p(95)<10s", "count>1000000")
    message = str(failure.value)
    assert message.startswith("SLO breached: 3 of 4 threshold(s) failed")
    lines = [line.split() for line in message.splitlines()[1:]]
    assert lines[0] == ["metric", "endpoint", "measured", "threshold", "margin", "worst", "endpoint"]
    assert ["error_rate", "total", "25.00", "%", "<", "1.00", "%", "+2400.0%", "GET", "/fail"] in lines
    assert ["error_rate", "GET", "/fail", "100.00", "%", "<=", "10.00", "%", "+900.0%"] in lines
    assert ["count", "total", "200.0", ">", "1,000,000.0", "+100.0%"] in lines


def test_error_rate_helper() -> None:
    result = result_with_errors()
    assert_error_rate(result, max="30%")
    with pytest.raises(AssertionError, match="error_rate"):
        assert_error_rate(result, max="1%")
    assert_error_rate(result, max=0, endpoint="GET /ok")


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


@pytest.mark.parametrize("bad", ["p95<500ms", "p(95)<fast", "latency<1s", "error_rate<200%", "rps>>5", ""])
def test_bad_expressions_name_the_grammar(bad) -> None:
    with pytest.raises(SloError, match=r"expected \[ENDPOINT: \]METRIC OP VALUE"):
        parse_threshold(bad)


def test_an_empty_run_is_not_a_pass() -> None:
    async def journey(user):
        pass

    result = run(journey, users=1, duration="200ms", transport_factory=lambda: httpx.MockTransport(lambda r: None))
    with pytest.raises(AssertionError, match="no request was measured"):
        assert_latency(result, p95="1s")
