"""Hooks registered only when pytest-xdist is installed: load tests never run on parallel workers.

Under ``--dist loadgroup`` the plugin owns the grouping instead of borrowing xdist's side channel
(xdist rewrites ``item._nodeid`` to ``nodeid@group``, which pytest 9.2 ignores: pytest-xdist#1386).
Each worker writes the node ids of its load tests to a directory the controller handed it; the
controller's scheduler (``pytest_xdist_make_scheduler``) reads them and sends every load test to one
node as one work unit. A worker that got no directory (the scheduler is not ours) skips its load
tests instead of letting them fight over the same cores.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import pytest

from pytest_shopflow_perf.plugin.keys import XDIST_GROUP

IDS_KEY = "shopflow_perf_load_ids"


def _dist(config: pytest.Config) -> str:
    return str(config.getoption("dist", default="no") or "no")


def _parallel_workers(config: pytest.Config) -> int:
    """How many xdist workers share the machine with this one (0 outside a worker)."""
    workerinput = getattr(config, "workerinput", None)
    if workerinput is None:
        return 0
    count = int(workerinput.get("workercount", 1))
    return count if count > 1 else 0


def _skip(reason: str) -> pytest.MarkDecorator:
    return pytest.mark.skip(reason=reason)


class XdistHooks:
    """Load tests would fight over the same cores: keep them on one worker, or refuse to run them."""

    def __init__(self) -> None:
        self._ids_dir: Path | None = None  # controller only, under --dist loadgroup

    # ---- controller -------------------------------------------------------------

    @pytest.hookimpl
    def pytest_configure(self, config: pytest.Config) -> None:
        if not hasattr(config, "workerinput") and _dist(config) == "loadgroup":
            self._ids_dir = Path(tempfile.mkdtemp(prefix="shopflow-perf-xdist-"))

    @pytest.hookimpl
    def pytest_unconfigure(self, config: pytest.Config) -> None:
        if self._ids_dir is not None:
            shutil.rmtree(self._ids_dir, ignore_errors=True)

    @pytest.hookimpl(optionalhook=True)
    def pytest_configure_node(self, node: Any) -> None:
        if self._ids_dir is not None:
            node.workerinput[IDS_KEY] = str(self._ids_dir)

    @pytest.hookimpl(tryfirst=True, optionalhook=True)
    def pytest_xdist_make_scheduler(self, config: pytest.Config, log: Any) -> Any:
        if self._ids_dir is None:
            return None
        return _load_group_scheduler(config, log, self._ids_dir)

    # ---- worker -------------------------------------------------------------------

    @pytest.hookimpl(tryfirst=True)
    def pytest_collection_modifyitems(self, config: pytest.Config, items: list[pytest.Item]) -> None:
        load_items = [item for item in items if item.get_closest_marker("load") is not None]
        for item in load_items:
            item.add_marker(pytest.mark.xdist_group(XDIST_GROUP))
        workers = _parallel_workers(config)
        if not workers or not load_items:
            return
        workerinput: dict[str, Any] = getattr(config, "workerinput", {})
        ids_dir = workerinput.get(IDS_KEY)
        if ids_dir is not None:
            # the controller's scheduler reads these before it hands out any test
            path = Path(ids_dir) / f"{workerinput.get('workerid', os.getpid())}.json"
            path.write_text(json.dumps([item.nodeid for item in load_items]), encoding="utf-8")
            return
        if _dist(config) == "loadgroup":
            reason = (
                "load tests under --dist loadgroup need the shopflow-perf scheduler, and another plugin's "
                "scheduler ran instead: they would run on parallel workers and fight over the same cores"
            )
        else:
            reason = (
                f"load tests on {workers} parallel xdist workers would fight over the same cores; "
                "run them with `--dist loadgroup` (they share one worker) or without -n"
            )
        for item in load_items:
            item.add_marker(_skip(reason))


def _load_group_scheduler(config: pytest.Config, log: Any, ids_dir: Path) -> Any:
    """xdist's LoadGroupScheduling, with every load test in the one group of this plugin."""
    from xdist.scheduler import LoadGroupScheduling  # type: ignore[import-untyped]

    class ShopflowPerfScheduling(LoadGroupScheduling):  # type: ignore[misc]
        _load_ids: set[str] | None = None

        def _split_scope(self, nodeid: str) -> str:
            if self._load_ids is None:
                self._load_ids = set()
                for path in ids_dir.glob("*.json"):
                    self._load_ids.update(json.loads(path.read_text(encoding="utf-8")))
            if nodeid in self._load_ids:
                return XDIST_GROUP
            return str(super()._split_scope(nodeid))

    return ShopflowPerfScheduling(config, log)
