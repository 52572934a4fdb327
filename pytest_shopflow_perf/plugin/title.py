"""The title of summary.md and of the pytest-html report: the user's project, not the plugin's reference service."""

from __future__ import annotations

import importlib
import sys
from pathlib import Path
from typing import Any

import pytest

from pytest_shopflow_perf.plugin.keys import settings_key

_title_key = pytest.StashKey[str]()


def report_title(config: pytest.Config) -> str:
    """``--perf-title`` / ini ``perf_title``, else ``"<project> performance summary"`` (read once, on first use)."""
    title = config.stash.get(_title_key, None)
    if title is None:
        title = config.stash[settings_key].title or f"{project_name(config.rootpath)} performance summary"
        config.stash[_title_key] = title
    return title


def project_name(root: Path) -> str:
    """``[project].name`` (or ``[tool.poetry].name``) of ``root/pyproject.toml``, else the folder's name."""
    try:
        text = (root / "pyproject.toml").read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return root.name
    try:  # tomllib from 3.11; tomli (what pytest itself reads pyproject.toml with) on 3.10
        toml: Any = importlib.import_module("tomllib" if sys.version_info >= (3, 11) else "tomli")
    except ImportError:
        return root.name
    try:
        data = toml.loads(text)
    except toml.TOMLDecodeError:
        return root.name
    for table in (data.get("project"), (data.get("tool") or {}).get("poetry")):
        name = table.get("name") if isinstance(table, dict) else None
        if isinstance(name, str) and name.strip():
            return name.strip()
    return root.name
