"""``GET /metrics``: the service's Prometheus text, as a real deployment's monitoring scrapes it.

Process CPU and memory (``process_cpu_seconds_total``, ``process_resident_memory_bytes``), the
request latency histogram by route template (``/api/products/{product_id}``, never one series per
id), the database connection pool (in use, waiting, size) and the cache (hits, misses, errors).
The pool and the cache are read when scraped, not counted twice: the collector asks them. Each
app has its own registry, so two apps in one process (tests) never mix their series.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Histogram, ProcessCollector, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

__all__ = ["RequestTimer", "ServiceMetrics"]

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
UNMATCHED = "(unmatched)"


class _StateCollector(Collector):
    """The pool and cache figures at scrape time; nothing when the service is not started."""

    def __init__(
        self, pool: Callable[[], Mapping[str, int] | None], cache: Callable[[], Mapping[str, int] | None]
    ) -> None:
        self._pool = pool
        self._cache = cache

    def collect(self) -> Iterable[Metric]:
        pool = self._pool()
        if pool is not None:
            yield GaugeMetricFamily("shopflow_db_connections_in_use", "SQLite connections in use", pool["in_use"])
            yield GaugeMetricFamily("shopflow_db_pool_size", "SQLite connections in the pool", pool["size"])
            yield GaugeMetricFamily(
                "shopflow_db_pool_waiting", "requests waiting for a database connection", pool["waiting"]
            )
        cache = self._cache()
        if cache is not None:
            for name in ("hits", "misses", "errors"):
                yield CounterMetricFamily(f"shopflow_cache_{name}", f"cache {name}", cache[name])


class ServiceMetrics:
    """The registry of one app, its ``/metrics`` endpoint and the middleware that times requests."""

    def __init__(
        self,
        routes: Iterable[Any],
        *,
        pool: Callable[[], Mapping[str, int] | None],
        cache: Callable[[], Mapping[str, int] | None],
    ) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        ProcessCollector(registry=self.registry)
        self.registry.register(_StateCollector(pool, cache))
        self.latency = Histogram(
            "shopflow_http_request_duration_seconds",
            "time to answer a request, by route template",
            ["method", "route", "status"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        # Starlette puts the matched route's endpoint in the scope: its template, not the raw path.
        self._templates = {route.endpoint: route.path for route in routes if hasattr(route, "endpoint")}

    async def endpoint(self, request: Request) -> Response:
        return Response(generate_latest(self.registry), media_type=CONTENT_TYPE_LATEST)

    def observe(self, scope: Scope, status: int, seconds: float) -> None:
        endpoint = scope.get("endpoint")
        if endpoint != self.endpoint:  # the scrape itself is not a request of the API
            route = self._templates.get(endpoint, UNMATCHED)
            self.latency.labels(scope["method"], route, f"{status // 100}xx").observe(seconds)


class RequestTimer:
    """Pure ASGI middleware: each request's time into the histogram (outermost, so faults count too)."""

    def __init__(self, app: ASGIApp, metrics: ServiceMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500  # an exception before the answer started is a 500 (the error handler's)

        async def send_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, send_status)
        finally:
            self.metrics.observe(scope, status, time.perf_counter() - started)
