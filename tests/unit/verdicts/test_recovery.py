"""Recovery measured against a service whose behaviour around a fault is known (dependency faults)."""

from __future__ import annotations

import threading
import time

import pytest
from support.engine import run

from pytest_shopflow_perf import assert_recovery
from pytest_shopflow_perf.faults.actions import Scheduler, action
from pytest_shopflow_perf.faults.run import FaultRun
from pytest_shopflow_perf.verdicts import recovery


class SlowService:
    """Requests go to /delay/300 while the fault is on, and for ``lag`` seconds after it ends."""

    def __init__(self, lag: float = 0.0) -> None:
        self.lag = lag
        self.slow_until = 0.0
        self.faulty = False

    def delay_ms(self) -> int:
        return 300 if self.faulty or time.perf_counter() < self.slow_until else 5

    def start(self) -> None:
        self.faulty = True

    def stop(self) -> None:
        self.faulty = False
        self.slow_until = time.perf_counter() + self.lag


def run_with_fault(delay_server: str, service: SlowService, *, at: float, until: float, duration: str):
    async def journey(user):
        await user.client.get(f"/delay/{service.delay_ms()}", extensions={"name": "page"})
        await user.think(0.02)

    fault = action("slow dependency", service.start, service.stop, at=at, until=until)
    with FaultRun([fault]) as fault_run:
        result = run(journey, base_url=delay_server, users=3, duration=duration, on_clock_start=fault_run.clock_started)
    fault_run.annotate(result)
    recovery.annotate(result)
    return result


@pytest.mark.timing
def test_instant_recovery_is_measured_within_two_windows(delay_server: str) -> None:
    result = run_with_fault(delay_server, SlowService(lag=0.0), at=3.0, until=5.0, duration="9s")
    (entry,) = result.extra["recovery"]
    assert result.extra["faults"][0] == {"name": "slow dependency", "kind": "action", "start_s": 3.0, "end_s": 5.0,
                                         "path": None}  # fmt: skip
    assert entry["baseline"]["p95_ms"] < 50
    assert entry["during"]["p95_ms"] >= 300
    assert entry["during"]["p95_change"] > 5
    assert entry["recovered"]
    assert entry["recovery_s"] <= 2.0
    assert_recovery(result, within="2s", max_p95_during="1s")


@pytest.mark.timing
def test_slow_recovery_is_measured_within_one_window_of_the_truth(delay_server: str) -> None:
    result = run_with_fault(delay_server, SlowService(lag=2.5), at=3.0, until=5.0, duration="13s")
    (entry,) = result.extra["recovery"]
    assert 2.5 - 1.0 <= entry["recovery_s"] <= 2.5 + 1.0
    with pytest.raises(AssertionError, match=r"no recovery: 1 of 1 fault\(s\) failed"):
        assert_recovery(result, within="1s")
    assert_recovery(result, within="4s")


def test_a_service_that_does_not_recover_in_the_run(delay_server: str) -> None:
    result = run_with_fault(delay_server, SlowService(lag=60.0), at=3.0, until=5.0, duration="8s")
    (entry,) = result.extra["recovery"]
    assert entry["recovery_s"] is None
    with pytest.raises(AssertionError, match="did not recover"):
        assert_recovery(result, within="30s")


def test_actions_are_undone_even_when_the_run_ends_early() -> None:
    events: list[str] = []
    scheduler = Scheduler(
        [action("kill", lambda: events.append("kill"), lambda: events.append("restart"), at=0.05, until=60)]
    )
    scheduler.begin(time.perf_counter())
    time.sleep(0.3)
    scheduler.stop()  # the run failed after 0.3 s: the dependency must come back
    assert events == ["kill", "restart"]
    assert not [t for t in threading.enumerate() if t.name == "shopflow-perf faults"]


def test_a_failing_action_is_reported_not_raised() -> None:
    def broken() -> None:
        raise RuntimeError("no such process")

    scheduler = Scheduler([action("kill", broken, at=0)])
    scheduler.begin(time.perf_counter())
    time.sleep(0.1)
    scheduler.stop()
    assert scheduler.errors == ["kill: RuntimeError: no such process"]


def test_an_action_whose_start_failed_is_never_undone() -> None:
    """Undoing a fault that never happened (restarting a Redis that was never killed) does harm."""
    undone: list[str] = []

    def broken() -> None:
        raise RuntimeError("no such process")

    scheduler = Scheduler([action("kill", broken, lambda: undone.append("restart"), at=0, until=0.05)])
    scheduler.begin(time.perf_counter())
    time.sleep(0.2)
    scheduler.stop()
    assert undone == []
    assert scheduler.errors == ["kill: RuntimeError: no such process"]


def test_a_proxy_that_fails_to_stop_does_not_hide_the_tests_own_failure(monkeypatch: pytest.MonkeyPatch) -> None:
    from pytest_shopflow_perf.faults.proxy import FaultProxy
    from pytest_shopflow_perf.faults.run import FaultRun
    from pytest_shopflow_perf.faults.spec import latency

    def stuck(self: FaultProxy) -> None:
        raise RuntimeError("FaultProxy thread did not stop within 10 s")

    def failing_test(fault_run: FaultRun) -> None:
        with fault_run:
            fault_run.route("http://127.0.0.1:9")
            monkeypatch.setattr(FaultProxy, "stop", stuck)
            raise ZeroDivisionError

    fault_run = FaultRun([latency("1ms")])
    with pytest.raises(ZeroDivisionError):
        failing_test(fault_run)
    monkeypatch.undo()
    assert fault_run.proxy is not None
    fault_run.proxy.stop()


def test_the_proxy_draws_follow_the_runs_seed() -> None:
    """--perf-seed makes a run reproducible: the proxy's error and reset draws included (it was always 0)."""
    from pytest_shopflow_perf.faults.spec import errors

    with FaultRun([errors(0.5)], seed=1234) as fault_run:
        fault_run.route("http://127.0.0.1:9")
        assert fault_run.proxy is not None
        assert fault_run.proxy.seed == 1234
