"""assert_no_drift in a real run: a server whose latency grows with time fails, a steady one passes."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from support.delay_process import delay_server_process

pytest_plugins = ["pytester"]


# /grow/5/4: 5 ms + 4 ms for every second the server has been up, +240 ms a minute; over the 8 s run
# the start level is well under 100 ms, so the slope is far above 100 %/min however slow the machine.
# /delay/10 is flat; the same limit leaves it room for a busy machine's noise (8 windows are few).
INNER = """
import pytest
from pytest_shopflow_perf import assert_no_drift

async def growing(user):
    await user.client.get("/grow/5/4", extensions={"name": "GET /grow"})
    await user.think(0.02)

async def steady(user):
    await user.client.get("/delay/10", extensions={"name": "GET /steady"})
    await user.think(0.02)

@pytest.mark.load(users=2, duration="8s", ramp_up="1s", name="growing latency")
def test_growing(load):
    assert_no_drift(load.run(growing), metric="p95", max_slope="100%/min")

@pytest.mark.load(users=2, duration="8s", ramp_up="1s", name="steady latency")
def test_steady(load):
    drift = assert_no_drift(load.run(steady), metric="p95", max_slope="100%/min", endpoint="GET /steady")
    assert drift.verdict == "pass"
"""


@pytest.fixture
def fresh_delay_server() -> Iterator[str]:
    """A delay server of this test alone: /grow counts from the server's start, not the session's."""
    with delay_server_process() as (url, _pid):
        yield url


@pytest.mark.timing
def test_growing_latency_fails_drift_and_steady_latency_passes(
    pytester: pytest.Pytester, fresh_delay_server: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytester.makepyfile(test_soak=INNER)
    monkeypatch.setenv("PYTEST_ADDOPTS", "-o asyncio_default_fixture_loop_scope=function")
    result = pytester.runpytest_subprocess(
        "--perf-base-url", fresh_delay_server, "--perf-report-dir", "perf-report", "-p", "no:cacheprovider"
    )
    outcomes = result.parseoutcomes()
    if outcomes.get("skipped"):  # a saturated generator is inconclusive by design, not a drift verdict
        pytest.skip(f"the inner run was inconclusive on this machine: {result.outlines[-1]}")
    result.assert_outcomes(failed=1, passed=1)
    result.stdout.fnmatch_lines(
        ["*AssertionError: p95 drifts upward: slope +* %/min (99 % interval +* %/min), from * ms to * ms over *"]
    )
    summary = json.loads((pytester.path / "perf-report" / "summary.json").read_text())
    drift = {run["name"]: run["drift"] for run in summary["tests"]}
    (grown,) = drift["growing latency"]
    (steady,) = drift["steady latency"]
    assert grown["verdict"] == "fail"
    assert grown["low"] > 100
    assert grown["end"] > grown["start"] + 15  # 4 ms a second over at least 5 s of steady windows
    assert steady["verdict"] == "pass"
    assert steady["endpoint"] == "GET /steady"
    markdown = (pytester.path / "perf-report" / "summary.md").read_text()
    assert "## Drift" in markdown
    assert "| growing latency | p95 | total |" in markdown
    assert "| steady latency | p95 | GET /steady |" in markdown
