"""The pytest-html hooks: glue only, rendering imported on first use (a run without load tests pays nothing)."""

from __future__ import annotations

from collections.abc import Callable, Generator, Mapping, Sequence
from html import escape
from typing import TYPE_CHECKING, Any

import pytest

from pytest_shopflow_perf.plugin.keys import perf_session_key, test_id

if TYPE_CHECKING:
    from pytest_shopflow_perf.result.model import LoadResult

Results = Callable[[str], "Sequence[LoadResult] | None"]
BaselineRuns = Callable[[str], "tuple[str, list[dict[str, Any]]] | None"]


class HtmlHooks:
    """Registered as ``config.pluginmanager.register(HtmlHooks(...))`` when pytest-html is installed.

    ``results_of(test id)`` gives the runs of a test in this process, ``baseline_runs(test)`` the
    baseline a run was compared with, ``interrupted()`` the (test id, run summaries) of the tests
    Ctrl-C ended inside a run, ``environment()`` the machine: the rendering never reads plugin state.
    """

    def __init__(
        self,
        results_of: Results,
        baseline_runs: BaselineRuns | None = None,
        interrupted: Callable[[], list[tuple[str, list[dict[str, Any]]]]] | None = None,
        environment: Callable[[], Mapping[str, Any]] | None = None,
    ) -> None:
        self._results_of = results_of
        self._baseline_runs = baseline_runs
        self._interrupted = interrupted or list
        self._environment = environment

    @classmethod
    def of(cls, config: pytest.Config) -> HtmlHooks:
        """The hooks of a pytest run, reading the session's state through the callables only."""

        def results_of(test: str) -> Sequence[LoadResult] | None:
            session = config.stash.get(perf_session_key, None)
            return session.results.get(test) if session is not None else None

        def baseline_runs(test: str) -> tuple[str, list[dict[str, Any]]] | None:
            session = config.stash.get(perf_session_key, None)
            return session.baseline_runs(test) if session is not None else None

        def interrupted() -> list[tuple[str, list[dict[str, Any]]]]:
            session = config.stash.get(perf_session_key, None)
            if session is None or not session.orphan_results:
                return []
            from pytest_shopflow_perf.plugin.interrupted import interrupted_summaries

            return interrupted_summaries(session)

        def environment() -> Mapping[str, Any]:
            """The session's machine (an xdist controller has no session of its own: the same machine)."""
            session = config.stash.get(perf_session_key, None)
            if session is not None:
                return session.environment()
            from pytest_shopflow_perf.verdicts.baseline import environment_fingerprint

            return environment_fingerprint()

        return cls(results_of, baseline_runs, interrupted, environment)

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_makereport(
        self, item: pytest.Item, call: pytest.CallInfo[None]
    ) -> Generator[None, pytest.TestReport, pytest.TestReport]:
        # Not tryfirst: pytest-html's own (tryfirst) wrapper runs after us and keeps report.extras.
        report = yield
        if report.when != "call" or not item.config.getoption("htmlpath", default=None):
            return report
        results = self._results_of(test_id(item.nodeid))
        if results:
            from pytest_shopflow_perf.reporting.html.render import run_extras

            extras = run_extras(results, self._baseline_runs)
            report.extras = [*getattr(report, "extras", []), *extras]  # type: ignore[attr-defined]
        return report

    def pytest_html_results_table_header(self, cells: list[str]) -> None:
        from pytest_shopflow_perf.reporting.html.render import COLUMNS

        headers = [f'<th class="sortable" data-column-type="{kind}">{escape(label)}</th>' for kind, label in COLUMNS]
        at = _insert_at(cells, 'data-column-type="duration"')
        cells[at:at] = headers

    def pytest_html_results_table_row(self, report: pytest.TestReport, cells: list[str]) -> None:
        if not cells:
            return  # another plugin removed the row
        from pytest_shopflow_perf.reporting.html.render import table_cells

        at = _insert_at(cells, "col-duration")
        runs = getattr(report, "shopflow_perf", None) if getattr(report, "when", None) == "call" else None
        cells[at:at] = table_cells(runs or [])

    def pytest_html_results_summary(
        self, prefix: list[str], summary: list[str], postfix: list[str], session: pytest.Session
    ) -> None:
        """The overview of the session's load tests, then the regression banner, above the results table."""
        reporter = session.config.pluginmanager.get_plugin("terminalreporter")
        stats: dict[str, list[Any]] = getattr(reporter, "stats", {}) if reporter is not None else {}
        from pytest_shopflow_perf.plugin.reports import collected_runs

        # collection order, whatever order the tests finished or failed in
        tests: list[tuple[str, Sequence[Mapping[str, Any]]]] = [
            (test_id(str(report.nodeid)), runs)
            for report, runs in collected_runs({k: v for k, v in stats.items() if k != "rerun"})
        ]
        seen = {nodeid for nodeid, _ in tests}
        # Interrupted inside a run: their report went to pytest-html and JUnit, not to the terminal's stats.
        tests += [(nodeid, runs) for nodeid, runs in self._interrupted() if nodeid not in seen]
        if not tests:
            return
        from pytest_shopflow_perf.reporting.html.overview import overview
        from pytest_shopflow_perf.reporting.html.regression import regression_banner

        prefix.append(overview(tests, self._environment() if self._environment is not None else {}))
        prefix.extend(regression_banner(tests))


class HtmlTargetHooks:
    """The report's title and, in its environment box, what the load tests targeted.

    Set at session finish (before pytest-html renders), and only when load tests ran: a session of
    unit tests keeps pytest-html's own title and environment.
    """

    def __init__(self) -> None:
        self._report: Any = None

    def pytest_html_report_title(self, report: Any) -> None:
        self._report = report  # titled at session finish, once it is known that load tests ran

    @pytest.hookimpl(tryfirst=True)
    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        from pytest_shopflow_perf.plugin.keys import perf_session_key
        from pytest_shopflow_perf.plugin.reports import collected_runs
        from pytest_shopflow_perf.plugin.targets import labels

        reporter = session.config.pluginmanager.get_plugin("terminalreporter")
        stats: dict[str, list[Any]] = getattr(reporter, "stats", {}) if reporter is not None else {}
        runs: list[Mapping[str, Any]] = [run for _, test_runs in collected_runs(stats) for run in test_runs]
        perf = session.config.stash.get(perf_session_key, None)
        if perf is not None:
            runs += [result.summary_dict() for result in perf.orphan_results]
        if not runs:
            return
        if self._report is not None:
            from pytest_shopflow_perf.plugin.title import report_title

            self._report.title = report_title(session.config)
        shown = labels(runs)
        try:
            from pytest_metadata.plugin import metadata_key
        except ImportError:  # pytest-html without pytest-metadata 3: no environment box to fill
            return
        metadata = session.config.stash.get(metadata_key, None)
        if metadata is not None and shown:
            metadata["Load target" if len(shown) == 1 else "Load targets"] = "; ".join(shown)


def _insert_at(cells: list[str], marker: str) -> int:
    """Right after the Duration column (header and rows alike), else at the end."""
    for index, cell in enumerate(cells):
        if marker in str(cell):
            return index + 1
    return len(cells)
