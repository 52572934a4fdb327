"""Cache for the service's hot reads: in-process TTL cache or Redis.

The values are ready-to-send JSON bodies (bytes), so a hit costs one lookup
and no serialisation. Redis is used when ``SHOPFLOW_REDIS_URL`` is set; it is
shared by all worker processes and is the dependency the resilience scenarios
kill. A Redis failure is never a request failure: the cache logs once, reports
``degraded``, answers every lookup as a miss (so reads go to the database,
slower) and probes Redis again at most once per ``retry_interval`` until it
answers, then logs the recovery.
"""

from __future__ import annotations

import abc
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar

import anyio

__all__ = ["Cache", "MemoryCache", "RedisCache", "create_cache"]

log = logging.getLogger("shopflow.service.cache")
T = TypeVar("T")


class Cache(abc.ABC):
    """What the service needs from a cache; misses and outages look the same to callers."""

    def __init__(self) -> None:
        self.hits = 0
        self.misses = 0
        self.errors = 0

    @abc.abstractmethod
    async def get(self, key: str) -> bytes | None:
        """The cached body, or None on a miss (or when the cache is unreachable)."""

    @abc.abstractmethod
    async def set(self, key: str, value: bytes, ttl: float) -> None:
        """Store ``value`` for ``ttl`` seconds; failures are swallowed (the cache is optional)."""

    @abc.abstractmethod
    async def delete(self, keys: Sequence[str]) -> None:
        """Drop entries made stale by a write (e.g. stock after a checkout)."""

    @abc.abstractmethod
    async def flush(self) -> None:
        """Drop every entry of this service (``POST /admin/cache/flush``)."""

    @abc.abstractmethod
    async def status(self) -> str:
        """``"memory"``, ``"redis"`` or ``"degraded"`` (for ``/health``)."""

    @abc.abstractmethod
    async def aclose(self) -> None:
        """Release connections."""

    def _count(self, value: bytes | None) -> bytes | None:
        if value is None:
            self.misses += 1
        else:
            self.hits += 1
        return value

    def stats(self) -> dict[str, int]:
        return {"hits": self.hits, "misses": self.misses, "errors": self.errors}


class MemoryCache(Cache):
    """Per-process TTL cache; bounded so a long soak cannot grow it without limit."""

    def __init__(self, max_entries: int = 50_000, clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__()
        self._data: dict[str, tuple[float, bytes]] = {}
        self._max_entries = max_entries
        self._clock = clock

    async def get(self, key: str) -> bytes | None:
        entry = self._data.get(key)
        if entry is not None and entry[0] <= self._clock():
            del self._data[key]
            entry = None
        return self._count(None if entry is None else entry[1])

    async def set(self, key: str, value: bytes, ttl: float) -> None:
        if key not in self._data and len(self._data) >= self._max_entries:
            del self._data[next(iter(self._data))]  # oldest insertion first
        self._data[key] = (self._clock() + ttl, value)

    async def delete(self, keys: Sequence[str]) -> None:
        for key in keys:
            self._data.pop(key, None)

    async def flush(self) -> None:
        self._data.clear()

    async def status(self) -> str:
        return "memory"

    async def aclose(self) -> None:
        self._data.clear()


class RedisCache(Cache):
    """Redis through ``redis.asyncio`` with a circuit breaker instead of retries.

    redis-py retries failed commands with backoff by default; for a cache that
    would turn an outage into seconds of latency on every request, so retries
    are off, timeouts are short, and while Redis is down no request waits on
    it: one probe per ``retry_interval`` decides when it is back.
    """

    def __init__(
        self,
        url: str,
        *,
        namespace: str,
        retry_interval: float = 1.0,
        timeout: float = 0.5,
        max_connections: int = 32,
    ) -> None:
        super().__init__()
        try:
            from redis.asyncio import BlockingConnectionPool, Redis
            from redis.asyncio.retry import Retry
            from redis.backoff import NoBackoff
            from redis.exceptions import RedisError
        except ImportError as exc:  # pragma: no cover - depends on the environment
            raise RuntimeError(
                "a Redis URL is configured but the 'redis' package is not installed: "
                "pip install 'pytest-shopflow-perf[redis]'"
            ) from exc
        pool = BlockingConnectionPool.from_url(
            url,
            max_connections=max_connections,
            timeout=timeout,
            socket_timeout=timeout,
            socket_connect_timeout=timeout,
            retry=Retry(NoBackoff(), 0),
        )
        # redis-py types each command as ``Awaitable[Any] | Any``; Any keeps the awaits checkable.
        self._client: Any = Redis.from_pool(pool)
        self._errors: tuple[type[BaseException], ...] = (RedisError, OSError, TimeoutError)
        self._prefix = f"shopflow:{namespace}:"
        self._retry_interval = retry_interval
        # FIFO admission in front of the pool: redis-py's blocking pool wakes waiters unfairly
        # (seconds of tail latency at 400 concurrent lookups, measured), and a pool timeout
        # must never be mistaken for an outage.
        self._slots = anyio.Semaphore(max_connections)
        self._down = False
        self._probing = False
        self._retry_at = 0.0

    def _breaker_open(self) -> bool:
        """True while Redis is down and it is not yet time for (another) probe."""
        return self._down and (self._probing or time.monotonic() < self._retry_at)

    async def _attempt(self, op: Callable[[], Awaitable[T]]) -> tuple[bool, T | None]:
        """Run ``op`` unless the breaker is open; (False, None) when Redis is unusable."""
        if self._breaker_open():
            return False, None
        async with self._slots:
            probe = self._down
            if probe and self._breaker_open():  # opened while this call waited for a slot
                return False, None
            self._probing = self._probing or probe
            try:
                value = await op()
            except self._errors as exc:
                self.errors += 1
                if not self._down:
                    log.warning("Redis cache unavailable (%s): using the database until it returns", exc)
                self._down = True
                self._retry_at = time.monotonic() + self._retry_interval
                return False, None
            finally:
                if probe:
                    self._probing = False
        if self._down:
            log.warning("Redis cache reachable again: caching resumed")
            self._down = False
        return True, value

    async def get(self, key: str) -> bytes | None:
        _, value = await self._attempt(lambda: self._client.get(self._prefix + key))
        return self._count(value)

    async def set(self, key: str, value: bytes, ttl: float) -> None:
        await self._attempt(lambda: self._client.set(self._prefix + key, value, px=max(1, int(ttl * 1000))))

    async def delete(self, keys: Sequence[str]) -> None:
        if keys:
            await self._attempt(lambda: self._client.delete(*(self._prefix + key for key in keys)))

    async def flush(self) -> None:
        async def unlink_all() -> None:
            batch: list[bytes] = []
            async for key in self._client.scan_iter(match=self._prefix + "*", count=500):
                batch.append(key)
                if len(batch) >= 500:
                    await self._client.unlink(*batch)
                    batch.clear()
            if batch:
                await self._client.unlink(*batch)

        await self._attempt(unlink_all)

    async def status(self) -> str:
        ok, _ = await self._attempt(lambda: self._client.ping())
        return "redis" if ok else "degraded"

    async def aclose(self) -> None:
        with contextlib.suppress(*self._errors):
            await self._client.aclose()


def create_cache(redis_url: str | None, *, namespace: str, retry_interval: float = 1.0) -> Cache:
    """Redis when a URL is given, else the in-process cache."""
    if redis_url:
        return RedisCache(redis_url, namespace=namespace, retry_interval=retry_interval)
    return MemoryCache()
