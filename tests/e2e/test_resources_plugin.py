"""The target's resources through the plugin: the embedded service sampled by itself, a PID, a /metrics URL.

Each inner run is a pytest process of its own; every target is started by the test on loopback.
"""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from collections.abc import Iterator

import pytest
from support.delay_process import delay_server_process

pytest_plugins = ["pytester"]
pytestmark = pytest.mark.usefixtures("inner_ini")


BROWSE = """
import pytest
from pytest_shopflow_perf import assert_slo

async def browse(user):
    await user.client.get("/api/products")
    await user.think(0.01, 0.03)
"""


def test_the_embedded_service_is_sampled_into_every_report(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        test_embedded=BROWSE
        + """
@pytest.mark.load(users=4, duration="3s")
def test_browse(load):
    result = load.run(browse)
    resources = result.resources
    assert resources is not None and "embedded service" in resources.source
    assert resources.rss_mb_max > 10  # a Python process with uvicorn and SQLite
    assert resources.gauge_max("shopflow_db_pool_size") == 4
    assert all(s["t_s"] >= 0 for s in resources.samples)
    assert_slo(result, "target_cpu<1000%", "gauge(shopflow_db_connections_in_use)<=4")
    assert_slo(result, "target_rss<1MB")
"""
    )
    outcome = pytester.runpytest_subprocess(
        "--perf-report-dir", "out", "-v", "--html=report.html", "--self-contained-html"
    )
    outcome.assert_outcomes(failed=1)
    outcome.stdout.fnmatch_lines(
        [
            "*SLO breached: 1 of 1 threshold(s) failed*",
            "*target_rss*target*MB*target_rss<1MB*",
        ]
    )
    outcome.stdout.fnmatch_lines(["  target resources (embedded service, pid *, * samples): CPU mean * RSS max * MB*"])
    record = json.loads((pytester.path / "out" / "test_embedded.py__test_browse.json").read_text())
    assert record["resources"]["samples"][0]["rss_mb"] > 0
    with open(pytester.path / "out" / "test_embedded.py__test_browse-resources.csv") as handle:
        rows = list(csv.DictReader(handle))
    assert rows
    assert float(rows[0]["rss_mb"]) > 0
    assert "shopflow_db_pool_size" in rows[0]
    summary = (pytester.path / "out" / "summary.md").read_text()
    assert "## Target resources" in summary
    assert "| test_embedded.py::test_browse | embedded service, pid" in summary
    html = (pytester.path / "report.html").read_text(encoding="utf-8")
    assert "data-chart=\\&#34;resources" in html  # pytest-html keeps the page's rows as escaped JSON
    assert "Target resources: embedded service" in html


@pytest.fixture
def own_server() -> Iterator[tuple[str, int]]:
    """A delay server the test starts itself, so it knows its PID."""
    with delay_server_process() as server:
        yield server


def test_a_pid_given_on_the_command_line_is_sampled(pytester: pytest.Pytester, own_server: tuple[str, int]) -> None:
    url, pid = own_server
    pytester.makepyfile(
        test_pid="""
import pytest
from pytest_shopflow_perf import assert_slo

async def hit(user):
    await user.client.get("/delay/2")

@pytest.mark.load(users=2, duration="2s")
def test_hit(load):
    result = load.run(hit)
    assert result.resources.source == "pid PID"
    assert result.resources.samples[-1]["threads"] >= 1
    assert_slo(result, "target_rss<10GB")
""".replace("PID", str(pid))
    )
    outcome = pytester.runpytest_subprocess("--perf-base-url", url, "--perf-target-pid", str(pid))
    outcome.assert_outcomes(passed=1)


def test_a_run_without_resources_says_how_to_get_them(pytester: pytest.Pytester, delay_server: str) -> None:
    pytester.makepyfile(
        test_none="""
import pytest
from pytest_shopflow_perf import assert_slo

async def hit(user):
    await user.client.get("/delay/1")

@pytest.mark.load(users=1, duration="1s")
def test_hit(load):
    result = load.run(hit)
    assert result.resources is None
    assert_slo(result, "target_cpu<70%")
"""
    )
    outcome = pytester.runpytest_subprocess("--perf-base-url", delay_server)
    outcome.assert_outcomes(failed=1)
    outcome.stdout.fnmatch_lines(["*no resources of the target were sampled*--perf-target-pid PID*"])


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--perf-target-pid", "nope"), "*--perf-target-pid='nope' is not valid: expected the process id*"),
        (("--perf-target-pid", "{dead}"), "*--perf-target-pid {dead}: no process with PID {dead} on this machine*"),
        (("--perf-metrics-url", "127.0.0.1:9100/metrics"), "*--perf-metrics-url '127.0.0.1:9100/metrics' is not*"),
        (("--perf-metrics-url", "http://metrics.example.com/metrics"), "*--perf-metrics-url: *metrics.example.com*"),
    ],
)
def test_bad_resource_options_are_usage_errors(pytester: pytest.Pytester, args: tuple[str, str], message: str) -> None:
    finished = subprocess.Popen([sys.executable, "-c", "pass"])
    finished.wait()
    dead = str(finished.pid)
    pytester.makepyfile(test_nothing="def test_nothing():\n    pass\n")
    outcome = pytester.runpytest_subprocess(*(arg.replace("{dead}", dead) for arg in args))
    assert outcome.ret == pytest.ExitCode.USAGE_ERROR
    outcome.stderr.fnmatch_lines([message.replace("{dead}", dead)])


def test_a_metrics_url_is_scraped_for_cpu_memory_and_gauges(pytester: pytest.Pytester, shopflow_service: str) -> None:
    """A ShopFlow the test started itself, sampled only through its /metrics (no PID given)."""
    pytester.makepyfile(
        test_scraped=BROWSE
        + """
@pytest.mark.load(users=3, duration="3s")
def test_browse(load):
    result = load.run(browse)
    resources = result.resources
    assert resources.source.endswith("/metrics")
    assert resources.rss_mb_max > 10
    assert any(s["cpu_percent"] is not None for s in resources.samples)
    assert "threads" not in resources.samples[-1]  # only psutil knows those
    assert any(s.get("rates", {}).get("shopflow_cache_hits_total", 0) > 0 for s in resources.samples)
    assert_slo(result, "gauge(shopflow_db_pool_size)<=4", "target_rss<10GB")
"""
    )
    outcome = pytester.runpytest_subprocess(
        "--perf-base-url", shopflow_service, "--perf-metrics-url", f"{shopflow_service}/metrics"
    )
    outcome.assert_outcomes(passed=1)
