"""``user.measure`` against a known duration: the block's own clock is the truth (2 ms + 5 %)."""

from __future__ import annotations

import asyncio
from time import perf_counter

import httpx
import pytest
from support.engine import run

from pytest_shopflow_perf.metrics.hdr import new_histogram

pytestmark = pytest.mark.timing


def test_a_measured_sleep_has_the_percentiles_of_the_sleep() -> None:
    truth = new_histogram()

    async def journey(user):
        async with user.measure("sleep 20ms"):
            start = perf_counter()
            await asyncio.sleep(0.020)
            truth.record_value(int((perf_counter() - start) * 1_000_000))

    result = run(
        journey,
        users=3,
        duration="2s",
        think_time=(0, "15ms"),
        transport_factory=lambda: httpx.MockTransport(lambda request: httpx.Response(200)),
    )
    stats = result.endpoints["sleep 20ms"]
    assert stats.errors == 0
    assert stats.requests >= 100
    for q in (50, 90, 99):
        true_ms = truth.get_value_at_percentile(q) / 1000
        assert true_ms >= 20.0  # asyncio slept at least what it was told
        measured_ms = stats.percentile(q) * 1000
        tolerance_ms = 2.0 + 0.05 * true_ms
        assert true_ms - 0.1 <= measured_ms <= true_ms + tolerance_ms, (
            f"p{q}: measured {measured_ms:.2f} ms, true {true_ms:.2f} ms, tolerance +{tolerance_ms:.2f} ms"
        )
