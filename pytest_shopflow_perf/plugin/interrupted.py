"""Reports for the tests a Ctrl-C (or SIGTERM) ended inside a load run.

pytest stops at the ``KeyboardInterrupt`` before the test gets a report, so pytest-html and
JUnit XML would never hear of a run whose partial figures are in the terminal table and the
report dir. At session finish each such test gets a call report (outcome ``skipped``, the
reason saying it was interrupted, the runs on it as on any load test's report) and a teardown
report, sent to every ``pytest_runtest_logreport`` except the terminal's (its table already
lists the run) and the cache's last-failed and stepwise plugins (an interrupted test has not
stopped failing). Under xdist a worker's reports reach the controller as any other.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

import pytest

from pytest_shopflow_perf.plugin.keys import collection_index_key, test_id

if TYPE_CHECKING:
    from pytest_shopflow_perf.plugin.session import PerfSession
    from pytest_shopflow_perf.result.model import LoadResult

# Plugins that must not take an interrupted test for a finished one.
NOT_TOLD = ("terminalreporter", "lfplugin", "stepwiseplugin")


def interrupted_tests(perf: PerfSession) -> list[tuple[str, list[LoadResult]]]:
    """(test id, every run of that test) for the tests interrupted inside a run, in the order they ran."""
    orphans = {id(result) for result in perf.orphan_results}
    return [(nodeid, list(runs)) for nodeid, runs in perf.results.items() if any(id(r) in orphans for r in runs)]


def interrupted_summaries(perf: PerfSession) -> list[tuple[str, list[dict[str, Any]]]]:
    return [(nodeid, [dict(r.summary_dict()) for r in runs]) for nodeid, runs in interrupted_tests(perf)]


def why(result: LoadResult) -> str:
    planned = float(result.profile.get("duration") or 0.0)
    of = f" of {planned:g} s" if planned else ""
    return (
        f"interrupted (Ctrl-C or SIGTERM) after {result.duration:.1f} s{of} of its load run: partial results, "
        "thresholds and regression not judged"
    )


def report_interrupted(session: pytest.Session, perf: PerfSession) -> None:
    """Send the reports of every interrupted test (once) to the reporters that write files."""
    tests = [(nodeid, runs) for nodeid, runs in interrupted_tests(perf) if nodeid not in perf.interrupted_reported]
    if not tests:
        return
    manager = session.config.pluginmanager
    left_out = [plugin for name in NOT_TOLD if (plugin := manager.get_plugin(name)) is not None]
    logreport = manager.subset_hook_caller("pytest_runtest_logreport", remove_plugins=left_out)
    items = {test_id(item.nodeid): item for item in session.items}
    for nodeid, runs in tests:
        perf.interrupted_reported.add(nodeid)
        try:
            call, teardown = _reports(items.get(nodeid), nodeid, runs, session, perf)
            logreport(report=call)
            logreport(report=teardown)
        except Exception as exc:  # pytest is stopping: say what is missing rather than lose the session's end
            perf.warnings.append(f"the interrupted test {nodeid} is missing from the HTML/JUnit reports: {exc!r}")


def _reports(
    item: pytest.Item | None, nodeid: str, runs: list[LoadResult], session: pytest.Session, perf: PerfSession
) -> tuple[pytest.TestReport, pytest.TestReport]:
    from pytest_shopflow_perf.reporting.junit import junit_properties

    if item is not None:
        location = item.location
        keywords: dict[str, Any] = {name: 1 for name in item.keywords}
        path, lineno = os.fspath(item.path), (item.location[1] or 0) + 1
        full_id = item.nodeid
        index = item.stash.get(collection_index_key, 1 << 30)
    else:
        file_part = nodeid.split("::", 1)[0]
        location, keywords, path, lineno, full_id, index = (file_part, None, nodeid), {}, file_part, 0, nodeid, 1 << 30
    properties = junit_properties(runs)
    longrepr = (path, lineno, f"Skipped: {why(runs[-1])}")
    seconds = sum(r.duration for r in runs)  # what the test ran for, as far as anyone measured
    call = pytest.TestReport(
        full_id, location, keywords, "skipped", longrepr, "call", duration=seconds, user_properties=properties
    )
    # What every reporter reads from a load test's call report (plugin/__init__.py, makereport).
    call.shopflow_perf = [{**r.summary_dict(), "order": [index, n]} for n, r in enumerate(runs)]  # type: ignore[attr-defined]
    if session.config.getoption("htmlpath", default=None) and session.config.pluginmanager.hasplugin("html"):
        from pytest_shopflow_perf.reporting.html.render import run_extras

        call.extras = run_extras(runs, perf.baseline_runs)  # type: ignore[attr-defined]
    teardown = pytest.TestReport(full_id, location, keywords, "passed", None, "teardown", user_properties=properties)
    return call, teardown
