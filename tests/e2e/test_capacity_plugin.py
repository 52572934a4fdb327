"""``load.find_capacity`` through the plugin, against servers whose capacity the test knows.

``/slots/2/25`` serves at most 2 requests at once for 25 ms each: 80 requests/s. The levels
the search runs (15, 30, 60, 120, then 90) stay well away from it: 75 % utilisation passes
with room to spare, 112 % and 150 % queue up without bound; no step sits on the edge. The
bisection step may end the search early (a busy machine can make its generator late): the
answer is then coarser, never wrong, so the test holds the truth between what passed and
what broke.
"""

from __future__ import annotations

import json

import pytest

pytest_plugins = ["pytester"]
pytestmark = pytest.mark.usefixtures("inner_ini")


SEARCH = """
import pytest
from pytest_shopflow_perf import assert_no_regression

async def order(user):
    await user.client.get("/slots/2/25")

@pytest.mark.load(duration="2s", name="capacity")
def test_capacity(load):
    capacity = load.find_capacity(order, slo=["p(95)<150ms", "error_rate<1%"], start=15, max=2000, refine=1,
                                  cooldown="500ms")
    assert [step.level for step in capacity.steps][:4] == [15, 30, 60, 120]
    assert capacity.limit == "service"
    assert capacity.max_sustainable == 60
    assert capacity.breaking.level in (90, 120)
    assert capacity.max_sustainable < 80 < capacity.breaking.level  # the truth, 80/s, lies between them
    assert all(step.passed for step in capacity.steps[:3])
    assert "p(95)<150ms" in capacity.breaking.breaches[0]
    assert_no_regression(capacity)
"""


def test_the_search_finds_a_known_capacity_and_flags_a_drop(pytester: pytest.Pytester, delay_server: str) -> None:
    pytester.makepyfile(test_search=SEARCH)
    from pytest_shopflow_perf.verdicts.baseline import environment_fingerprint

    conditions = {"fingerprint": environment_fingerprint()["fingerprint"], "step_duration_s": 2.0}
    stored = {"model": "rate", "max_sustainable": 1000.0, "limit": "service", "breaking": {"level": 1100.0},
              "conditions": conditions}  # fmt: skip
    baselines = pytester.path / "baselines"
    baselines.mkdir()
    (baselines / "test_search.py__test_capacity-capacity.json").write_text(
        json.dumps(
            {"schema": "shopflow-perf/capacity-baseline/1", "test": "test_search.py::test_capacity", "runs": [stored]}
        )
    )
    outcome = pytester.runpytest_subprocess(
        "--perf-base-url", delay_server, "--perf-report-dir", "out", "-v", "--html=report.html", "--self-contained-html"
    )
    outcome.assert_outcomes(failed=1)
    outcome.stdout.fnmatch_lines(
        ["  capacity: max sustainable 60 arrivals/s at p(95)<150ms, error_rate<1%; breaks at*"]
    )
    outcome.stdout.fnmatch_lines(["*capacity regression: critical (fails at major or worse): max sustainable 60*"])
    outcome.stdout.fnmatch_lines(["*capacity: 15 arrivals/s *", "*capacity: 120 arrivals/s *"])
    records = [json.loads(p.read_text()) for p in sorted((pytester.path / "out").glob("*.json"))]
    found = [r["extra"]["capacity"] for r in records if "capacity" in r.get("extra", {})]  # on the last step
    assert len(found) == 1
    assert found[0]["max_sustainable"] == 60
    assert found[0]["regression"]["tier"] == "critical"
    summary = (pytester.path / "out" / "summary.md").read_text()
    assert "## Capacity search" in summary
    html = (pytester.path / "report.html").read_text(encoding="utf-8")
    assert "data-chart=\\&#34;capacity" in html  # pytest-html keeps the page's rows as escaped JSON


def test_a_search_the_generator_limits_says_so(pytester: pytest.Pytester, delay_server: str) -> None:
    """Each iteration spins 10 ms of CPU in the generator: it saturates long before the server does."""
    pytester.makepyfile(
        test_spin="""
import time
import pytest

async def spin(user):
    end = time.perf_counter() + 0.010
    while time.perf_counter() < end:
        pass
    await user.client.get("/delay/1")

@pytest.mark.load(duration="2s")
def test_capacity(load):
    capacity = load.find_capacity(spin, slo=["p(95)<2s"], start=20, max=5000, cooldown=0)
    assert capacity.limit == "generator"
    assert capacity.steps[-1].saturated
    assert capacity.breaking is None
"""
    )
    outcome = pytester.runpytest_subprocess("--perf-base-url", delay_server, "--perf-save-baseline")
    outcome.assert_outcomes(passed=1)
    assert not (pytester.path / "baselines" / "test_spin.py__test_capacity-capacity.json").exists()
