"""``user.measure`` through the plugin: its row is in the terminal, the JSON, the SLOs and on shards."""

from __future__ import annotations

import json

import pytest

pytest_plugins = ["pytester"]
pytestmark = pytest.mark.usefixtures("inner_ini")


JOURNEY = """
import asyncio, pytest
from pytest_shopflow_perf import assert_slo

async def publish(user):
    async with user.measure("queue publish"):
        await asyncio.sleep(0.004)
    if user.iteration % 5 == 0:
        with user.measure("queue ack"):
            raise ConnectionError("broker closed the channel")
    await user.client.get("/delay/2")
    await user.think(0, 0.01)
"""


@pytest.mark.parametrize("workers", [1, 2])
def test_a_measured_name_is_a_row_in_every_report(pytester: pytest.Pytester, delay_server: str, workers: int) -> None:
    pytester.makepyfile(
        test_queue=JOURNEY
        + f"""
@pytest.mark.load(users=4, duration="2s", workers={workers})
def test_publish(load):
    result = load.run(publish)
    assert result.endpoints["queue publish"].requests > 20
    ack = result.endpoints["queue ack"]
    assert ack.errors_by_kind == {{"exception ConnectionError": ack.requests}}
    assert "journey publish" not in result.events
    assert_slo(result, "queue publish: p(95)<2s", "GET /delay/{{id}}: error_rate<1%")
    assert_slo(result, "queue ack: error_rate<1%")
"""
    )
    outcome = pytester.runpytest_subprocess("--perf-base-url", delay_server, "--perf-report-dir", "out", "-v")
    outcome.assert_outcomes(failed=1)
    outcome.stdout.fnmatch_lines(["*queue publish*", "*queue ack*"])
    outcome.stdout.fnmatch_lines(["*SLO failed: queue ack: error_rate<1%: measured 100.00 %*"])
    record = json.loads((pytester.path / "out" / "test_queue.py__test_publish.json").read_text())
    assert {"queue publish", "queue ack", "GET /delay/{id}"} <= set(record["endpoints"])
