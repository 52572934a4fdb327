"""pytest-shopflow-perf: HTTP load tests as ordinary pytest test cases.

Names load lazily: pytest imports this package in every run of every project
that installs it, and most runs never start a load test.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pytest_shopflow_perf.engine.engine import Progress
    from pytest_shopflow_perf.engine.user import User
    from pytest_shopflow_perf.profile.resolve import LoadProfile
    from pytest_shopflow_perf.result.model import GeneratorStats, LoadResult, Stats, TimelineWindow
    from pytest_shopflow_perf.verdicts.assertions import (
        Slo,
        assert_error_rate,
        assert_latency,
        assert_no_regression,
        assert_recovery,
        assert_slo,
        assert_throughput,
    )

__all__ = [
    "GeneratorStats",
    "LoadProfile",
    "LoadResult",
    "Progress",
    "Slo",
    "Stats",
    "TimelineWindow",
    "User",
    "assert_error_rate",
    "assert_latency",
    "assert_no_regression",
    "assert_recovery",
    "assert_slo",
    "assert_throughput",
]

_HOMES = {
    "GeneratorStats": "result.model",
    "LoadProfile": "profile.resolve",
    "LoadResult": "result.model",
    "Progress": "engine.engine",
    "Slo": "verdicts.assertions",
    "Stats": "result.model",
    "TimelineWindow": "result.model",
    "User": "engine.user",
    "assert_error_rate": "verdicts.assertions",
    "assert_latency": "verdicts.assertions",
    "assert_no_regression": "verdicts.assertions",
    "assert_recovery": "verdicts.assertions",
    "assert_slo": "verdicts.assertions",
    "assert_throughput": "verdicts.assertions",
}


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{home}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])
