"""EngineClient against a stock httpx.AsyncClient, request by request: the trims change no result.

These fail first when an httpx upgrade changes the private methods the trims replace.
"""

from __future__ import annotations

import gzip
import inspect
import json
from collections.abc import Callable
from typing import Any

import anyio
import httpx
import pytest

from pytest_shopflow_perf.engine import httpx_client
from pytest_shopflow_perf.engine.httpx_client import EngineClient, MergedUrls

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def shop(request: httpx.Request) -> httpx.Response:
    """A small app with every case the trims touch: cookies, redirects, encoded bodies, auth, query strings."""
    path = request.url.path.removeprefix("/api")
    echo = {
        "url": str(request.url),
        "cookie": request.headers.get("cookie"),
        "authorization": request.headers.get("authorization"),
        "method": request.method,
        "body": request.content.decode(),
    }
    if path == "/login":
        return httpx.Response(200, headers={"Set-Cookie": "session=abc; Path=/"}, json=echo)
    if path == "/logout":
        return httpx.Response(200, headers={"Set-Cookie": "session=; Max-Age=0; Path=/"}, json=echo)
    if path == "/moved":
        return httpx.Response(302, headers={"Location": "/landing?from=moved"})
    if path == "/gzip":
        return httpx.Response(
            200, headers={"Content-Encoding": "gzip"}, content=gzip.compress(json.dumps(echo).encode())
        )
    return httpx.Response(200, json=echo)


Step = Callable[[httpx.AsyncClient], Any]

STEPS: list[tuple[str, Step]] = [
    ("relative", lambda c: c.get("/products/7")),
    ("same relative again", lambda c: c.get("/products/7")),
    ("params", lambda c: c.get("/search", params={"q": "shoe", "page": 2})),
    ("absolute", lambda c: c.get("http://shop.test/other")),
    ("url object", lambda c: c.get(httpx.URL("/as-url"))),
    ("non-ascii", lambda c: c.get("/produkte/größe")),
    ("set cookie", lambda c: c.get("/login")),
    ("cookie sent back", lambda c: c.get("/cart")),
    ("redirect", lambda c: c.get("/moved")),
    ("content-encoding", lambda c: c.get("/gzip")),
    ("post json", lambda c: c.post("/cart/items", json={"id": 1})),
    ("basic auth", lambda c: c.get("/private", auth=("user", "secret"))),
    ("delete cookie", lambda c: c.get("/logout")),
    ("after logout", lambda c: c.get("/cart")),
]


def observed(response: httpx.Response) -> dict[str, Any]:
    return {
        "status": response.status_code,
        "url": str(response.url),
        "content": response.content,
        "text": response.text,
        "json": response.json() if response.content[:1] == b"{" else None,
        "headers": sorted(response.headers.multi_items()),
        "history": [(r.status_code, str(r.url)) for r in response.history],
        "is_closed": response.is_closed,
        "is_stream_consumed": response.is_stream_consumed,
        "encoding": response.encoding,
        "request_headers": sorted(response.request.headers.multi_items()),
    }


async def run_steps(client: httpx.AsyncClient) -> list[tuple[str, dict[str, Any], dict[str, str]]]:
    out = []
    async with client:
        for name, step in STEPS:
            response = await step(client)
            if isinstance(client, EngineClient) and "content-encoding" not in response.headers:
                assert response.elapsed.total_seconds() >= 0  # stock httpx leaves it unset for MockTransport's bodies
            out.append((name, observed(response), dict(client.cookies)))
    return out


async def test_every_step_matches_a_stock_client() -> None:
    kwargs: dict[str, Any] = {"base_url": "http://shop.test/api", "follow_redirects": True}
    stock = await run_steps(httpx.AsyncClient(transport=httpx.MockTransport(shop), **kwargs))
    trimmed = await run_steps(EngineClient(transport=httpx.MockTransport(shop), **kwargs))
    assert [name for name, _, _ in trimmed] == [name for name, _ in STEPS]
    for (name, want, want_cookies), (_, got, got_cookies) in zip(stock, trimmed, strict=True):
        assert got == want, name
        assert got_cookies == want_cookies, name
    cookies_by_step = {name: cookies for name, _, cookies in trimmed}
    assert cookies_by_step["set cookie"] == {"session": "abc"}
    assert cookies_by_step["after logout"] == {}


async def test_urls_are_merged_once_per_base_url_and_follow_a_new_base_url() -> None:
    shared = MergedUrls()
    first = EngineClient(merged_urls=shared, base_url="http://a.test/v1", transport=httpx.MockTransport(shop))
    second = EngineClient(merged_urls=shared, base_url="http://a.test/v1", transport=httpx.MockTransport(shop))
    async with first, second:
        one = (await first.get("/x")).request.url
        table = shared.table(first.base_url)
        merged = table["/x"]
        two = (await second.get("/x")).request.url
        assert table["/x"] is merged  # the second client reused the first one's merge
        assert len(table) == 1
        first.base_url = "http://b.test/v2"
        moved = (await first.get("/x")).request.url
    assert str(one) == str(two) == "http://a.test/v1/x"
    assert str(moved) == "http://b.test/v2/x"
    assert str(shared.table(first.base_url)["/x"]) == "http://b.test/v2/x"


async def test_the_cache_is_bounded_and_stays_correct_past_its_bound(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(httpx_client, "MERGED_URLS_LIMIT", 3)
    shared = MergedUrls()
    client = EngineClient(merged_urls=shared, base_url="http://a.test", transport=httpx.MockTransport(shop))
    async with client:
        urls = [str((await client.get(f"/p/{i}")).request.url) for i in range(10)]
    assert urls == [f"http://a.test/p/{i}" for i in range(10)]
    assert len(shared.table(client.base_url)) == 3


async def test_cookies_set_on_the_client_keep_the_trim_and_are_sent() -> None:
    client = EngineClient(base_url="http://a.test", transport=httpx.MockTransport(shop))
    client.cookies = {"pref": "dark"}
    async with client:
        echo = (await client.get("/cart")).json()
        await client.get("/login")
    assert echo["cookie"] == "pref=dark"
    assert type(client.cookies).__name__ == "_ReplyCookies"
    assert dict(client.cookies) == {"pref": "dark", "session": "abc"}


async def test_a_response_streamed_by_the_transport_is_still_read_and_timed() -> None:
    class Streamed(httpx.AsyncByteStream):
        async def __aiter__(self) -> Any:
            for part in (b"a", b"b", b"c"):
                await anyio.sleep(0)
                yield part

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, stream=Streamed())

    async with EngineClient(transport=httpx.MockTransport(handler)) as client:
        response = await client.get("http://a.test/")
    assert response.content == b"abc"
    assert response.is_closed
    assert response.elapsed.total_seconds() >= 0


def test_the_httpx_internals_the_trims_replace_are_still_there() -> None:
    """An httpx upgrade that renames or reshapes these must fail here, not silently skip a trim."""
    from httpx._client import BoundAsyncStream
    from httpx._exceptions import request_context

    def params(function: Any) -> list[str]:
        return list(inspect.signature(function).parameters)

    assert params(httpx.AsyncClient._send_single_request) == ["self", "request"]
    assert params(httpx.AsyncClient._send_handling_auth) == ["self", "request", "auth", "follow_redirects", "history"]
    assert params(httpx.AsyncClient._send_handling_redirects) == ["self", "request", "follow_redirects", "history"]
    assert params(httpx.AsyncClient._merge_url) == ["self", "url"]
    assert params(httpx.AsyncClient._transport_for_url) == ["self", "url"]
    assert params(BoundAsyncStream) == ["stream", "response", "start"]
    assert callable(request_context)
    client = httpx.AsyncClient()
    for attribute in ("_base_url", "_cookies", "_default_encoding"):
        assert hasattr(client, attribute), attribute
    source = inspect.getsource(httpx.AsyncClient._send_single_request)
    for needed in ("extract_cookies", "BoundAsyncStream", "default_encoding", "request_context"):
        assert needed in source, f"httpx's _send_single_request no longer does {needed}: re-check EngineClient"


async def test_no_auth_flow_is_the_one_the_trim_skips() -> None:
    """httpx.Auth() yields the request once and ignores the response: what EngineClient relies on."""
    request = httpx.Request("GET", "http://a.test/")
    flow = httpx.Auth().async_auth_flow(request)
    assert await flow.__anext__() is request
    with pytest.raises(StopAsyncIteration):
        await flow.asend(httpx.Response(200))


async def test_over_the_fast_transport_and_a_real_socket_it_matches_a_stock_client() -> None:
    """The engine's own path: bodies the fast transport holds in memory, gzip from a server, cookies."""
    import asyncio

    from support.slow_servers import read_head, serve

    from pytest_shopflow_perf.engine.fast_transport import FastTransport

    zipped = gzip.compress(b'{"zipped": true}')

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            head = await read_head(reader)
            if b" /gzip " in head:
                extra, body = b"Content-Encoding: gzip\r\n", zipped
            elif b" /login " in head:
                extra, body = b"Set-Cookie: session=abc; Path=/\r\n", b"{}"
            else:
                cookie = b"cookie: session=abc" in head.lower()
                extra, body = b"", b'{"cookie": %s}' % (b"true" if cookie else b"false")
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n%s\r\n%s" % (len(body), extra, body))
            await writer.drain()

    async def journey(client: httpx.AsyncClient) -> list[Any]:
        async with client:
            seen = []
            for path in ("/cart", "/gzip", "/login", "/cart"):
                response = await client.get(path)
                seen.append((path, response.json(), response.is_closed, dict(client.cookies)))
            return seen

    with serve(handler) as url:
        stock = await journey(httpx.AsyncClient(base_url=url, transport=FastTransport(httpx.AsyncHTTPTransport())))
        trimmed = await journey(EngineClient(base_url=url, transport=FastTransport(httpx.AsyncHTTPTransport())))
    assert trimmed == stock
    assert [json_body for _, json_body, _, _ in trimmed] == [
        {"cookie": False},
        {"zipped": True},
        {},
        {"cookie": True},
    ]
