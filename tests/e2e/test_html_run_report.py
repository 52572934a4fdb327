"""The HTML report of issue 17: the run-level overview, the charts of a run (per endpoint, load applied,
corrected vs uncorrected, baseline overlay), checks and tracebacks, thresholds that colour the error
cells, and interrupted runs (in the HTML and in JUnit XML).

Real inner runs (``runpytest_subprocess``) against the delay server, read back from what pytest-html
wrote (tests/support/html_report.py); tests/e2e/test_html_chromium.py renders one in a browser.
"""

from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET
from importlib.metadata import version

import pytest
from support.html_report import Report, charts

pytest.importorskip("pytest_html")
pytest.importorskip("matplotlib")

from pytest_shopflow_perf.verdicts.baseline import environment_fingerprint

pytest_plugins = ["pytester"]

SHOP = """
import itertools, pytest

TICKS = itertools.count()

async def shop(user):
    await user.client.get("/delay/15", extensions={"name": "GET /api/products"})
    n = next(TICKS)
    cart = "/status/500" if n % 5 == 0 else "/delay/3"
    await user.client.get(cart, extensions={"name": "GET /api/cart"})
    await user.client.post("/delay/3", extensions={"name": "POST /api/checkout"})
    user.check(n % 4 != 1, "cart has items")
    user.check(True, "checkout ok")
    if n % 7 == 3:
        raise ValueError("no product in the page")
    await user.think(0.005)

@pytest.mark.load(users=3, duration="2s", slo=["p(95)<2s", "error_rate<60%", "GET /api/cart: error_rate<5%"])
def test_shop(load):
    load.run(shop)

async def browse(user):
    await user.client.get("/delay/5", extensions={"name": "GET /api/products"})

@pytest.mark.load(users=2, duration="1500ms", slo=["p(95)<2s", "error_rate<1%"])
def test_single(load):
    load.run(browse)

ARRIVALS = itertools.count()

async def arrive(user):
    if next(ARRIVALS) % 4 == 0:
        await user.client.get("/status/503", extensions={"name": "GET /api/stock"})
    await user.client.get("/delay/10", extensions={"name": "GET /api/products"})

@pytest.mark.load(rate=30, duration="2s", max_users=10)
def test_open(load):
    load.run(arrive)
"""

INTERRUPTED = """
import os, signal, time, pytest

async def quick(user):
    await user.client.get("/delay/5", extensions={"name": "GET /quick"})

@pytest.mark.load(users=2, duration="1s")
def test_a_finished(load):
    load.run(quick)

STARTED = []

async def stopped_by_ctrl_c(user):
    STARTED.append(time.monotonic()) if not STARTED else None
    await user.client.get("/delay/5", extensions={"name": "GET /slowly"})
    if len(STARTED) == 1 and time.monotonic() - STARTED[0] > 2.2:
        STARTED.append(0.0)
        os.kill(os.getpid(), signal.SIGINT)  # what Ctrl-C sends

@pytest.mark.load(users=2, duration="30s")
def test_b_interrupted(load):
    load.run(stopped_by_ctrl_c)

def test_c_never_reached():
    pass
"""

BASELINE = """
import pytest

async def browse(user):
    await user.client.get("/delay/10", extensions={"name": "GET /api/products"})
    await user.client.get("/delay/2", extensions={"name": "GET /api/cart"})

@pytest.mark.load(users=2, duration="2s")
def test_base(load):
    load.run(browse)
"""


@pytest.fixture(autouse=True)
def _no_ini(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PYTEST_ADDOPTS", "-o asyncio_default_fixture_loop_scope=function")


def run(pytester: pytest.Pytester, target: str, *args: str) -> pytest.RunResult:
    return pytester.runpytest_subprocess(
        "--perf-base-url", target, "-p", "no:cacheprovider", "-p", "no:randomly", "--self-contained-html", *args
    )


def row(html: str, name: str) -> str:
    """The summary-table row of an endpoint (or event row) in a run's block."""
    found = re.search(rf'<tr[^>]*><td class="sfp-l">{re.escape(name)}</td>.*?</tr>', html)
    assert found is not None, f"no row {name!r}"
    return found.group(0)


def slo_row(html: str, threshold: str) -> str:
    status = r"<td[^>]*><span[^>]*>[^<]*</span></td>"
    found = re.search(rf"<tr[^>]*>{status}<td[^>]*><code>{re.escape(threshold)}</code>.*?</tr>", html)
    assert found is not None, f"no SLO row {threshold!r}"
    return found.group(0)


def test_overview_tables_and_charts_of_a_session(pytester: pytest.Pytester, delay_server: str) -> None:
    pytester.makepyfile(test_shop=SHOP)
    result = run(pytester, delay_server, "--html=report.html")
    result.assert_outcomes(passed=2, failed=1)  # test_shop breaks its own GET /api/cart threshold
    report = Report(pytester.path / "report.html")

    # the overview: target, load, machine, plugin, baseline
    overview = re.search(r'<div id="sfp-overview".*?</table></div>', report.prefix, re.DOTALL)
    assert overview is not None
    box = overview.group(0)
    facts = dict(re.findall(r'<tr data-key="(\w+)"><th[^>]*>[^<]*</th><td[^>]*>(.*?)</td></tr>', box, re.DOTALL))
    assert set(facts) >= {"target", "load", "machine", "plugin", "baseline"}
    assert delay_server in facts["target"]
    assert facts["load"].startswith("3 runs in 3 tests")
    seconds = re.search(r'<b class="sfp-load-duration">([\d.]+) s</b>', facts["load"])
    assert seconds is not None
    assert 5.4 <= float(seconds.group(1)) < 15  # 2 s + 1.5 s + 2 s of load
    assert "2 closed model, 1 open model" in facts["load"]
    machine = environment_fingerprint()
    assert machine["cpu_model"] in facts["machine"]
    assert f"{machine['cpu_count']} core" in facts["machine"]
    assert facts["plugin"] == f"pytest-shopflow-perf {version('pytest-shopflow-perf')}"
    assert facts["baseline"].startswith("no baseline yet for 3 runs")

    shop = report.extras_html("test_shop")
    # error-% cells by the test's own thresholds: GET /api/cart breaks its 5 %, the run keeps its 60 %
    assert 'class="sfp-errpct sfp-bad"' in row(shop, "GET /api/cart")
    assert "GET /api/cart: error_rate&lt;5%" in row(shop, "GET /api/cart")
    assert 'class="sfp-errpct sfp-good"' in row(shop, "GET /api/products")  # judged by the run's threshold
    assert 'class="sfp-errpct sfp-good"' in row(shop, "total")
    assert "color:#2e7d32" in report.cell("test_shop", "perferrors")
    # failed checks and journey exceptions on rows of their own, then their own tables
    assert 'class="sfp-event"' in row(shop, "check: cart has items")
    assert 'class="sfp-event"' in row(shop, "journey shop")
    checks = re.search(r"<h4>Checks: ([\d,]+) passed, ([\d,]+) failed \(2 checks\)</h4>", shop)
    assert checks is not None
    assert int(checks.group(1).replace(",", "")) > 0
    assert int(checks.group(2).replace(",", "")) > 0
    check_rows = re.findall(
        r'<td class="sfp-l">(cart has items|checkout ok)</td><td>[\d,]+</td><td[^>]*>([\d,]+)</td>', shop
    )
    assert [name for name, _ in check_rows] == ["cart has items", "checkout ok"]  # failing first
    assert dict(check_rows)["checkout ok"] == "0"
    assert re.search(r'<table class="sfp-table sfp-exceptions">.*?exception ValueError.*?shop', shop, re.DOTALL)
    traceback = re.search(r'<details class="sfp-traceback" open>.*?<pre>(.*?)</pre>', shop, re.DOTALL)
    assert traceback is not None
    assert 'raise ValueError("no product in the page")' in traceback.group(1).replace("&quot;", '"')
    assert "ValueError: no product in the page" in traceback.group(1)
    # a worst endpoint where one stands out; the row with most errors for an error rate
    assert "total (worst: GET /api/products)" in slo_row(shop, "p(95)&lt;2s")
    most = r"total \(most errors: (check: cart has items|GET /api/cart|journey shop)\)"
    assert re.search(most, slo_row(shop, "error_rate&lt;60%"))
    assert "worst" not in slo_row(shop, "GET /api/cart: error_rate&lt;5%")
    # charts: percentiles, timeline with the users, one panel per endpoint
    found = charts(shop)
    assert set(found) == {"percentiles", "timeline", "endpoints"}
    assert "active users" in found["timeline"]
    assert "concurrency" in found["timeline"]
    for name in ("GET /api/products", "GET /api/cart", "POST /api/checkout"):
        assert name in found["endpoints"]
    assert "Latency over time by endpoint" in found["endpoints"]

    single = report.extras_html("test_single")
    for threshold in ("p(95)&lt;2s", "error_rate&lt;1%"):
        assert "(worst" not in slo_row(single, threshold)
        assert "most errors" not in slo_row(single, threshold)
    assert set(charts(single)) == {"percentiles", "timeline"}  # one endpoint: no panels, it is the total
    assert 'class="sfp-errpct sfp-good"' in row(single, "total")

    opened = report.extras_html("test_open")
    found = charts(opened)
    assert set(found) == {"percentiles", "timeline", "endpoints", "correction"}
    assert "corrected: from the intended start" in found["correction"]
    assert "uncorrected: from the send" in found["correction"]
    assert "iterations in flight" in found["timeline"]
    assert "workers (VUs)" in found["timeline"]
    assert 'class="sfp-errpct sfp-warn"' in row(opened, "total")  # errors, and no threshold to judge them
    assert "color:#9a6700" in report.cell("test_open", "perferrors")


def test_baseline_overlay_is_the_median_of_its_runs_and_says_what_it_lacks(
    pytester: pytest.Pytester, delay_server: str
) -> None:
    pytester.makepyfile(test_base=BASELINE)
    run(pytester, delay_server, "--perf-save-baseline", "--html=first.html").assert_outcomes(passed=1)
    first = Report(pytester.path / "first.html")
    assert "Dashed" not in first.extras_html("test_base")  # no baseline to compare with yet
    path = pytester.path / "baselines" / "test_base.py__test_base.json"
    baseline = json.loads(path.read_text())
    slower = json.loads(json.dumps(baseline["runs"][0]))
    slower["started_at"] = "2026-01-01T00:00:00+00:00"
    baseline["runs"].append(slower)  # two runs: the overlay is their median
    path.write_text(json.dumps(baseline))

    run(pytester, delay_server, "--html=second.html").assert_outcomes(passed=1)
    second = Report(pytester.path / "second.html")
    extras = second.extras_html("test_base")
    found = charts(extras)
    assert "total, baseline (median of 2 runs)" in found["percentiles"]
    assert "p95 baseline" in found["timeline"]
    assert "p50 baseline" in found["timeline"]
    assert "req/s baseline" in found["timeline"]
    captions = re.findall(r'<p class="sfp-meta sfp-caption">(.*?)</p>', extras)
    assert "Dashed: baseline (median of 2 runs), baselines/test_base.py__test_base.json." in captions
    assert "baselines/test_base.py__test_base.json</code> (2 runs)" in second.prefix

    for record in baseline["runs"]:  # records of an older version: no histogram, no windows
        for stats in [record["total"], *record["endpoints"].values()]:
            stats.pop("hdr")
            stats.pop("windows")
    path.write_text(json.dumps(baseline))
    run(pytester, delay_server, "--html=third.html").assert_outcomes(passed=1)
    extras = Report(pytester.path / "third.html").extras_html("test_base")
    found = charts(extras)
    assert "total, baseline (median of 2 runs)" in found["percentiles"]  # from the p50-p99 it recorded
    assert "baseline" not in found["timeline"]
    caption = " ".join(re.findall(r'<p class="sfp-meta sfp-caption">(.*?)</p>', extras))
    assert "no histogram: the baseline curve joins their median p50, p90, p95 and p99" in caption
    assert "no timeline: only the percentile curve is overlaid" in caption


def test_an_interrupted_run_is_in_the_html_and_the_junit_xml(pytester: pytest.Pytester, delay_server: str) -> None:
    pytester.makepyfile(test_stop=INTERRUPTED)
    result = run(pytester, delay_server, "--html=report.html", "--junitxml=junit.xml", "--perf-report-dir=out")
    assert result.ret == pytest.ExitCode.INTERRUPTED
    result.stdout.fnmatch_lines(["*test_b_interrupted: INTERRUPTED: partial results*"])
    result.stdout.no_fnmatch_line("*skipped*")  # the terminal's own account is untouched
    report = Report(pytester.path / "report.html")
    assert set(report.data["tests"]) == {"test_stop.py::test_a_finished", "test_stop.py::test_b_interrupted"}
    stopped = report.test("test_b_interrupted")
    assert stopped["result"] == "Skipped"
    assert "interrupted (Ctrl-C or SIGTERM)" in stopped["log"]
    assert re.search(r">interrupted</td>$", report.cell("test_b_interrupted", "perfregression"))
    rps = re.sub(r"<!--.*?-->|<[^>]*>|,", "", report.cell("test_b_interrupted", "perfrps"))
    assert float(rps) > 0
    extras = report.extras_html("test_b_interrupted")
    assert 'class="sfp sfp-interrupted"' in extras
    assert "INTERRUPTED" in extras
    assert "partial results" in extras
    total = re.search(r'<tr class="sfp-total"><td class="sfp-l">total</td><td>([\d,]+)</td>', extras)
    assert total is not None
    assert int(total.group(1).replace(",", "")) > 0
    assert {"percentiles", "timeline"} <= set(charts(extras))
    assert "interrupted: test_stop.py::test_b_interrupted" in report.prefix
    assert report.test("test_a_finished")["result"] == "Passed"

    suite = ET.parse(pytester.path / "junit.xml").getroot()
    cases = {case.get("name"): case for case in suite.iter("testcase")}
    assert set(cases) == {"test_a_finished", "test_b_interrupted"}
    case = cases["test_b_interrupted"]
    skipped = case.find("skipped")
    assert skipped is not None
    assert "interrupted" in str(skipped.get("message"))
    properties = {p.get("name"): p.get("value") for p in case.iter("property")}
    assert properties["perf.interrupted"] == "true"
    assert properties["perf.regression"] == "not judged (interrupted)"
    assert float(str(properties["perf.p95_ms"])) > 0
    assert float(str(properties["perf.duration_s"])) >= 2.0
    assert "perf.interrupted" not in {p.get("name") for p in cases["test_a_finished"].iter("property")}
    record = json.loads((pytester.path / "out" / "test_stop.py__test_b_interrupted.json").read_text())
    assert record["interrupted"] is True  # the report dir as before


@pytest.mark.parametrize("model", ["closed", "open"])
def test_the_load_applied_is_recorded_per_window(pytester: pytest.Pytester, delay_server: str, model: str) -> None:
    """Users alive (and, open model, iterations in flight) once per window, in the JSON record."""
    marker = 'users=3, duration="2s"' if model == "closed" else 'rate=40, duration="2s", max_users=10'
    pytester.makepyfile(
        test_load=f"""
import pytest

async def browse(user):
    await user.client.get("/delay/20")

@pytest.mark.load({marker})
def test_x(load):
    load.run(browse)
"""
    )
    run(pytester, delay_server, "--perf-report-dir=out").assert_outcomes(passed=1)
    windows = json.loads((pytester.path / "out" / "test_load.py__test_x.json").read_text())["total"]["windows"]
    assert len(windows["users"]) == len(windows["t_s"]) >= 2
    if model == "closed":
        assert windows["users"] == [3.0] * len(windows["t_s"])  # every window, the last one too
        assert "busy" not in windows
    else:
        # 40 arrivals/s of ~20 ms each: ~0.8 in flight (Little's law), measured, not sampled
        assert len(windows["busy"]) == len(windows["t_s"])
        assert all(0.3 < busy < 8.0 for busy in windows["busy"][:-1]), windows["busy"]
        assert all(users >= busy for users, busy in zip(windows["users"], windows["busy"], strict=True))
