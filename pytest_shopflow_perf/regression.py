"""The regression comparison as a public module (``from pytest_shopflow_perf.regression import compare``).

The statistics live in :mod:`pytest_shopflow_perf.verdicts.regression`; this module keeps the documented path.
"""

from __future__ import annotations

from pytest_shopflow_perf.verdicts.regression import (
    FAIL_ON_CHOICES,
    TIERS,
    Finding,
    RegressionPolicy,
    Verdict,
    compare,
    policy_from_ini,
    worst_tier,
)

__all__ = [
    "FAIL_ON_CHOICES",
    "TIERS",
    "Finding",
    "RegressionPolicy",
    "Verdict",
    "compare",
    "policy_from_ini",
    "worst_tier",
]
