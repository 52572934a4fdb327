"""The target rule for every request and every connection: redirects, absolute URLs, DNS, the fault proxy.

Outside hosts are ``.invalid`` names only; the ``attempts`` fixture records every
getaddrinfo and connect of this process (and refuses any off loopback), so the
tests count attempts instead of trusting the outcome.
"""

from __future__ import annotations

import socket
from typing import Any

import anyio
import httpcore
import httpx
import pytest
from support.engine import profile, run
from support.hostile import Attempts, raw_server, redirect_to, response

from pytest_shopflow_perf.engine.engine import Engine
from pytest_shopflow_perf.engine.transport import MAX_REFUSED_HOSTS, RefusedCount
from pytest_shopflow_perf.faults.actions import service_faults
from pytest_shopflow_perf.faults.run import FaultRun
from pytest_shopflow_perf.reporting.terminal import _notes
from pytest_shopflow_perf.target.guarded import GuardedBackend
from pytest_shopflow_perf.target.policy import TargetError, TargetPolicy, check_target
from pytest_shopflow_perf.target.refused import TargetRefused

LOOPBACK_ONLY = TargetPolicy()


def _refused(result: Any) -> int:
    return int(result.errors_by_kind.get("refused", 0))


# ---- the policy itself ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("host", ["127.0.0.1", "127.3.4.5", "::1", "[::1]", "localhost", "a.b.localhost"])
def test_loopback_spellings_pass_the_request_check(host: str) -> None:
    assert LOOPBACK_ONLY.check_host(host)


@pytest.mark.parametrize(
    "host",
    [
        "shop.invalid",
        "127.0.0.1.invalid",
        "localhost.invalid",
        "localhost.",
        ".localhost",
        "::ffff:10.0.0.1",
        "::ffff:127.0.0.1",
        "0x7f000001",
        "127.1",
        "2130706433",
        "::",
        "0.0.0.0",
        "10.1.2.3",
    ],
)
def test_other_hosts_are_refused_without_resolving(host: str, attempts: Attempts) -> None:
    assert not LOOPBACK_ONLY.check_host(host)
    with pytest.raises(TargetRefused, match="--perf-allow-host"):
        anyio.run(LOOPBACK_ONLY.connect_address, host, 80)
    assert attempts.lookups == []


def test_allowed_hosts_pass_and_are_connected_by_name() -> None:
    policy = TargetPolicy(["shop.test", "10.1.2.3", "api.test:8443"])
    assert policy.check_host("shop.test")
    assert policy.check_host("SHOP.TEST")
    assert policy.check_host("10.1.2.3")
    assert policy.check_host("api.test", 8443)
    assert not policy.check_host("api.test", 80)
    assert anyio.run(policy.connect_address, "shop.test", 80) == "shop.test"


def test_localhost_names_connect_to_the_address_that_was_checked(attempts: Attempts) -> None:
    attempts.names["good.localhost"] = "127.0.0.7"
    policy = TargetPolicy()

    async def twice() -> list[str]:
        return [await policy.connect_address("good.localhost", 80) for _ in range(2)]

    assert anyio.run(twice) == ["127.0.0.7", "127.0.0.7"]
    assert attempts.lookups == ["good.localhost"]  # resolved once, then cached: no second resolution


def test_localhost_name_resolving_off_loopback_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    def getaddrinfo(host: str, port: Any, *args: Any, **kwargs: Any) -> list[Any]:
        assert host == "evil.localhost"
        return [
            (socket.AF_INET, socket.SOCK_STREAM, 6, "", ("127.0.0.1", port)),
            (socket.AF_INET, socket.SOCK_STREAM, 6, "", ("10.1.2.3", port)),
        ]

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    policy = TargetPolicy()
    with pytest.raises(TargetRefused, match=r"10\.1\.2\.3.*--perf-allow-host evil\.localhost"):
        anyio.run(policy.connect_address, "evil.localhost", 80)
    assert not policy.check_host("evil.localhost")  # refused from now on without asking again


# ---- check_target at set-up (defect 3) --------------------------------------------------------------------------


def test_check_target_resolves_localhost_names(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(
        socket,
        "getaddrinfo",
        lambda host, port, *a, **k: [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("10.1.2.3", 80))],
    )
    with pytest.raises(TargetError, match=r"evil\.localhost.*10\.1\.2\.3.*--perf-allow-host evil\.localhost"):
        check_target("http://evil.localhost:8000", [])
    check_target("http://evil.localhost:8000", ["evil.localhost"])  # allowed explicitly: the user vouches for it


def test_check_target_accepts_localhost_resolving_to_loopback(attempts: Attempts) -> None:
    attempts.names["good.localhost"] = "127.0.0.1"
    check_target("http://good.localhost:8000", [])
    with pytest.raises(TargetError, match=r"--perf-allow-host shop\.invalid"):
        check_target("http://127.0.0.1@shop.invalid:8000", [])
    assert attempts.lookups == ["good.localhost"]


# ---- the engine: every request (defects 1 and 2) ----------------------------------------------------------------


def test_redirect_off_loopback_is_refused(attempts: Attempts) -> None:
    async def journey(user: Any) -> None:
        await user.client.get("/start")

    with raw_server(redirect_to("http://shop.invalid/")) as server:
        result = run(journey, base_url=server.url, users=2, duration="1s", target_policy=TargetPolicy())
    assert attempts.off_loopback == []
    assert server.heads, "the loopback target was load-tested"
    assert _refused(result) == result.errors > 0
    assert result.extra["refused"] == {"requests": _refused(result), "hosts": {"shop.invalid": _refused(result)}}


@pytest.mark.parametrize("url", ["http://shop.invalid/x", "http://127.0.0.1@shop.invalid/x", "https://shop.invalid/"])
def test_absolute_urls_in_journeys_are_refused(url: str, attempts: Attempts) -> None:
    async def journey(user: Any) -> None:
        await user.client.get("/ok")
        await user.client.get(url)

    with raw_server(lambda head: response()) as server:
        result = run(journey, base_url=server.url, users=2, duration="1s", target_policy=TargetPolicy())
    assert attempts.off_loopback == []
    assert all(b"shop.invalid" not in head for head in server.heads)
    assert _refused(result) > 0
    assert result.extra["refused"]["hosts"] == {"shop.invalid": _refused(result)}
    assert result.endpoints["GET /ok"].errors == 0


def test_user_transports_get_the_request_check_too() -> None:
    sent: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        sent.append(str(request.url))
        return httpx.Response(200)

    async def journey(user: Any) -> None:
        await user.client.get("/fine")
        await user.client.get("http://shop.invalid/x")

    result = run(journey, users=1, duration="1s", transport_factory=lambda: httpx.MockTransport(handler))
    assert sent
    assert all(u.startswith("http://test/") for u in sent)
    assert _refused(result) == len(sent)


def test_localhost_name_resolving_off_loopback_is_never_connected(
    attempts: Attempts, monkeypatch: pytest.MonkeyPatch
) -> None:
    lookups: list[str] = []

    def getaddrinfo(host: str, port: Any, *args: Any, **kwargs: Any) -> list[Any]:
        lookups.append(host)
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("10.1.2.3", port))]

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)

    async def journey(user: Any) -> None:
        await user.client.get("/")

    result = run(journey, base_url="http://evil.localhost:8080", users=2, duration="1s", target_policy=TargetPolicy())
    assert attempts.connects == []
    assert lookups == ["evil.localhost"]
    assert result.errors == _refused(result) > 0


def test_allowed_host_is_still_permitted(attempts: Attempts) -> None:
    attempts.names["shop.test"] = "127.0.0.1"

    async def journey(user: Any) -> None:
        await user.client.get("/")

    with raw_server(lambda head: response()) as server:
        result = run(
            journey,
            base_url=f"http://shop.test:{server.port}",
            users=1,
            duration="1s",
            target_policy=TargetPolicy(["shop.test"]),
        )
    assert result.requests > 0
    assert result.errors == 0, (result.errors_by_kind, result.extra)
    assert attempts.off_loopback == []
    assert set(attempts.connects) == {"127.0.0.1"}


@pytest.mark.parametrize("http_transport", ["fast", "httpcore"])
def test_every_connection_goes_through_the_policy(attempts: Attempts, http_transport: str) -> None:
    """Fails if an httpx/httpcore upgrade bypasses the guarded network backend (the private ``_pool`` swap)."""
    calls: list[tuple[str, int]] = []

    class Counting(TargetPolicy):
        async def connect_address(self, host: str, port: int) -> str:
            calls.append((host, port))
            return await super().connect_address(host, port)

    async def journey(user: Any) -> None:
        await user.client.get("/", headers={"Connection": "close"})  # a new connection every request

    with raw_server(lambda head: response(headers="Connection: close\r\n")) as server:
        engine = Engine(
            profile(users=2, duration="1s"),
            journey,
            base_url=server.url,
            target_policy=Counting(),
            http_transport=http_transport,
        )
        result = anyio.run(engine.run)
    assert server.accepts >= 10
    assert result.errors == 0
    if http_transport == "httpcore":
        backend = engine.clients.backend
        assert isinstance(backend, GuardedBackend)
        assert backend.connects == server.accepts  # every accepted connection was dialled through the policy
    assert len(calls) == server.accepts + 1  # and the warm-up resolution of the target
    assert set(attempts.connects) == {"127.0.0.1"}


def test_the_default_transport_pool_uses_the_guarded_backend() -> None:
    from pytest_shopflow_perf.engine.clients import shared_ssl_context
    from pytest_shopflow_perf.target.guarded import guarded_transport

    transport = guarded_transport(LOOPBACK_ONLY, shared_ssl_context())
    pool = transport._pool
    assert isinstance(pool, httpcore.AsyncConnectionPool)
    assert isinstance(pool._network_backend, GuardedBackend)


def test_tls_keeps_the_host_name_for_sni() -> None:
    """httpcore passes ``server_hostname`` from the origin, not from the address we dial."""
    import inspect

    from httpcore._async import connection

    source = inspect.getsource(connection.AsyncHTTPConnection._connect)
    assert '"server_hostname": sni_hostname' in source
    assert "or self._origin.host" in source


# ---- reporting ---------------------------------------------------------------------------------------------------


def test_refused_hosts_are_capped_and_noted() -> None:
    count = RefusedCount()
    for index in range(MAX_REFUSED_HOSTS + 5):
        count.add(f"h{index}.invalid")
    count.add("h0.invalid")
    assert count.requests == MAX_REFUSED_HOSTS + 6
    assert len(count.hosts) == MAX_REFUSED_HOSTS
    notes = _notes({"extra": {"refused": {"requests": 3, "hosts": {"shop.invalid": 3}}}})
    assert notes == ["3 requests refused (not an allowed host: shop.invalid); allow with --perf-allow-host"]


def test_refused_requests_are_in_the_table(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
import pytest

async def app(scope, receive, send):
    if scope["type"] != "http":
        return
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"ok"})

async def journey(user):
    await user.client.get("/")
    try:
        await user.client.get("http://shop.invalid/x")
    except Exception:
        pass

@pytest.mark.load(users=1, duration="1s")
def test_outside(load):
    result = load.run(journey, app=app)
    assert result.errors_by_kind["refused"] == result.extra["refused"]["hosts"]["shop.invalid"] > 0
"""
    )
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(
        ["*requests refused (not an allowed host: shop.invalid); allow with --perf-allow-host*"]
    )


def test_the_plugin_refuses_redirects_and_absolute_urls_off_loopback(pytester: pytest.Pytester) -> None:
    """Through the plugin (uvloop, the session's policy); the inner process runs under the suite's netguard."""
    pytester.makepyfile(
        """
import pytest

async def journey(user):
    await user.client.get("/start")  # 302 Location: http://shop.invalid/
    try:
        await user.client.get("http://127.0.0.1@shop.invalid/x")
    except Exception:
        pass

@pytest.mark.load(users=2, duration="1s")
def test_hostile(load):
    result = load.run(journey)
    refused = result.extra["refused"]
    assert refused["hosts"] == {"shop.invalid": refused["requests"]}
    assert result.errors_by_kind == {"refused": refused["requests"]}
"""
    )
    with raw_server(redirect_to("http://shop.invalid/")) as server:
        result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "--perf-base-url", server.url)
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(
        ["*requests refused (not an allowed host: shop.invalid); allow with --perf-allow-host*"]
    )
    assert server.heads
    assert all(b"shop.invalid" not in head for head in server.heads)


# ---- the fault proxy and service faults (rows 5.7, 5.8) ---------------------------------------------------------


def test_fault_proxy_upstream_goes_to_the_checked_address(attempts: Attempts) -> None:
    from pytest_shopflow_perf.faults.proxy import FaultProxy

    with raw_server(lambda head: response()) as server:
        attempts.names["good.localhost"] = "127.0.0.1"
        with (
            FaultProxy(f"http://good.localhost:{server.port}") as proxy,
            httpx.Client(base_url=proxy.url or "", trust_env=False, timeout=5) as client,
        ):
            assert client.get("/").status_code == 200
        assert attempts.lookups.count("good.localhost") == 1
        assert b"Host: good.localhost" in server.heads[0]


def test_fault_proxy_refuses_upstreams_off_loopback(monkeypatch: pytest.MonkeyPatch, attempts: Attempts) -> None:
    from pytest_shopflow_perf.faults.proxy import FaultProxy

    real = socket.getaddrinfo

    def getaddrinfo(host: str, port: Any, *args: Any, **kwargs: Any) -> list[Any]:
        if host == "evil.localhost":
            return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("10.1.2.3", port))]
        return real(host, port, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    for upstream in ("http://evil.localhost:8080", "http://shop.invalid:8080"):
        with FaultProxy(upstream) as proxy, httpx.Client(base_url=proxy.url or "", trust_env=False, timeout=5) as c:
            answer = c.get("/")
            assert answer.status_code == 502
            assert "--perf-allow-host" in answer.json()["detail"]
            assert proxy.stats["upstream_connections"] == 0
    assert attempts.connects == [] or set(attempts.connects) == {"127.0.0.1"}  # only the client's own connects


def test_fault_run_passes_its_policy_to_the_proxy() -> None:
    from pytest_shopflow_perf.faults.spec import latency

    policy = TargetPolicy(["shop.test"])
    with FaultRun([latency("1ms")], policy=policy) as fault_run:
        fault_run.route("http://127.0.0.1:9")
        assert fault_run.proxy is not None
        assert fault_run.proxy.policy is policy


def test_service_faults_checks_its_base_url(attempts: Attempts) -> None:
    with pytest.raises(TargetError, match=r"--perf-allow-host shop\.invalid"):
        service_faults("http://shop.invalid:8080", {"latency": 0.1})
    service_faults("http://127.0.0.1:9", {"latency": 0.1})
    assert attempts.lookups == []
