"""Nothing measured is lost, and a file-system problem is one test's error, never the session's."""

from __future__ import annotations

import json
import re

import pytest

pytest_plugins = ["pytester"]

TWO_TESTS = """
import pytest

async def calm(user):
    await user.client.get("/delay/2")
    await user.think(0.01)

@pytest.mark.load(users=1, duration="1s")
def test_first(load):
    assert load.run(calm).requests > 0

@pytest.mark.load(users=1, duration="1s")
def test_second(load):
    assert load.run(calm).requests > 0
"""

FAIL_ON_WRITE = """
import errno, os

_real_open, _real_replace = os.open, os.replace

def _refuse(path, code):
    if code and "{marker}" in str(path):
        raise OSError(code, os.strerror(code), str(path))

def _open(path, *args, **kwargs):
    _refuse(path, {open_errno})
    return _real_open(path, *args, **kwargs)

def _replace(src, dst, *args, **kwargs):
    _refuse(dst, {replace_errno})
    return _real_replace(src, dst, *args, **kwargs)

os.open, os.replace = _open, _replace
"""


@pytest.fixture(autouse=True)
def _quiet_pytest_asyncio(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PYTEST_ADDOPTS", "-o asyncio_default_fixture_loop_scope=function")
    monkeypatch.delenv("GITHUB_STEP_SUMMARY", raising=False)


def _table_rows(result: pytest.RunResult) -> list[str]:
    """The rows of the terminal table (test id, then the request count)."""
    return [line for line in result.outlines if re.match(r"test_data\.py::\S+ +[\d,]+ ", line)]


def test_a_corrupt_baseline_fails_its_test_names_the_file_and_keeps_the_run(
    pytester: pytest.Pytester, delay_server: str
) -> None:
    pytester.makepyfile(test_data=TWO_TESTS)
    corrupt = pytester.path / "baselines" / "test_data.py__test_first.json"
    corrupt.parent.mkdir()
    corrupt.write_text("{not json")
    result = pytester.runpytest_subprocess("--perf-base-url", delay_server, "--perf-report-dir", "out")
    result.assert_outcomes(failed=1, passed=1)
    result.stdout.fnmatch_lines(["*comparison with the baseline failed*test_data.py__test_first.json*"])
    assert len(_table_rows(result)) == 2  # the failed test's run is in the table
    summary = json.loads((pytester.path / "out" / "summary.json").read_text())
    assert [run["test"] for run in summary["tests"]] == ["test_data.py::test_first", "test_data.py::test_second"]
    assert (pytester.path / "out" / "test_data.py__test_first.json").exists()
    # Saving into it: a teardown error of that test; the session goes on.
    result = pytester.runpytest_subprocess("--perf-base-url", delay_server, "--perf-save-baseline", "--perf-no-compare")
    assert result.ret == 1
    result.assert_outcomes(passed=2, errors=1)
    result.stdout.fnmatch_lines(["*could not save the baseline of test_data.py::test_first*test_first.json*"])
    assert "INTERNALERROR" not in result.stdout.str()
    assert len(_table_rows(result)) == 2
    assert corrupt.read_text() == "{not json"


@pytest.mark.parametrize(
    "ini",
    [
        "perf_baseline_keep=0",
        "perf_baseline_keep=five",
        "perf_regression_alpha=x",
        "perf_regression_busy_machine=maybe",
    ],
)
def test_bad_ini_values_are_usage_errors_at_start(pytester: pytest.Pytester, ini: str) -> None:
    pytester.makepyfile(test_data="def test_plain():\n    pass\n")
    result = pytester.runpytest_subprocess("-o", ini)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([f"*{ini.split('=')[0]}*not valid*"])


def test_a_read_only_baseline_dir_is_each_tests_error(pytester: pytest.Pytester, delay_server: str) -> None:
    pytester.makepyfile(test_data=TWO_TESTS)
    pytester.makeconftest(FAIL_ON_WRITE.format(marker="/baselines/", open_errno="errno.EROFS", replace_errno=0))
    result = pytester.runpytest_subprocess("--perf-base-url", delay_server, "--perf-save-baseline", "--junitxml=j.xml")
    result.assert_outcomes(passed=2, errors=2)
    result.stdout.fnmatch_lines(["*could not save the baseline*Read-only file system*"])
    assert "INTERNALERROR" not in result.stdout.str()
    assert len(_table_rows(result)) == 2
    assert (pytester.path / "j.xml").read_text().count("perf.p95_ms") == 2
    assert not list(pytester.path.glob("baselines/.*.tmp"))


def test_a_report_dir_that_is_a_file_is_each_tests_error(pytester: pytest.Pytester, delay_server: str) -> None:
    pytester.makepyfile(test_data=TWO_TESTS)
    (pytester.path / "out").write_text("a file")
    result = pytester.runpytest_subprocess("--perf-base-url", delay_server, "--perf-report-dir", "out")
    result.assert_outcomes(passed=2, errors=2)
    result.stdout.fnmatch_lines(["*could not write the report files of test_data.py::test_first*"])
    result.stdout.fnmatch_lines(["*WARNING: could not write the session summary*"])
    assert "INTERNALERROR" not in result.stdout.str()
    assert len(_table_rows(result)) == 2


def test_a_full_disk_leaves_no_temp_files(pytester: pytest.Pytester, delay_server: str) -> None:
    pytester.makepyfile(test_data=TWO_TESTS)
    pytester.makeconftest(FAIL_ON_WRITE.format(marker="/out/", open_errno=0, replace_errno="errno.ENOSPC"))
    result = pytester.runpytest_subprocess("--perf-base-url", delay_server, "--perf-report-dir", "out")
    result.assert_outcomes(passed=2, errors=2)
    result.stdout.fnmatch_lines(["*No space left on device*"])
    assert "INTERNALERROR" not in result.stdout.str()
    assert len(_table_rows(result)) == 2
    assert [p.name for p in (pytester.path / "out").iterdir()] == []  # no .tmp debris


def test_an_unwritable_step_summary_is_a_warning(
    pytester: pytest.Pytester, delay_server: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytester.makepyfile(test_data=TWO_TESTS)
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", "/nonexistent/dir/summary.md")
    result = pytester.runpytest_subprocess("--perf-base-url", delay_server, "--perf-report-dir", "out")
    assert result.ret == 0
    result.assert_outcomes(passed=2)
    result.stdout.fnmatch_lines(["*WARNING: could not append to GITHUB_STEP_SUMMARY=/nonexistent/dir/summary.md*"])
    assert (pytester.path / "out" / "summary.md").exists()


def test_report_files_of_different_tests_never_overwrite_each_other(
    pytester: pytest.Pytester, delay_server: str
) -> None:
    pytester.makepyfile(
        test_data="""
import pytest

async def calm(user):
    await user.client.get("/delay/2")
    await user.think(0.01)

@pytest.mark.load(users=1, duration="1s")
@pytest.mark.parametrize("name", ["x/y", "x_y", "x[y", "x]y"])
def test_data(load, name):
    load.run(calm)
"""
    )
    result = pytester.runpytest_subprocess("--perf-base-url", delay_server, "--perf-report-dir", "out")
    result.assert_outcomes(passed=4)
    records = [json.loads(p.read_text()) for p in (pytester.path / "out").glob("test_data.py__*.json")]
    assert sorted(r["test"] for r in records) == sorted(
        f"test_data.py::test_data[{n}]" for n in ("x/y", "x_y", "x[y", "x]y")
    )
    # Stable names: the same ids give the same files on the next run.
    names = sorted(p.name for p in (pytester.path / "out").iterdir())
    pytester.runpytest_subprocess("--perf-base-url", delay_server, "--perf-report-dir", "out")
    assert sorted(p.name for p in (pytester.path / "out").iterdir()) == names


def test_saturated_runs_are_never_saved(pytester: pytest.Pytester, delay_server: str) -> None:
    pytester.makepyfile(
        test_data="""
import time, pytest

async def busy(user):
    deadline = time.perf_counter() + 0.05
    while time.perf_counter() < deadline:  # a generator that burns its core
        pass
    await user.client.get("/delay/1")

@pytest.mark.load(users=2, duration="2s")
def test_hot(load):
    result = load.run(busy)
    assert result.generator.saturated, result.generator
"""
    )
    result = pytester.runpytest_subprocess("--perf-base-url", delay_server, "--perf-save-baseline")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["*not saved: the generator was saturated*"])
    assert not (pytester.path / "baselines" / "test_data.py__test_hot.json").exists()


def test_runs_are_reported_in_collection_order(pytester: pytest.Pytester, delay_server: str) -> None:
    pytester.makepyfile(
        test_data="""
import pytest

async def calm(user):
    await user.client.get("/delay/2")
    await user.think(0.01)

@pytest.mark.load(users=1, duration="1s")
def test_c(load):
    load.run(calm)

@pytest.mark.load(users=1, duration="1s")
def test_b(load):
    load.run(calm)
    assert False, "fails"

@pytest.mark.load(users=1, duration="1s")
def test_a(load):
    load.run(calm)
"""
    )
    result = pytester.runpytest_subprocess(
        "--perf-base-url", delay_server, "--perf-report-dir", "out", "-p", "no:randomly"
    )
    result.assert_outcomes(passed=2, failed=1)
    order = ["test_data.py::test_c", "test_data.py::test_b", "test_data.py::test_a"]
    assert [row.split()[0] for row in _table_rows(result)] == order
    summary = json.loads((pytester.path / "out" / "summary.json").read_text())
    assert [run["test"] for run in summary["tests"]] == order


def test_summary_names_the_target_given_by_the_environment(
    pytester: pytest.Pytester, delay_server: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytester.makepyfile(test_data=TWO_TESTS)
    monkeypatch.setenv("SHOPFLOW_BASE_URL", delay_server)
    result = pytester.runpytest_subprocess("--perf-report-dir", "out", "-k", "first")
    result.assert_outcomes(passed=1)
    assert f"against {delay_server} (SHOPFLOW_BASE_URL);" in (pytester.path / "out" / "summary.md").read_text()


def test_a_fault_from_the_start_prints_its_note_not_did_not_recover() -> None:
    from pytest_shopflow_perf.reporting.terminal import _notes

    note = "no traffic before the fault: no band to recover to"
    summary = {"extra": {"recovery": [{"name": "latency 5ms", "start_s": 0.0, "end_s": 4.004, "note": note}]}}
    assert _notes(summary) == [f"fault latency 5ms (0-4.004 s): {note}"]


def test_an_inconclusive_test_is_not_shown_as_a_failed_slo() -> None:
    from pytest_shopflow_perf.reporting.summary import build_summary, render_markdown
    from pytest_shopflow_perf.reporting.terminal import _slo_cell

    run = {
        "test": "t.py::test_x",
        "total": {"requests": 10, "errors": 0, "error_rate": 0.0, "rps": 5.0, "p50_ms": 1.0, "p95_ms": 2.0,
                  "p99_ms": 3.0, "max_ms": 4.0},
        "extra": {"slo": [{"passed": False, "threshold": "p(95)<1ms", "endpoint": "total", "measured": 2.0,
                           "metric": "p95", "op": "<", "limit": 1.0, "unit": "ms"}]},
    }  # fmt: skip
    assert _slo_cell({**run, "outcome": "inconclusive"}) == "inconclusive"
    reason = "inconclusive: the load generator was saturated (CPU)"
    markdown = render_markdown(build_summary([{"nodeid": run["test"], "outcome": "skipped", "reason": reason,
                                               "runs": [run]}], {}))  # fmt: skip
    row = next(line for line in markdown.splitlines() if line.startswith("| t.py::test_x"))
    assert "inconclusive" in row
    assert "breached" not in markdown
