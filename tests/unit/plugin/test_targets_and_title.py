"""The target of a run in words, its record (old records without it still load), and the report title."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pytest
from support.engine import profile, run

from pytest_shopflow_perf import LoadResult, RunTarget
from pytest_shopflow_perf.plugin import targets
from pytest_shopflow_perf.plugin.options import Settings
from pytest_shopflow_perf.plugin.title import project_name
from pytest_shopflow_perf.profile.resolve import Source, resolve_profile

NOT_GIVEN = "(no --perf-base-url / SHOPFLOW_BASE_URL / perf_base_url given)"


class _Config:
    """What the label functions read of a pytest config: ini values."""

    def __init__(self, **ini: Any) -> None:
        self.ini = ini

    def getini(self, name: str) -> Any:
        return self.ini.get(name, "")


def _settings(**fields: Any) -> Settings:
    values: dict[str, Any] = {
        "base_url": None, "app": "", "scale": 1.0, "seed": 1, "allowed_hosts": [], "cli_users": None,
        "cli_duration": None, "cli_client": None, "baseline_dir": "b", "save_baseline": False,
        "no_compare": False, "fail_on": "major", "report_dir": None,
    }  # fmt: skip
    return Settings(**{**values, **fields})


def _resolved(source: str, url: str) -> Any:
    empty = Source("none", {})
    sources = {
        "cli": {"cli": Source("command line", {"base_url": url})},
        "env": {"env": Source("environment (SHOPFLOW_BASE_URL)", {"base_url": url})},
        "marker": {"marker": Source("@pytest.mark.load(base_url=...)", {"base_url": url})},
    }[source]
    kwargs = {"ini": empty, "marker": Source("@pytest.mark.load()", {}), "env": empty, "cli": empty, **sources}
    return resolve_profile(**kwargs)


@pytest.mark.parametrize(
    ("source", "from_run", "label", "kind"),
    [
        ("cli", False, "http://127.0.0.1:9 (--perf-base-url)", "option"),
        ("env", False, "http://127.0.0.1:9 (SHOPFLOW_BASE_URL)", "option"),
        ("marker", False, "http://127.0.0.1:9 (base_url= of @pytest.mark.load)", "marker"),
        ("marker", True, "http://127.0.0.1:9 (load.run(base_url=...))", "marker"),
    ],
)
def test_the_label_says_where_the_target_came_from(source: str, from_run: bool, label: str, kind: str) -> None:
    target = targets.of_profile(_resolved(source, "http://127.0.0.1:9"), _Config(), from_run=from_run)  # type: ignore[arg-type]
    assert target == RunTarget("http://127.0.0.1:9", kind, label)


def test_ini_base_url_and_the_embedded_service_are_named_with_why() -> None:
    config = _Config(perf_base_url="http://127.0.0.1:7")
    assert targets.of_profile(profile(), config, from_run=False) == RunTarget(  # type: ignore[arg-type]
        "http://127.0.0.1:7", "option", "http://127.0.0.1:7 (ini perf_base_url)"
    )
    assert targets.of_profile(profile(), _Config(), from_run=False) is None  # type: ignore[arg-type]
    shopflow = targets.embedded("http://127.0.0.1:5", "")
    assert shopflow.label == f"embedded ShopFlow reference service http://127.0.0.1:5 {NOT_GIVEN}"
    own = targets.embedded("http://127.0.0.1:5", "acme.app:app")
    assert own.label == "embedded service acme.app:app http://127.0.0.1:5 (--perf-app; " + NOT_GIVEN[1:]


def test_the_header_line_before_any_load() -> None:
    def line(settings: Settings, *urls: str | None, **ini: Any) -> str:
        return targets.session_line(settings, _Config(**ini), list(urls) or [None])  # type: ignore[arg-type]

    assert line(_settings()) == (
        "shopflow perf: load target: embedded ShopFlow reference service, started on a free loopback port by "
        f"the first load test {NOT_GIVEN}"
    )
    assert (
        line(_settings(base_url="http://127.0.0.1:1"))
        == "shopflow perf: load target: http://127.0.0.1:1 (--perf-base-url)"
    )
    assert line(_settings(), "http://127.0.0.1:2") == (
        "shopflow perf: load target: the base_url= of each test's marker (http://127.0.0.1:2)"
    )
    assert "a load test without base_url= or app= is an error" in line(_settings(embedded=False))
    assert line(_settings(cluster="tcp://127.0.0.1:8786"), perf_base_url="http://127.0.0.1:3").endswith(
        "http://127.0.0.1:3 (ini perf_base_url); load generated on the Dask cluster tcp://127.0.0.1:8786"
    )  # fmt: skip


def _mock() -> httpx.MockTransport:
    return httpx.MockTransport(lambda request: httpx.Response(200))


async def _hit(user: Any) -> None:
    await user.client.get("/ok")


def test_the_target_travels_in_the_run_record_and_old_records_still_load() -> None:
    result = run(_hit, users=1, iterations=3, transport_factory=_mock)
    assert result.target == RunTarget("http://test", "", "http://test")  # the engine knows only the URL
    result.target = RunTarget("http://test", "app", "in-process ASGI app x at http://test")
    record = json.loads(json.dumps(result.to_dict()))
    assert record["target"] == {"url": "http://test", "source": "app", "label": "in-process ASGI app x at http://test"}
    assert result.summary_dict()["target"] == record["target"]
    assert LoadResult.from_dict(record).target == result.target
    # a baseline written before the target was a record: the URL string, or nothing
    old = LoadResult.from_dict({**record, "target": "http://127.0.0.1:8000"})
    assert old.target == RunTarget("http://127.0.0.1:8000", "", "http://127.0.0.1:8000")
    record.pop("target")
    assert LoadResult.from_dict(record).target.url == ""


@pytest.mark.parametrize(
    ("pyproject", "name"),
    [
        ('[project]\nname = "acme-orders"\n', "acme-orders"),
        ('[tool.poetry]\nname = "acme-poetry"\n', "acme-poetry"),
        ("[tool.pytest.ini_options]\n", "folder"),
        ("[project\nname = broken", "folder"),
        (None, "folder"),
    ],
)
def test_the_title_comes_from_the_project(tmp_path: Path, pyproject: str | None, name: str) -> None:
    root = tmp_path / "folder"
    root.mkdir()
    if pyproject is not None:
        (root / "pyproject.toml").write_text(pyproject)
    assert project_name(root) == name
