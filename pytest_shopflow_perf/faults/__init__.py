"""Faults injected while a load test runs: network faults through a proxy, dependency actions, their run.

The public home of the fault builders (``from pytest_shopflow_perf.faults import latency, outage``) and of
:func:`action` and :func:`service_faults`. Importing it loads no proxy machinery: only the plain data and
builders of :mod:`.spec` and the actions.
"""

from __future__ import annotations

from pytest_shopflow_perf.faults.actions import Action, action, service_faults
from pytest_shopflow_perf.faults.spec import KINDS, Fault, bandwidth, errors, latency, outage, resets, timeouts

__all__ = [
    "KINDS",
    "Action",
    "Fault",
    "action",
    "bandwidth",
    "errors",
    "latency",
    "outage",
    "resets",
    "service_faults",
    "timeouts",
]
