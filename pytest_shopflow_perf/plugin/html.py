"""The pytest-html hooks: glue only, rendering imported on first use (a run without load tests pays nothing)."""

from __future__ import annotations

from collections.abc import Callable, Generator, Mapping, Sequence
from html import escape
from typing import TYPE_CHECKING, Any

import pytest

from pytest_shopflow_perf.plugin.keys import test_id

if TYPE_CHECKING:
    from pytest_shopflow_perf.result.model import LoadResult

Results = Callable[[str], "Sequence[LoadResult] | None"]


class HtmlHooks:
    """Registered as ``config.pluginmanager.register(HtmlHooks(results_of))`` when pytest-html is installed.

    ``results_of(test id)`` gives the runs of a test in this process: the rendering never reads plugin state.
    """

    def __init__(self, results_of: Results) -> None:
        self._results_of = results_of

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

            report.extras = [*getattr(report, "extras", []), *run_extras(results)]  # type: ignore[attr-defined]
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
        reporter = session.config.pluginmanager.get_plugin("terminalreporter")
        stats: dict[str, list[Any]] = getattr(reporter, "stats", {}) if reporter is not None else {}
        from pytest_shopflow_perf.plugin.reports import collected_runs

        # collection order, whatever order the tests finished or failed in
        tests: list[tuple[str, Sequence[Mapping[str, Any]]]] = [
            (test_id(str(report.nodeid)), runs)
            for report, runs in collected_runs({k: v for k, v in stats.items() if k != "rerun"})
        ]
        if tests:
            from pytest_shopflow_perf.reporting.html.render import regression_banner

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
