"""Fixtures for the ShopFlow reference service tests.

Most tests run the app in-process through ``httpx.ASGITransport``, which does
not run the ASGI lifespan, so ``start_service`` enters the app's lifespan
explicitly (database created and seeded, cache connected) and leaves it at
the end (temporary database removed).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette

from pytest_shopflow_perf.service import ServiceConfig, create_app

SMALL = {"products": 300, "users": 40}


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@dataclass
class Running:
    app: Starlette
    client: httpx.AsyncClient

    @property
    def service(self) -> Any:
        return self.app.state.service

    async def login(self, index: int) -> dict[str, str]:
        """Authorization headers of seeded customer ``index``."""
        r = await self.client.post(
            "/api/login", json={"email": f"customer{index}@shopflow.test", "password": f"secret{index}"}
        )
        assert r.status_code == 200, r.text
        return {"Authorization": f"Bearer {r.json()['token']}"}


StartService = Callable[..., AbstractAsyncContextManager[Running]]


@pytest.fixture
def start_service() -> StartService:
    """``async with start_service(config=None, client=("127.0.0.1", 123), **config_fields)``."""

    @asynccontextmanager
    async def start(
        config: ServiceConfig | None = None,
        *,
        client: tuple[str, int] = ("127.0.0.1", 123),
        **fields: Any,
    ) -> AsyncIterator[Running]:
        app = create_app(config or ServiceConfig(**{**SMALL, **fields}))
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app, client=client)
            async with httpx.AsyncClient(transport=transport, base_url="http://shopflow.test") as http:
                yield Running(app, http)

    return start


@pytest.fixture
async def shop(start_service: StartService) -> AsyncIterator[Running]:
    """A small running service (300 products, 40 customers)."""
    async with start_service() as running:
        yield running
