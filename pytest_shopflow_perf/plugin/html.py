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


def _insert_at(cells: list[str], marker: str) -> int:
    """Right after the Duration column (header and rows alike), else at the end."""
    for index, cell in enumerate(cells):
        if marker in str(cell):
            return index + 1
    return len(cells)
