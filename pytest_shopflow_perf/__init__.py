"""pytest-shopflow-perf: HTTP load tests as ordinary pytest test cases.

The public surface (httpx-style): every name a user imports is here; the subpackages
(profile, engine, metrics, result, verdicts, faults, reporting, target, plugin) are the
implementation. ``pytest_shopflow_perf.faults`` and ``.regression`` stay importable as documented.

Names load lazily: pytest imports this package in every run of every project
that installs it, and most runs never start a load test.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pytest_shopflow_perf._errors import ShopflowPerfError
    from pytest_shopflow_perf.engine.engine import Progress
    from pytest_shopflow_perf.engine.fast_client import FastClient
    from pytest_shopflow_perf.engine.fast_response import FastClientUnsupported
    from pytest_shopflow_perf.engine.measure import Measure, MeasureError
    from pytest_shopflow_perf.engine.shards.wire import ShardError
    from pytest_shopflow_perf.engine.user import StopUser, User
    from pytest_shopflow_perf.faults.actions import Action, action, service_faults
    from pytest_shopflow_perf.faults.run import FaultPlan
    from pytest_shopflow_perf.faults.spec import Fault, bandwidth, errors, latency, outage, resets, timeouts
    from pytest_shopflow_perf.plugin.fixtures import LoadRunner
    from pytest_shopflow_perf.profile.resolve import LoadProfile, ProfileError
    from pytest_shopflow_perf.result.capacity import Capacity, CapacityStep
    from pytest_shopflow_perf.result.model import GeneratorStats, LoadResult, ShardRecord, Span, Stats, TimelineWindow
    from pytest_shopflow_perf.result.resources import Resources
    from pytest_shopflow_perf.result.target import RunTarget
    from pytest_shopflow_perf.target.policy import TargetError
    from pytest_shopflow_perf.target.refused import TargetRefused
    from pytest_shopflow_perf.verdicts.assertions import (
        PerformanceRegressionWarning,
        Slo,
        SloError,
        assert_error_rate,
        assert_latency,
        assert_no_regression,
        assert_recovery,
        assert_slo,
        assert_throughput,
    )
    from pytest_shopflow_perf.verdicts.baseline import BaselineError
    from pytest_shopflow_perf.verdicts.capacity.search import CapacityError
    from pytest_shopflow_perf.verdicts.drift import Drift, DriftError, DriftWarning, assert_no_drift
    from pytest_shopflow_perf.verdicts.regression import Finding, RegressionPolicy, Verdict, compare

__all__ = [
    "Action",
    "BaselineError",
    "Capacity",
    "CapacityError",
    "CapacityStep",
    "Drift",
    "DriftError",
    "DriftWarning",
    "FastClient",
    "FastClientUnsupported",
    "Fault",
    "FaultPlan",
    "Finding",
    "GeneratorStats",
    "LoadProfile",
    "LoadResult",
    "LoadRunner",
    "Measure",
    "MeasureError",
    "PerformanceRegressionWarning",
    "ProfileError",
    "Progress",
    "RegressionPolicy",
    "Resources",
    "RunTarget",
    "ShardError",
    "ShardRecord",
    "ShopflowPerfError",
    "Slo",
    "SloError",
    "Span",
    "Stats",
    "StopUser",
    "TargetError",
    "TargetRefused",
    "TimelineWindow",
    "User",
    "Verdict",
    "action",
    "assert_error_rate",
    "assert_latency",
    "assert_no_drift",
    "assert_no_regression",
    "assert_recovery",
    "assert_slo",
    "assert_throughput",
    "bandwidth",
    "compare",
    "errors",
    "latency",
    "outage",
    "resets",
    "service_faults",
    "timeouts",
]

_HOMES = {
    "Action": "faults.actions",
    "BaselineError": "verdicts.baseline",
    "Capacity": "result.capacity",
    "CapacityError": "verdicts.capacity.search",
    "CapacityStep": "result.capacity",
    "Drift": "verdicts.drift",
    "DriftError": "verdicts.drift",
    "DriftWarning": "verdicts.drift",
    "Fault": "faults.spec",
    "FaultPlan": "faults.run",
    "FastClient": "engine.fast_client",
    "FastClientUnsupported": "engine.fast_response",
    "Finding": "verdicts.regression",
    "GeneratorStats": "result.model",
    "LoadProfile": "profile.resolve",
    "LoadResult": "result.model",
    "LoadRunner": "plugin.fixtures",
    "Measure": "engine.measure",
    "MeasureError": "engine.measure",
    "PerformanceRegressionWarning": "verdicts.assertions",
    "ProfileError": "profile.resolve",
    "Progress": "engine.engine",
    "RegressionPolicy": "verdicts.regression",
    "Resources": "result.resources",
    "RunTarget": "result.target",
    "ShardError": "engine.shards.wire",
    "ShardRecord": "result.model",
    "ShopflowPerfError": "_errors",
    "Slo": "verdicts.assertions",
    "SloError": "verdicts.slo.grammar",
    "Span": "result.model",
    "Stats": "result.model",
    "StopUser": "engine.user",
    "TargetError": "target.policy",
    "TargetRefused": "target.refused",
    "TimelineWindow": "result.model",
    "User": "engine.user",
    "Verdict": "verdicts.regression",
    "action": "faults.actions",
    "assert_error_rate": "verdicts.assertions",
    "assert_latency": "verdicts.assertions",
    "assert_no_drift": "verdicts.drift",
    "assert_no_regression": "verdicts.assertions",
    "assert_recovery": "verdicts.assertions",
    "assert_slo": "verdicts.assertions",
    "assert_throughput": "verdicts.assertions",
    "bandwidth": "faults.spec",
    "compare": "verdicts.regression",
    "errors": "faults.spec",
    "latency": "faults.spec",
    "outage": "faults.spec",
    "resets": "faults.spec",
    "service_faults": "faults.actions",
    "timeouts": "faults.spec",
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
