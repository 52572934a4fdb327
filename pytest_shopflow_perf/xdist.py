"""Hooks registered only when pytest-xdist is installed."""

from __future__ import annotations

import pytest

XDIST_GROUP = "shopflow-perf"


def _parallel_workers(config: pytest.Config) -> int:
    """How many xdist workers share the machine with this one (0 outside a worker or under loadgroup)."""
    workerinput = getattr(config, "workerinput", None)
    if workerinput is None or config.getoption("loadgroup", default=False):
        return 0
    count = int(workerinput.get("workercount", 1))
    return count if count > 1 else 0


class XdistHooks:
    """Load tests would fight over the same cores: keep them on one worker, or refuse to run them."""

    @pytest.hookimpl(tryfirst=True)
    def pytest_collection_modifyitems(self, config: pytest.Config, items: list[pytest.Item]) -> None:
        workers = _parallel_workers(config)
        for item in items:
            if item.get_closest_marker("load") is None:
                continue
            item.add_marker(pytest.mark.xdist_group(XDIST_GROUP))
            if workers:
                item.add_marker(
                    pytest.mark.skip(
                        reason=f"load tests on {workers} parallel xdist workers would fight over the same cores; "
                        "run them with `--dist loadgroup` (they share one worker) or without -n"
                    )
                )
