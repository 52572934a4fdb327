"""--perf-report-dir (JSON, CSV, summary.md/json, GitHub step summary) and JUnit properties, from real runs."""

from __future__ import annotations

import csv
import json
import re
import xml.etree.ElementTree as ET

import pytest

pytest_plugins = ["pytester"]

INNER = """
import os, pytest
from pytest_shopflow_perf import assert_no_regression

async def shop(user):
    await user.client.get(f"/delay/{os.environ['DELAY_MS']}", extensions={"name": "GET /api/products/{id}"})
    await user.client.post(f"/delay/{os.environ['DELAY_MS']}", extensions={"name": "POST /api/checkout"})
    await user.think(0.005)

@pytest.mark.load(users=3, duration="2s", name="checkout flow", slo=["p(95)<35ms", "error_rate<1%"])
def test_checkout(load):
    assert_no_regression(load.run(shop))

async def errors(user):
    await user.client.get("/status/503", extensions={"name": "GET /api/search"})
    await user.think(0.02)

@pytest.mark.load(users=1, duration="1s")
def test_errors(load):
    load.run(errors)
"""

RUN_KEYS = {"schema", "test", "started_at", "duration_s", "window_s", "model", "profile", "environment",
            "generator", "checks", "total", "endpoints"}  # fmt: skip
STATS_KEYS = {"requests", "errors", "error_rate", "rps", "mean_ms", "p50_ms", "p90_ms", "p95_ms", "p99_ms", "max_ms",
              "errors_by_kind", "hdr", "windows"}  # fmt: skip
WINDOW_KEYS = {"t_s", "count", "errors", "p50_ms", "p95_ms", "p99_ms", "mean_ms", "max_ms"}


def validate_run_record(record: dict) -> None:
    """The documented run schema (README, "Run record schema")."""
    assert record["schema"] == "shopflow-perf/run/1"
    assert set(record) >= RUN_KEYS
    for stats in [record["total"], *record["endpoints"].values()]:
        assert set(stats) >= STATS_KEYS
        assert isinstance(stats["requests"], int)
        assert isinstance(stats["p95_ms"], float | int)
        windows = stats["windows"]
        assert set(windows) >= WINDOW_KEYS
        assert len({len(values) for values in windows.values()}) == 1


@pytest.fixture
def report_run(pytester: pytest.Pytester, delay_server: str, monkeypatch: pytest.MonkeyPatch):
    pytester.makepyfile(test_shop=INNER)
    # The slowdown is the server's by construction: the busy-machine check (tested on its own) stays out of it.
    monkeypatch.setenv(
        "PYTEST_ADDOPTS", "-o asyncio_default_fixture_loop_scope=function -o perf_regression_busy_machine=false"
    )
    monkeypatch.setenv("DELAY_MS", "10")
    pytester.runpytest_subprocess("--perf-base-url", delay_server, "--perf-save-baseline", "-k", "checkout")
    monkeypatch.setenv("DELAY_MS", "40")  # 4x slower: breaks the 35 ms p95 SLO and regresses critically
    step_summary = pytester.path / "step-summary.md"
    step_summary.write_text("# earlier steps\n")
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(step_summary))
    result = pytester.runpytest_subprocess(
        "--perf-base-url", delay_server, "--perf-report-dir", "perf-report", "--junitxml", "junit.xml"
    )
    return result, pytester.path


def test_report_dir_files_follow_their_schema(report_run) -> None:
    result, root = report_run
    result.assert_outcomes(failed=1, passed=1)
    directory = root / "perf-report"
    names = sorted(p.name for p in directory.iterdir())
    assert names == [
        "summary.json",
        "summary.md",
        "test_shop.py__test_checkout-endpoints.csv",
        "test_shop.py__test_checkout-timeline.csv",
        "test_shop.py__test_checkout.json",
        "test_shop.py__test_errors-endpoints.csv",
        "test_shop.py__test_errors-timeline.csv",
        "test_shop.py__test_errors.json",
    ]
    record = json.loads((directory / "test_shop.py__test_checkout.json").read_text())
    validate_run_record(record)
    assert set(record["endpoints"]) == {"GET /api/products/{id}", "POST /api/checkout"}
    assert record["extra"]["regression"]["tier"] in ("major", "critical")

    with open(directory / "test_shop.py__test_checkout-endpoints.csv") as handle:
        rows = list(csv.DictReader(handle))
    assert [row["endpoint"] for row in rows] == ["GET /api/products/{id}", "POST /api/checkout", "total"]
    assert int(rows[2]["requests"]) == record["total"]["requests"]
    assert float(rows[0]["p95_ms"]) >= 40

    with open(directory / "test_shop.py__test_checkout-timeline.csv") as handle:
        timeline = list(csv.DictReader(handle))
    assert list(timeline[0]) == [
        "t_s",
        "endpoint",
        "count",
        "errors",
        "p50_ms",
        "p95_ms",
        "p99_ms",
        "mean_ms",
        "max_ms",
    ]
    assert {row["endpoint"] for row in timeline} == {"total", "GET /api/products/{id}", "POST /api/checkout"}
    assert sum(int(row["count"]) for row in timeline if row["endpoint"] == "total") == record["total"]["requests"]

    summary = json.loads((directory / "summary.json").read_text())
    assert summary["schema"] == "shopflow-perf/summary/1"
    assert summary["verdict"] == "FAIL"
    assert {"headline", "context", "tests", "bottlenecks", "regressions", "recommendations"} <= set(summary)
    assert {t["name"] for t in summary["tests"]} == {"checkout flow", "test_shop.py::test_errors"}
    for recommendation in summary["recommendations"]:
        assert {"title", "detail", "impact", "effort", "owner", "score"} <= set(recommendation)


def test_markdown_summary_names_the_regression_and_the_slo_breach(report_run) -> None:
    _, root = report_run
    markdown = (root / "perf-report" / "summary.md").read_text()
    assert markdown.startswith(f"# {root.name} performance summary")  # no pyproject.toml: the folder's name
    assert "**Verdict: FAIL** - 1 of 2 load test(s) failed (test_checkout: " in markdown
    assert "| checkout flow | **FAIL** |" in markdown
    assert "**1 FAILED**" in markdown
    assert "`p(95)<35ms`: measured " in markdown  # the SLO breach, in ms as its threshold
    regressions = markdown.split("## Regressions")[1].split("##")[0]
    assert "| checkout flow |" in regressions
    assert "**critical**" in regressions or "**major**" in regressions
    scenarios = markdown.split("## Scenarios")[1].split("##")[0]
    # model, load, planned and run duration, iterations, peak users
    assert re.search(r"\| checkout flow \| closed \| 3 users \| 2 s \| [12]\.\d s \| \d+ \| 3 \|", scenarios)
    hotspots = markdown.split("Error hotspots")[1].split("##")[0]
    assert "| GET /api/search | test_shop.py::test_errors |" in hotspots
    assert "HTTP 503" in hotspots
    recommendations = markdown.split("## Recommendations")[1]
    assert "Fix the errors of GET /api/search" in recommendations
    assert "GET /api/search fails 100.00 % of" in recommendations
    assert "Find the change that slowed" in recommendations
    # both endpoints regressed: they say it, the total does not say it again
    assert "Find the change that slowed total" not in recommendations
    assert recommendations.count("Fix the errors of GET /api/search") == 1
    assert "Bring total p95 within its SLO" in recommendations
    # appended to the GitHub step summary, after what was there
    step = (root / "step-summary.md").read_text()
    assert step.startswith(f"# earlier steps\n# {root.name} performance summary")


def test_junit_properties(report_run) -> None:
    _, root = report_run
    tree = ET.parse(root / "junit.xml")
    cases = {case.get("name"): case for case in tree.iter("testcase")}
    properties = {p.get("name"): p.get("value") for p in cases["test_checkout"].iter("property")}
    assert set(properties) == {"perf.p95_ms", "perf.p99_ms", "perf.error_rate", "perf.rps", "perf.regression",
                               "perf.target", "perf.target_source", "perf.target_label"}  # fmt: skip
    assert float(properties["perf.p95_ms"]) >= 40
    assert properties["perf.regression"] in ("major", "critical")
    errors = {p.get("name"): p.get("value") for p in cases["test_errors"].iter("property")}
    assert float(errors["perf.error_rate"]) == 1.0
    assert errors["perf.regression"] == "no baseline"
