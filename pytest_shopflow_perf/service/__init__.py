"""ShopFlow reference service: the embedded default target of the load tests.

A real e-commerce API (Starlette + SQLite, optional Redis cache) with fault
knobs for resilience scenarios. It is the system under test and imports
nothing from the rest of the plugin. Run it with
``python -m pytest_shopflow_perf.service`` or
``uvicorn --factory pytest_shopflow_perf.service:create_app``; see
:mod:`.app` for the routes, seeded credentials and configuration.
"""

from __future__ import annotations

from .app import ServiceConfig, create_app
from .faults import FaultSettings

__all__ = ["FaultSettings", "ServiceConfig", "create_app"]
