"""Statistical regression verdict: one run record against a baseline of K earlier runs.

:mod:`.stats` holds the statistics (per-window samples, run means, the tests),
:mod:`.verdict` the policy, the findings, their tiers and :func:`compare`. Every
name of the former single module is importable from here.
"""

from __future__ import annotations

from pytest_shopflow_perf.result.schema import FAIL_ON_CHOICES, FAILING_TIERS, TIERS, Tier, tier_rank
from pytest_shopflow_perf.verdicts.baseline import BaselineError
from pytest_shopflow_perf.verdicts.regression.stats import TOTAL
from pytest_shopflow_perf.verdicts.regression.verdict import (
    METRICS,
    REGRESSION_INI,
    Finding,
    RegressionPolicy,
    Verdict,
    compare,
    finding_row,
    policy_from_ini,
    worst_tier,
)

__all__ = [
    "FAILING_TIERS",
    "FAIL_ON_CHOICES",
    "METRICS",
    "REGRESSION_INI",
    "TIERS",
    "TOTAL",
    "BaselineError",
    "Finding",
    "RegressionPolicy",
    "Tier",
    "Verdict",
    "compare",
    "finding_row",
    "policy_from_ini",
    "tier_rank",
    "worst_tier",
]
