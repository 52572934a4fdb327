"""Reading what pytest-html wrote: the header, the summary prefix and the per-test data of its JSON blob.

pytest-html renders its table from ``data-jsonblob`` with JavaScript, so the structure is checked
there (and in the DOM headless Chromium renders, tests/e2e/test_html_chromium.py).
"""

from __future__ import annotations

import html
import json
import re
import shutil
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

SVG_NS = "{http://www.w3.org/2000/svg}"


class Report:
    """What pytest-html wrote: header cells, summary prefix, and per-test data from the JSON blob."""

    def __init__(self, path: Path) -> None:
        self.text = path.read_text(encoding="utf-8")
        blob = re.search(r'<div id="data-container" data-jsonblob="([^"]*)"', self.text)
        assert blob is not None, "no data-jsonblob in the report"
        self.data: dict[str, Any] = json.loads(html.unescape(blob.group(1)))
        head = re.search(r'<thead id="results-table-head">(.*?)</thead>', self.text, re.DOTALL)
        assert head is not None
        self.header = re.findall(r"<th\b[^>]*>.*?</th>", head.group(1), re.DOTALL)
        prefix = re.search(
            r'<div class="additional-summary prefix">(.*?)</div>\s*<p class="run-count">', self.text, re.DOTALL
        )
        assert prefix is not None
        self.prefix = prefix.group(1)

    def test(self, name: str) -> dict[str, Any]:
        matches = [runs[-1] for nodeid, runs in self.data["tests"].items() if nodeid.split("@")[0].endswith(name)]
        assert len(matches) == 1, f"{name} not in {list(self.data['tests'])}"
        return matches[0]

    def extras_html(self, name: str) -> str:
        return "".join(extra["content"] for extra in self.test(name)["extras"] if extra["format_type"] == "html")

    def cell(self, name: str, column: str) -> str:
        """The results-table cell ``col-<column>`` of a test's row."""
        return next(c for c in self.test(name)["resultsTableRow"] if f"col-{column}" in c)


def svgs(markup: str) -> list[ET.Element]:
    """Every inline SVG, parsed (raises when one is not well-formed XML)."""
    return [ET.fromstring(svg) for svg in re.findall(r"<svg\b.*?</svg>", markup, re.DOTALL)]


def charts(markup: str) -> dict[str, str]:
    """``data-chart`` kind -> the text of its SVG (titles, labels, legend), each SVG parsed."""
    found = {}
    for kind, body in re.findall(r'<div class="sfp-chart" data-chart="(\w+)">(.*?</svg>)', markup, re.DOTALL):
        (svg,) = svgs(body)
        assert svg.tag == f"{SVG_NS}svg"
        found[kind] = " ".join(svg.itertext())
    return found


def chromium() -> str | None:
    """The headless browser the rendering tests use (Debian's ``chromium`` package), if installed."""
    return shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
