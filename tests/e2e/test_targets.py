"""What a new user meets: the README's quick start against their own service names that service everywhere,
the embedded default says it is the embedded one, and a project can refuse it."""

from __future__ import annotations

import html
import json
import re
import socket
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from pytest_shopflow_perf import LoadResult

pytest_plugins = ["pytester"]

NOT_GIVEN = "no --perf-base-url / SHOPFLOW_BASE_URL / perf_base_url given"

# The README's quick start, on httpbin's endpoints instead of ShopFlow's.
QUICK_START = """
import pytest
from pytest_shopflow_perf import User, assert_error_rate, assert_latency, assert_no_regression

async def browse(user: User) -> None:
    r = await user.client.get("/get", params={"q": "shoe"})
    user.check(r.json()["args"]["q"] == "shoe", "echoes the query")
    await user.client.post("/post", json={"item": user.random.randint(1, 9)})
    await user.think(0.01, 0.05)

@pytest.mark.load(users=2, duration="2s")
def test_orders(load):
    result = load.run(browse)
    assert_latency(result, p95="2s")
    assert_error_rate(result, max="1%")
    assert_no_regression(result)
"""

# Records whether the session started the embedded service (its process, not just a line of output).
EMBEDDED_PROBE = """
def pytest_sessionfinish(session):
    from pytest_shopflow_perf.plugin.keys import perf_session_key

    perf = session.config.stash.get(perf_session_key, None)
    with open("embedded.txt", "w") as handle:
        handle.write(str(perf is not None and perf.server is not None))
"""


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def httpbin_service(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """httpbin under gunicorn on a free loopback port: a user's own service. Stopped however the test ends."""
    port = _free_port()
    access_log = tmp_path / "gunicorn-access.log"
    command = [
        sys.executable, "-m", "gunicorn", "httpbin:app", "--bind", f"127.0.0.1:{port}", "--workers", "1",
        "--worker-class", "gthread", "--threads", "4", "--no-control-socket", "--access-logfile", str(access_log),
    ]  # fmt: skip
    log = (tmp_path / "gunicorn.log").open("wb")
    process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, cwd=tmp_path)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            assert process.poll() is None, (tmp_path / "gunicorn.log").read_text()
            try:
                if httpx.get(f"{url}/get", timeout=1, trust_env=False).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, f"gunicorn did not answer: {(tmp_path / 'gunicorn.log').read_text()}"
            time.sleep(0.1)
        yield url, access_log
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=15)
        log.close()


@pytest.fixture
def project(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> pytest.Pytester:
    """A user's project of its own: its name in pyproject.toml, no target in the environment."""
    pytester.makepyprojecttoml(
        '[project]\nname = "acme-orders"\n\n'
        '[tool.pytest.ini_options]\nasyncio_default_fixture_loop_scope = "function"\n'
    )
    pytester.makeconftest(EMBEDDED_PROBE)
    monkeypatch.delenv("SHOPFLOW_BASE_URL", raising=False)
    monkeypatch.delenv("GITHUB_STEP_SUMMARY", raising=False)
    return pytester


def _html_data(path: Path) -> dict:
    """The JSON blob pytest-html renders its page from (environment box included)."""
    match = re.search(r'data-jsonblob="([^"]*)"', path.read_text())
    assert match, "no data-jsonblob in the HTML report"
    return json.loads(html.unescape(match.group(1)))


def test_the_quick_start_against_a_users_own_service_names_it_everywhere(
    project: pytest.Pytester, httpbin_service: tuple[str, Path]
) -> None:
    url, access_log = httpbin_service
    project.makepyfile(test_orders=QUICK_START)
    result = project.runpytest_subprocess(
        "-m", "load", "-p", "no:cacheprovider", "--perf-base-url", url, "--perf-report-dir", "perf-report",
        "--junitxml", "junit.xml", "--html", "report.html", "--self-contained-html",
    )  # fmt: skip
    result.assert_outcomes(passed=1)
    label = f"{url} (--perf-base-url)"
    # the terminal: before any load, and under the table
    result.stdout.fnmatch_lines([f"shopflow perf: load target: {label}", "*= shopflow perf =*", f"target: {label}"])
    assert "embedded" not in result.stdout.str()
    assert (project.path / "embedded.txt").read_text() == "False"
    # the load really went to httpbin
    assert "GET /get?q=shoe" in access_log.read_text()

    report_dir = project.path / "perf-report"
    markdown = (report_dir / "summary.md").read_text()
    assert markdown.startswith("# acme-orders performance summary\n")
    assert f"against {label};" in markdown
    assert "**Verdict: PASS**" in markdown
    assert "ShopFlow" not in markdown
    summary = json.loads((report_dir / "summary.json").read_text())
    assert summary["context"]["targets"] == [{"url": url, "source": "option", "label": label}]

    record = json.loads((report_dir / "test_orders.py__test_orders.json").read_text())
    assert record["target"] == {"url": url, "source": "option", "label": label}
    assert LoadResult.from_dict(record).to_dict()["target"] == record["target"]

    case = next(ET.parse(project.path / "junit.xml").iter("testcase"))
    properties = {p.get("name"): p.get("value") for p in case.iter("property")}
    assert properties["perf.target"] == url
    assert properties["perf.target_source"] == "option"
    assert properties["perf.target_label"] == label

    page = (project.path / "report.html").read_text()
    assert '<title id="head-title">acme-orders performance summary</title>' in page
    assert _html_data(project.path / "report.html")["environment"]["Load target"] == label


EMBEDDED_TESTS = """
import pytest
from pytest_shopflow_perf import assert_error_rate

async def browse(user):
    await user.client.get("/api/products")
    await user.think(0.02)

@pytest.mark.load(users=1, duration="1s")
def test_browse(load):
    assert_error_rate(load.run(browse), max="1%")
"""


def test_without_a_target_every_report_says_it_was_the_embedded_service_and_why(project: pytest.Pytester) -> None:
    project.makepyfile(test_embedded=EMBEDDED_TESTS)
    result = project.runpytest_subprocess(
        "-p", "no:cacheprovider", "-v", "--perf-report-dir", "out", "--perf-title", "Acme nightly load"
    )  # fmt: skip
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(
        [
            "shopflow perf: load target: embedded ShopFlow reference service, started on a free loopback port "
            f"by the first load test ({NOT_GIVEN})",
            f"shopflow perf: started the embedded ShopFlow reference service http://127.0.0.1:* ({NOT_GIVEN})",
            "*= shopflow perf =*",
            f"target: embedded ShopFlow reference service http://127.0.0.1:* ({NOT_GIVEN})",
        ]
    )
    record = json.loads((project.path / "out" / "test_embedded.py__test_browse.json").read_text())
    assert record["target"]["source"] == "embedded"
    assert re.fullmatch(r"http://127\.0\.0\.1:\d+", record["target"]["url"])
    assert record["target"]["label"] == f"embedded ShopFlow reference service {record['target']['url']} ({NOT_GIVEN})"
    markdown = (project.path / "out" / "summary.md").read_text()
    assert markdown.startswith("# Acme nightly load\n")  # --perf-title wins over the project's name
    assert f"against {record['target']['label']};" in markdown


PER_TEST_TARGETS = """
import os, pytest
from pytest_shopflow_perf import assert_error_rate

async def app(scope, receive, send):
    if scope["type"] == "http":
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})

async def hit(user):
    await user.client.get("/delay/1")
    await user.think(0.02)

@pytest.mark.load(users=1, duration="1s")
def test_in_process(load):
    assert_error_rate(load.run(hit, app=app), max="1%")

@pytest.mark.load(users=1, duration="1s", base_url=os.environ["OWN_URL"])
def test_marker(load):
    assert_error_rate(load.run(hit), max="1%")
"""


def test_a_marker_base_url_and_an_in_process_app_are_named_per_run(
    project: pytest.Pytester, delay_server: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OWN_URL", delay_server)
    project.makepyfile(test_own=PER_TEST_TARGETS)
    result = project.runpytest_subprocess("-p", "no:cacheprovider", "--perf-report-dir", "out")
    result.assert_outcomes(passed=2)
    app_label = "in-process ASGI app test_own.app at http://shopflow.inprocess (load.run(app=...), no network)"
    marker_label = f"{delay_server} (base_url= of @pytest.mark.load)"
    result.stdout.fnmatch_lines(
        [
            # one test has its own base_url=, the other names none: the header says both
            "shopflow perf: load target: embedded ShopFlow reference service*, for the 1 load test(s) without "
            f"base_url= (the others: {delay_server})",
            "*= shopflow perf =*",
            f"target: {app_label} (test_own.py::test_in_process)",
            f"target: {marker_label} (test_own.py::test_marker)",
        ]
    )
    records = {path.name: json.loads(path.read_text()) for path in (project.path / "out").glob("test_own.py__*.json")}
    assert records["test_own.py__test_in_process.json"]["target"]["source"] == "app"
    assert records["test_own.py__test_marker.json"]["target"] == {
        "url": delay_server,
        "source": "marker",
        "label": marker_label,
    }
    assert (project.path / "embedded.txt").read_text() == "False"  # neither run needed it


def test_a_project_can_refuse_the_embedded_default(project: pytest.Pytester) -> None:
    project.makepyprojecttoml(
        '[project]\nname = "acme-orders"\n\n[tool.pytest.ini_options]\n'
        'asyncio_default_fixture_loop_scope = "function"\nperf_embedded = false\n'
    )
    project.makepyfile(test_embedded=EMBEDDED_TESTS)
    result = project.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        [
            "shopflow perf: load target: none configured (ini perf_embedded = false, *): a load test without "
            "base_url= or app= is an error",
            "*no load target: ini perf_embedded = false turns off the embedded ShopFlow reference service, and "
            "test_embedded.py::test_browse names no target. Give the service under test: --perf-base-url *",
        ]
    )
    assert (project.path / "embedded.txt").read_text() == "False"
