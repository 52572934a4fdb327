"""Fault knobs of the ShopFlow reference service.

Resilience scenarios need a target that misbehaves on demand: slow routes,
failing routes, a slow database and a cache outage. The knobs live here, are
set through ``/admin/faults`` (or ``SHOPFLOW_FAULTS`` at start) and are applied
by :class:`FaultMiddleware` before a request reaches its route.

JSON shape (every key optional)::

    {"latency": {"/api/products": {"fixed_ms": 50, "jitter_ms": 10}},
     "error_ratio": {"/api/checkout": 0.05, "*": 0.01},
     "db_delay_ms": 20,
     "cache_down": false}

- Route keys are path prefixes matched on segment boundaries
  (``/api/products`` matches ``/api/products/7`` but not ``/api/productsX``);
  the longest matching key wins and ``"*"`` applies where no key matches.
- ``"*"`` never applies to ``/health`` (a launcher polling health must not be
  locked out by a global fault); an explicit ``"/health"`` key does. Nothing
  applies to ``/admin`` so that faults can always be cleared.
- Latency is ``fixed_ms`` plus a uniform ``+-jitter_ms`` (never below zero),
  as toxiproxy does. Injected errors are 503 JSON responses.
- ``db_delay_ms`` is awaited (without blocking the event loop) before every
  database call; ``cache_down`` makes every cache lookup miss, as if the cache
  were unreachable.
- Randomness comes from one ``random.Random`` seeded from the service seed,
  so a fault run is reproducible for the same request order.
"""

from __future__ import annotations

import json
import math
import random
from collections.abc import Mapping
from dataclasses import dataclass, field

import anyio
from starlette.types import ASGIApp, Receive, Scope, Send

__all__ = ["FaultError", "FaultMiddleware", "FaultSettings", "Faults", "Latency"]

_MAX_MS = 60_000.0
_ADMIN_PREFIX = "/admin"
_HEALTH_PATH = "/health"


class FaultError(ValueError):
    """Raised when a fault specification is malformed (the admin API answers 422)."""


@dataclass(frozen=True)
class Latency:
    """Added delay for one route prefix, in milliseconds."""

    fixed_ms: float
    jitter_ms: float = 0.0


@dataclass(frozen=True)
class FaultSettings:
    """One validated, immutable set of faults; replaced wholesale by PUT."""

    latency: Mapping[str, Latency] = field(default_factory=dict)
    error_ratio: Mapping[str, float] = field(default_factory=dict)
    db_delay_ms: float = 0.0
    cache_down: bool = False

    @classmethod
    def from_json(cls, data: object) -> FaultSettings:
        """Validate the admin/env JSON shape; raise :class:`FaultError` with a precise reason."""
        if not isinstance(data, dict):
            raise FaultError("faults must be a JSON object")
        unknown = set(data) - {"latency", "error_ratio", "db_delay_ms", "cache_down"}
        if unknown:
            raise FaultError(f"unknown fault keys: {', '.join(sorted(unknown))}")
        latency: dict[str, Latency] = {}
        for route, spec in _route_map(data.get("latency", {}), "latency").items():
            if not isinstance(spec, dict) or set(spec) - {"fixed_ms", "jitter_ms"}:
                raise FaultError(f"latency[{route!r}] must be an object with fixed_ms and jitter_ms")
            latency[route] = Latency(
                fixed_ms=_number(spec.get("fixed_ms", 0), f"latency[{route!r}].fixed_ms", _MAX_MS),
                jitter_ms=_number(spec.get("jitter_ms", 0), f"latency[{route!r}].jitter_ms", _MAX_MS),
            )
        error_ratio = {
            route: _number(ratio, f"error_ratio[{route!r}]", 1.0)
            for route, ratio in _route_map(data.get("error_ratio", {}), "error_ratio").items()
        }
        cache_down = data.get("cache_down", False)
        if not isinstance(cache_down, bool):
            raise FaultError("cache_down must be true or false")
        return cls(
            latency=latency,
            error_ratio=error_ratio,
            db_delay_ms=_number(data.get("db_delay_ms", 0), "db_delay_ms", _MAX_MS),
            cache_down=cache_down,
        )

    @classmethod
    def from_text(cls, text: str) -> FaultSettings:
        """Parse ``SHOPFLOW_FAULTS``; a syntax error is a :class:`FaultError` too."""
        try:
            data = json.loads(text)
        except ValueError as exc:
            raise FaultError(f"faults are not valid JSON: {exc}") from None
        return cls.from_json(data)

    def to_json(self) -> dict[str, object]:
        """The same shape :meth:`from_json` accepts, so GET output can be PUT back."""
        return {
            "latency": {
                route: {"fixed_ms": spec.fixed_ms, "jitter_ms": spec.jitter_ms} for route, spec in self.latency.items()
            },
            "error_ratio": dict(self.error_ratio),
            "db_delay_ms": self.db_delay_ms,
            "cache_down": self.cache_down,
        }

    @property
    def active(self) -> bool:
        """False for the no-fault settings, so the hot path can skip all matching."""
        return bool(self.latency or self.error_ratio or self.db_delay_ms or self.cache_down)


def _route_map(value: object, name: str) -> dict[str, object]:
    if not isinstance(value, dict):
        raise FaultError(f"{name} must be an object mapping route prefixes to values")
    for route in value:
        if route != "*" and not route.startswith("/"):
            raise FaultError(f"{name} key {route!r} must be '*' or a path starting with '/'")
    return value


def _number(value: object, name: str, maximum: float) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise FaultError(f"{name} must be a number")
    number = float(value)
    if not math.isfinite(number) or not 0 <= number <= maximum:
        raise FaultError(f"{name} must be between 0 and {maximum:g}")
    return number


def _matches(path: str, prefix: str) -> bool:
    if prefix.endswith("/"):
        return path.startswith(prefix)
    return path == prefix or path.startswith(prefix + "/")


class Faults:
    """The live fault state of one service: current settings plus a seeded RNG."""

    def __init__(self, settings: FaultSettings | None = None, *, seed: int = 0) -> None:
        self.settings = settings or FaultSettings()
        self._random = random.Random(seed)

    def clear(self) -> None:
        """Back to no faults (the RNG keeps its position: a run stays reproducible)."""
        self.settings = FaultSettings()

    def _lookup(self, table: Mapping[str, object], path: str) -> str | None:
        if _matches(path, _ADMIN_PREFIX):
            return None
        best: str | None = None
        for prefix in table:
            if prefix != "*" and _matches(path, prefix) and (best is None or len(prefix) > len(best)):
                best = prefix
        if best is None and "*" in table and path != _HEALTH_PATH:
            best = "*"
        return best

    def request_delay(self, path: str) -> float:
        """Seconds to wait before handling ``path`` (0.0 when no latency fault matches)."""
        key = self._lookup(self.settings.latency, path)
        if key is None:
            return 0.0
        spec = self.settings.latency[key]
        jitter = self._random.uniform(-spec.jitter_ms, spec.jitter_ms) if spec.jitter_ms else 0.0
        return max(0.0, spec.fixed_ms + jitter) / 1000.0

    def should_fail(self, path: str) -> bool:
        """Draw whether this request of ``path`` gets an injected 503."""
        key = self._lookup(self.settings.error_ratio, path)
        return key is not None and self._random.random() < self.settings.error_ratio[key]

    @property
    def db_delay(self) -> float:
        """Seconds to await before each database call."""
        return self.settings.db_delay_ms / 1000.0

    @property
    def cache_down(self) -> bool:
        return self.settings.cache_down


_INJECTED_HEADERS = [(b"content-type", b"application/json"), (b"x-shopflow-fault", b"error")]


class FaultMiddleware:
    """Pure ASGI middleware (cheaper than BaseHTTPMiddleware on the hot path)."""

    def __init__(self, app: ASGIApp, faults: Faults) -> None:
        self.app = app
        self.faults = faults

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not self.faults.settings.active:
            await self.app(scope, receive, send)
            return
        path: str = scope["path"]
        delay = self.faults.request_delay(path)
        if delay > 0:
            await anyio.sleep(delay)
        if self.faults.should_fail(path):
            body = json.dumps({"error": {"code": "injected_fault", "message": f"injected error for {path}"}}).encode()
            headers = [*_INJECTED_HEADERS, (b"content-length", str(len(body)).encode())]
            await send({"type": "http.response.start", "status": 503, "headers": headers})
            await send({"type": "http.response.body", "body": body})
            return
        await self.app(scope, receive, send)
