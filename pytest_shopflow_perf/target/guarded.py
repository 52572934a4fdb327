"""The engine's HTTP transport, whose every TCP connection goes to an address the target policy checked.

The per-request host check (``RecordingTransport``) stops requests to refused
hosts; this closes the gap between checking a name and connecting to it: the
network backend asks the policy for the address, and connects to exactly that
one (a localhost-family name is resolved once, every address must be loopback,
no second resolution can point elsewhere). TLS still verifies and sends SNI for
the original host name: httpcore passes ``server_hostname`` separately.
"""

from __future__ import annotations

import typing
from collections.abc import Iterable

import httpcore
import httpx

from pytest_shopflow_perf.target.policy import TargetPolicy

# httpx's defaults (httpx.AsyncHTTPTransport() without limits=)
MAX_CONNECTIONS = 100
MAX_KEEPALIVE_CONNECTIONS = 20
KEEPALIVE_EXPIRY_S = 5.0


class GuardedBackend(httpcore.AsyncNetworkBackend):
    """An httpcore network backend that connects only to addresses the policy returns."""

    def __init__(self, policy: TargetPolicy, inner: httpcore.AsyncNetworkBackend | None = None) -> None:
        self.policy = policy
        self.inner = inner if inner is not None else httpcore.AnyIOBackend()
        self.connects = 0  # connections opened through the policy (a wiring check for tests)

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        try:
            address = await self.policy.connect_address(host, port)
        except OSError as exc:  # the name did not resolve
            raise httpcore.ConnectError(str(exc)) from exc
        self.connects += 1
        try:
            return await self.inner.connect_tcp(
                address, port, timeout=timeout, local_address=local_address, socket_options=socket_options
            )
        except httpcore.ConnectError:
            for other in self.policy.other_addresses(host, port, address):  # checked too: loopback only
                try:
                    return await self.inner.connect_tcp(
                        other, port, timeout=timeout, local_address=local_address, socket_options=socket_options
                    )
                except httpcore.ConnectError:
                    continue
            raise

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        return await self.inner.connect_unix_socket(path, timeout=timeout, socket_options=socket_options)

    async def sleep(self, seconds: float) -> None:
        await self.inner.sleep(seconds)


def guarded_transport(
    policy: TargetPolicy, ssl_context: typing.Any, backend: GuardedBackend | None = None
) -> httpx.AsyncHTTPTransport:
    """``httpx.AsyncHTTPTransport(verify=ssl_context)`` whose pool connects through ``GuardedBackend``.

    httpx has no public way to pass a network backend, so the transport's pool
    (``_pool``, pinned httpx>=0.27,<0.30) is replaced by one built with httpcore's
    public ``network_backend=``; tests/test_target_policy.py fails if an upgrade breaks this.
    """
    transport = httpx.AsyncHTTPTransport(verify=ssl_context)
    transport._pool = httpcore.AsyncConnectionPool(
        ssl_context=ssl_context,
        max_connections=MAX_CONNECTIONS,
        max_keepalive_connections=MAX_KEEPALIVE_CONNECTIONS,
        keepalive_expiry=KEEPALIVE_EXPIRY_S,
        http1=True,
        http2=False,
        network_backend=backend if backend is not None else GuardedBackend(policy),
    )
    return transport
