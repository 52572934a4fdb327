"""Faults injected during real engine runs show up in the measured figures, and never outlive the run."""

from __future__ import annotations

import socket
import threading
from urllib.parse import urlsplit

import pytest
from support.engine import run

from pytest_shopflow_perf.faults.actions import service_faults
from pytest_shopflow_perf.faults.run import FaultRun
from pytest_shopflow_perf.faults.spec import errors, latency, outage
from pytest_shopflow_perf.verdicts import recovery


def run_with(faults, base_url: str, journey, **profile):
    with FaultRun(faults) as fault_run:
        target = fault_run.route(base_url)
        result = run(journey, base_url=target, on_clock_start=fault_run.clock_started, **profile)
    fault_run.annotate(result)
    recovery.annotate(result)
    return result, fault_run


async def page(user):
    await user.client.get("/delay/20", extensions={"name": "page"})
    await user.think(0.01)


@pytest.mark.timing
def test_injected_latency_shows_in_the_percentiles(delay_server: str) -> None:
    """+300 ms injected: p50 = p50 without the fault + 300 ms, +-10 %."""
    plain, _ = run_with([], delay_server, page, users=3, duration="2s")
    slowed, _ = run_with([latency("300ms")], delay_server, page, users=3, duration="3s")
    added = slowed.percentile(50) - plain.percentile(50)
    assert 0.270 <= added <= 0.330, added
    assert slowed.extra["faults"][0]["kind"] == "latency"


def test_an_injected_error_ratio_is_measured(delay_server: str) -> None:
    async def fast(user):
        await user.client.get("/delay/0", extensions={"name": "fast"})

    result, fault_run = run_with([errors(0.05)], delay_server, fast, users=4, iterations=2000)
    assert result.requests == 2000
    assert fault_run.proxy is not None
    assert result.errors == fault_run.proxy.stats["errors"]  # every injected error is measured, no more
    # 5 % of 2,000: the seeded draws land within 5 standard deviations (sd = 9.7) of 100
    assert 52 <= result.errors <= 148, result.errors
    assert set(result.errors_by_kind) == {"HTTP 503"}
    assert result.extra["proxy"]["errors"] == result.errors


@pytest.mark.timing
def test_a_slow_database_through_the_service_knobs(shopflow_service: str) -> None:
    """The reference service's db_delay_ms knob as a dependency fault, on for 2 s of a 6 s run."""

    async def order_history(user):
        await user.client.get("/api/orders", headers=user.state["auth"], extensions={"name": "orders"})
        await user.think(0.02)

    async def login(user):
        response = await user.client.post(
            "/api/login", json={"email": f"customer{user.id}@shopflow.test", "password": f"secret{user.id}"}
        )
        user.state["auth"] = {"Authorization": f"Bearer {response.json()['token']}"}

    fault = service_faults(shopflow_service, {"db_delay_ms": 150}, at="2s", duration="2s")
    with FaultRun([fault]) as fault_run:
        result = run(order_history, base_url=shopflow_service, users=3, duration="7s", on_start=login,
                     on_clock_start=fault_run.clock_started)  # fmt: skip
    fault_run.annotate(result)
    recovery.annotate(result)
    assert "fault_errors" not in result.extra
    (entry,) = result.extra["recovery"]
    assert entry["during"]["p95_ms"] >= 150
    assert entry["baseline"]["p95_ms"] < 100
    assert entry["recovered"]


def _listening(url: str) -> bool:
    parts = urlsplit(url)
    try:
        socket.create_connection((parts.hostname, parts.port), timeout=0.5).close()
    except OSError:
        return False
    return True


def test_the_proxy_stops_when_the_run_fails(delay_server: str) -> None:
    seen: list[str] = []

    def failing_test() -> None:
        with FaultRun([outage(at="5s", duration="1s")]) as fault_run:
            seen.append(fault_run.route(delay_server))
            assert _listening(seen[0])
            raise RuntimeError("the test failed")

    with pytest.raises(RuntimeError, match="the test failed"):
        failing_test()
    assert not _listening(seen[0])
    assert not [t for t in threading.enumerate() if "proxy" in t.name.lower() and t.is_alive()]
