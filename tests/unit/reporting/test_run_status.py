"""Run statuses and the session verdict: PASS only for a judged run of a passed test, never for a stopped one."""

from __future__ import annotations

from typing import Any

import pytest

from pytest_shopflow_perf.reporting._format import run_status
from pytest_shopflow_perf.reporting.summary import build_summary, render_markdown
from pytest_shopflow_perf.reporting.terminal import _slo_cell, _target_lines

STATS = {"requests": 100, "errors": 0, "error_rate": 0.0, "rps": 10.0, "mean_ms": 2.0, "p50_ms": 2.0,
         "p90_ms": 3.0, "p95_ms": 3.0, "p99_ms": 4.0, "max_ms": 5.0, "errors_by_kind": {}}  # fmt: skip
SLO_OK = {"passed": True, "threshold": "p(95)<1s", "endpoint": "total", "measured": 0.003, "metric": "p95",
          "op": "<", "limit": 1.0, "unit": "s"}  # fmt: skip


def _run(name: str = "t.py::test_x", **fields: Any) -> dict[str, Any]:
    run: dict[str, Any] = {"test": name, "model": "closed", "duration_s": 10.0, "interrupted": False,
                           "profile": {"duration": 10.0}, "total": STATS, "endpoints": {"GET /": STATS},
                           "generator": {}, "extra": {"slo": [SLO_OK]}}  # fmt: skip
    run.update(fields)
    return run


@pytest.mark.parametrize(
    ("run", "outcome", "reason", "status", "why"),
    [
        (_run(), "passed", None, "PASS", "met its thresholds"),
        (_run(extra={"regression": {"tier": "none"}}), "passed", None, "PASS", "compared with its baseline: none"),
        (_run(extra={}), "passed", None, "NOT JUDGED", "no threshold and no baseline judged it"),
        (_run(extra={"recovery_check": {"within_s": 3.0, "failed": 0}}), "passed", None, "PASS", "thresholds"),
        (_run(extra={"regression_note": "comparison disabled"}), "passed", None, "NOT JUDGED", "no threshold"),
        (_run(extra={"regression": {"tier": "inconclusive"}}), "passed", None, "PASS", "baseline: inconclusive"),
        (
            _run(duration_s=2.04, interrupted=True, extra={"stop_reason": "interrupted", "slo": [SLO_OK]}),
            "interrupted",
            "Ctrl-C",
            "INTERRUPTED",
            "after 2.0 s of 10 s: its thresholds were never judged",
        ),
        (
            _run(interrupted=True, extra={"stop_reason": "aborted: 'error_rate<5%' is breached beyond recovery"}),
            "failed",
            "AssertionError: load aborted early",
            "ABORTED",
            "abort-on-fail stopped the load early: 'error_rate<5%' is breached beyond recovery",
        ),
        (_run(), "failed", "AssertionError: p95", "FAIL", "AssertionError: p95"),
        (_run(), "error", None, "FAIL", "the test failed"),
        (_run(), "skipped", "inconclusive: the load generator was saturated", "INCONCLUSIVE", "the load generator"),
        (_run(), "inconclusive", "inconclusive: a shard was lost", "INCONCLUSIVE", "a shard was lost"),
        (_run(shards=[{"worker": "local:1", "lost": True}]), "passed", None, "INCONCLUSIVE", "local:1"),
        (_run(generator={"saturated": True, "reasons": ["CPU 97 %"]}), "passed", None, "INCONCLUSIVE", "CPU 97 %"),
        (_run(), "skipped", "no redis-server", "SKIPPED", "no redis-server"),
    ],
)
def test_run_status(run: dict[str, Any], outcome: str, reason: str | None, status: str, why: str) -> None:
    got, because = run_status(run, outcome, reason)
    assert got == status
    assert why in because


def _summary(*tests: tuple[str, str | None, dict[str, Any]]) -> dict[str, Any]:
    return build_summary(
        [
            {"nodeid": run["test"], "outcome": outcome, "reason": reason, "runs": [run]}
            for outcome, reason, run in tests
        ],
        {"title": "acme performance summary", "target": "http://127.0.0.1:1 (--perf-base-url)"},
    )


PASSED = ("passed", None, _run("t.py::test_ok"))
UNJUDGED = ("passed", None, _run("t.py::test_bare", extra={}))
STOPPED = ("interrupted", "Ctrl-C", _run("t.py::test_long", interrupted=True, extra={"stop_reason": "interrupted"}))
FAILED = ("failed", "AssertionError: p95", _run("t.py::test_slow"))
SATURATED = ("passed", None, _run("t.py::test_busy", generator={"saturated": True, "reasons": ["CPU"]}))
CAUGHT_ABORT = ("passed", None, _run("t.py::test_caught", extra={"stop_reason": "aborted: error_rate"}))


@pytest.mark.parametrize(
    ("tests", "verdict", "headline"),
    [
        ((PASSED,), "PASS", "all 1 load test(s) met their thresholds"),
        ((PASSED, UNJUDGED), "PASS", "1 run(s) met their thresholds; not counted as passed: t.py::test_bare"),
        ((UNJUDGED,), "NOT JUDGED", "no run had a threshold or a baseline to judge it (t.py::test_bare)"),
        ((PASSED, STOPPED), "INTERRUPTED", "t.py::test_long: stopped by Ctrl-C or SIGTERM after 10.0 s of 10 s"),
        ((PASSED, SATURATED), "INCONCLUSIVE", "no test failed, but 1 run(s) could not be judged (t.py::test_busy"),
        ((FAILED, STOPPED), "FAIL", "1 of 2 load test(s) failed (test_slow: AssertionError: p95); interrupted"),
        ((PASSED, CAUGHT_ABORT), "FAIL", "abort-on-fail stopped t.py::test_caught"),
    ],
)
def test_session_verdict(tests: tuple[Any, ...], verdict: str, headline: str) -> None:
    summary = _summary(*tests)
    assert summary["verdict"] == verdict
    assert summary["headline"].startswith(headline) or headline in summary["headline"]
    markdown = render_markdown(summary)
    assert markdown.startswith("# acme performance summary\n")
    assert f"**Verdict: {verdict}** - " in markdown


def test_the_kpi_table_shows_each_runs_status_and_why() -> None:
    markdown = render_markdown(_summary(PASSED, UNJUDGED, STOPPED))
    assert "| t.py::test_ok | PASS |" in markdown
    assert "| t.py::test_bare | **NOT JUDGED**: no threshold and no baseline judged it" in markdown
    assert "| t.py::test_long | **INTERRUPTED**: stopped by Ctrl-C or SIGTERM" in markdown
    assert "against http://127.0.0.1:1 (--perf-base-url);" in markdown


def test_a_summary_without_a_title_is_not_shopflows() -> None:
    markdown = render_markdown(build_summary([{"nodeid": "t", "outcome": "passed", "runs": [_run()]}], {}))
    assert markdown.startswith("# Performance summary\n")


@pytest.mark.parametrize(
    ("summary", "cell"),
    [
        (_run(outcome="passed"), "1/1 ok"),
        (_run(outcome="passed", extra={}), "not judged"),
        (_run(outcome="passed", extra={"regression": {"tier": "none"}}), "-"),
        (_run(outcome="interrupted", extra={"stop_reason": "interrupted", "slo": [SLO_OK]}), "INTERRUPTED"),
        (_run(outcome="failed", extra={"stop_reason": "aborted: x", "slo": [{**SLO_OK, "passed": False}]}),
         "ABORTED: 1 FAILED"),
        (_run(outcome="inconclusive"), "inconclusive"),
        (_run(outcome="skipped"), "skipped"),
    ],
)  # fmt: skip
def test_the_terminal_slo_cell_never_reads_as_a_pass_for_an_unjudged_run(summary: dict[str, Any], cell: str) -> None:
    assert _slo_cell(summary) == cell


def test_the_terminal_names_one_target_once_and_several_per_run() -> None:
    one = {"url": "http://127.0.0.1:1", "source": "option", "label": "http://127.0.0.1:1 (--perf-base-url)"}
    other = {"url": "http://127.0.0.1:2", "source": "marker", "label": "http://127.0.0.1:2 (base_url= of marker)"}
    assert _target_lines([_run("a", target=one), _run("b", target=one)]) == [f"target: {one['label']}"]
    many = [_run(name, target=one) for name in "abcd"]
    assert _target_lines([*many, _run("e", target=other)]) == [
        f"target: {one['label']} (a, b, c and 1 more)",
        f"target: {other['label']} (e)",
    ]
    assert _target_lines([_run("a", target="http://127.0.0.1:3")]) == ["target: http://127.0.0.1:3"]  # old record
