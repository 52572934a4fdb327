"""pytest hooks of pytest-shopflow-perf: glue only, the work lives in the modules they call.

A run without load tests registers options and markers and validates them; the session
(:mod:`.session`), xdist and HTML machinery and every report module load on first use.
"""

from __future__ import annotations

from collections.abc import Generator, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import pytest

from pytest_shopflow_perf.plugin.keys import (
    AFTER_TEST_NOTES,
    call_passed_key,
    collection_index_key,
    perf_session_key,
    settings_key,
    test_id,
)
from pytest_shopflow_perf.plugin.options import MARKER_HELP, SLO_MARKER_HELP, Settings, add_options

if TYPE_CHECKING:
    from pytest_shopflow_perf.faults.run import FaultPlan
    from pytest_shopflow_perf.plugin.fixtures import LoadRunner


def pytest_addoption(parser: pytest.Parser) -> None:
    add_options(parser)


# ---- session ----------------------------------------------------------------


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", MARKER_HELP)
    config.addinivalue_line("markers", SLO_MARKER_HELP)
    # read once: a bad option or ini value is a usage error now, not at the first load test
    config.stash[settings_key] = Settings.validate(config)
    if config.pluginmanager.hasplugin("xdist"):
        from pytest_shopflow_perf.plugin.xdist import XdistHooks

        config.pluginmanager.register(XdistHooks(), "shopflow-perf-xdist")
    if config.pluginmanager.hasplugin("html"):
        from pytest_shopflow_perf.plugin.html import HtmlHooks, HtmlTargetHooks

        config.pluginmanager.register(HtmlHooks.of(config), "shopflow-perf-html")
        config.pluginmanager.register(HtmlTargetHooks(), "shopflow-perf-html-target")


@pytest.hookimpl(tryfirst=True)
def pytest_sessionfinish(session: pytest.Session) -> None:
    """Before the reporters write their files: reports for the tests Ctrl-C ended inside a run."""
    perf = session.config.stash.get(perf_session_key, None)
    if perf is not None and perf.orphan_results:
        from pytest_shopflow_perf.plugin.interrupted import report_interrupted

        report_interrupted(session, perf)


def pytest_unconfigure(config: pytest.Config) -> None:
    session = config.stash.get(perf_session_key, None)
    if session is not None:
        session.stop()


def pytest_report_collectionfinish(config: pytest.Config, items: Sequence[pytest.Item]) -> list[str]:
    """Before any load: what the load tests will hit (a forgotten --perf-base-url shows here)."""
    markers = [mark for mark in (item.get_closest_marker("load") for item in items) if mark is not None]
    if not markers:
        return []
    from pytest_shopflow_perf.plugin.targets import session_line

    urls = [url if isinstance(url := mark.kwargs.get("base_url"), str) else None for mark in markers]
    return [session_line(config.stash[settings_key], config, urls)]


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    # Every report lists runs in collection order, whatever order they finish in (xdist).
    for index, item in enumerate(items):
        item.stash[collection_index_key] = index


@pytest.fixture
def load(request: pytest.FixtureRequest) -> Generator[LoadRunner, None, None]:
    """Runs journeys with the profile of the test's ``@pytest.mark.load`` marker.

    Baselines are saved and report files written in its teardown, inside the test
    protocol: a file-system error there is this test's error, never the session's.
    """
    from pytest_shopflow_perf.plugin.fixtures import LoadRunner
    from pytest_shopflow_perf.plugin.session import perf_session

    marker = request.node.get_closest_marker("load")
    session = perf_session(request.config)
    try:
        if marker is not None and marker.args:
            raise pytest.UsageError(
                f"@pytest.mark.load takes keyword arguments only (e.g. users=10, duration='30s'), got {marker.args!r}"
            )
        kwargs = dict(marker.kwargs) if marker else {}
        slos = session.declared_slos(kwargs.pop("slo", None), request.node.iter_markers("slo"))
        faults = session.declared_faults(kwargs.pop("faults", None))
        runner = LoadRunner(session, test_id(request.node.nodeid), kwargs, slos, faults)
    except pytest.UsageError as exc:
        mistake = str(exc)
    else:
        mistake = ""
    if mistake:  # the marker's mistake, said as pytest says a bad option: the message, no plugin source
        pytest.fail(mistake, pytrace=False)
    session.install_sigterm()
    yield runner
    session.finish_test(runner.results, passed=request.node.stash.get(call_passed_key, False))


@pytest.fixture
def faults(load: LoadRunner) -> FaultPlan:
    """The faults of the test's load runs: ``faults.add(latency("300ms", at="10s", until="20s"))``."""
    return load.faults


# ---- reports ------------------------------------------------------------------


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Generator[None, Any, Any]:
    """Read-only: it describes the runs on the report; saving and writing happen in the fixture's teardown."""
    report = yield
    session = item.config.stash.get(perf_session_key, None)
    if session is None or item.get_closest_marker("load") is None:
        return report
    results = session.results.get(test_id(item.nodeid))
    if report.when == "call":
        item.stash[call_passed_key] = report.passed
    if results and report.when == "call":
        # Plain JSON on the report: it travels to the xdist controller and feeds every reporter.
        index = item.stash.get(collection_index_key, 1 << 30)
        report.shopflow_perf = [
            {**result.summary_dict(), "order": [index, number]} for number, result in enumerate(results)
        ]
        # junitxml writes the properties of the teardown report, which copies the item's.
        from pytest_shopflow_perf.reporting.junit import junit_properties

        properties = junit_properties(results)
        item.user_properties.extend(properties)
        report.user_properties.extend(properties)
    if results and report.when == "teardown":
        notes = {
            result.test: {key: result.extra[key] for key in AFTER_TEST_NOTES if key in result.extra}
            for result in results
        }
        report.shopflow_perf_notes = {test: extra for test, extra in notes.items() if extra}
        report.user_properties.extend(
            ("perf.baseline_saved", result.extra["baseline_saved"])
            for result in results
            if "baseline_saved" in result.extra
        )
    if report.failed and session.server is not None:
        report.sections.append(("shopflow-perf service log", session.server.log_tail()))
    return report


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    from pytest_shopflow_perf.plugin.reports import collected_runs, outcome_of

    summaries: list[Mapping[str, Any]] = []
    for report, runs in collected_runs(terminalreporter.stats):
        outcome = outcome_of(report)
        summaries += [{**run, "outcome": outcome} for run in runs]
    session = terminalreporter.config.stash.get(perf_session_key, None)
    if session is not None:
        summaries += [result.summary_dict() for result in session.orphan_results]
    if summaries:
        from pytest_shopflow_perf.reporting.terminal import write_summary

        terminalreporter.section("shopflow perf")
        write_summary(terminalreporter, summaries, verbose=terminalreporter.config.get_verbosity() > 0)
    if session is not None and session.settings.report_dir:
        try:
            written = session.write_session_summary(terminalreporter.stats)
        except OSError as exc:
            terminalreporter.write_line(
                f"shopflow perf: WARNING: could not write the session summary: {exc}", yellow=True
            )
            written = None
        if written:
            terminalreporter.write_line(f"shopflow perf: results and summary in {written}")
        for warning in session.warnings:
            terminalreporter.write_line(f"shopflow perf: WARNING: {warning}", yellow=True)
