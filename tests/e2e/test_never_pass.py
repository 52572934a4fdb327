"""A run that was stopped or never judged is never PASS: in summary.md, the step summary and the terminal table."""

from __future__ import annotations

import json
import sys

import pytest

pytest_plugins = ["pytester"]

# test_first is judged and passes; test_long is stopped by Ctrl-C (SIGINT to its own process, sent by the
# journey on its 5th iteration: no timing involved) long before its threshold could be judged.
INTERRUPTED = """
import os, signal, pytest
from pytest_shopflow_perf import assert_latency

async def browse(user):
    await user.client.get("/delay/1")
    await user.think(0.01)

async def interrupted(user):
    await user.client.get("/delay/1")
    if user.iteration == 5:
        os.kill(os.getpid(), signal.SIGINT)
    await user.think(0.01)

@pytest.mark.load(users=1, duration="1s")
def test_first(load):
    assert_latency(load.run(browse), p95="2s")

@pytest.mark.load(users=1, duration="30s", slo=["p(95)<2s"])
def test_long(load):
    load.run(interrupted)
"""


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")
def test_an_interrupted_run_is_never_pass(
    pytester: pytest.Pytester, delay_server: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytester.makepyfile(test_sig=INTERRUPTED)
    monkeypatch.setenv("PYTEST_ADDOPTS", "-o asyncio_default_fixture_loop_scope=function")
    step_summary = pytester.path / "step-summary.md"
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(step_summary))
    result = pytester.runpytest_subprocess(
        "-p", "no:randomly", "--perf-base-url", delay_server, "--perf-report-dir", "out"
    )  # fmt: skip
    assert result.ret == pytest.ExitCode.INTERRUPTED
    # the table: the interrupted run's SLO cell says so, not "-" or a pass
    result.stdout.fnmatch_lines(
        ["*= shopflow perf =*", "test_sig.py::test_first *1/1 ok*", "test_sig.py::test_long *INTERRUPTED*"]
    )
    markdown = (pytester.path / "out" / "summary.md").read_text()
    assert "**Verdict: INTERRUPTED** - test_sig.py::test_long: stopped by Ctrl-C or SIGTERM after " in markdown
    assert "PASS" not in markdown.split("## KPIs")[0]
    assert "| test_sig.py::test_first | PASS |" in markdown
    assert "| test_sig.py::test_long | **INTERRUPTED**: stopped by Ctrl-C or SIGTERM after " in markdown
    assert "of 30 s: its thresholds were never judged |" in markdown
    assert "met its thresholds" not in markdown.split("## Recommendations")[1]  # nor do the recommendations say so
    summary = json.loads((pytester.path / "out" / "summary.json").read_text())
    assert summary["verdict"] == "INTERRUPTED"
    assert [run["status"] for run in summary["tests"]] == ["PASS", "INTERRUPTED"]
    # the GitHub step summary is summary.md
    assert step_summary.read_text().strip() == markdown.strip()


# An SLO with abort=True stops a run against a failing endpoint; test_caught catches the failure itself
# (the test passes), test_aborted lets it fail.
ABORTED = """
import pytest
from pytest_shopflow_perf import Slo

HOPELESS = Slo("error_rate<5%", abort=True, grace="0s")

async def failing(user):
    await user.client.get("/status/503")
    await user.think(0.01)

@pytest.mark.load(users=1, duration="20s", slo=[HOPELESS])
def test_aborted(load):
    load.run(failing)

@pytest.mark.load(users=1, duration="20s", slo=[HOPELESS])
def test_caught(load):
    with pytest.raises(AssertionError, match="load aborted early"):
        load.run(failing)
"""


def test_an_aborted_run_is_never_pass(pytester: pytest.Pytester, delay_server: str, monkeypatch: pytest.MonkeyPatch):
    pytester.makepyfile(test_abort=ABORTED)
    monkeypatch.setenv("PYTEST_ADDOPTS", "-o asyncio_default_fixture_loop_scope=function")
    result = pytester.runpytest_subprocess(
        "-p", "no:randomly", "--perf-base-url", delay_server, "--perf-report-dir", "out", "-k", "caught"
    )  # fmt: skip
    result.assert_outcomes(passed=1)  # the test caught the breach: pytest says passed, the reports must not
    result.stdout.fnmatch_lines(["*= shopflow perf =*", "test_abort.py::test_caught *ABORTED: 1 FAILED*"])
    markdown = (pytester.path / "out" / "summary.md").read_text()
    assert "**Verdict: FAIL** - abort-on-fail stopped test_abort.py::test_caught (" in markdown
    assert "| test_abort.py::test_caught | **ABORTED**: abort-on-fail stopped the load early: " in markdown

    result = pytester.runpytest_subprocess(
        "-p", "no:randomly", "--perf-base-url", delay_server, "--perf-report-dir", "out", "-k", "test_aborted"
    )  # fmt: skip
    result.assert_outcomes(failed=1)
    markdown = (pytester.path / "out" / "summary.md").read_text()
    assert "**Verdict: FAIL** - 1 of 1 load test(s) failed (test_aborted: " in markdown
    assert "| test_abort.py::test_aborted | **ABORTED**: abort-on-fail stopped the load early: " in markdown


# The generator is saturated on purpose: a journey that burns the CPU between requests.
SATURATED = """
import time, pytest
from pytest_shopflow_perf import assert_error_rate

async def busy(user):
    await user.client.get("/delay/1")
    end = time.process_time() + 0.2
    while time.process_time() < end:
        pass

@pytest.mark.load(users=1, duration="2s")
def test_busy(load):
    assert_error_rate(load.run(busy), max="1%")
"""


def test_an_inconclusive_run_is_never_pass(
    pytester: pytest.Pytester, delay_server: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytester.makepyfile(test_busy=SATURATED)
    monkeypatch.setenv("PYTEST_ADDOPTS", "-o asyncio_default_fixture_loop_scope=function")
    result = pytester.runpytest_subprocess(
        "-p", "no:randomly", "--perf-base-url", delay_server, "--perf-report-dir", "out"
    )
    result.assert_outcomes(skipped=1)
    result.stdout.fnmatch_lines(["*= shopflow perf =*", "test_busy.py::test_busy *inconclusive*"])
    markdown = (pytester.path / "out" / "summary.md").read_text()
    assert "**Verdict: INCONCLUSIVE** - no test failed, but 1 run(s) could not be judged (" in markdown
    assert "| test_busy.py::test_busy | **INCONCLUSIVE**: the load generator was saturated" in markdown
