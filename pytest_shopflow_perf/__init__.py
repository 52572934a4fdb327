"""pytest-shopflow-perf: HTTP load tests as ordinary pytest test cases.

Names load lazily: pytest imports this package in every run of every project
that installs it, and most runs never start a load test.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .assertions import (
        Slo,
        assert_error_rate,
        assert_latency,
        assert_no_regression,
        assert_recovery,
        assert_slo,
        assert_throughput,
    )
    from .engine import Progress
    from .profile import LoadProfile
    from .result import GeneratorStats, LoadResult, Stats, TimelineWindow
    from .user import User

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
    "GeneratorStats": "result",
    "LoadProfile": "profile",
    "LoadResult": "result",
    "Progress": "engine",
    "Slo": "assertions",
    "Stats": "result",
    "TimelineWindow": "result",
    "User": "user",
    "assert_error_rate": "assertions",
    "assert_latency": "assertions",
    "assert_no_regression": "assertions",
    "assert_recovery": "assertions",
    "assert_slo": "assertions",
    "assert_throughput": "assertions",
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
