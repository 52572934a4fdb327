"""pytest hooks of pytest-shopflow-perf; the work lives in the modules they call."""

from __future__ import annotations

from collections.abc import Generator, Mapping
from typing import TYPE_CHECKING, Any

import pytest

from pytest_shopflow_perf.plugin.session import (
    AFTER_TEST_NOTES,
    PerfSession,
    call_passed_key,
    collected_runs,
    collection_index_key,
    outcome_of,
    perf_session_key,
)
from pytest_shopflow_perf.plugin.xdist import XDIST_GROUP, XdistHooks
from pytest_shopflow_perf.reporting.junit import junit_properties

if TYPE_CHECKING:
    from pytest_shopflow_perf.faults.run import FaultPlan
    from pytest_shopflow_perf.plugin.fixtures import LoadRunner

MARKER_HELP = (
    "load(users=10, duration='10s', ramp_up=0, ramp_down=0, stages=None, rate=None, max_users=1000, "
    "think_time=None, iterations=None, base_url=None, name=None, timeout='30s', graceful_stop='5s', slo=None, "
    "faults=None): run this test as a load test; "
    "the `load` fixture runs journeys with this profile. rate= switches to the open model (arrivals/s). "
    "slo=['p(95)<500ms', ...] declares thresholds checked after every run."
)
SLO_MARKER_HELP = (
    "slo(*expressions): thresholds checked after every load.run of this test, e.g. "
    "@pytest.mark.slo('p(95)<500ms', 'error_rate<1%', Slo('error_rate<5%', abort=True)); replaces ini perf_slo."
)

# ---- options ---------------------------------------------------------------


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("shopflow-perf", "load testing (pytest-shopflow-perf)")

    def option(flag: str, ini_help: str, ini_type: Any = "string", ini_default: Any = None, **kwargs: Any) -> None:
        dest = flag.lstrip("-").replace("-", "_")
        group.addoption(flag, dest=dest, default=None, **kwargs)
        parser.addini(dest if ini_type != "linelist" else dest + "s", ini_help, type=ini_type, default=ini_default)

    option(
        "--perf-base-url",
        "target base URL (default: the embedded ShopFlow service)",
        metavar="URL",
        help="target of load tests (env SHOPFLOW_BASE_URL); default: the embedded ShopFlow service",
    )
    option(
        "--perf-app",
        "module:app of the embedded service (trailing () = factory)",
        metavar="MODULE:APP",
        help="ASGI app to start under uvicorn when no base URL is set (default: the ShopFlow reference service)",
    )
    option(
        "--perf-scale",
        "multiply every duration and stage",
        metavar="FACTOR",
        help="multiply every duration and stage, e.g. 0.1 for pre-merge CI (env SHOPFLOW_PERF_SCALE)",
    )
    option(
        "--perf-users",
        "default number of virtual users",
        metavar="N",
        help="override the users of every load test (env SHOPFLOW_PERF_USERS)",
    )
    option(
        "--perf-duration",
        "default run duration",
        metavar="DURATION",
        help="override the duration of every load test, e.g. 30s (env SHOPFLOW_PERF_DURATION)",
    )
    option(
        "--perf-baseline-dir",
        "where baselines are kept",
        metavar="DIR",
        help="directory of the JSON baselines (default: baselines/)",
    )
    option(
        "--perf-save-baseline",
        "append each run to its baseline",
        ini_type="bool",
        ini_default=False,
        action="store_true",
        help="append this run to the baseline of each load test",
    )
    option(
        "--perf-no-compare",
        "skip baseline comparison",
        ini_type="bool",
        ini_default=False,
        action="store_true",
        help="do not compare runs with their baselines",
    )
    option(
        "--perf-fail-on",
        "lowest regression tier that fails a test",
        metavar="TIER",
        choices=("minor", "major", "critical", "never"),
        help="fail on regressions of this tier or worse: minor|major|critical|never (default: major)",
    )
    option(
        "--perf-report-dir",
        "directory for JSON/CSV results and summary.md",
        metavar="DIR",
        help="write per-test JSON and CSV results and summary.md here",
    )
    option(
        "--perf-seed",
        "seed of the virtual users' random choices",
        metavar="N",
        help="seed the virtual users' random choices for a reproducible run",
    )
    option(
        "--perf-allow-host",
        "non-loopback hosts that may be load-tested",
        ini_type="linelist",
        ini_default=[],
        metavar="HOST",
        action="append",
        help="allow load against this non-loopback host (repeatable); loopback only otherwise",
    )
    parser.addini(
        "perf_slo",
        "SLO expressions checked after every load run (unless a test declares its own)",
        type="linelist",
        default=[],
    )
    for name, text in (
        ("alpha", "significance level of the regression tests (default 0.05)"),
        ("minor", "relative slowdown that is a minor regression (default 0.10)"),
        ("major", "relative slowdown that is a major regression (default 0.25)"),
        ("critical", "relative slowdown that is a critical regression (default 0.50)"),
        ("error_rate_floor", "smallest absolute error-rate increase that counts (default 0.001)"),
        ("noise_floor", "run-to-run noise assumed on top of what baselines show (default 0.03)"),
        ("single_run_noise_floor", "run-to-run noise assumed when a baseline has one run (default 0.10)"),
        ("min_baseline_runs", "baseline runs needed before a regression can fail a test (default 1)"),
    ):
        parser.addini(f"perf_regression_{name}", text, type="string", default="")
    parser.addini("perf_baseline_keep", "how many recent runs a baseline keeps (default 5)", type="string", default="")
    for key, text in (
        ("ramp_up", "default ramp-up"),
        ("ramp_down", "default ramp-down"),
        ("think_time", "default think time between iterations, e.g. 1, 3"),
        ("max_users", "default cap of open-model users"),
        ("timeout", "default request timeout"),
        ("graceful_stop", "time in-flight iterations get at the end of a run"),
        ("max_body", "bytes of a response body kept in memory (default 16MiB)"),
    ):
        parser.addini(f"perf_{key}", text, type="string", default="")


# ---- session ----------------------------------------------------------------


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", MARKER_HELP)
    config.addinivalue_line("markers", SLO_MARKER_HELP)
    session = PerfSession(config)
    config.stash[perf_session_key] = session
    if config.pluginmanager.hasplugin("xdist"):
        config.pluginmanager.register(XdistHooks(), "shopflow-perf-xdist")
    if config.pluginmanager.hasplugin("html"):
        from pytest_shopflow_perf.reporting.html.hooks import HtmlHooks

        config.pluginmanager.register(HtmlHooks(), "shopflow-perf-html")


def pytest_unconfigure(config: pytest.Config) -> None:
    session = config.stash.get(perf_session_key, None)
    if session is not None:
        session.stop()


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

    marker = request.node.get_closest_marker("load")
    if marker is not None and marker.args:
        raise pytest.UsageError(
            f"@pytest.mark.load takes keyword arguments only (e.g. users=10, duration='30s'), got {marker.args!r}"
        )
    session = request.config.stash[perf_session_key]
    kwargs = dict(marker.kwargs) if marker else {}
    slos = session.declared_slos(kwargs.pop("slo", None), request.node.iter_markers("slo"))
    faults = session.declared_faults(kwargs.pop("faults", None))
    # xdist --dist loadgroup suffixes node ids with the group; baselines must not depend on it.
    nodeid = request.node.nodeid.removesuffix(f"@{XDIST_GROUP}")
    session.install_sigterm()
    runner = LoadRunner(session, nodeid, kwargs, slos, faults)
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
    results = session.results.get(item.nodeid.removesuffix(f"@{XDIST_GROUP}"))
    if report.when == "call":
        item.stash[call_passed_key] = report.passed
    if results and report.when == "call":
        # Plain JSON on the report: it travels to the xdist controller and feeds every reporter.
        index = item.stash.get(collection_index_key, 1 << 30)
        report.shopflow_perf = [
            {**result.summary_dict(), "order": [index, number]} for number, result in enumerate(results)
        ]
        # junitxml writes the properties of the teardown report, which copies the item's.
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
    from pytest_shopflow_perf.reporting.terminal import write_summary

    summaries: list[Mapping[str, Any]] = []
    for report, runs in collected_runs(terminalreporter.stats):
        outcome = outcome_of(report)
        summaries += [{**run, "outcome": outcome} for run in runs]
    session = terminalreporter.config.stash.get(perf_session_key, None)
    if session is not None:
        summaries += [result.summary_dict() for result in session.orphan_results]
    if summaries:
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
