"""Kept for projects that import ``pytest_shopflow_perf.schedule``: dependency actions live in :mod:`.faults`."""

from __future__ import annotations

from pytest_shopflow_perf.faults.actions import Action, action, service_faults

__all__ = ["Action", "action", "service_faults"]
