"""The live progress line of a running load test (rewritten in place on a terminal, every few seconds in CI logs)."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import pytest

from pytest_shopflow_perf.plugin.options import NON_TTY_PROGRESS_EVERY_S
from pytest_shopflow_perf.result.schema import error_percent

if TYPE_CHECKING:
    from pytest_shopflow_perf.engine.engine import Progress


def progress_printer(config: pytest.Config, label: str) -> Callable[[Progress], None] | None:
    """A callback for the engine's once-a-second progress, or None when nothing should be shown."""
    reporter = config.pluginmanager.get_plugin("terminalreporter")
    if reporter is None or config.get_verbosity() < 0 or hasattr(config, "workerinput"):
        return None
    capture = config.pluginmanager.get_plugin("capturemanager")
    tty = bool(getattr(reporter, "isatty", False))

    def show(progress: Progress) -> None:
        second = round(progress.elapsed)
        if not tty and second % NON_TTY_PROGRESS_EVERY_S:
            return
        error_pct = error_percent(progress.errors, progress.requests)
        line = (
            f"  {label}  {progress.elapsed:5.1f}/{progress.duration:.0f}s  users {progress.users:>4}  "
            f"req/s {progress.rps:>7.0f}  p95 {progress.p95 * 1000:7.1f} ms  "
            f"errors {progress.errors} ({error_pct:.2f}%)"
        )
        disabled = getattr(capture, "global_and_fixture_disabled", None)
        if disabled is None:
            return
        with disabled():
            if tty:
                reporter.rewrite(line, erase=True)
            else:
                reporter.write_line(line)

    return show


def end_progress(config: pytest.Config) -> None:
    """Erase the progress line on a terminal before the test's outcome is printed."""
    reporter = config.pluginmanager.get_plugin("terminalreporter")
    capture = config.pluginmanager.get_plugin("capturemanager")
    disabled = getattr(capture, "global_and_fixture_disabled", None)
    if reporter is not None and getattr(reporter, "isatty", False) and disabled is not None:
        with disabled():
            reporter.rewrite("", erase=True)


def announce(config: pytest.Config, line: str) -> None:
    """With -v, one line on the terminal now, past output capture (what a load test is about to hit).

    Not without -v: it would break pytest's line of dots; the header after collection and the table say it too.
    """
    reporter = config.pluginmanager.get_plugin("terminalreporter")
    capture = config.pluginmanager.get_plugin("capturemanager")
    disabled = getattr(capture, "global_and_fixture_disabled", None)
    if reporter is None or config.get_verbosity() < 1 or hasattr(config, "workerinput") or disabled is None:
        return
    with disabled():
        reporter.ensure_newline()
        reporter.write_line(line)


def notice_printer(config: pytest.Config) -> Callable[[str], None]:
    """A callback that says something while a run goes (a misspelt SLO endpoint), on a line of its own.

    Shown even with ``-q``: it is a warning, not progress. On an xdist worker (no terminal) it says
    nothing; the run's end still reports the problem.
    """
    reporter = config.pluginmanager.get_plugin("terminalreporter")
    capture = config.pluginmanager.get_plugin("capturemanager")
    disabled = getattr(capture, "global_and_fixture_disabled", None)
    tty = bool(getattr(reporter, "isatty", False))

    def notice(text: str) -> None:
        if reporter is None or disabled is None or hasattr(config, "workerinput"):
            return
        with disabled():
            if tty:
                reporter.rewrite("", erase=True)  # the progress line comes back with the next window
            reporter.write_line(f"shopflow perf: WARNING: {text}", yellow=True)

    return notice
