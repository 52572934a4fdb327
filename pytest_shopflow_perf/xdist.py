"""Hooks registered only when pytest-xdist is installed."""

from __future__ import annotations

import pytest

XDIST_GROUP = "shopflow-perf"


class XdistHooks:
    """Load tests would fight over the same cores: keep them on one worker, or refuse to run them."""

    @pytest.hookimpl(tryfirst=True)
    def pytest_collection_modifyitems(self, config: pytest.Config, items: list[pytest.Item]) -> None:
        dist = config.getoption("dist", default="no")
        distributed = dist != "no" or hasattr(config, "workerinput")
        for item in items:
            if item.get_closest_marker("load") is None:
                continue
            item.add_marker(pytest.mark.xdist_group(XDIST_GROUP))
            if distributed and dist != "loadgroup":
                item.add_marker(
                    pytest.mark.skip(
                        reason=f"load tests under xdist --dist {dist} would run in parallel and fight over the "
                        "same cores; run them with `--dist loadgroup` (one worker) or without -n"
                    )
                )
