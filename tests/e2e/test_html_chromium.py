"""The HTML report as a browser renders it: headless Chromium (Debian's ``chromium``), no network.

pytest-html builds its results table with JavaScript from a JSON blob, so the run blocks and
their charts exist as elements only once a browser ran it: this test reads the DOM Chromium
rendered (``--dump-dom``) and takes a screenshot, as a person would open the file.
"""

from __future__ import annotations

import subprocess
from html.parser import HTMLParser
from pathlib import Path

import pytest
from support.html_report import chromium

pytest.importorskip("pytest_html")
pytest.importorskip("matplotlib")

pytest_plugins = ["pytester"]

BROWSER = chromium()
pytestmark = pytest.mark.skipif(
    BROWSER is None, reason="headless Chromium is not installed (apt-get install chromium): no browser to render with"
)

INNER = """
import pytest

async def shop(user):
    await user.client.get("/delay/10", extensions={"name": "GET /api/products"})
    response = await user.client.post("/delay/3", extensions={"name": "POST /api/cart"})
    user.check(response.status_code == 200, "cart answered")

@pytest.mark.load(users=2, duration="1500ms", slo=["p(95)<2s", "error_rate<1%"])
def test_shop(load):
    load.run(shop)
"""
# No sandbox (containers, root), no GPU, and nothing Chromium would fetch on its own.
FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
)


class Elements(HTMLParser):
    """What the rendered DOM holds: the overview's facts, and the charts inside the results table."""

    def __init__(self) -> None:
        super().__init__()
        self.overview_keys: list[str] = []
        self.charts: list[str] = []
        self.svgs_in_charts = 0
        self._open: list[tuple[str, bool, bool, bool]] = []  # (tag, in overview, in results table, in chart)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = dict(attrs)
        _, in_overview, in_table, in_chart = self._open[-1] if self._open else ("", False, False, False)
        in_overview = in_overview or found.get("id") == "sfp-overview"
        in_table = in_table or found.get("id") == "results-table"
        if in_table and "sfp-chart" in (found.get("class") or "").split() and found.get("data-chart"):
            self.charts.append(str(found["data-chart"]))
            in_chart = True
        if in_overview and tag == "tr" and found.get("data-key"):
            self.overview_keys.append(str(found["data-key"]))
        if in_chart and tag == "svg":
            self.svgs_in_charts += 1
        if tag not in ("br", "img", "input", "meta", "link", "hr", "col", "path", "use", "stop", "rect", "line"):
            self._open.append((tag, in_overview, in_table, in_chart))

    def handle_endtag(self, tag: str) -> None:
        for index in range(len(self._open) - 1, -1, -1):
            if self._open[index][0] == tag:
                del self._open[index:]
                return


def browse(profile: Path, url: str, *args: str) -> subprocess.CompletedProcess[str]:
    assert BROWSER is not None
    command = [BROWSER, *FLAGS, f"--user-data-dir={profile}", *args, url]
    return subprocess.run(command, capture_output=True, text=True, timeout=120, check=False, stdin=subprocess.DEVNULL)


def test_the_report_renders_its_overview_and_charts_in_chromium(
    pytester: pytest.Pytester, delay_server: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("PYTEST_ADDOPTS", "-o asyncio_default_fixture_loop_scope=function")
    pytester.makepyfile(test_shop=INNER)
    result = pytester.runpytest_subprocess(
        "--perf-base-url", delay_server, "-p", "no:cacheprovider", "--html=report.html", "--self-contained-html"
    )
    result.assert_outcomes(passed=1)
    url = (pytester.path / "report.html").as_uri()

    dumped = browse(tmp_path / "dom-profile", url, "--dump-dom")
    assert dumped.returncode == 0, dumped.stderr[-2000:]
    dom = Elements()
    dom.feed(dumped.stdout)
    assert dom.overview_keys[:5] == ["target", "load", "machine", "plugin", "baseline"]
    assert dom.charts == ["percentiles", "timeline", "endpoints"]  # drawn into the table by pytest-html's script
    assert dom.svgs_in_charts == 3
    assert "Load run: test_shop.py::test_shop" in dumped.stdout
    assert "Checks: " in dumped.stdout

    shot = tmp_path / "report.png"
    taken = browse(tmp_path / "shot-profile", url + "?collapsed=", f"--screenshot={shot}", "--window-size=1400,3000")
    assert taken.returncode == 0, taken.stderr[-2000:]
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert shot.stat().st_size > 50_000  # a page with tables and charts, not a blank one
