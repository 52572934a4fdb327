"""The HTML report's pieces from plain data: thresholds that colour error cells, where a "worst endpoint"
means something, the overview, the baseline's median view, interrupted runs, JUnit properties."""

from __future__ import annotations

import re
from typing import Any

import httpx
import pytest
from support.engine import run as run_engine

from pytest_shopflow_perf.metrics.hdr import encode_histogram, new_histogram
from pytest_shopflow_perf.metrics.recorder import WindowSeries
from pytest_shopflow_perf.reporting.html.baseline_view import baseline_view
from pytest_shopflow_perf.reporting.html.overview import MAX_LISTED, overview, target_of
from pytest_shopflow_perf.reporting.html.render import render_run, shown_run, table_cells
from pytest_shopflow_perf.reporting.html.tables import error_limits, summary_table, worst_row
from pytest_shopflow_perf.reporting.junit import junit_properties

ENVIRONMENT = {
    "cpu_model": "Test CPU 3000",
    "cpu_count": 4,
    "cpu_quota": 1.5,
    "python": "3.11.7",
    "implementation": "CPython",
    "system": "Linux",
    "machine": "x86_64",
    "plugin_version": "9.9.9",
}


def stats(requests: int = 100, errors: int = 0, p95: float = 10.0) -> dict[str, Any]:
    return {"requests": requests, "errors": errors, "rps": 10.0, "p50_ms": p95 / 2, "p90_ms": p95 * 0.9,
            "p95_ms": p95, "p99_ms": p95 * 1.2, "max_ms": p95 * 2}  # fmt: skip


def run(**changes: Any) -> dict[str, Any]:
    record: dict[str, Any] = {
        "test": "t.py::test_x",
        "name": None,
        "model": "closed",
        "profile": {"duration": 10.0, "base_url": "http://127.0.0.1:8000"},
        "duration_s": 10.0,
        "interrupted": False,
        "total": stats(200, 10),
        "endpoints": {"GET /a": stats(100, 10, 20.0), "GET /b": stats(100, 0, 5.0)},
        "events": {},
        "generator": {},
        "extra": {},
    }
    record.update(changes)
    return record


def outcome(threshold: str, metric: str, limit: float, endpoint: str = "total", **more: Any) -> dict[str, Any]:
    return {"threshold": threshold, "metric": metric, "endpoint": endpoint, "op": "<", "limit": limit,
            "measured": 0.05, "passed": True, "unit": "%", "scope": "whole run", "at": None, **more}  # fmt: skip


# ---- error cells by the test's own threshold ----------------------------------------------------------


def errpct(html: str, name: str) -> str:
    found = re.search(rf'<td class="sfp-l">{re.escape(name)}</td>.*?<td class="(sfp-errpct[^"]*)"', html)
    assert found is not None
    return found.group(1)


def test_error_cells_follow_the_tests_own_thresholds() -> None:
    slo = [
        outcome("error_rate<20%", "error_rate", 0.20),
        outcome("error_rate<8%", "error_rate", 0.08),  # the strictest of the run's
        outcome("error_rate<1% over any 10s", "error_rate", 0.01, scope="over any 10s"),  # not the whole run
        outcome("error_rate[HTTP 5]<1%", "error_rate[HTTP 5]", 0.01),  # of some kinds only
        outcome("GET /b: error_rate<1%", "error_rate", 0.01, endpoint="GET /b"),
    ]
    record = run(extra={"slo": slo})
    limits = error_limits(record)
    assert {name: (limit.text, limit.limit) for name, limit in limits.items()} == {
        "total": ("error_rate<8%", 0.08),
        "GET /b": ("GET /b: error_rate<1%", 0.01),
    }
    table = summary_table(record)
    assert errpct(table, "total") == "sfp-errpct sfp-good"  # 5 % < 8 %
    assert errpct(table, "GET /a") == "sfp-errpct sfp-bad"  # 10 % against the run's 8 %
    assert errpct(table, "GET /b") == "sfp-errpct sfp-good"  # 0 % against its own 1 %
    assert 'title="breaks the test&#x27;s threshold error_rate&lt;8% (the run&#x27;s)"' in table
    loose = summary_table(run(extra={"slo": [outcome("error_rate<50%", "error_rate", 0.5)]}))
    assert errpct(loose, "GET /a") == "sfp-errpct sfp-good"  # the same 10 %: the threshold decides, not 0
    unjudged = summary_table(run())
    assert errpct(unjudged, "GET /a") == "sfp-errpct sfp-warn"
    assert errpct(unjudged, "GET /b") == "sfp-errpct"  # no errors, nothing to say
    cells = table_cells([run(extra={"slo": slo})])
    assert "color:#2e7d32" in cells[1]
    assert "color:#c62828" in table_cells([run(extra={"slo": [outcome("x", "error_rate", 0.01)]})])[1]
    assert "color:#9a6700" in table_cells([run()])[1]


def test_event_rows_sit_between_the_endpoints_and_the_total() -> None:
    events = {"check: cart has items": {"errors": 7}, "journey browse": {"errors": 3}}
    table = summary_table(run(events=events))
    names = re.findall(r'<tr[^>]*><td class="sfp-l">([^<]+)</td>', table)
    assert names == ["GET /a", "GET /b", "check: cart has items", "journey browse", "total"]
    assert table.count('class="sfp-event"') == 2


# ---- "worst endpoint" only where it means something --------------------------------------------------


def test_worst_endpoint_only_where_one_can_stand_out() -> None:
    record = run()
    latency = {"metric": "p95", "endpoint": "total", "worst_endpoint": "GET /a", "at": None}
    assert worst_row(latency, record) == "worst: GET /a"
    single = run(endpoints={"GET /a": stats()})
    assert worst_row(latency, single) == ""  # one endpoint is the run
    assert worst_row({**latency, "metric": "rps"}, record) == ""  # a figure of the run as a whole
    assert worst_row({**latency, "metric": "count"}, record) == ""
    assert worst_row({**latency, "endpoint": "GET /a"}, record) == ""
    assert worst_row({**latency, "at": 20.0}, record) == ""  # the worst span is said instead
    rate = {"metric": "error_rate", "endpoint": "total", "worst_endpoint": "GET /b", "at": None}
    assert worst_row(rate, record) == "most errors: GET /a"
    clean = run(endpoints={"GET /a": stats(), "GET /b": stats()})
    assert worst_row(rate, clean) == ""  # no endpoint had an error: none is "worst"
    checks = run(endpoints={"GET /a": stats(), "GET /b": stats()}, events={"check: cart has items": {"errors": 4}})
    assert worst_row(rate, checks) == "most errors: check: cart has items"  # not an endpoint that answered fine
    kinds = run(
        endpoints={
            "GET /a": {**stats(100, 9), "errors_by_kind": {"HTTP 404": 9}},
            "GET /b": {**stats(100, 2), "errors_by_kind": {"HTTP 503": 2}},
        }
    )
    assert worst_row({**rate, "metric": "error_rate[HTTP 5]"}, kinds) == "most errors: GET /b"  # of those kinds
    assert worst_row({**rate, "metric": "error_rate[timeout]"}, kinds) == ""


# ---- the overview ---------------------------------------------------------------------------------------


def facts(html: str) -> dict[str, str]:
    return dict(re.findall(r'<tr data-key="(\w+)"><th[^>]*>[^<]*</th><td[^>]*>(.*?)</td></tr>', html, re.DOTALL))


def test_overview_names_the_target_the_machine_the_plugin_and_the_baselines() -> None:
    target = {"url": "http://127.0.0.1:9000", "source": "--perf-base-url", "label": "httpbin"}
    compared = run(target=target, extra={"regression": {"tier": "none", "baseline_runs": 3},
                                         "baseline_file": "baselines/t.py__test_x.json"})  # fmt: skip
    missing = run(test="t.py::test_y", extra={"regression_note": "no baseline yet (baselines/y.json); record one"})
    stopped = run(test="t.py::test_z", interrupted=True, duration_s=2.5)
    html = overview([("t.py::test_x", [compared]), ("t.py::test_y", [missing]), ("t.py::test_z", [stopped])],
                    {**ENVIRONMENT, "git_commit": "0123456789abcdef"})  # fmt: skip
    assert html.startswith('<div id="sfp-overview" class="sfp-overview"')
    found = facts(html)
    assert list(found) == ["target", "load", "machine", "plugin", "baseline", "commit"]
    assert 'httpbin (http://127.0.0.1:9000)</span> <span style="color:#666">(--perf-base-url)</span>' in found["target"]
    assert "http://127.0.0.1:8000" in found["target"]  # the runs without a target key: their profile's
    assert found["load"].startswith('3 runs in 3 tests, <b class="sfp-load-duration">22.5 s</b> of load in total')
    assert "interrupted: t.py::test_z (partial results, not judged)" in found["load"]
    assert found["machine"] == "Test CPU 3000, 4 cores (cgroup quota 1.5 CPUs), CPython 3.11.7, Linux x86_64"
    assert found["plugin"] == "pytest-shopflow-perf 9.9.9"
    assert found["baseline"].startswith("<code>baselines/t.py__test_x.json</code> (3 runs); no baseline yet for 1 run")
    assert found["commit"] == "<code>0123456789ab</code>"
    assert overview([], ENVIRONMENT) == ""


def test_overview_targets_fall_back_and_many_baselines_fold() -> None:
    assert target_of(run(target={"url": "http://h:1", "source": "ini perf_base_url", "label": ""})) == (
        "http://h:1",
        "ini perf_base_url",
    )
    assert target_of(run(target="http://h:2")) == ("http://h:2", "")
    assert target_of(run()) == ("http://127.0.0.1:8000", "")
    assert target_of(run(profile={})) == ("", "")
    assert facts(overview([("t", [run(profile={})])], ENVIRONMENT))["target"] == "-"
    many = [
        ("t", [run(extra={"regression": {"tier": "none", "baseline_runs": n}, "baseline_file": f"b/{n}.json"})])
        for n in range(1, MAX_LISTED + 3)
    ]
    off = run(extra={"regression_note": "comparison disabled (--perf-no-compare)"})
    assert facts(overview([("t", [off])], ENVIRONMENT))["baseline"] == "comparison disabled (--perf-no-compare)"
    folded = facts(overview(many, ENVIRONMENT))["baseline"]
    assert folded.startswith(f"<details><summary>{MAX_LISTED + 2} baselines (1-{MAX_LISTED + 2} runs each)")


# ---- the baseline's view: the median of its runs ---------------------------------------------------------


def record(latency_ms: float, *, hdr: bool = True, windows: bool = True) -> dict[str, Any]:
    histogram = new_histogram()
    for _ in range(100):
        histogram.record_value(int(latency_ms * 1000))
    total: dict[str, Any] = {**stats(300, 0, latency_ms), "p50_ms": latency_ms}
    if hdr:
        total["hdr"] = encode_histogram(histogram)
    if windows:
        figures = {f"{name}_ms": [latency_ms] * 3 for name in ("p50", "p95", "p99")}
        total["windows"] = {"t_s": [0.0, 1.0, 2.0], "count": [100] * 3, "errors": [0] * 3, **figures}
    return {"duration_s": 3.0, "window_s": 1.0, "total": total}


def test_the_baseline_view_is_the_median_of_its_runs() -> None:
    view = baseline_view("baselines/x.json", [record(10.0), record(30.0), record(20.0)], [0.0, 50.0, 99.0])
    assert view is not None
    assert view.label == "baseline (median of 3 runs)"
    assert not view.sparse
    assert [q for q, _ in view.percentiles] == [0.0, 50.0, 99.0]
    assert all(v == pytest.approx(20.0, rel=0.01) for _, v in view.percentiles)  # the middle run's, not a mean
    assert view.timeline["p95"] == [(0.5, 20.0), (1.5, 20.0), (2.5, 20.0)]
    assert view.timeline["rps"] == [(0.5, 100.0), (1.5, 100.0), (2.5, 100.0)]
    assert view.notes == []
    assert baseline_view("b.json", [], [50.0]) is None


def test_the_baseline_view_says_what_its_records_lack() -> None:
    bare = baseline_view("b.json", [record(10.0, hdr=False, windows=False), record(20.0, hdr=False, windows=False)],
                         [0.0, 50.0, 99.0])  # fmt: skip
    assert bare is not None
    assert bare.sparse
    assert [q for q, _ in bare.percentiles] == [50.0, 90.0, 95.0, 99.0]  # what each run recorded
    assert bare.percentiles[0] == (50.0, 15.0)
    assert bare.timeline == {}
    assert bare.notes == [
        "its runs keep no histogram: the baseline curve joins their median p50, p90, p95 and p99",
        "its runs keep no timeline: only the percentile curve is overlaid",
    ]
    mixed = baseline_view("b.json", [record(10.0), record(20.0, hdr=False, windows=False)], [50.0])
    assert mixed is not None
    assert mixed.notes == [
        "1 of its 2 runs keep a histogram: the curve is their median",
        "1 of its 2 runs keep a timeline: the line is their median",
    ]


# ---- interrupted runs --------------------------------------------------------------------------------------


def test_an_interrupted_run_is_marked_and_stands_for_its_test() -> None:
    stopped = run(interrupted=True, duration_s=2.5, extra={"stop_reason": "interrupted"})
    regressed = run(extra={"regression": {"tier": "critical", "baseline_runs": 3}})
    assert shown_run([regressed, stopped]) is stopped
    assert table_cells([regressed, stopped])[3].endswith(">interrupted</td>")
    block = render_run(stopped)
    assert block.startswith('<div class="sfp sfp-interrupted"')
    assert "INTERRUPTED" in block
    assert "after 2.5 s of 10 s planned: partial results" in block
    aborted = run(interrupted=True, extra={"stop_reason": "aborted: error_rate<1% breached beyond recovery"})
    assert table_cells([aborted])[3].endswith(">aborted</td>")
    assert "sfp-interrupted" not in render_run(aborted)


def test_junit_marks_an_interrupted_run() -> None:
    result = run_engine(journey, users=1, duration=0.3, transport_factory=lambda: httpx.MockTransport(ok))
    assert ("perf.regression", "no baseline") in junit_properties([result])
    assert "perf.interrupted" not in dict(junit_properties([result]))
    result.interrupted = True
    result.extra["stop_reason"] = "interrupted"
    properties = dict(junit_properties([result]))
    assert properties["perf.interrupted"] == "true"
    assert properties["perf.regression"] == "not judged (interrupted)"
    assert properties["perf.duration_s"] == round(result.duration, 3)


def ok(request: httpx.Request) -> httpx.Response:
    return httpx.Response(200)


async def journey(user: Any) -> None:
    await user.client.get("/x")


# ---- users per window ------------------------------------------------------------------------------------


def test_users_per_window_travel_in_the_record_only_when_complete() -> None:
    series = WindowSeries()
    for t in (0.0, 1.0):
        series.append(t, 10, 0, None, 0)
        series.add_gauges(3.0, 1.25)
    data = series.to_dict()
    assert data["users"] == [3.0, 3.0]
    assert data["busy"] == [1.25, 1.25]
    back = WindowSeries.from_dict(data)
    assert list(back.users) == [3.0, 3.0]
    assert list(back.busy) == [1.25, 1.25]
    series.append(2.0, 10, 0, None, 0)  # a window without its gauges (a recorder nobody reads them for)
    assert "users" not in series.to_dict()
    assert list(WindowSeries.from_dict({"t_s": [0.0]}).users) == []
