"""FastTransport against real raw-socket servers on 127.0.0.1: bodies, keep-alive, closes, timeouts, the target rule."""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
from typing import Any

import anyio
import httpx
import pytest
from support.engine import run
from support.hostile import Attempts
from support.raw_http import chunked, echo, http_server, ok
from support.slow_servers import read_head, serve

from pytest_shopflow_perf.engine.fast_transport import FastTransport
from pytest_shopflow_perf.engine.transport import TRUNCATED_EXTENSION
from pytest_shopflow_perf.target.policy import TargetPolicy
from pytest_shopflow_perf.target.refused import TargetRefused

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


class NoFallback(httpx.AsyncBaseTransport):
    """Fails the test if the fast transport delegates a request it should have handled."""

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        raise AssertionError(f"delegated {request.method} {request.url}")


def client(transport: FastTransport | None = None, **kwargs: Any) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=transport or FastTransport(NoFallback()), **kwargs)


async def test_content_length_body_and_keep_alive_reuse() -> None:
    with http_server(lambda head, body, i: ok(b"hello %d" % i, headers="X-A: 1\r\n")) as server:
        transport = FastTransport(NoFallback())
        async with client(transport) as c:
            responses = [await c.get(f"{server.url}/p") for _ in range(5)]
    assert [r.content for r in responses] == [b"hello %d" % i for i in range(5)]
    assert all(r.status_code == 200 and r.headers["x-a"] == "1" for r in responses)
    assert responses[0].http_version == "HTTP/1.1"
    assert responses[0].reason_phrase == "OK"
    assert responses[0].extensions["http_version"] == b"HTTP/1.1"
    assert server.connections == 1
    assert transport.connects == 1
    assert transport.delegated == 0


async def test_chunked_body() -> None:
    with http_server(lambda head, body, i: chunked(b"ab", b"c" * 3000, b"d")) as server:
        async with client() as c:
            first, second = await c.get(server.url), await c.get(server.url)
    assert first.content == second.content == b"ab" + b"c" * 3000 + b"d"
    assert server.connections == 1


async def test_body_until_close_and_connection_close_from_server() -> None:
    replies = {
        b"/eof": (b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nall of it", True),
        b"/close": (ok(b"bye", headers="Connection: close\r\n"), True),
    }
    with http_server(lambda head, body, i: replies.get(head.split(b" ")[1], ok())) as server:
        async with client() as c:
            eof = await c.get(f"{server.url}/eof")
            closed = await c.get(f"{server.url}/close")
            after = await c.get(f"{server.url}/next")
    assert (eof.content, closed.content, after.content) == (b"all of it", b"bye", b"hello")
    assert server.connections == 3


async def test_large_body_and_the_body_cap() -> None:
    big = bytes(range(256)) * 4096  # 1 MiB
    with http_server(lambda head, body, i: ok(big)) as server:
        async with client() as c:
            whole = await c.get(server.url)
        async with client(FastTransport(NoFallback(), max_body=1000)) as c:
            capped = await c.get(server.url)
            again = await c.get(server.url, extensions={"max_body": 10})
    assert whole.content == big
    assert TRUNCATED_EXTENSION not in whole.extensions
    assert capped.content == big[:1000]
    assert capped.extensions[TRUNCATED_EXTENSION] is True
    assert again.content == big[:10]
    assert server.connections == 2  # the capped bodies were read to their end: the connection stayed usable


async def test_query_strings_and_non_ascii_paths_go_out_as_httpx_encodes_them() -> None:
    with http_server(lambda head, body, i: ok()) as server:
        async with client() as c:
            response = await c.get(f"{server.url}/café/ü x", params={"q": "a b&c", "z": "ñ"})
    assert server.target() == response.request.url.raw_path == b"/caf%C3%A9/%C3%BC%20x?q=a+b%26c&z=%C3%B1"


async def test_request_bodies_json_content_data_files() -> None:
    with http_server(echo) as server:
        async with client() as c:
            as_json = await c.post(server.url, json={"sku": "ä", "n": 2})
            as_content = await c.put(server.url, content=b"\x00raw")
            as_form = await c.post(server.url, data={"a": "1 2", "b": "x"})
            as_files = await c.post(server.url, files={"f": ("a.txt", b"file body")}, data={"k": "v"})
            empty = await c.post(server.url)
    assert json.loads(as_json.content) == {"sku": "ä", "n": 2}
    assert as_json.headers["x-type"] == "application/json"
    assert as_content.content == b"\x00raw"
    assert as_form.content == b"a=1+2&b=x"
    assert b'name="f"; filename="a.txt"' in as_files.content
    assert b"file body" in as_files.content
    assert as_files.headers["x-type"].startswith("multipart/form-data; boundary=")
    assert empty.content == b""
    assert b"content-length: 0" in server.requests[-1][0].lower()
    assert server.connections == 1


async def test_server_closing_an_idle_connection_is_retried_once_on_a_fresh_one() -> None:
    # The second request on each connection finds it closed without a byte of response (an idle-close race).
    with http_server(lambda head, body, i: ok() if i == 0 else (b"", True)) as server:
        transport = FastTransport(NoFallback())
        async with client(transport) as c:
            first = await c.put(server.url, content=b"one")
            second = await c.put(server.url, content=b"two")
    assert (first.content, second.content) == (b"hello", b"hello")
    assert transport.retries == 1
    assert server.connections == 2
    assert [body for _, body in server.requests] == [b"one", b"two", b"two"]


async def test_a_post_on_an_idle_connection_the_server_closed_is_an_error_never_sent_twice() -> None:
    """The server may have taken the order before it closed: resending could place it twice."""
    with http_server(lambda head, body, i: ok() if i == 0 else (b"", True)) as server:
        transport = FastTransport(NoFallback())
        async with client(transport) as c:
            await c.post(server.url, content=b"one")
            with pytest.raises(httpx.RemoteProtocolError, match="without sending a response"):
                await c.post(server.url, content=b"two")
    assert transport.retries == 0
    assert [body for _, body in server.requests] == [b"one", b"two"]


async def test_a_fresh_connection_closed_without_a_response_is_an_error_not_retried() -> None:
    with http_server(lambda head, body, i: (b"", True)) as server:
        async with client() as c:
            with pytest.raises(httpx.RemoteProtocolError, match="without sending a response"):
                await c.get(server.url)
    assert server.connections == 1


async def test_server_closing_mid_body_or_mid_head_raises() -> None:
    replies = {
        b"/length": (b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nonly this", True),
        b"/chunked": (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nab", True),
        b"/head": (b"HTTP/1.1 200 OK\r\nContent-Le", True),
        b"/garbage": (b"NOT HTTP AT ALL\r\n\r\n", True),
    }
    with http_server(lambda head, body, i: replies[head.split(b" ")[1]]) as server:
        async with client() as c:
            for path in replies:
                with pytest.raises(httpx.RemoteProtocolError):
                    await c.get(f"{server.url}{path.decode()}")


async def test_read_timeout() -> None:
    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_head(reader)
        await asyncio.sleep(5)

    with serve(silent) as url:
        async with client() as c:
            with anyio.fail_after(3), pytest.raises(httpx.ReadTimeout):
                await c.get(url, timeout=httpx.Timeout(5, read=0.2))


async def test_pool_timeout_when_every_connection_is_busy() -> None:
    async def slow(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_head(reader)
        await asyncio.sleep(1)
        writer.write(ok())
        await writer.drain()

    with serve(slow) as url:
        async with client(FastTransport(NoFallback(), max_connections=1)) as c, anyio.create_task_group() as tg:
            tg.start_soon(c.get, url)
            await anyio.sleep(0.1)
            with pytest.raises(httpx.PoolTimeout):
                await c.get(url, timeout=httpx.Timeout(5, pool=0.2))


async def test_connect_timeout() -> None:
    # A listener that never accepts, its backlog filled: the next SYN is dropped and the connect hangs.
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(0)
    port = listener.getsockname()[1]
    fillers = []
    try:
        for _ in range(4):
            filler = socket.socket()
            filler.setblocking(False)
            with contextlib.suppress(BlockingIOError):
                filler.connect(("127.0.0.1", port))
            fillers.append(filler)
        async with client() as c:
            with anyio.fail_after(5), pytest.raises(httpx.ConnectTimeout):
                await c.get(f"http://127.0.0.1:{port}/", timeout=httpx.Timeout(5, connect=0.3))
    finally:
        for s in [*fillers, listener]:
            s.close()


async def test_connection_refused_is_a_connect_error() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    async with client() as c:
        with pytest.raises(httpx.ConnectError):
            await c.get(f"http://127.0.0.1:{port}/")


async def test_a_refused_host_raises_before_any_packet(attempts: Attempts) -> None:
    transport = FastTransport(NoFallback(), TargetPolicy())
    async with client(transport) as c:
        with pytest.raises(TargetRefused):
            await c.get("http://203.0.113.7:8080/")
        with pytest.raises(TargetRefused):
            await c.get("http://shop.example.com/")
    assert attempts.connects == []
    assert attempts.lookups == []
    assert transport.connects == 0


async def test_https_upgrades_expect_and_streamed_uploads_are_delegated() -> None:
    seen: list[str] = []

    def fallback(request: httpx.Request) -> httpx.Response:
        seen.append(f"{request.method} {request.url.scheme}")
        return httpx.Response(200, content=b"from fallback")

    async def upload() -> Any:
        yield b"part"

    with http_server(lambda head, body, i: ok()) as server:
        transport = FastTransport(lambda: httpx.MockTransport(fallback))
        async with client(transport) as c:
            tls = await c.get("https://127.0.0.1:8443/")
            expect = await c.post(server.url, content=b"x", headers={"Expect": "100-continue"})
            upgrade = await c.get(server.url, headers={"Upgrade": "websocket", "Connection": "Upgrade"})
            streamed = await c.post(server.url, content=upload())
            plain = await c.get(server.url)
    assert tls.content == expect.content == upgrade.content == streamed.content == b"from fallback"
    assert plain.content == b"hello"
    assert seen == ["GET https", "POST http", "GET http", "POST http"]
    assert transport.delegated == 4
    assert server.connections == 1


async def test_trace_events_are_the_ones_the_wire_clock_reads() -> None:
    events: list[str] = []

    async def trace(event: str, info: dict[str, Any]) -> None:
        events.append(event)

    with http_server(lambda head, body, i: ok()) as server:
        async with client() as c:
            await c.get(server.url, extensions={"trace": trace})
            first = list(events)
            events.clear()
            await c.get(server.url, extensions={"trace": trace})
    assert first == [
        "connection.connect_tcp.started",
        "connection.connect_tcp.complete",
        "http11.send_request_headers.started",
        "http11.receive_response_body.complete",
    ]
    assert events == ["http11.send_request_headers.started", "http11.receive_response_body.complete"]


async def test_concurrent_requests_share_the_pool() -> None:
    with http_server(lambda head, body, i: ok(head.split(b" ")[1])) as server:
        transport = FastTransport(NoFallback())
        async with client(transport) as c:
            results: dict[int, bytes] = {}

            async def get(n: int) -> None:
                for _ in range(5):
                    results[n] = (await c.get(f"{server.url}/{n}")).content

            async with anyio.create_task_group() as tg:
                for n in range(10):
                    tg.start_soon(get, n)
    assert results == {n: f"/{n}".encode() for n in range(10)}
    assert server.connections == transport.connects <= 10


def test_engine_with_the_fast_transport_records_what_the_default_records() -> None:
    with http_server(lambda head, body, i: ok() if b"/missing" not in head else ok(b"no", "404 Not Found")) as server:

        async def journey(user: Any) -> None:
            await user.client.get("/a")
            await user.client.post("/b", json={"x": 1})
            await user.client.get("/missing")

        results = {
            kind: run(
                journey,
                base_url=server.url,
                users=2,
                iterations=10,
                duration=10,
                target_policy=TargetPolicy(),
                http_transport=kind,
            )
            for kind in ("httpcore", "fast")
        }
    for result in results.values():
        assert result.requests == 30
        assert result.errors == 10
        assert {name: e.requests for name, e in result.endpoints.items()} == {
            "GET /a": 10,
            "POST /b": 10,
            "GET /missing": 10,
        }
    assert "fast_transport_delegated" not in results["fast"].extra
