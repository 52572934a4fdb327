"""The ShopFlow load suite: the scenarios of PLAN.md as tests (run with ``pytest -m load``).

Scaled by the environment (see README.md next to this file): SHOPFLOW_PERF_SCALE
multiplies every duration, SHOPFLOW_PERF_USERS / SHOPFLOW_PERF_DURATION override
the profiles, SHOPFLOW_BASE_URL points the suite at a deployment you own
(loopback unless --perf-allow-host names it). Thresholds (PLAN.md): p95 < 500 ms,
p99 < 1 s, mean < 200 ms, error rate < 1 %.
"""

from __future__ import annotations

import os

import pytest
from journeys import SHOPPING_MIX, checkout, hurried_login, login

from pytest_shopflow_perf import (
    LoadResult,
    Slo,
    assert_error_rate,
    assert_latency,
    assert_no_drift,
    assert_no_regression,
    assert_slo,
)

pytestmark = [pytest.mark.load, pytest.mark.usefixtures("shopflow_test_data")]

NORMAL_USERS = 20  # about 20 req/s with a person's think times: ShopFlow's normal day
PEAK_USERS = 10 * NORMAL_USERS  # the seasonal spike the stakeholders worry about
STRESS_START = float(os.environ.get("SHOPFLOW_PERF_STRESS_START", "25"))  # journeys started per second
STRESS_MAX = float(os.environ.get("SHOPFLOW_PERF_STRESS_MAX", "3200"))
PLAN_SLOS = ["p(95)<500ms", "p(99)<1s", "avg<200ms", "error_rate<1%"]
# Stop a run that cannot pass any more instead of paying for the rest of it.
HOPELESS = Slo("error_rate<5%", abort=True, grace="5s")


def assert_plan_thresholds(result: LoadResult) -> None:
    assert_latency(result, p95="500ms", p99="1s", mean="200ms")
    assert_error_rate(result, max="1%")


@pytest.mark.load(
    users=NORMAL_USERS,
    duration="20s",
    ramp_up="5s",
    name="baseline: normal shopping load",
    slo=[*PLAN_SLOS, "GET /api/products/{id}: p(95)<300ms", "POST /api/checkout: p(95)<800ms", HOPELESS],
)
def test_baseline_normal_load(load):
    """Normal traffic: browsing dominates, checkout is rare. The declared SLOs are checked by load.run."""
    result = load.run(SHOPPING_MIX, on_start=login)
    assert_no_regression(result)


@pytest.mark.load(
    users=PEAK_USERS, duration="20s", ramp_up="5s", name="peak: 10x normal load", slo=[*PLAN_SLOS, HOPELESS]
)
def test_peak_ten_times_normal(load):
    """The seasonal spike: ten times the normal users must not degrade the experience."""
    result = load.run(SHOPPING_MIX, on_start=login)
    assert_slo(result, "error_rate<1% over any 5s")  # no burst of errors hidden in the average
    assert_no_regression(result)


@pytest.mark.load(duration="6s", ramp_up="1s", name="stress", client="fast", max_users=2000)
def test_stress_finds_the_breaking_point(load):
    """Search the highest arrival rate the plan's SLOs hold at: the breaking point, or the generator's limit.

    Open model (arrivals keep coming when the service slows, so a limit shows as latency), hurried
    shoppers (think times of 50-150 ms), the lean client: each level a 6 s run, doubling from
    STRESS_START journeys a second, then one bisection between the last level that held and the first
    that broke. A level that breaks is aborted once its thresholds cannot recover.
    """
    capacity = load.find_capacity(
        SHOPPING_MIX,
        on_start=hurried_login,
        slo=["p(95)<500ms", "error_rate<1%"],
        start=STRESS_START,
        max=STRESS_MAX,
        refine=1,
    )
    first = capacity.steps[0]
    assert first.passed or first.saturated, f"the lowest stress level already breaks: {first.breaches}"
    assert_no_regression(capacity)


@pytest.mark.load(
    stages=[("6s", NORMAL_USERS), ("1s", PEAK_USERS), ("6s", PEAK_USERS), ("1s", NORMAL_USERS), ("6s", NORMAL_USERS)],
    name="spike: normal, sudden 10x, back to normal",
)
def test_spike_and_recovery(load):
    """A sudden 10x spike: errors stay in budget and latency is back within the SLO once it passes."""
    result = load.run(SHOPPING_MIX, on_start=login)
    assert_error_rate(result, max="1%")
    # Stage 3 is the 10x plateau; stage 5 the return to normal, where the SLO must hold again.
    assert_slo(result, "p(99)<1s during stage 3", "p(95)<500ms during stage 5", "error_rate<1% during stage 5")
    assert_latency(result, p99="1s")


@pytest.mark.load(users=30, duration="20s", ramp_up="3s", name="soak: constant load")
def test_soak_constant_load(load):
    """Constant load; short by default, hours with SHOPFLOW_PERF_SCALE. Latency must not drift upward."""
    result = load.run(SHOPPING_MIX, on_start=login)
    assert_plan_thresholds(result)
    assert_no_drift(result, metric="p95", max_slope="10%/min")
    assert_no_regression(result)


@pytest.mark.load(rate=5, duration="15s", max_users=100, name="open model: checkout at 5 orders/s")
def test_open_model_checkout(load):
    """Orders arrive on schedule whether or not the service keeps up: latency counts from the intended start."""
    result = load.run(checkout, on_start=login)
    assert result.dropped_iterations == 0
    assert_latency(result, p95="500ms", p99="1s")
    assert_error_rate(result, max="1%")
    assert_no_regression(result)
