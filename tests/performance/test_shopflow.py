"""The ShopFlow load suite (run with ``pytest -m load``); thresholds from PLAN.md.

Scaled by the environment: SHOPFLOW_PERF_SCALE (durations), SHOPFLOW_PERF_USERS,
SHOPFLOW_PERF_DURATION, SHOPFLOW_BASE_URL (a deployment you own; loopback by default).
"""

from __future__ import annotations

import pytest
from journeys import SHOPPING_MIX, checkout, login

from pytest_shopflow_perf import assert_error_rate, assert_latency, assert_no_regression, assert_slo

pytestmark = pytest.mark.load


@pytest.mark.load(users=20, duration="30s", ramp_up="5s", name="baseline: normal shopping load")
def test_baseline_normal_load(load):
    """Normal traffic: browsing dominates, checkout is rare."""
    result = load.run(SHOPPING_MIX, on_start=login)
    assert_latency(result, p95="500ms", p99="1s", mean="200ms")
    assert_error_rate(result, max="1%")
    assert_slo(result, "GET /api/products/{id}: p(95)<300ms", "POST /api/checkout: p(95)<800ms")
    assert_no_regression(result)


@pytest.mark.load(rate=5, duration="20s", max_users=100, name="open model: checkout at 5 orders/s")
def test_open_model_checkout(load):
    """Orders arrive on schedule whether or not the service keeps up: latency counts from the intended start."""
    result = load.run(checkout, on_start=login)
    assert result.dropped_iterations == 0
    assert_latency(result, p95="500ms", p99="1s")
    assert_error_rate(result, max="1%")
    assert_no_regression(result)
