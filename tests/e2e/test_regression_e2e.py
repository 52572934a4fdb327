"""The regression gate end to end: record baselines from real runs, slow the server by 40 %, catch it."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys

import pytest

pytest_plugins = ["pytester"]

INNER = """
import os, pytest
from pytest_shopflow_perf import assert_no_regression

async def journey(user):
    await user.client.get(f"/delay/{os.environ['DELAY_MS']}", extensions={"name": "product"})
    await user.think(0.005)

@pytest.mark.load(users=4, duration="2s")
def test_product_page(load):
    result = load.run(journey)
    tier = (result.extra.get("regression") or {}).get("tier")
    print("VERDICT", tier, result.extra.get("regression_note"))
    assert_no_regression(result)
"""


def test_a_forty_percent_slowdown_fails_and_an_unchanged_run_passes(pytester, delay_server, monkeypatch) -> None:
    pytester.makepyfile(test_gate=INNER)
    args = (
        "--perf-base-url",
        delay_server,
        "-s",
        "-p",
        "no:cacheprovider",
        "-o",
        "asyncio_default_fixture_loop_scope=function",
        "-o",
        "perf_regression_busy_machine=false",  # the slowdown is the server's by construction
    )
    monkeypatch.setenv("DELAY_MS", "20")
    first = pytester.runpytest_subprocess(*args, "--perf-save-baseline")  # one real run becomes the baseline
    first.assert_outcomes(passed=1)
    first.stdout.fnmatch_lines(["*VERDICT None no baseline yet*"])
    path = pytester.path / "baselines" / "test_gate.py__test_product_page.json"
    assert len(json.loads(path.read_text())["runs"]) == 1

    monkeypatch.setenv("DELAY_MS", "28")  # the service got 40 % slower
    slow = pytester.runpytest_subprocess(*args)
    slow.assert_outcomes(failed=1)
    slow.stdout.fnmatch_lines(["*performance regression: * (fails at major or worse)*"])
    assert any(f"VERDICT {tier}" in slow.stdout.str() for tier in ("major", "critical"))
    slow.stdout.fnmatch_lines(["*product*p50*+*%*"])

    monkeypatch.setenv("DELAY_MS", "20")
    same = pytester.runpytest_subprocess(*args)
    same.assert_outcomes(passed=1)
    assert any(f"VERDICT {tier}" in same.stdout.str() for tier in ("none", "negligible", "inconclusive"))

    # --perf-fail-on=never reports instead of failing
    monkeypatch.setenv("DELAY_MS", "28")
    pytester.runpytest_subprocess(*args, "--perf-fail-on", "never").assert_outcomes(passed=1)

    # The CLI sees the same baseline without running load.
    cli = [sys.executable, "-m", "pytest_shopflow_perf", "baseline"]
    shown = subprocess.run([*cli, "show", str(path)], capture_output=True, text=True, check=True).stdout
    assert "1 run(s)" in shown
    assert len(re.findall(r"^\s+\d{4}-\d\d-\d\dT", shown, flags=re.MULTILINE)) == 1


@pytest.mark.parametrize("keep", [1, 2])
def test_cli_prune_keeps_the_newest_runs(tmp_path, keep) -> None:
    from pytest_shopflow_perf.verdicts.baseline import append_run, load_baseline

    path = tmp_path / "b.json"
    for index in range(3):
        append_run(path, "t::x", {"schema": "shopflow-perf/run/1", "started_at": f"run{index}",
                                  "total": {"requests": 1, "errors": 0}, "endpoints": {}})  # fmt: skip
    cli = [sys.executable, "-m", "pytest_shopflow_perf", "baseline", "prune", str(tmp_path)]
    dry = subprocess.run([*cli, "--keep", str(keep), "--dry-run"], capture_output=True, text=True, check=True)
    assert f"would drop {3 - keep} oldest run(s)" in dry.stdout
    assert len(load_baseline(path)["runs"]) == 3
    subprocess.run([*cli, "--keep", str(keep)], capture_output=True, text=True, check=True)
    assert [run["started_at"] for run in load_baseline(path)["runs"]] == [f"run{i}" for i in range(3 - keep, 3)]


def test_cli_errors_name_the_file(tmp_path) -> None:
    broken = tmp_path / "broken.json"
    broken.write_text("{nope")
    result = subprocess.run(
        [sys.executable, "-m", "pytest_shopflow_perf", "baseline", "show", str(broken)], capture_output=True, text=True
    )
    assert result.returncode == 2
    assert f"error: {broken}: corrupt baseline file" in result.stdout


def test_cli_show_names_a_mistyped_field_and_still_shows_the_other_baselines(tmp_path) -> None:
    """A hand-edited baseline made `baseline show` crash with a Python ValueError (issue 17)."""
    from pytest_shopflow_perf.verdicts.baseline import append_run

    record = {"schema": "shopflow-perf/run/1", "started_at": "2026-12-01T00:00:00Z", "duration_s": 5.0,
              "total": {"requests": 10, "errors": 0, "p95_ms": 3.0}, "endpoints": {"GET /x": {"requests": 10,
              "errors": 0, "p95_ms": 3.0}}}  # fmt: skip
    append_run(tmp_path / "a_good.json", "t::good", record)
    edited = tmp_path / "b_edited.json"
    append_run(edited, "t::edited", record)
    data = json.loads(edited.read_text())
    data["runs"][0]["endpoints"]["GET /x"]["p95_ms"] = "fast"
    data["runs"][0]["duration_s"] = "long"
    edited.write_text(json.dumps(data))
    result = subprocess.run(
        [sys.executable, "-m", "pytest_shopflow_perf", "baseline", "show", str(tmp_path)],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 2
    assert "Traceback" not in result.stdout + result.stderr
    assert f"error: {edited}: 2 field(s) of the baseline have the wrong type: " in result.stdout
    assert 'runs[0].duration_s: expected a number, got "long"' in result.stdout
    assert 'runs[0].endpoints["GET /x"].p95_ms: expected a number, got "fast"' in result.stdout
    assert "t::good" in result.stdout  # the good one is still shown
    assert "1 run(s)" in result.stdout


def test_cli_diff_uses_the_projects_ini_policy(tmp_path, monkeypatch) -> None:
    """`baseline diff` used the default policy, so its verdict could differ from the gate's (B12)."""
    from pytest_shopflow_perf.cli import project_policy

    assert project_policy(tmp_path).minor == 0.10  # no ini: the defaults
    (tmp_path / "pyproject.toml").write_text('[tool.pytest.ini_options]\nperf_regression_minor = "0.2"\n')
    nested = tmp_path / "tests" / "deep"
    nested.mkdir(parents=True)
    assert project_policy(nested).minor == 0.2  # found from a subdirectory, as pytest finds its ini
    (nested / "pytest.ini").write_text("[pytest]\nperf_regression_major = 0.4\n")
    assert project_policy(nested).major == 0.4  # the nearest ini wins, pyproject above it is not read
    assert project_policy(nested).minor == 0.10

    from pytest_shopflow_perf.verdicts.baseline import append_run

    record = {"schema": "shopflow-perf/run/1", "started_at": "x", "endpoints": {}}
    for _ in range(2):
        append_run(tmp_path / "b.json", "t::x", {**record, "total": {"requests": 1, "errors": 0}})
    (tmp_path / "pytest.ini").write_text("[pytest]\nperf_regression_minor = lots\n")
    cli = [sys.executable, "-m", "pytest_shopflow_perf", "baseline", "diff", str(tmp_path / "b.json")]
    failed = subprocess.run(cli, capture_output=True, text=True, cwd=tmp_path, check=False)
    assert failed.returncode != 0
    assert "perf_regression_minor='lots'" in failed.stdout + failed.stderr


AA_INNER = """
import pytest
from pytest_shopflow_perf import assert_no_regression

async def journey(user):
    await user.client.get("/delay/10", extensions={"name": "product"})

@pytest.mark.load(users=4, duration="2s")
def test_product_page(load):
    result = load.run(journey)
    verdict = result.extra.get("regression") or {}
    print("VERDICT", verdict.get("tier"), "|", " / ".join(verdict.get("notes", [])))
    print("FOREIGN", result.environment["machine_load"]["foreign_cpu_cores"])
    assert_no_regression(result)
"""


def test_an_aa_pair_with_a_busy_loop_beside_the_candidate_is_not_flagged(pytester, delay_server) -> None:
    """The issue's shared runner: another process takes a core during the candidate run only."""
    pytester.makepyfile(test_gate=AA_INNER)
    args = ("--perf-base-url", delay_server, "-s", "-p", "no:cacheprovider", "--perf-fail-on", "minor")
    for _ in range(2):
        pytester.runpytest_subprocess(*args, "--perf-save-baseline").assert_outcomes(passed=1)
    path = pytester.path / "baselines" / "test_gate.py__test_product_page.json"
    loads = [run["environment"]["machine_load"] for run in json.loads(path.read_text())["runs"]]
    assert all(load["target_pids"] for load in loads)  # the delay server is known as the target's

    busy = subprocess.run(  # re-parented by the shell: another job's process, not the generator's child
        ["sh", "-c", f'"{sys.executable}" -c "while True: pass" >/dev/null 2>&1 & echo $!'],
        capture_output=True,
        text=True,
        check=True,
    )
    pid = int(busy.stdout)
    try:
        candidate = pytester.runpytest_subprocess(*args)
    finally:
        os.kill(pid, signal.SIGKILL)
    candidate.assert_outcomes(passed=1)
    candidate.stdout.fnmatch_lines(
        [f"*VERDICT * the machine was busier than during the baseline (other processes*pid {pid}*"]
    )
