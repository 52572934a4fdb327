"""ShopFlow reference service: the e-commerce API the load tests run against.

It is the system under test, so it imports nothing of the plugin. It is one module (~600 lines)
because it is the route table of one small API, read top to bottom like its documentation. Everything
is JSON; every client mistake is a 4xx ``{"error": {"code", "message"}}``.

Routes (``{id}`` are positive integers):

- ``GET /health`` -> ``{"status": "ok", "cache": "memory"|"redis"|"degraded", "db": "ok"}``
- ``POST /api/login`` ``{"email", "password"}`` -> ``{"token", "user_id", "token_type", "expires_in"}``.
  Seeded customers: ``customer{i}@shopflow.test`` / ``secret{i}`` for
  ``i`` in ``0 .. users-1`` (user id ``i + 1``). Send ``Authorization: Bearer <token>``
  to the cart, checkout and order routes (401 otherwise).
- ``GET /api/products?page=1&per_page=20&category=&min_price=&max_price=&sort=&q=``
  -> ``{"items", "page", "per_page", "total"}``; ``per_page`` <= 100; ``category`` is a
  slug or id; prices in dollars; ``sort`` one of id, price, -price, name, -name, -rating
  (and relevance with ``q``).
- ``GET /api/products/{id}`` (with description); ``GET /api/search?q=&page=&per_page=``
  (full text over name, description and category, by relevance; same shape plus
  ``"query"``); ``GET /api/categories``.
- ``GET /api/cart``; ``POST /api/cart/items`` ``{"product_id", "quantity"}`` (adds);
  ``PUT /api/cart/items/{id}`` ``{"quantity"}`` (sets, 0 removes);
  ``DELETE /api/cart/items/{id}``. Quantities 1..100 per product.
- ``POST /api/checkout`` -> 201 order, in one transaction; 409 ``insufficient_stock``
  or ``empty_cart``. ``GET /api/orders?page=&per_page=``; ``GET /api/orders/{id}``.
- Loopback clients only (403 otherwise): ``GET|PUT|DELETE /admin/faults`` (see
  :mod:`.faults`), ``POST /admin/cache/flush``, ``PUT /admin/products/{id}/stock``
  ``{"stock"}``, ``GET /admin/stats``.
- ``GET /metrics``: Prometheus text (process CPU/RSS, request latency by route, DB pool, cache;
  :mod:`.metrics`).

Hot reads (listings, search, product detail, categories) are served from the
cache (TTL ``SHOPFLOW_CACHE_TTL``, default 30 s); concurrent misses of one key
share one database query. Checkout and stock changes evict the product's
detail entry; listings may show stock up to one TTL old (checkout is the
authority).

Configuration (``create_app()`` without arguments reads the environment):
``SHOPFLOW_DB_PATH`` (default: a fresh temporary file, deleted at shutdown; an
existing seeded file is reused as it is), ``SHOPFLOW_REDIS_URL``,
``SHOPFLOW_SEED`` (42), ``SHOPFLOW_PRODUCTS`` (5000), ``SHOPFLOW_USERS`` (1000),
``SHOPFLOW_FAULTS`` (JSON), ``SHOPFLOW_CACHE_TTL`` (seconds). Worker processes
share carts, orders and tokens only through a shared ``SHOPFLOW_DB_PATH``.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import ipaddress
import json
import logging
import math
import os
import re
import sqlite3
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass, field
from typing import Any, TypeVar

import anyio
import anyio.to_thread
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from . import db
from .cache import Cache, create_cache
from .db import Database, DomainError, ProductQuery
from .faults import FaultError, FaultMiddleware, Faults, FaultSettings
from .metrics import RequestTimer, ServiceMetrics

__all__ = ["ApiError", "ServiceConfig", "create_app"]

log = logging.getLogger("shopflow.service")
T = TypeVar("T")

_JSON = "application/json"
_MAX_BODY = 64 * 1024
_MAX_PAGE = 100_000
_MAX_PER_PAGE = 100
_MAX_PRICE = 10_000_000.0
_ID = re.compile(r"[0-9]{1,18}")
_STATUS_BY_KIND = {"not_found": 404, "conflict": 409, "invalid": 422}


@dataclass(frozen=True)
class ServiceConfig:
    """Everything a service instance needs; ``from_env`` is what ``create_app()`` uses."""

    db_path: str | None = None
    redis_url: str | None = None
    seed: int = 42
    products: int = 5000
    users: int = 1000
    faults: FaultSettings = field(default_factory=FaultSettings)
    cache_ttl: float = 30.0
    db_pool_size: int = 4
    redis_retry_interval: float = 1.0
    token_ttl: int = 24 * 3600

    def __post_init__(self) -> None:
        if not 1 <= self.products <= 1_000_000 or not 1 <= self.users <= 1_000_000:
            raise ValueError("products and users must be between 1 and 1,000,000")
        if not self.cache_ttl > 0 or self.db_pool_size < 1:
            raise ValueError("cache_ttl must be positive and db_pool_size at least 1")

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> ServiceConfig:
        """Read ``SHOPFLOW_*`` variables; a malformed value fails start-up with its name."""
        env = os.environ if environ is None else environ

        def number(name: str, default: T, kind: Callable[[str], T]) -> T:
            raw = env.get(name, "").strip()
            if not raw:
                return default
            try:
                return kind(raw)
            except ValueError:
                raise ValueError(f"{name}={raw!r} is not a valid {kind.__name__}") from None

        faults_text = env.get("SHOPFLOW_FAULTS", "").strip()
        try:
            faults = FaultSettings.from_text(faults_text) if faults_text else FaultSettings()
        except FaultError as exc:
            raise ValueError(f"SHOPFLOW_FAULTS: {exc}") from None
        return cls(
            db_path=env.get("SHOPFLOW_DB_PATH") or None,
            redis_url=env.get("SHOPFLOW_REDIS_URL") or None,
            seed=number("SHOPFLOW_SEED", cls.seed, int),
            products=number("SHOPFLOW_PRODUCTS", cls.products, int),
            users=number("SHOPFLOW_USERS", cls.users, int),
            faults=faults,
            cache_ttl=number("SHOPFLOW_CACHE_TTL", cls.cache_ttl, float),
        )


class ApiError(Exception):
    """A client error with its HTTP status; rendered as the JSON error envelope."""

    def __init__(self, status: int, code: str, message: str, *, headers: Mapping[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = headers


def _dumps(data: object) -> bytes:
    return json.dumps(data, separators=(",", ":"), ensure_ascii=False).encode()


def _json(data: object, status: int = 200) -> Response:
    return Response(_dumps(data), status_code=status, media_type=_JSON)


def _error(
    status: int, code: str, message: str, details: object = None, headers: Mapping[str, str] | None = None
) -> Response:
    error: dict[str, object] = {"code": code, "message": message}
    if details is not None:
        error["details"] = details
    return Response(_dumps({"error": error}), status_code=status, media_type=_JSON, headers=headers)


# --------------------------------------------------------------------------- input parsing


def _invalid(message: str) -> ApiError:
    return ApiError(422, "invalid_parameter", message)


def _path_id(request: Request, name: str) -> int:
    raw: str = request.path_params[name]
    if _ID.fullmatch(raw) is None:
        raise _invalid(f"{name} must be a positive integer")
    return int(raw)


def _query_int(request: Request, name: str, default: int, maximum: int) -> int:
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        return default
    if _ID.fullmatch(raw) is None or not 1 <= int(raw) <= maximum:
        raise _invalid(f"{name} must be an integer between 1 and {maximum}")
    return int(raw)


def _query_price(request: Request, name: str) -> int | None:
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        return None
    try:
        value = float(raw)
    except ValueError:
        value = math.nan
    if not math.isfinite(value) or not 0 <= value <= _MAX_PRICE:
        raise _invalid(f"{name} must be a price between 0 and {_MAX_PRICE:.0f}")
    return round(value * 100)


async def _json_object(request: Request) -> dict[str, Any]:
    size = 0
    chunks: list[bytes] = []
    async for chunk in request.stream():
        size += len(chunk)
        if size > _MAX_BODY:
            raise ApiError(413, "body_too_large", f"request body is limited to {_MAX_BODY} bytes")
        chunks.append(chunk)
    try:
        data = json.loads(b"".join(chunks))
    except (ValueError, RecursionError):
        raise ApiError(400, "invalid_json", "request body is not valid JSON") from None
    if not isinstance(data, dict):
        raise ApiError(422, "invalid_body", "request body must be a JSON object")
    return data


def _int_field(data: Mapping[str, Any], name: str, minimum: int, maximum: int) -> int:
    value = data.get(name)
    if isinstance(value, bool) or not isinstance(value, int) or not minimum <= value <= maximum:
        raise ApiError(422, "invalid_body", f"{name} must be an integer between {minimum} and {maximum}")
    return value


def _str_field(data: Mapping[str, Any], name: str) -> str:
    value = data.get(name)
    if not isinstance(value, str) or not value or len(value) > 320:
        raise ApiError(422, "invalid_body", f"{name} must be a non-empty string")
    return value


def _is_loopback(host: str | None) -> bool:
    if not host:
        return False
    try:
        address = ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped.is_loopback
    return address.is_loopback


class _Flight:
    """One in-progress cache fill that concurrent misses of the same key wait for."""

    def __init__(self) -> None:
        self.done = anyio.Event()
        self.body: bytes | None = None


# --------------------------------------------------------------------------- the service


class Service:
    """The running state of one app (database, cache, faults) and its route handlers."""

    def __init__(self, config: ServiceConfig) -> None:
        self.config = config
        self.faults = Faults(config.faults, seed=config.seed)
        self._db: Database | None = None
        self._cache: Cache | None = None
        self._temp_path: str | None = None
        self._inflight: dict[str, _Flight] = {}

    @property
    def db(self) -> Database:
        if self._db is None:
            raise RuntimeError("the ShopFlow service is not started: run the app's lifespan")
        return self._db

    @property
    def cache(self) -> Cache:
        if self._cache is None:
            raise RuntimeError("the ShopFlow service is not started: run the app's lifespan")
        return self._cache

    # -- life cycle

    async def start(self) -> None:
        """Open (create and seed if needed) the database and connect the cache."""
        path = self.config.db_path
        if path is None:
            fd, path = tempfile.mkstemp(prefix="shopflow-", suffix=".sqlite3")
            os.close(fd)
            self._temp_path = path
        database = Database(path, pool_size=self.config.db_pool_size)
        try:
            opener = functools.partial(
                database.open, seed=self.config.seed, products=self.config.products, users=self.config.users
            )
            await anyio.to_thread.run_sync(opener)
        except BaseException:
            database.close()
            self._remove_temp()
            raise
        self._db = database
        self._cache = create_cache(
            self.config.redis_url,
            namespace=database.namespace,
            retry_interval=self.config.redis_retry_interval,
        )
        if self.config.redis_url:
            log.info("ShopFlow cache: %s", await self._cache.status())

    async def stop(self) -> None:
        if self._cache is not None:
            await self._cache.aclose()
            self._cache = None
        if self._db is not None:
            self._db.close()
            self._db = None
        self._remove_temp()

    def _remove_temp(self) -> None:
        if self._temp_path is not None:
            for suffix in ("", "-wal", "-shm", "-journal"):
                with suppress(FileNotFoundError):
                    os.unlink(self._temp_path + suffix)
            self._temp_path = None

    @asynccontextmanager
    async def lifespan(self, app: Starlette) -> AsyncIterator[None]:
        await self.start()
        try:
            yield
        finally:
            await self.stop()

    def pool_stats(self) -> dict[str, int] | None:
        return self._db.pool_stats() if self._db is not None else None

    def cache_stats(self) -> dict[str, int] | None:
        return self._cache.stats() if self._cache is not None else None

    # -- plumbing

    async def _read(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        if self.faults.db_delay:
            await anyio.sleep(self.faults.db_delay)
        return await self.db.read(fn)

    async def _write(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        if self.faults.db_delay:
            await anyio.sleep(self.faults.db_delay)
        return await self.db.write(fn)

    async def _cached(self, key: str, load: Callable[[], Awaitable[object]]) -> Response:
        """Serve ``key`` from the cache, or load it once however many requests miss together."""
        use_cache = not self.faults.cache_down
        if use_cache:
            body = await self.cache.get(key)
            if body is not None:
                return Response(body, media_type=_JSON)
        flight = self._inflight.get(key)
        if flight is not None:
            await flight.done.wait()
            if flight.body is not None:
                return Response(flight.body, media_type=_JSON)
            return _json(await load())  # the leader failed (e.g. 404): fail the same way
        flight = self._inflight[key] = _Flight()
        try:
            flight.body = body = _dumps(await load())
        finally:
            del self._inflight[key]
            flight.done.set()
        if use_cache:
            await self.cache.set(key, body, self.config.cache_ttl)
        return Response(body, media_type=_JSON)

    def _token(self, user_id: int) -> str:
        expires = int(time.time()) + self.config.token_ttl
        payload = f"{user_id}.{expires}"
        return f"{payload}.{self._sign(payload)}"

    def _sign(self, payload: str) -> str:
        return hmac.new(self.db.secret, payload.encode(), hashlib.sha256).hexdigest()[:32]

    def _user_id(self, request: Request) -> int:
        """The authenticated user of a request (stateless signed token: no lookup per request)."""
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        challenge = {"WWW-Authenticate": "Bearer"}
        if scheme.lower() != "bearer" or not token.strip():
            raise ApiError(401, "unauthorized", "a bearer token is required: POST /api/login", headers=challenge)
        payload, _, signature = token.strip().rpartition(".")
        user, _, expires = payload.partition(".")
        if (
            not hmac.compare_digest(signature, self._sign(payload))
            or _ID.fullmatch(user) is None
            or _ID.fullmatch(expires) is None
            or int(expires) < time.time()
        ):
            raise ApiError(401, "invalid_token", "the token is invalid or expired", headers=challenge)
        return int(user)

    def _require_loopback(self, request: Request) -> None:
        host = request.client.host if request.client else None
        if not _is_loopback(host):
            raise ApiError(403, "forbidden", "admin endpoints accept loopback clients only")

    def _product_query(self, request: Request, *, search: bool) -> ProductQuery:
        terms = db.search_terms(request.query_params.get("q", ""))
        if search and not terms:
            raise _invalid("q must contain at least one word")
        sort = request.query_params.get("sort") or ("relevance" if terms else "id")
        if sort not in db.SORTS:
            raise _invalid(f"sort must be one of {', '.join(db.SORTS)}")
        category = request.query_params.get("category") or None
        category_id: int | None = None
        if category is not None:
            category_id = self.db.categories.get(category.lower())
            if category_id is None and _ID.fullmatch(category) and int(category) in self.db.categories.values():
                category_id = int(category)
            if category_id is None:
                raise _invalid(f"unknown category {category!r}: see GET /api/categories")
        return ProductQuery(
            page=_query_int(request, "page", 1, _MAX_PAGE),
            per_page=_query_int(request, "per_page", 20, _MAX_PER_PAGE),
            category_id=category_id,
            min_cents=_query_price(request, "min_price"),
            max_cents=_query_price(request, "max_price"),
            terms=terms,
            sort=sort,
        )

    # -- public routes

    async def health(self, request: Request) -> Response:
        cache = "degraded" if self.faults.cache_down else await self.cache.status()
        try:
            await self.db.read(lambda conn: conn.execute("SELECT 1").fetchone())
        except sqlite3.Error:
            return _json({"status": "error", "cache": cache, "db": "error"}, 503)
        return _json({"status": "ok", "cache": cache, "db": "ok"})

    async def login(self, request: Request) -> Response:
        data = await _json_object(request)
        email, password = _str_field(data, "email"), _str_field(data, "password")
        user_id = await self._read(lambda conn: db.check_login(conn, email, password))
        if user_id is None:
            raise ApiError(401, "invalid_credentials", "unknown email or wrong password")
        token = self._token(user_id)
        return _json({"token": token, "user_id": user_id, "token_type": "bearer", "expires_in": self.config.token_ttl})

    async def list_products(self, request: Request) -> Response:
        query = self._product_query(request, search=False)
        fts = self.db.fts
        return await self._cached(query.cache_key(), lambda: self._read(lambda c: db.list_products(c, query, fts=fts)))

    async def search(self, request: Request) -> Response:
        query = self._product_query(request, search=True)
        fts = self.db.fts

        async def load() -> object:
            page = await self._read(lambda c: db.list_products(c, query, fts=fts))
            return {**page, "query": " ".join(query.terms)}

        return await self._cached("search:" + query.cache_key(), load)

    async def product(self, request: Request) -> Response:
        product_id = _path_id(request, "product_id")
        return await self._cached(f"product:{product_id}", lambda: self._read(lambda c: db.get_product(c, product_id)))

    async def categories(self, request: Request) -> Response:
        return await self._cached("categories", lambda: self._read(db.list_categories))

    # -- cart, checkout, orders

    async def get_cart(self, request: Request) -> Response:
        user_id = self._user_id(request)
        return _json(await self._read(lambda c: db.get_cart(c, user_id)))

    async def add_to_cart(self, request: Request) -> Response:
        user_id = self._user_id(request)
        data = await _json_object(request)
        product_id = _int_field(data, "product_id", 1, 2**62)
        quantity = _int_field(data, "quantity", 1, db.MAX_LINE_QUANTITY)
        return _json(await self._write(lambda c: db.add_to_cart(c, user_id, product_id, quantity)))

    async def set_cart_item(self, request: Request) -> Response:
        user_id = self._user_id(request)
        product_id = _path_id(request, "product_id")
        quantity = _int_field(await _json_object(request), "quantity", 0, db.MAX_LINE_QUANTITY)
        return _json(await self._write(lambda c: db.set_cart_quantity(c, user_id, product_id, quantity)))

    async def remove_cart_item(self, request: Request) -> Response:
        user_id = self._user_id(request)
        product_id = _path_id(request, "product_id")
        return _json(await self._write(lambda c: db.remove_from_cart(c, user_id, product_id)))

    async def checkout(self, request: Request) -> Response:
        user_id = self._user_id(request)
        order = await self._write(lambda c: db.checkout(c, user_id))
        await self.cache.delete([f"product:{item['product_id']}" for item in order["items"]])
        return _json(order, 201)

    async def list_orders(self, request: Request) -> Response:
        user_id = self._user_id(request)
        page = _query_int(request, "page", 1, _MAX_PAGE)
        per_page = _query_int(request, "per_page", 20, _MAX_PER_PAGE)
        return _json(await self._read(lambda c: db.list_orders(c, user_id, page, per_page)))

    async def order(self, request: Request) -> Response:
        user_id = self._user_id(request)
        order_id = _path_id(request, "order_id")
        return _json(await self._read(lambda c: db.get_order(c, user_id, order_id)))

    # -- admin (loopback only)

    async def get_faults(self, request: Request) -> Response:
        self._require_loopback(request)
        return _json(self.faults.settings.to_json())

    async def put_faults(self, request: Request) -> Response:
        self._require_loopback(request)
        try:
            self.faults.settings = FaultSettings.from_json(await _json_object(request))
        except FaultError as exc:
            raise ApiError(422, "invalid_faults", str(exc)) from None
        log.warning("ShopFlow faults set: %s", self.faults.settings.to_json())
        return _json(self.faults.settings.to_json())

    async def clear_faults(self, request: Request) -> Response:
        self._require_loopback(request)
        self.faults.clear()
        return _json(self.faults.settings.to_json())

    async def flush_cache(self, request: Request) -> Response:
        self._require_loopback(request)
        await self.cache.flush()
        return _json({"flushed": True})

    async def set_stock(self, request: Request) -> Response:
        self._require_loopback(request)
        product_id = _path_id(request, "product_id")
        stock = _int_field(await _json_object(request), "stock", 0, 1_000_000_000)
        product = await self._write(lambda c: db.set_stock(c, product_id, stock))
        await self.cache.delete([f"product:{product_id}"])
        return _json(product)

    async def stats(self, request: Request) -> Response:
        self._require_loopback(request)
        cache = {"status": await self.cache.status(), **self.cache.stats()}
        return _json({"cache": cache, "faults": self.faults.settings.to_json(), "fts": self.db.fts})

    def routes(self) -> list[Route]:
        return [
            Route("/health", self.health, methods=["GET"]),
            Route("/api/login", self.login, methods=["POST"]),
            Route("/api/products", self.list_products, methods=["GET"]),
            Route("/api/products/{product_id}", self.product, methods=["GET"]),
            Route("/api/search", self.search, methods=["GET"]),
            Route("/api/categories", self.categories, methods=["GET"]),
            Route("/api/cart", self.get_cart, methods=["GET"]),
            Route("/api/cart/items", self.add_to_cart, methods=["POST"]),
            Route("/api/cart/items/{product_id}", self.set_cart_item, methods=["PUT"]),
            Route("/api/cart/items/{product_id}", self.remove_cart_item, methods=["DELETE"]),
            Route("/api/checkout", self.checkout, methods=["POST"]),
            Route("/api/orders", self.list_orders, methods=["GET"]),
            Route("/api/orders/{order_id}", self.order, methods=["GET"]),
            Route("/admin/faults", self.get_faults, methods=["GET"]),
            Route("/admin/faults", self.put_faults, methods=["PUT"]),
            Route("/admin/faults", self.clear_faults, methods=["DELETE"]),
            Route("/admin/cache/flush", self.flush_cache, methods=["POST"]),
            Route("/admin/products/{product_id}/stock", self.set_stock, methods=["PUT"]),
            Route("/admin/stats", self.stats, methods=["GET"]),
        ]


# --------------------------------------------------------------------------- error rendering


async def _on_api_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ApiError)
    return _error(exc.status, exc.code, exc.message, headers=exc.headers)


async def _on_domain_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, DomainError)
    return _error(_STATUS_BY_KIND[exc.kind], exc.code, exc.message, exc.details)


async def _on_http_exception(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
    return _error(exc.status_code, code, str(exc.detail), headers=exc.headers)


async def _on_unexpected(request: Request, exc: Exception) -> Response:
    log.exception("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
    return _error(500, "internal_error", "internal server error")


def create_app(config: ServiceConfig | None = None) -> Starlette:
    """Build the ShopFlow app; without a config, read ``SHOPFLOW_*`` from the environment.

    The database opens in the app's lifespan: run it (uvicorn does; for
    ``httpx.ASGITransport`` enter ``app.router.lifespan_context(app)``).
    """
    service = Service(config or ServiceConfig.from_env())
    routes = service.routes()
    metrics = ServiceMetrics(routes, pool=service.pool_stats, cache=service.cache_stats)
    app = Starlette(
        routes=[*routes, Route("/metrics", metrics.endpoint, methods=["GET"])],
        middleware=[Middleware(RequestTimer, metrics=metrics), Middleware(FaultMiddleware, faults=service.faults)],
        exception_handlers={
            ApiError: _on_api_error,
            DomainError: _on_domain_error,
            HTTPException: _on_http_exception,
            Exception: _on_unexpected,
        },
        lifespan=service.lifespan,
    )
    app.state.service = service
    return app
