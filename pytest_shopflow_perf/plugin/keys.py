"""What the plugin keeps on pytest objects (stash keys) and the node id every report and baseline uses."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from pytest_shopflow_perf.plugin.options import Settings
    from pytest_shopflow_perf.plugin.session import PerfSession

XDIST_GROUP = "shopflow-perf"

perf_session_key: pytest.StashKey[PerfSession] = pytest.StashKey()
settings_key: pytest.StashKey[Settings] = pytest.StashKey()  # read and validated at configure
call_passed_key = pytest.StashKey[bool]()  # set by makereport, read by the load fixture's teardown
collection_index_key = pytest.StashKey[int]()
AFTER_TEST_NOTES = ("baseline_saved", "baseline_note")  # what teardown adds, carried on its report


def test_id(nodeid: str) -> str:
    """The node id without xdist's ``@group`` suffix: baselines and reports must not depend on the scheduler."""
    return nodeid.removesuffix(f"@{XDIST_GROUP}")
