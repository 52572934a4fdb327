"""The lean client (client="fast") against real servers on 127.0.0.1, recorded as the httpx path records.

Most cases run twice: with ``FastClient`` and with a real ``httpx.AsyncClient`` over
``RecordingTransport`` + ``FastTransport`` (as the engine builds it), and both must see and
record the same: the transport's TLS, redirects, cookies, 1xx, HEAD and 204 are tested that way.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import ssl
from collections.abc import Iterator
from time import perf_counter
from typing import Any

import anyio
import httpx
import pytest
from support.engine import run
from support.hostile import Attempts
from support.raw_http import Server, chunked, http_server, ok
from support.slow_servers import read_head, serve, trickle_body

from pytest_shopflow_perf.engine.fast_client import FastClient, FastClientUnsupported, FastResponse
from pytest_shopflow_perf.engine.fast_transport import FastTransport
from pytest_shopflow_perf.engine.marks import is_recorded
from pytest_shopflow_perf.engine.transport import RecordingTransport, TransportCounters
from pytest_shopflow_perf.engine.user import UserContext
from pytest_shopflow_perf.metrics.recorder import Recorder
from pytest_shopflow_perf.target.policy import TargetPolicy
from pytest_shopflow_perf.target.refused import TargetRefused

pytestmark = pytest.mark.anyio
KINDS = ["fast", "httpx"]


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


class NoFallback(httpx.AsyncBaseTransport):
    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        raise AssertionError(f"delegated {request.method} {request.url}")


def new_context() -> UserContext:
    return UserContext(Recorder(open_model=False, start=perf_counter()), {}, TransportCounters())


def make_client(
    kind: str,
    base_url: str,
    context: UserContext,
    *,
    policy: TargetPolicy | None = None,
    ssl_context: ssl.SSLContext | None = None,
    timeout: float = 5.0,
    max_body: int | None = 16 * 1024 * 1024,
) -> FastClient | httpx.AsyncClient:
    """The client a virtual user gets under client=kind, as Engine.clients.new builds it."""
    policy = policy or TargetPolicy()
    ssl_context = ssl_context or ssl.create_default_context()
    if kind == "fast":
        return FastClient(
            base_url=base_url,
            context=context,
            policy=policy,
            timeout=timeout,
            max_body=max_body,
            counters=context.counters,
            ssl_context=ssl_context,
        )
    inner = FastTransport(NoFallback(), policy, max_body=max_body, counters=context.counters, ssl_context=ssl_context)
    return httpx.AsyncClient(
        base_url=base_url,
        transport=RecordingTransport(inner, context, policy, timeout=timeout, max_body=max_body),
        timeout=timeout,
        follow_redirects=True,
        trust_env=False,
    )


def recorded(context: UserContext) -> dict[str, tuple[int, int, dict[str, int]]]:
    """endpoint -> (requests, errors, errors by kind): what the run's result is made of."""
    return {name: (e.requests, e.errors, dict(e.errors_by_kind)) for name, e in context.recorder.endpoints.items()}


def path_of(head: bytes) -> bytes:
    return head.split(b" ", 2)[1]


def header(head: bytes, name: str) -> str | None:
    found = re.search(rb"(?im)^" + name.encode() + rb":\s*([^\r]*)", head)
    return found.group(1).decode() if found else None


@pytest.fixture(scope="module")
def tls() -> Iterator[tuple[ssl.SSLContext, ssl.SSLContext]]:
    """(server context, client context trusting the server's self-signed CA), from trustme."""
    trustme = pytest.importorskip("trustme")
    ca = trustme.CA()
    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(server)
    client = ssl.create_default_context()
    ca.configure_trust(client)
    return server, client


# ---- bodies and connections ----------------------------------------------------------------


@pytest.mark.parametrize("kind", KINDS)
async def test_content_length_and_chunked_bodies_on_one_keep_alive_connection(kind: str) -> None:
    def reply(head: bytes, body: bytes, i: int) -> bytes:
        if path_of(head) == b"/chunked":
            return chunked(b'{"a"', b": " + b"1" * 3000, b"}")
        return ok(b'{"n": "caf\xc3\xa9"}', headers="Content-Type: application/json; charset=utf-8\r\nX-A: 1\r\n")

    context = new_context()
    with http_server(reply) as server:
        async with make_client(kind, server.url, context) as client:
            plain = await client.get("/p")
            whole = await client.get("/chunked")
            again = await client.get("/p")
    assert plain.status_code == 200
    assert plain.is_success
    assert not plain.is_error
    assert plain.json() == {"n": "café"}
    assert plain.text == '{"n": "café"}'
    assert plain.headers["x-a"] == plain.headers["X-A"] == "1"
    assert (plain.reason_phrase, plain.http_version) == ("OK", "HTTP/1.1")
    assert plain.url == httpx.URL(f"{server.url}/p")
    assert plain.elapsed.total_seconds() > 0
    assert whole.content == b'{"a": ' + b"1" * 3000 + b"}"
    assert again.content == plain.content
    assert server.connections == 1
    assert recorded(context) == {"GET /p": (2, 0, {}), "GET /chunked": (1, 0, {})}
    assert not context.recorder.inflight


@pytest.mark.parametrize("kind", KINDS)
async def test_server_closing_between_requests_and_mid_body(kind: str) -> None:
    replies = {
        b"/close": (ok(b"bye", headers="Connection: close\r\n"), True),
        b"/eof": (b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nall of it", True),
        b"/cut": (b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nonly this", True),
    }
    context = new_context()
    with http_server(lambda head, body, i: replies.get(path_of(head), ok())) as server:
        async with make_client(kind, server.url, context) as client:
            closed = await client.get("/close")
            eof = await client.get("/eof")
            after = await client.get("/next")
            with pytest.raises(httpx.RemoteProtocolError) as cut:
                await client.get("/cut")
    assert (closed.content, eof.content, after.content) == (b"bye", b"all of it", b"hello")
    assert is_recorded(cut.value)
    assert cut.value.request.url == httpx.URL(f"{server.url}/cut")
    assert recorded(context)["GET /cut"] == (1, 1, {"protocol": 1})
    assert server.connections == 3  # /next and /cut share the third


@pytest.mark.parametrize("kind", KINDS)
async def test_an_idle_connection_the_server_closed_is_retried_once(kind: str) -> None:
    # The second request on each connection finds it closed without a byte of response (an idle-close race).
    context = new_context()
    with http_server(lambda head, body, i: ok() if i == 0 else (b"", True)) as server:
        async with make_client(kind, server.url, context) as client:
            first = await client.put("/one", content=b"1")
            second = await client.put("/two", content=b"2")
            with pytest.raises(httpx.RemoteProtocolError):  # never sent twice: the server may have taken it
                await client.post("/three", content=b"3")  # on the reused second connection
            fourth = await client.post("/four", content=b"4")  # a fresh connection
    assert (first.content, second.content, fourth.content) == (b"hello", b"hello", b"hello")
    assert [body for _, body in server.requests] == [b"1", b"2", b"2", b"3", b"4"]
    assert recorded(context) == {
        "PUT /one": (1, 0, {}),
        "PUT /two": (1, 0, {}),
        "POST /three": (1, 1, {"protocol": 1}),
        "POST /four": (1, 0, {}),
    }


@pytest.mark.parametrize("kind", KINDS)
async def test_head_204_304_and_1xx(kind: str) -> None:
    def reply(head: bytes, body: bytes, i: int) -> bytes:
        path = path_of(head)
        if head.startswith(b"HEAD"):
            return b"HTTP/1.1 200 OK\r\nContent-Length: 5000\r\n\r\n"
        if path == b"/204":
            return b"HTTP/1.1 204 No Content\r\n\r\n"
        if path == b"/304":
            return b"HTTP/1.1 304 Not Modified\r\nETag: x\r\n\r\n"
        if path == b"/103":
            return b"HTTP/1.1 103 Early Hints\r\nLink: </a.css>\r\n\r\n" + ok(b"final")
        return ok()

    context = new_context()
    with http_server(reply) as server:
        async with make_client(kind, server.url, context) as client:
            head = await client.head("/")
            no_content = await client.get("/204")
            not_modified = await client.get("/304")
            hints = await client.get("/103")
            after = await client.get("/")
    assert (head.status_code, head.content, head.headers["content-length"]) == (200, b"", "5000")
    assert (no_content.status_code, no_content.content) == (204, b"")
    assert (not_modified.status_code, not_modified.content) == (304, b"")
    assert (hints.status_code, hints.content, "link" in hints.headers) == (200, b"final", False)
    assert after.content == b"hello"
    assert server.connections == 1
    assert recorded(context) == {
        "HEAD /": (1, 0, {}),
        "GET /{id}": (3, 0, {}),  # /204, /304 and /103: collapse_path takes them for ids
        "GET /": (1, 0, {}),
    }


@pytest.mark.parametrize("kind", KINDS)
async def test_large_bodies_and_the_body_cap(kind: str) -> None:
    big = bytes(range(256)) * 4096  # 1 MiB
    context = new_context()
    with http_server(lambda head, body, i: ok(big)) as server:
        async with make_client(kind, server.url, context) as client:
            whole = await client.get("/")
        async with make_client(kind, server.url, context, max_body=1000) as client:
            capped = await client.get("/")
            tiny = await client.get("/", extensions={"max_body": 10})
    assert whole.content == big
    assert (capped.content, tiny.content) == (big[:1000], big[:10])
    assert context.counters.truncated_bodies == 2
    assert recorded(context) == {"GET /": (3, 0, {})}


@pytest.mark.parametrize("kind", KINDS)
async def test_compressed_bodies_and_charsets_decode_as_in_httpx(kind: str) -> None:
    import gzip

    replies = {
        b"/gzip": ok(
            gzip.compress(b'{"z": 1}'), headers="Content-Encoding: gzip\r\nContent-Type: application/json\r\n"
        ),
        b"/latin": ok("café".encode("latin-1"), headers="Content-Type: text/plain; charset=ISO-8859-1\r\n"),
        b"/bogus": ok("café".encode(), headers="Content-Type: text/plain; charset=no-such-codec\r\n"),
    }
    with http_server(lambda head, body, i: replies[path_of(head)]) as server:
        async with make_client(kind, server.url, new_context()) as client:
            packed = await client.get("/gzip")
            latin = await client.get("/latin")
            bogus = await client.get("/bogus")
    assert packed.json() == {"z": 1}
    assert latin.text == "café"
    assert bogus.text == "café"  # unknown charset: utf-8, as httpx


async def test_clients_of_a_run_share_the_default_headers_until_one_changes_its_own() -> None:
    """One user's token never reaches another user's requests through what the run's clients share."""
    from pytest_shopflow_perf.engine.fast_request import SharedRequests

    shared = SharedRequests()

    def user(url: str) -> FastClient:
        context = new_context()
        return FastClient(
            base_url=url,
            context=context,
            policy=TargetPolicy(),
            timeout=5.0,
            max_body=None,
            counters=context.counters,
            ssl_context=ssl.create_default_context(),
            shared=shared,
        )

    with http_server(lambda head, body, i: ok()) as server:
        async with user(server.url) as alice, user(server.url) as bob:
            await alice.get("/cart")
            await bob.get("/cart")  # the same bytes as alice's: both on the defaults
            alice.headers["Authorization"] = "Bearer alice"
            await alice.get("/cart")
            await bob.get("/cart")
            assert "authorization" not in bob.headers
            bob.headers["Authorization"] = "Bearer bob"
            await bob.get("/cart")
            await alice.get("/cart")
    assert [header(head, "authorization") for head, _ in server.requests] == [
        None, None, "Bearer alice", None, "Bearer bob", "Bearer alice",
    ]  # fmt: skip
    assert all(header(head, "accept") == "*/*" for head, _ in server.requests)


async def test_client_header_changes_reach_the_wire_at_once() -> None:
    with http_server(lambda head, body, i: ok()) as server:
        async with make_client("fast", server.url, new_context()) as client:
            await client.get("/")
            client.headers["Authorization"] = "Bearer 1"
            await client.get("/")
            client.headers["authorization"] = "Bearer 2"
            await client.get("/")
            del client.headers["AUTHORIZATION"]
            await client.get("/")
            client.headers = {"X-Only": "yes"}
            await client.get("/", headers={"x-only": "overridden", "X-Extra": "1"})
            assert client.headers["x-only"] == "yes"
            assert "accept" in client.headers
    sent = [
        (header(head, "authorization"), header(head, "x-only"), header(head, "x-extra")) for head, _ in server.requests
    ]
    assert sent == [
        (None, None, None),
        ("Bearer 1", None, None),
        ("Bearer 2", None, None),
        (None, None, None),
        (None, "overridden", "1"),
    ]


async def test_a_host_header_of_the_journeys_is_sent_alone_and_only_to_its_origin() -> None:
    wire = {}
    with http_server(lambda head, body, i: ok()) as other:
        location = f"Location: {other.url}/there\r\n"
        with http_server(lambda head, body, i: ok(b"", "302 Found", location) if i == 0 else ok()) as first:
            for kind in KINDS:
                async with make_client(kind, first.url, new_context()) as client:
                    client.headers["Host"] = "shop.test"
                    await client.get("/here")
                    await client.get("/again", headers={"host": "api.test"})
                wire[kind] = [[h for h in head.split(b"\r\n") if h.lower().startswith(b"host:")]
                              for head, _ in first.requests + other.requests]  # fmt: skip
                first.requests.clear()
                other.requests.clear()
    assert wire["fast"] == wire["httpx"]
    assert wire["fast"][:2] == [[b"Host: shop.test"], [b"host: api.test"]]
    assert wire["fast"][2][0].endswith(other.url.removeprefix("http://").encode())


# ---- URLs and request bodies: the same bytes as httpx ------------------------------------------


def _requests_of(server: Server) -> list[tuple[bytes, list[bytes], bytes]]:
    """(request line, sorted header lines, body) of every request, to compare two clients' bytes."""
    out = []
    for head, body in server.requests:
        line, *headers = head.rstrip(b"\r\n").split(b"\r\n")
        out.append((line, sorted(h.lower() for h in headers), body))
    return out


async def test_urls_params_and_bodies_go_out_as_httpx_sends_them() -> None:
    calls: list[tuple[str, str, dict[str, Any]]] = [
        ("GET", "/plain/path", {}),
        ("GET", "/café/ü x", {"params": {"q": "a b&c", "z": "ñ", "t": True, "n": None, "l": [1, 2]}}),
        ("GET", "search?q=x y", {"params": {"page": 2}}),
        ("GET", "/a/./b/../c", {}),
        ("GET", "/items/%41", {}),
        ("POST", "/json", {"json": {"sku": "ä", "n": [1, 2.5, None]}}),
        ("PUT", "/content", {"content": b"\x00raw"}),
        ("PATCH", "/text", {"content": "é text"}),
        ("POST", "/form", {"data": {"a": "1 2", "b": ["x", "y"], "c": False}}),
        ("POST", "/empty", {}),
        ("DELETE", "/thing/1", {"headers": {"X-Trace": "t1", "accept": "application/json"}}),
        ("OPTIONS", "/", {}),
        ("POST", "/typed", {"json": [1], "headers": {"Content-Type": "application/vnd.x+json"}}),
    ]
    wire: dict[str, Any] = {}
    with http_server(lambda head, body, i: ok()) as server:
        for kind in KINDS:
            async with make_client(kind, f"{server.url}/api", new_context()) as client:
                client.headers["Authorization"] = "Bearer abc"
                for method, url, kwargs in calls:
                    await client.request(method, url, **kwargs)
            wire[kind] = _requests_of(server)
            server.requests.clear()
    assert wire["fast"] == wire["httpx"]
    assert wire["fast"][1][0] == b"GET /api/caf%C3%A9/%C3%BC%20x?q=a+b%26c&z=%C3%B1&t=true&n=&l=1&l=2 HTTP/1.1"


async def test_endpoint_names_as_the_httpx_path_names_them() -> None:
    names = {}
    for kind in KINDS:
        context = new_context()
        with http_server(lambda head, body, i: ok()) as server:
            async with make_client(kind, f"{server.url}/shop/", context) as client:
                await client.get("/products/12345")
                await client.get("products/ord_8f3a2c/items")
                await client.get("/café")
                await client.get(f"{server.url}/absolute?x=1")
                await client.post("/named", extensions={"name": "checkout"})
                await client.get("/q", params={"id": "99"})
        names[kind] = recorded(context)
    assert names["fast"] == names["httpx"]
    assert set(names["fast"]) == {
        "GET /shop/products/{id}",
        "GET /shop/products/{id}/items",
        "GET /shop/café",
        "GET /absolute",
        "checkout",
        "GET /shop/q",
    }


# ---- redirects ----------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", KINDS)
async def test_redirects_same_host_303_and_307(kind: str) -> None:
    def reply(head: bytes, body: bytes, i: int) -> bytes:
        path = path_of(head)
        if path == b"/start":
            return ok(b"", "302 Found", "Location: /middle\r\n")
        if path == b"/middle":
            return ok(b"", "301 Moved Permanently", "Location: /end\r\n")
        if path == b"/post":
            return ok(b"", "303 See Other", "Location: /end\r\n")
        if path == b"/keep":
            return ok(b"", "307 Temporary Redirect", "Location: /end\r\n")
        return ok(body)

    context = new_context()
    with http_server(reply) as server:
        async with make_client(kind, server.url, context) as client:
            followed = await client.get("/start")
            seen = await client.post("/post", json={"a": 1})
            kept = await client.post("/keep", json={"a": 1})
            not_followed = await client.get("/start", follow_redirects=False)
    assert followed.status_code == 200
    assert followed.url == httpx.URL(f"{server.url}/end")
    assert [r.status_code for r in followed.history] == [302, 301]
    assert seen.content == b""
    assert server.requests[4][0].startswith(b"GET /end ")
    assert kept.content == b'{"a":1}'
    assert server.requests[6][0].startswith(b"POST /end ")
    assert not_followed.status_code == 302
    assert recorded(context) == {
        "GET /start": (2, 0, {}),
        "GET /middle": (1, 0, {}),
        "GET /end": (2, 0, {}),
        "POST /post": (1, 0, {}),
        "POST /keep": (1, 0, {}),
        "POST /end": (1, 0, {}),
    }
    assert server.connections == 1


@pytest.mark.parametrize("kind", KINDS)
async def test_a_cross_origin_redirect_drops_authorization(kind: str) -> None:
    context = new_context()
    with (
        http_server(
            lambda head, body, i: ok(header(head, "authorization").encode() if header(head, "authorization") else b"-")
        ) as other,
        http_server(lambda head, body, i: ok(b"", "302 Found", f"Location: {other.url}/there\r\n")) as first,
    ):
        async with make_client(kind, first.url, context) as client:
            client.headers["Authorization"] = "Bearer secret"
            response = await client.get("/here")
    assert response.content == b"-"
    assert header(first.requests[0][0], "authorization") == "Bearer secret"
    assert header(other.requests[0][0], "host") == other.url.removeprefix("http://")
    assert recorded(context) == {"GET /here": (1, 0, {}), "GET /there": (1, 0, {})}


@pytest.mark.parametrize("kind", KINDS)
async def test_a_redirect_off_the_allowed_hosts_is_refused_before_any_packet(kind: str, attempts: Attempts) -> None:
    context = new_context()
    with http_server(lambda head, body, i: ok(b"", "302 Found", "Location: http://203.0.113.9/steal\r\n")) as server:
        async with make_client(kind, server.url, context) as client:
            with pytest.raises(TargetRefused) as refused:
                await client.get("/go")
    assert is_recorded(refused.value)
    assert recorded(context) == {"GET /go": (1, 0, {}), "GET /steal": (1, 1, {"refused": 1})}
    assert context.counters.refused.to_dict() == {"requests": 1, "hosts": {"203.0.113.9": 1}}
    assert [c for c in attempts.connects if "203.0.113" in str(c)] == []


@pytest.mark.parametrize("kind", KINDS)
async def test_too_many_redirects(kind: str) -> None:
    context = new_context()
    with http_server(lambda head, body, i: ok(b"", "302 Found", "Location: /loop\r\n")) as server:
        async with make_client(kind, server.url, context) as client:
            with pytest.raises(httpx.TooManyRedirects) as error:
                await client.get("/loop")
    assert not is_recorded(error.value)  # the client's error, not a request's: the engine counts it on the journey
    assert recorded(context) == {"GET /loop": (21, 0, {})}


# ---- cookies --------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", KINDS)
async def test_cookies_are_stored_sent_back_by_path_and_deleted(kind: str) -> None:
    def reply(head: bytes, body: bytes, i: int) -> bytes:
        path = path_of(head)
        sent = (header(head, "cookie") or "-").encode()
        if path == b"/login":
            return ok(sent, headers="Set-Cookie: session=abc; Path=/\r\nSet-Cookie: scoped=1; Path=/admin\r\n")
        if path == b"/logout":
            return ok(sent, headers="Set-Cookie: session=; Max-Age=0; Path=/\r\n")
        if path == b"/foreign":
            return ok(sent, headers="Set-Cookie: evil=1; Domain=example.com; Path=/\r\n")
        return ok(sent)

    context = new_context()
    with http_server(reply) as server:
        async with make_client(kind, server.url, context) as client:
            before = await client.get("/")
            await client.post("/login")
            home = await client.get("/")
            admin = await client.get("/admin/x")
            assert client.cookies["session"] == "abc"
            await client.get("/foreign")
            await client.get("/logout")
            after = await client.get("/")
            client.cookies.set("manual", "m")
            manual = await client.get("/")
    assert (before.content, home.content, after.content, manual.content) == (b"-", b"session=abc", b"-", b"manual=m")
    assert set(admin.content.decode().split("; ")) == {"session=abc", "scoped=1"}


async def test_the_cookie_header_cache_follows_the_jar() -> None:
    """The lean client asks the stdlib jar again after any change: Set-Cookie, the journey's own, expiry."""
    expiring = "Set-Cookie: short=1; Max-Age=1; Path=/\r\n"
    replies = {b"/short": ok(headers=expiring), b"/secure": ok(headers="Set-Cookie: s=1; Secure; Path=/\r\n")}

    def reply(head: bytes, body: bytes, i: int) -> bytes:
        return replies.get(path_of(head), ok((header(head, "cookie") or "-").encode()))

    with http_server(reply) as server:
        async with make_client("fast", server.url, new_context()) as client:
            await client.get("/short")
            await client.get("/secure")  # never sent back over plain http
            seen = [(await client.get("/")).content]
            client.cookies.set("mine", "2")
            seen.append((await client.get("/")).content)
            client.cookies.delete("mine")
            seen.append((await client.get("/")).content)
            await anyio.sleep(2.1)  # short expires
            seen.append((await client.get("/")).content)
            client.cookies = {"replaced": "3"}
            seen.append((await client.get("/")).content)
    assert seen == [b"short=1", b"short=1; mine=2", b"short=1", b"-", b"replaced=3"]


# ---- timeouts -------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", KINDS)
async def test_read_timeout_and_the_whole_request_deadline(kind: str) -> None:
    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_head(reader)
        await asyncio.sleep(10)

    context = new_context()
    with serve(silent) as url:
        async with make_client(kind, url, context) as client:
            with anyio.fail_after(5), pytest.raises(httpx.ReadTimeout):
                await client.get("/silent", timeout=httpx.Timeout(5, read=0.2))
    with serve(trickle_body) as url:
        async with make_client(kind, url, context, timeout=0.6) as client:
            started = perf_counter()
            with anyio.fail_after(5), pytest.raises(httpx.ReadTimeout, match="deadline"):
                await client.get("/trickle")  # a byte every 0.2 s: no read timeout, the deadline ends it
    assert perf_counter() - started < 4
    assert recorded(context) == {"GET /silent": (1, 1, {"timeout": 1}), "GET /trickle": (1, 1, {"timeout": 1})}
    assert not context.recorder.inflight


@pytest.mark.parametrize("kind", KINDS)
async def test_connection_refused_is_a_connect_error(kind: str) -> None:
    with contextlib.closing(__import__("socket").socket()) as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    context = new_context()
    async with make_client(kind, f"http://127.0.0.1:{port}", context) as client:
        with pytest.raises(httpx.ConnectError):
            await client.get("/")
    assert recorded(context) == {"GET /": (1, 1, {"connect": 1})}


@pytest.mark.parametrize("kind", KINDS)
async def test_a_refused_host_raises_before_any_packet(kind: str, attempts: Attempts) -> None:
    context = new_context()
    async with make_client(kind, "http://shop.example.com", context) as client:
        with pytest.raises(TargetRefused):
            await client.get("/")
        with pytest.raises(TargetRefused):
            await client.get("http://203.0.113.7:8080/x")
    assert attempts.connects == []
    assert attempts.lookups == []
    assert context.counters.refused.requests == 2
    assert recorded(context) == {"GET /": (1, 1, {"refused": 1}), "GET /x": (1, 1, {"refused": 1})}


# ---- TLS -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", KINDS)
async def test_https_natively_with_a_self_signed_certificate(
    kind: str, tls: tuple[ssl.SSLContext, ssl.SSLContext]
) -> None:
    server_context, client_context = tls
    context = new_context()
    with http_server(lambda head, body, i: ok(b"secure " + body), tls=server_context) as server:
        assert server.url.startswith("https://")
        async with make_client(kind, server.url, context, ssl_context=client_context) as client:
            first = await client.get("/a")
            second = await client.post("/b", content=b"x")
        async with make_client(kind, server.url, context) as untrusting:  # the system CAs only
            with pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
                await untrusting.get("/c")
    assert (first.content, second.content) == (b"secure ", b"secure x")
    assert server.connections == 1  # the untrusting client's handshake failed before the server's handler
    assert recorded(context) == {"GET /a": (1, 0, {}), "POST /b": (1, 0, {}), "GET /c": (1, 1, {"connect": 1})}
    assert context.counters.delegated == 0


# ---- status errors, expect, what is not supported ------------------------------------------------------


@pytest.mark.parametrize("kind", KINDS)
async def test_raise_for_status_and_expect(kind: str) -> None:
    context = new_context()
    with http_server(lambda head, body, i: ok(b"nope", "404 Not Found")) as server:
        async with make_client(kind, server.url, context) as client:
            missing = await client.get("/missing")
            with pytest.raises(httpx.HTTPStatusError) as error:
                missing.raise_for_status()
            allowed = await client.get("/allowed", extensions={"expect": (200, 404)})
            with pytest.raises(httpx.HTTPStatusError) as unrecorded:
                allowed.raise_for_status()
    assert error.value.response.status_code == 404
    assert error.value.request.url == httpx.URL(f"{server.url}/missing")
    assert "Client error '404 Not Found'" in str(error.value)
    assert is_recorded(error.value)  # counted as "HTTP 404" already: the engine does not count it again
    assert not is_recorded(unrecorded.value)
    assert recorded(context) == {"GET /missing": (1, 1, {"HTTP 404": 1}), "GET /allowed": (1, 0, {})}


async def test_a_successful_response_returns_itself_from_raise_for_status() -> None:
    with http_server(lambda head, body, i: ok()) as server:
        async with make_client("fast", server.url, new_context()) as client:
            response = await client.get("/")
    assert isinstance(response, FastResponse)
    assert response.raise_for_status() is response


async def test_what_the_lean_client_does_not_do_names_client_httpx() -> None:
    async def upload() -> Any:
        yield b"x"

    with http_server(lambda head, body, i: ok()) as server:
        async with make_client("fast", server.url, new_context()) as client:
            assert isinstance(client, FastClient)
            calls = [
                lambda: client.post("/", files={"f": b"x"}),
                lambda: client.get("/", auth=("u", "p")),
                lambda: client.post("/", content=upload()),
                lambda: client.post("/", content=b"x", headers={"Expect": "100-continue"}),
                lambda: client.get("/", headers={"Upgrade": "websocket"}),
                lambda: client.get("/", extensions={"trace": print}),
            ]
            for call in calls:
                with pytest.raises(FastClientUnsupported, match=r'client="httpx"'):
                    await call()
            for name in ("stream", "send", "build_request", "event_hooks", "mounts"):
                with pytest.raises(FastClientUnsupported, match=r'client="httpx"'):
                    getattr(client, name)("GET", "/") if name in ("stream", "send", "build_request") else getattr(
                        client, name
                    )
            response = await client.get("/")
            with pytest.raises(AttributeError, match=r'client="httpx"'):
                response.iter_bytes  # noqa: B018
            assert not hasattr(client, "auth")
            with pytest.raises(TypeError):
                await client.get("/", json={"no": "body on get"})
    assert len(server.requests) == 1  # nothing unsupported was sent


def test_the_engine_refuses_client_fast_with_a_transport_factory() -> None:
    async def journey(user: Any) -> None:
        await user.client.get("/")

    with pytest.raises(ValueError, match=r'client="httpx"'):
        run(
            journey,
            users=1,
            iterations=1,
            client="fast",
            transport_factory=lambda: httpx.MockTransport(lambda r: httpx.Response(200)),
        )


# ---- the engine: the same journeys give the same result in both modes ---------------------------------------


def _shop_reply(head: bytes, body: bytes, i: int) -> bytes:
    path = path_of(head).split(b"?")[0]
    if path == b"/login":
        return ok(b'{"token": "t"}', headers="Set-Cookie: sid=1; Path=/\r\nContent-Type: application/json\r\n")
    if path == b"/account":
        return ok(b"me") if header(head, "cookie") == "sid=1" else ok(b"who?", "401 Unauthorized")
    if path == b"/old":
        return ok(b"", "301 Moved Permanently", "Location: /products/7\r\n")
    if path.startswith(b"/missing"):
        return ok(b"no", "404 Not Found")
    if path == b"/boom":
        return ok(b"oops", "503 Service Unavailable")
    return ok(b'{"ok": true}', headers="Content-Type: application/json\r\n")


async def _shop_start(user: Any) -> None:
    response = await user.client.post("/login", json={"user": user.id})
    user.state["token"] = response.json()["token"]


async def _browse(user: Any) -> None:
    await user.client.get("/products", params={"page": user.iteration % 3})
    response = await user.client.get("/old")
    user.check(response.status_code == 200, "redirect followed")
    await user.client.get("/account")
    await user.client.get("/missing/1", extensions={"expect": (404,)})
    await user.client.get("/missing/2")


async def _buy(user: Any) -> None:
    response = await user.client.post(
        "/cart", json={"sku": 1}, headers={"Authorization": f"Bearer {user.state['token']}"}
    )
    user.check(response.json()["ok"], "cart ok")
    (await user.client.get("/boom", extensions={"name": "boom"})).raise_for_status()  # recorded, not re-counted


async def _broken(user: Any) -> None:
    await user.client.get("/products")
    raise KeyError("journey bug")


def test_the_same_journeys_record_the_same_in_both_modes() -> None:
    results = {}
    with http_server(_shop_reply) as server:
        for client in ("httpx", "fast"):
            results[client] = run(
                {_browse: 1, _buy: 2, _broken: 1},
                base_url=server.url,
                on_start=_shop_start,
                users=1,  # one user: its seeded choice of journeys is the same sequence in both runs
                iterations=30,
                duration=20,
                target_policy=TargetPolicy(),
                client=client,
            )

    def summary(result: Any) -> Any:
        return (
            result.requests,
            result.errors,
            {name: (e.requests, e.errors, dict(e.errors_by_kind)) for name, e in result.endpoints.items()},
            {name: (c.passes, c.fails) for name, c in result.checks.items()},
            sorted((x["kind"], x["count"]) for x in result.extra.get("exceptions", [])),
            result.generator.client,
        )

    fast, plain = summary(results["fast"]), summary(results["httpx"])
    assert fast[:5] == plain[:5]
    assert (fast[5], plain[5]) == ("fast", "httpx")
    assert fast[4] == [("exception KeyError", plain[4][0][1])]
    assert "GET /products/{id}" in fast[2]
    assert "boom" in fast[2]
    assert results["fast"].extra.get("fast_transport_delegated") is None


def test_requests_still_open_when_the_run_ends_are_written_off() -> None:
    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_head(reader)
        await asyncio.sleep(30)

    async def journey(user: Any) -> None:
        await user.client.get("/hang")

    with serve(silent) as url:
        result = run(journey, base_url=url, users=2, duration=1, graceful_stop="0.2s", target_policy=TargetPolicy(),
                     client="fast")  # fmt: skip
    assert result.extra["unfinished_requests"] == 2
    assert result.endpoints["GET /hang"].errors == 2


def test_the_reference_service_end_to_end(shopflow_service: str) -> None:
    async def login(user: Any) -> None:
        response = await user.client.post(
            "/api/login", json={"email": f"customer{user.id}@shopflow.test", "password": f"secret{user.id}"}
        )
        response.raise_for_status()
        user.client.headers["Authorization"] = f"Bearer {response.json()['token']}"

    async def shop(user: Any) -> None:
        listing = (await user.client.get("/api/products", params={"per_page": 5})).json()
        product = listing["items"][user.iteration % len(listing["items"])]
        detail = await user.client.get(f"/api/products/{product['id']}")
        user.check(detail.json()["id"] == product["id"], "detail matches")
        await user.client.post("/api/cart/items", json={"product_id": product["id"], "quantity": 1})
        cart = await user.client.get("/api/cart")
        user.check(cart.is_success, "cart")
        await user.client.get("/api/search", params={"q": "wireless café"})

    results = {
        client: run(
            shop,
            base_url=shopflow_service,
            on_start=login,
            users=2,
            iterations=6,
            duration=30,
            target_policy=TargetPolicy(),
            client=client,
        )
        for client in ("httpx", "fast")
    }
    for result in results.values():
        assert result.errors == 0, result.endpoints
        assert {name: e.requests for name, e in result.endpoints.items()} == {
            "POST /api/login": 2,
            "GET /api/products": 6,
            "GET /api/products/{id}": 6,
            "POST /api/cart/items": 6,
            "GET /api/cart": 6,
            "GET /api/search": 6,
        }
        assert {name: (c.passes, c.fails) for name, c in result.checks.items()} == {
            "detail matches": (6, 0),
            "cart": (6, 0),
        }


def test_json_bodies_are_compact_like_httpx() -> None:
    body = json.dumps({"a": [1, "é"]}, ensure_ascii=False, separators=(",", ":")).encode()
    assert body == httpx.Request("POST", "http://x", json={"a": [1, "é"]}).read()


def test_on_trio_the_lean_client_says_it_needs_asyncio() -> None:
    pytest.importorskip("trio", minversion="0.31", reason="trio 0.31+ is not installed (anyio 4.12+ needs it)")

    async def main() -> None:
        context = new_context()
        client = make_client("fast", "http://127.0.0.1:9", context)
        with pytest.raises(FastClientUnsupported, match="trio"):
            await client.get("/")
        assert not context.recorder.inflight

    anyio.run(main, backend="trio")
