"""pytest-html integration: columns, per-test extras with inline SVG charts, the regression banner.

Real inner runs (``runpytest_subprocess``) against the delay server; the report's data
is read from the JSON blob pytest-html renders from (``data-jsonblob``, tests/support/html_report.py).
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from typing import Any

import pytest
from support.html_report import SVG_NS, Report, svgs

pytest.importorskip("pytest_html")
pytest.importorskip("matplotlib")

from pytest_shopflow_perf.reporting.html import charts
from pytest_shopflow_perf.reporting.html.regression import regression_banner
from pytest_shopflow_perf.reporting.html.render import render_run, table_cells
from pytest_shopflow_perf.reporting.html.run_charts import stage_bands

pytest_plugins = ["pytester"]

COLUMN_TYPES = ("perfp95", "perferrors", "perfrps", "perfregression")

INNER = """
import os, pytest
from pytest_shopflow_perf import assert_latency, assert_no_regression

async def shop(user):
    await user.client.get(f"/delay/{os.environ['DELAY_MS']}", extensions={"name": "GET /api/products/{id}"})
    await user.client.post("/delay/5", extensions={"name": "POST /api/cart <&>"})
    await user.think(0.005)

@pytest.mark.load(users=4, duration="1500ms", slo=["p(95)<2s", "error_rate<1%"])
def test_checkout(load):
    result = load.run(shop)
    assert_latency(result, p99="5s")
    assert_no_regression(result)

def test_unit():
    pass
"""


@pytest.fixture
def shop(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> pytest.Pytester:
    """The inner test file. Only the end-to-end tests use pytester: it drops the modules a test
    imports (matplotlib's too) from sys.modules afterwards, which would break later in-process charts."""
    monkeypatch.setenv("PYTEST_ADDOPTS", "-o asyncio_default_fixture_loop_scope=function")  # no ini inside
    pytester.makepyfile(test_shop=INNER)
    return pytester


def run(pytester: pytest.Pytester, target: str, *args: str) -> pytest.RunResult:
    return pytester.runpytest_subprocess("--perf-base-url", target, "-p", "no:cacheprovider", *args)


def html_args(name: str = "report.html") -> tuple[str, ...]:
    return (f"--html={name}", "--self-contained-html")


def check_columns(report: Report) -> None:
    types = [re.search(r'data-column-type="(\w+)"', th) for th in report.header]
    found = [match.group(1) for match in types if match]
    assert found[found.index("duration") + 1 : found.index("duration") + 5] == list(COLUMN_TYPES)
    for th in report.header:
        if any(f'"{kind}"' in th for kind in COLUMN_TYPES):
            assert 'class="sortable"' in th
    load_row = report.test("test_checkout")["resultsTableRow"]
    unit_row = report.test("test_unit")["resultsTableRow"]
    assert len(load_row) == len(unit_row) == len(report.header)
    for kind in COLUMN_TYPES:
        load_cell = next(cell for cell in load_row if f"col-{kind}" in cell)
        unit_cell = next(cell for cell in unit_row if f"col-{kind}" in cell)
        assert re.sub(r"<!--.*?-->", "", load_cell).split(">", 1)[1] != "</td>", load_cell
        assert unit_cell == f'<td class="col-{kind}"></td>'
    p95 = float(re.sub(r"<[^>]*>|,", "", next(c for c in load_row if "col-perfp95" in c)))
    assert p95 > 5.0
    assert report.test("test_checkout")["perfp95"].startswith("<!--")  # sortable as numbers


def check_extras(report: Report) -> str:
    extras = report.extras_html("test_checkout")
    assert "Requests by endpoint" in extras
    assert "GET /api/products/{id}" in extras
    assert "POST /api/cart &lt;&amp;&gt;" in extras  # escaped
    assert "<&>" not in extras
    charts_found = svgs(extras)
    assert len(charts_found) >= 2
    assert all(svg.tag == f"{SVG_NS}svg" for svg in charts_found)
    texts = [" ".join(svg.itertext()) for svg in charts_found]
    assert any("percentile" in text and "99%" in text for text in texts)
    assert any("time into the run (s)" in text and "req/s" in text for text in texts)
    assert "SLO checks: 3 passed, 0 failed" in extras
    assert "p(95)&lt;2s" in extras
    assert "<h4>Regression" in extras
    assert report.test("test_unit")["extras"] == []
    return extras


def test_report_has_columns_extras_and_a_banner_for_a_regression(
    shop: pytest.Pytester, delay_server: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytester = shop
    monkeypatch.setenv("DELAY_MS", "20")
    first = run(pytester, delay_server, "--perf-save-baseline", *html_args("first.html"))
    first.assert_outcomes(passed=2)
    report = Report(pytester.path / "first.html")
    check_columns(report)
    extras = check_extras(report)
    assert "no baseline yet" in extras
    assert "no baseline" in next(c for c in report.test("test_checkout")["resultsTableRow"] if "col-perfregr" in c)
    assert "sfp-banner" not in report.prefix

    monkeypatch.setenv("DELAY_MS", "40")  # twice as slow: the server's by construction, not a busy machine's
    slow = run(pytester, delay_server, "-o", "perf_regression_busy_machine=false", *html_args("slow.html"))
    slow.assert_outcomes(passed=1, failed=1)
    report = Report(pytester.path / "slow.html")
    check_columns(report)
    extras = check_extras(report)
    heading = r"Regression vs 1 baseline run \(baselines/test_shop.py__test_checkout.json\): "
    assert re.search(heading + r"<span[^>]*>(major|critical)</span>", extras)
    assert "GET /api/products/{id}" in extras.split("Regression vs", 1)[1]
    regression_cell = next(c for c in report.test("test_checkout")["resultsTableRow"] if "col-perfregression" in c)
    assert re.search(r">(major|critical)</td>$", regression_cell)
    assert "sfp-banner" in report.prefix
    banner = report.prefix.split('class="sfp-banner"', 1)[1]
    assert "Performance regression in 1 load run" in banner
    assert "test_shop.py::test_checkout" in banner
    # the worst finding may be the endpoint or the total, whichever moved more in this run
    assert re.search(r"(GET /api/products/\{id\}|total) \w+ \+\d+\.\d %", banner)

    monkeypatch.setenv("DELAY_MS", "20")
    same = run(pytester, delay_server, *html_args("same.html"))
    same.assert_outcomes(passed=2)
    report = Report(pytester.path / "same.html")
    assert "sfp-banner" not in report.prefix
    assert "Regression vs 1 baseline run" in report.extras_html("test_checkout")


def test_report_under_xdist_loadgroup(
    shop: pytest.Pytester, delay_server: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytest.importorskip("xdist")
    pytester = shop
    monkeypatch.setenv("DELAY_MS", "20")
    result = run(pytester, delay_server, "-n", "2", "--dist", "loadgroup", *html_args())
    result.assert_outcomes(passed=2)
    report = Report(pytester.path / "report.html")
    check_columns(report)
    check_extras(report)


def test_without_pytest_html_nothing_breaks(
    shop: pytest.Pytester, delay_server: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytester = shop
    monkeypatch.setenv("DELAY_MS", "20")
    result = run(pytester, delay_server, "-p", "no:html")
    result.assert_outcomes(passed=2)
    result.stdout.fnmatch_lines(["*= shopflow perf =*"])


# ---- the pieces, from plain data ------------------------------------------------------------------


def _parse(svg: str) -> ET.Element:
    assert svg.startswith("<svg ")  # no XML prologue
    assert "<metadata" not in svg
    assert "*{" not in svg.replace(" ", "")  # no global style leaking into the page
    return ET.fromstring(svg)


def test_percentile_chart_is_small_valid_svg_with_labels() -> None:
    levels = charts.percentile_levels(20_000)
    assert levels[0] == 0.0
    assert 99.99 < levels[-1] < 100.0
    series = {
        "total": [(p, 10 + p / 10) for p in levels],
        "GET /a/$id$ <b>&": [(p, 5 + p / 20) for p in levels],
        "_private": [(p, 20.0) for p in levels],
    }
    svg = charts.percentile_chart(series, title="Latency by percentile")
    root = _parse(svg)
    text = " ".join(root.itertext())
    for label in ("Latency by percentile", "percentile", "latency (ms)", "50%", "99%", "99.9%", "99.99%"):
        assert label in text
    assert "GET /a/$id$ <b>&" in text  # escaped in the markup, no mathtext
    assert "_private" in text  # a leading underscore does not hide a legend entry
    assert "<text" in svg  # text stays text: no embedded fonts
    assert "glyph" not in svg
    assert len(svg) < 60_000


def test_percentile_chart_without_data_says_so() -> None:
    assert "no requests" in " ".join(_parse(charts.percentile_chart({})).itertext())


def test_timeline_chart_shades_stages_and_faults_and_keeps_gaps() -> None:
    times = [0.5 + i for i in range(20)]
    p50 = [None if i == 7 else 10.0 + i for i in range(20)]
    svg = charts.timeline_chart(
        times,
        {"p50": p50, "p95": [20.0] * 20, "p99": [30.0] * 20},
        [100.0] * 20,
        [0.0] * 10 + [5.0] * 10,
        stages=[charts.Band(0, 5, "0\u219210 users"), charts.Band(5, 20, "10 users")],
        faults=[charts.Band(8, 12, "latency 300ms")],
        duration=20.0,
    )
    root = _parse(svg)
    text = " ".join(root.itertext())
    for label in ("time into the run (s)", "latency (ms)", "req/s", "errors/s", "fault", "latency 300ms", "10 users"):
        assert label in text
    assert charts.FAULT_COLOR in svg
    assert len(svg) < 80_000


def test_stage_bands_follow_the_profile() -> None:
    profile = {"model": "closed", "start": 0, "stages": [[5.0, 10], [10.0, 10], [2.0, 0]]}
    bands = stage_bands(profile)
    assert [(b.start, b.end, b.label) for b in bands] == [
        (0.0, 5.0, "0\u219210 users"),
        (5.0, 15.0, "10 users"),
        (15.0, 17.0, "10\u21920 users"),
    ]
    assert stage_bands({"stages": [[10.0, 5]]}) == []
    assert stage_bands({"model": "open", "start": 5, "stages": [[5.0, 5], [5.0, 50]]})[1].label == "5\u219250/s"


def _run(tier: str | None, *, fail_on: str = "major", change: float = 0.6) -> dict[str, Any]:
    total = {"requests": 200, "errors": 3, "rps": 40.0, "p50_ms": 10.0, "p95_ms": 123.4, "p99_ms": 150.0,
             "max_ms": 200.0, "errors_by_kind": {"HTTP 500": 3}}  # fmt: skip
    extra: dict[str, Any] = {"regression_fail_on": fail_on}
    if tier is None:
        extra["regression_note"] = "no baseline yet (baselines/x.json); record one with --perf-save-baseline"
    else:
        finding = {"endpoint": "GET /<x>", "metric": "p95", "tier": tier, "baseline": 80.0, "current": 128.0,
                   "change": change, "ci": [0.3, 0.9], "p_value": 0.0004, "unit": "ms", "note": ""}  # fmt: skip
        extra["regression"] = {"tier": tier, "baseline_runs": 3, "findings": [finding], "notes": ["a <note>"]}
    return {"test": "t.py::test_x", "name": None, "model": "closed", "profile": {}, "duration_s": 5.0,
            "interrupted": False, "total": total, "endpoints": {"GET /<x>": total}, "generator": {},
            "extra": extra}  # fmt: skip


def test_table_cells_sort_as_numbers_and_stay_aligned() -> None:
    cells = table_cells([_run(None), _run("major")])
    assert len(cells) == 4
    assert cells[0] == '<td class="col-perfp95" title="run 2 of 2"><!--00000000123.4000-->123</td>'
    assert cells[1].endswith(">1.50</td>")
    assert cells[2].endswith(">40.0</td>")
    assert cells[3].endswith(">major</td>")
    assert table_cells([]) == [f'<td class="col-{kind}"></td>' for kind in COLUMN_TYPES]
    assert table_cells([_run(None)])[3].endswith(">no baseline</td>")


def test_banner_lists_regressions_at_or_above_fail_on_and_notes_the_rest() -> None:
    banner = "".join(regression_banner([("t.py::test_x", [_run("critical")])]))
    assert "Performance regression in 1 load run" in banner
    assert "GET /&lt;x&gt; p95 +60.0 % (80.0 ms \u2192 128 ms, p &lt; 0.001)" in banner
    softer = "".join(
        regression_banner(
            [("t.py::test_x", [_run("minor")]), ("t.py::test_y", [{**_run("inconclusive"), "test": "t.py::test_y"}])]
        )
    )
    assert "sfp-banner" not in softer
    assert "sfp-note" in softer
    assert "test_x" in softer
    assert "test_y" in softer
    assert "sfp-banner" in "".join(regression_banner([("t.py::test_x", [_run("minor", fail_on="minor")])]))
    assert "sfp-banner" not in "".join(regression_banner([("t.py::test_x", [_run("critical", fail_on="never")])]))
    assert regression_banner([("t.py::test_x", [_run(None), _run("none")])]) == []


def test_render_run_escapes_everything() -> None:
    block = render_run(_run("major"), ["<svg/>"])
    assert "GET /&lt;x&gt;" in block
    assert "<x>" not in block
    assert "a &lt;note&gt;" in block
    assert "HTTP 500" in block
    assert "<svg/>" in block


def test_small_multiples_draw_the_busiest_endpoints_and_say_how_many_more() -> None:
    from pytest_shopflow_perf.reporting.html.endpoint_charts import (
        MAX_ENDPOINT_PANELS,
        EndpointSeries,
        endpoint_timelines,
    )

    times = [0.5, 1.5, 2.5]
    panels = [
        EndpointSeries(f"GET /e{i}", [1.0, None, 2.0], [2.0, None, 4.0], 100, 5 if i == 0 else 0) for i in range(12)
    ]
    svg = endpoint_timelines(times, panels, duration=3.0, left_out=12 - MAX_ENDPOINT_PANELS)
    text = " ".join(_parse(svg).itertext())
    assert f"Latency over time by endpoint ({12 - MAX_ENDPOINT_PANELS} more not shown)" in text
    assert [f"GET /e{i}" in text for i in range(12)] == [i < MAX_ENDPOINT_PANELS for i in range(12)]
    assert "5.0 % errors" in text
    assert "time into the run (s)" in text
    assert len(svg) < 120_000


def test_overlays_are_dashed_lines_with_their_labels() -> None:
    levels = charts.percentile_levels(1000)
    baseline = charts.Reference(
        "total, baseline (median of 3 runs)", [(50.0, 9.0), (90.0, 12.0), (99.0, 15.0)], sparse=True
    )
    text = " ".join(
        _parse(charts.percentile_chart({"total": [(p, 10.0) for p in levels]}, references=[baseline])).itertext()
    )
    assert "total, baseline (median of 3 runs)" in text
    svg = charts.timeline_chart(
        [0.5, 1.5],
        {"p50": [5.0, 6.0], "p95": [9.0, 10.0]},
        [100.0, 110.0],
        [0.0, 0.0],
        references=[charts.Reference("p95 baseline", [(0.5, 8.0), (1.5, 8.5)])],
        reference_rps=charts.Reference("req/s baseline", [(0.5, 90.0), (1.5, 95.0)]),
        load={"active users": [4.0, 4.0]},
        duration=2.0,
    )
    text = " ".join(_parse(svg).itertext())
    for label in ("p95 baseline", "req/s baseline", "active users", "concurrency"):
        assert label in text
    assert "stroke-dasharray" in svg
