"""--perf-scale / SHOPFLOW_PERF_SCALE scale every time of a profile: stages, fault windows and phases."""

from __future__ import annotations

import pytest

pytest_plugins = ["pytester"]

SCALED = """
import pytest
from pytest_shopflow_perf import assert_slo
from pytest_shopflow_perf.faults.spec import latency
from pytest_shopflow_perf.faults.actions import action

CALLS = []

async def page(user):
    await user.client.get("/delay/5")
    await user.think(0.02)

@pytest.mark.load(users=2, duration="16s",
                  faults=[latency("100ms", at="6s", until="11s"),
                          action("mark", lambda: CALLS.append("start"), lambda: CALLS.append("stop"),
                                 at="6s", until="11s")])
def test_scaled(load):
    result = load.run(page)
    assert result.duration == pytest.approx(4.0, abs=0.5)
    windows = {f["name"]: (f["start_s"], f["end_s"]) for f in result.extra["faults"]}
    assert windows == {"latency 100ms": (1.5, 2.75), "mark": (1.5, 2.75)}
    assert CALLS == ["start", "stop"]
    during = result.extra["recovery"][0]["during"]
    assert during["p95_ms"] >= 100
    # phases are stated on the profile's clock too: 12s..end of 16 s is the last quarter, after the fault
    assert_slo(result, "p(95)<90ms during 12s..end", "p(95)>90ms during 6s..11s")

@pytest.mark.load(users=1, duration="8s", faults=[latency("10ms", at="9s")])
def test_fault_after_the_end(load):
    load.run(page)
"""


def test_scale_applies_to_fault_windows_actions_and_phases(pytester: pytest.Pytester, delay_server: str) -> None:
    pytester.makepyfile(test_scaled=SCALED)
    result = pytester.runpytest_subprocess("--perf-base-url", delay_server, "--perf-scale", "0.25", "-p", "no:randomly")
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(
        ["*fault 'latency 10ms' at 2.25 s starts after the run ends at 2 s (after --perf-scale 0.25)*"]
    )
