"""The client each virtual user gets: httpx over the fast transport (or httpcore), or the lean client.

One ``Clients`` per run builds them all, sharing what is immutable across users: the SSL
context, the guarded network backend of the httpcore pools, the merged URLs of the httpx
clients, the run-wide transport counters.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import importlib
import ssl
from typing import TYPE_CHECKING, Any

import httpx

from pytest_shopflow_perf.engine.httpx_client import EngineClient, MergedUrls
from pytest_shopflow_perf.engine.transport import RecordingTransport, TransportCounters

if TYPE_CHECKING:
    from collections.abc import Callable

    from pytest_shopflow_perf.engine.fast_client import FastClient
    from pytest_shopflow_perf.engine.user import UserContext
    from pytest_shopflow_perf.profile.resolve import LoadProfile
    from pytest_shopflow_perf.target.guarded import GuardedBackend
    from pytest_shopflow_perf.target.policy import TargetPolicy

HTTP_TRANSPORTS = ("fast", "httpcore")
_HTTPCORE_MODULES = ("h11", "httpcore._async.http11", "httpcore._backends.anyio", "httpcore._backends.auto")


@functools.cache
def shared_ssl_context() -> ssl.SSLContext:
    """One context for every client: loading the CA bundle costs ~27 ms per client otherwise."""
    return httpx.create_ssl_context()


def event_loop_name() -> str:
    """``uvloop`` or ``asyncio`` (or ``trio``): which loop drives the run, for the result."""
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        return "trio"
    return "uvloop" if type(loop).__module__.startswith("uvloop") else "asyncio"


class Clients:
    """Builds the clients of one run, as the profile (``client``) and the engine's transport say."""

    def __init__(
        self,
        profile: LoadProfile,
        *,
        base_url: str,
        policy: TargetPolicy,
        counters: TransportCounters,
        http_transport: str = "fast",
        transport_factory: Callable[[], httpx.AsyncBaseTransport] | None = None,
    ) -> None:
        if http_transport not in HTTP_TRANSPORTS:
            raise ValueError(f"http_transport must be one of {', '.join(HTTP_TRANSPORTS)}, not {http_transport!r}")
        if profile.client == "fast" and transport_factory is not None:
            raise ValueError(
                'client="fast" (the lean client) sends over its own HTTP/1.1 connections and cannot use a '
                'transport_factory (an ASGI app, a mock transport): use client="httpx" with it'
            )
        self.profile = profile
        self.base_url = base_url
        self.policy = policy
        self.counters = counters
        self.http_transport = http_transport
        self.transport_factory = transport_factory
        self.backend: GuardedBackend | None = None  # the guarded network backend shared by every httpcore pool
        self._merged_urls = MergedUrls()  # relative URLs merged with base_url, shared by every httpx client
        self._shared_requests: Any = None  # fast_request.SharedRequests of the run's lean clients

    @property
    def transport_name(self) -> str:
        """What carried the requests: the lean client's own core, the fast transport, httpcore, or a factory's."""
        if self.transport_factory is not None:
            return "custom"
        return "fast" if self.profile.client == "fast" else self.http_transport

    def warm_up(self) -> None:
        """Import what the first request would import on the clock (~10 ms otherwise)."""
        modules = list(_HTTPCORE_MODULES)
        if self.transport_name == "fast":
            modules += ["httptools", "pytest_shopflow_perf.engine.fast_transport"]  # and fast_wire
        if self.profile.client == "fast":
            modules += ["pytest_shopflow_perf.engine.fast_client"]  # and the modules it imports
        for module in modules:
            with contextlib.suppress(ImportError):
                importlib.import_module(module)

    def new(self, context: UserContext) -> httpx.AsyncClient | FastClient:
        profile = self.profile
        if profile.client == "fast":
            from pytest_shopflow_perf.engine.fast_client import FastClient
            from pytest_shopflow_perf.engine.fast_request import SharedRequests

            if self._shared_requests is None:
                self._shared_requests = SharedRequests()
            return FastClient(
                base_url=self.base_url,
                context=context,
                policy=self.policy,
                timeout=profile.timeout,
                max_body=profile.max_body,
                counters=self.counters,
                ssl_context=shared_ssl_context(),
                shared=self._shared_requests,
            )
        return EngineClient(
            merged_urls=self._merged_urls,
            base_url=self.base_url,
            transport=RecordingTransport(
                self._transport(), context, self.policy, timeout=profile.timeout, max_body=profile.max_body
            ),
            timeout=profile.timeout,
            follow_redirects=True,
            trust_env=False,  # never route load through a proxy from the environment
        )

    def _transport(self) -> httpx.AsyncBaseTransport:
        """Under the httpx client: a factory's, the fast transport (httpcore for the rest), or httpcore's."""
        if self.transport_factory is not None:
            return self.transport_factory()
        from pytest_shopflow_perf.target.guarded import GuardedBackend, guarded_transport

        if self.backend is None:
            self.backend = GuardedBackend(self.policy)
        backend = self.backend
        policy = self.policy
        if self.http_transport == "httpcore":
            return guarded_transport(policy, shared_ssl_context(), backend)
        from pytest_shopflow_perf.engine.fast_transport import FastTransport

        return FastTransport(
            lambda: guarded_transport(policy, shared_ssl_context(), backend),  # built on first use
            policy,
            max_body=self.profile.max_body,
            counters=self.counters,
            ssl_context=shared_ssl_context(),  # https natively too
        )
