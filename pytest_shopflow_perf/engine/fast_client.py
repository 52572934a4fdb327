"""The lean client of a virtual user (``client="fast"``): httpx's request methods, a fraction of the work.

``httpx.AsyncClient`` spends about half its time per request building the ``Request`` and
merging its URL with ``base_url``. ``FastClient`` keeps the request methods of
``httpx.AsyncClient`` (``get``, ``post``, ... ``request``; ``params``, ``headers``, ``json``,
``content``, ``data``, ``cookies``, ``timeout``, ``extensions``) and writes the request bytes
itself: URLs are resolved once and cached (with their endpoint names), the client's headers are
encoded once per change, and a body-less request with default headers is one cached ``bytes``.
No httpx object is built on the normal path; ``FastResponse`` builds them when asked.

It sends through ``FastTransport.roundtrip``, the request core of the httpx transport, and
records every request exactly as ``RecordingTransport`` does on the httpx path (same
``_WireClock``, endpoint names, error kinds, ``expect``, whole-request deadline, target rule,
counters), so results are the same in both modes. Redirects are followed as httpx follows
them, each hop its own recorded request, checked by the target rule before it is sent.
Anything else raises ``FastClientUnsupported``, which names ``client="httpx"``.
"""

from __future__ import annotations

import asyncio
import ssl
import warnings
from collections.abc import Mapping
from time import perf_counter
from typing import TYPE_CHECKING, Any

import httpx

from pytest_shopflow_perf.engine.fast_request import (
    BODY_METHODS,
    DEFAULT_BLOCK,
    DEFAULT_HEADERS,
    PLAIN_PATH,
    REFUSED_HEADERS,
    FastHeaders,
    Route,
    SharedRequests,
    deadline_of,
    encode_body,
    header_bytes,
    header_items,
    is_https_redirect,
    no_body,
    redirect_url,
    same_origin,
    timeouts_of,
)
from pytest_shopflow_perf.engine.fast_response import (
    SHARED_COOKIE_POLICY,
    CookieCache,
    CountingJar,
    FastClientUnsupported,
    FastResponse,
    cookie_header,
    extract_cookies,
    header_value,
    unsupported,
)
from pytest_shopflow_perf.engine.fast_transport import DEFAULT_PORTS, IDEMPOTENT, FastTransport
from pytest_shopflow_perf.engine.marks import mark_recorded
from pytest_shopflow_perf.engine.transport import _transport_error_kind, _WireClock
from pytest_shopflow_perf.target.refused import TargetRefused

if TYPE_CHECKING:
    from pytest_shopflow_perf.engine.transport import TransportCounters
    from pytest_shopflow_perf.engine.user import UserContext
    from pytest_shopflow_perf.target.policy import TargetPolicy

__all__ = ["FastClient", "FastClientUnsupported", "FastHeaders", "FastResponse"]

USE_CLIENT_DEFAULT: Any = httpx.USE_CLIENT_DEFAULT
_NO_EXTENSIONS: dict[str, Any] = {}
MAX_REDIRECTS = 20  # httpx's DEFAULT_MAX_REDIRECTS
REDIRECT_CODES = frozenset((301, 302, 303, 307, 308))
MAX_ROUTES = 4096  # distinct URLs cached per base URL (shared by the run's clients); more and it starts over
# Request bytes cached per client (they hold the client's own headers, e.g. a user's token): a few
# hot URLs; with 10,000 users a per-client cache of every URL a user visits would be most of the RSS.
MAX_HEADS = 16
_NOT_ENCODED: tuple[int, dict[bytes, tuple[bytes, bytes]]] = (-1, {})  # never read: version -1 matches none


class FastClient:
    """The lean client (``client="fast"``): the request methods of ``httpx.AsyncClient``, recorded as it is.

    :param base_url: relative URLs are joined to it as httpx joins them.
    :param context: the virtual user's context (recorder, counters, last endpoint, lateness).
    :param policy: the target rule each request (and each redirect hop) is checked against.
    :param timeout: the default of every phase, and the whole-request deadline (the profile's).
    :param max_body: bytes of a response body kept (the ``max_body`` extension first).
    :param counters: run-wide counters (refused hosts, truncated bodies).
    :param ssl_context: for ``https`` (shared by every user: loading CAs costs ~27 ms a context).
    :param routes: URLs resolved against base URLs, shared by the clients of a run (``Route`` is
        immutable but for its endpoint names, which depend on the path only); one per client if None.
    """

    # No instance __dict__: ~100 B less for each of 10,000 users; what a journey can set is a property.
    __slots__ = (
        "_base",
        "_base_route",
        "_block",
        "_context",
        "_cookie_cache",
        "_cookies",
        "_counters",
        "_encoded",
        "_headers",
        "_heads",
        "_limit",
        "_max_body",
        "_policy",
        "_routes",
        "_shared",
        "_shared_heads",
        "_timeout",
        "_timeouts",
        "_transport",
        "follow_redirects",
        "is_closed",
        "max_redirects",
    )

    def __init__(
        self,
        *,
        base_url: str,
        context: UserContext,
        policy: TargetPolicy,
        timeout: float,
        max_body: int | None,
        counters: TransportCounters,
        ssl_context: ssl.SSLContext,
        follow_redirects: bool = True,
        shared: SharedRequests | None = None,
    ) -> None:
        shared = shared if shared is not None else SharedRequests()
        known = shared.bases.get(base_url)
        if known is None:
            base = httpx.URL(base_url)
            if not base.raw_path.endswith(b"/"):
                base = base.copy_with(raw_path=base.raw_path + b"/")  # as httpx: relative URLs are appended
            known = shared.bases[base_url] = (base, Route.of(base))
        self._base, self._base_route = known
        self._shared = shared
        self._context = context
        self._policy = policy
        self._timeout = timeout
        self._timeouts, self._limit = timeouts_of(timeout, timeout)
        self._max_body = max_body
        self._counters = counters
        self._transport = FastTransport(
            _no_fallback, policy, max_body=max_body, counters=counters, ssl_context=ssl_context
        )
        self.follow_redirects = follow_redirects
        self.max_redirects = MAX_REDIRECTS
        self._headers = FastHeaders.defaults()
        # The jar and its Cookie-header cache, built on first use (a Set-Cookie, client.cookies):
        # ~0.5 KB a user that never gets a cookie.
        self._cookies: httpx.Cookies | None = None
        self._cookie_cache: CookieCache | None = None
        base_key = str(self._base)
        self._routes: dict[str, Route] = shared.routes.setdefault(base_key, {})
        # (method, url) -> (headers version, bytes): the run's for the shared default headers, the
        # client's own (built on first use) once it has headers of its own (a user's token).
        self._shared_heads = shared.heads.setdefault(base_key, {})
        self._heads: dict[tuple[str, str], tuple[int, bytes]] | None = None
        # The client headers, encoded, for a headers version (None: they hold a Host header of their own).
        self._block: tuple[int, bytes | None] = (-1, None)
        self._encoded: tuple[int, dict[bytes, tuple[bytes, bytes]]] = _NOT_ENCODED
        self.is_closed = False

    if not TYPE_CHECKING:  # mypy keeps checking attribute names of this class

        def __getattr__(self, name: str) -> Any:
            if name.startswith("__"):
                raise AttributeError(name)
            unsupported(f"client.{name}")

    async def __aenter__(self) -> FastClient:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        self.is_closed = True
        await self._transport.aclose()

    # ---- attributes of httpx.AsyncClient -------------------------------------------------

    @property
    def base_url(self) -> httpx.URL:
        return self._base

    @property
    def headers(self) -> FastHeaders:
        return self._headers

    @headers.setter
    def headers(self, headers: Mapping[str, str]) -> None:
        fresh = FastHeaders(DEFAULT_HEADERS)  # as httpx: the defaults, then these
        fresh.update(headers)
        fresh.version = self._headers.version + 1
        self._headers = fresh

    @property
    def cookies(self) -> httpx.Cookies:
        return self._jar()

    @cookies.setter
    def cookies(self, cookies: Any) -> None:
        fresh = httpx.Cookies(CountingJar(SHARED_COOKIE_POLICY))
        fresh.update(cookies)
        self._cookies = fresh
        self._cookie_cache = CookieCache()  # a new jar counts its changes from 0 again

    def _jar(self) -> httpx.Cookies:
        cookies = self._cookies
        if cookies is None:
            cookies = self._cookies = httpx.Cookies(CountingJar(SHARED_COOKIE_POLICY))
            self._cookie_cache = CookieCache()
        return cookies

    @property
    def timeout(self) -> httpx.Timeout:
        return httpx.Timeout(**self._timeouts)

    def stream(self, *args: Any, **kwargs: Any) -> Any:
        unsupported("client.stream() (streamed responses)")

    def send(self, *args: Any, **kwargs: Any) -> Any:
        unsupported("client.send() (sending an httpx.Request)")

    def build_request(self, *args: Any, **kwargs: Any) -> Any:
        unsupported("client.build_request() (httpx.Request objects)")

    # ---- request methods -----------------------------------------------------------------

    async def get(self, url: str | httpx.URL, **kwargs: Any) -> FastResponse:
        """``httpx.AsyncClient.get``: ``params``, ``headers``, ``cookies``, ``timeout``, ``extensions``."""
        if kwargs:
            no_body("get", kwargs)
        return await self.request("GET", url, **kwargs)

    async def head(self, url: str | httpx.URL, **kwargs: Any) -> FastResponse:
        if kwargs:
            no_body("head", kwargs)
        return await self.request("HEAD", url, **kwargs)

    async def options(self, url: str | httpx.URL, **kwargs: Any) -> FastResponse:
        if kwargs:
            no_body("options", kwargs)
        return await self.request("OPTIONS", url, **kwargs)

    async def delete(self, url: str | httpx.URL, **kwargs: Any) -> FastResponse:
        if kwargs:
            no_body("delete", kwargs)
        return await self.request("DELETE", url, **kwargs)

    async def post(self, url: str | httpx.URL, **kwargs: Any) -> FastResponse:
        """``httpx.AsyncClient.post``: those of ``get`` and ``json``, ``content``, ``data``."""
        return await self.request("POST", url, **kwargs)

    async def put(self, url: str | httpx.URL, **kwargs: Any) -> FastResponse:
        return await self.request("PUT", url, **kwargs)

    async def patch(self, url: str | httpx.URL, **kwargs: Any) -> FastResponse:
        return await self.request("PATCH", url, **kwargs)

    async def request(
        self,
        method: str,
        url: str | httpx.URL,
        *,
        content: Any = None,
        data: Any = None,
        files: Any = None,
        json: Any = None,
        params: Any = None,
        headers: Any = None,
        cookies: Any = None,
        auth: Any = USE_CLIENT_DEFAULT,
        follow_redirects: Any = USE_CLIENT_DEFAULT,
        timeout: Any = USE_CLIENT_DEFAULT,
        extensions: dict[str, Any] | None = None,
    ) -> FastResponse:
        """Send one request (and its redirects), as ``httpx.AsyncClient.request``."""
        if files is not None:
            unsupported("files= (multipart uploads)")
        if auth is not USE_CLIENT_DEFAULT and auth is not None:
            unsupported("auth=")
        if cookies is not None:
            warnings.warn(  # as httpx does, word for word
                "Setting per-request cookies=<...> is being deprecated, because the expected behaviour on "
                "cookie persistence is ambiguous. Set cookies directly on the client instance instead.",
                DeprecationWarning,
                stacklevel=2,
            )
        method = method.upper()
        route = self._route(url, params)
        if content is None and data is None and json is None:
            body = body_type = None
        else:
            body, body_type = encode_body(content, data, json)  # as httpx: content, else data (form), else json

        if extensions is None:
            extensions = _NO_EXTENSIONS  # only read, never written
        elif "trace" in extensions or "sni_hostname" in extensions:
            unsupported("the trace and sni_hostname extensions")
        explicit = extensions.get("timeout")
        if explicit is not None:
            timeouts, limit = explicit, deadline_of(explicit, self._timeout)
        elif timeout is USE_CLIENT_DEFAULT:
            timeouts, limit = self._timeouts, self._limit
        else:
            timeouts, limit = timeouts_of(timeout, self._timeout)
        follow = self.follow_redirects if follow_redirects is USE_CLIENT_DEFAULT else bool(follow_redirects)

        extra = None if headers is None else self._request_headers(headers)
        history: list[FastResponse] | None = None
        drop_auth = off_origin = False
        while True:
            data_bytes = self._encode(method, url, route, extra, body, body_type, cookies, drop_auth, off_origin)
            response = await self._send(method, route, data_bytes, extensions, timeouts, limit)
            if not follow or response.status_code not in REDIRECT_CODES:
                break
            location = header_value(response.raw_headers, b"location")
            if location is None:
                break
            # The next hop, as httpx builds it (_build_redirect_request): method, URL, headers, body.
            current = route.url()
            next_url = redirect_url(current, location, method)
            status = response.status_code
            if method not in ("HEAD", "GET") and (status in (302, 303) or (status == 301 and method == "POST")):
                body, method = None, "GET"  # Content-Type stays, as in httpx; the length goes
                if extra is not None:
                    extra.pop(b"content-length", None)
            if not same_origin(next_url, current):
                if not is_https_redirect(current, next_url):
                    drop_auth = True  # and for every later hop, as httpx copies the headers on
                off_origin = True  # a Host header of the journey's stays on its origin
            url = str(next_url)
            route = Route.of(next_url)
            cookies = None  # the client's jar decides the next hop's cookies
            if history is None:
                history = []
            response.history = list(history)
            history.append(response)
            if len(history) > self.max_redirects:
                raise httpx.TooManyRedirects(
                    "Exceeded maximum allowed redirects.", request=httpx.Request(method, next_url)
                )
        if history is not None:
            response.history = history
        return response

    # ---- building the request ------------------------------------------------------------

    def _route(self, url: str | httpx.URL, params: Any) -> Route:
        if isinstance(url, str):
            route = self._routes.get(url)
            if route is None:
                if len(self._routes) >= MAX_ROUTES:
                    self._routes.clear()
                route = self._routes[url] = self._resolve(url)
        else:
            route = Route.of(self._merge_url(url))
        if params is None:
            return route
        if b"?" not in route.target:  # the query is the params' alone, in every httpx version
            query = str(httpx.QueryParams(params))
            if not query:
                return route
            return route.with_query(query.encode("ascii"))
        # With a query of its own, httpx 0.28 merges the params into it and 0.29 replaces it: ask httpx.
        return Route.of(httpx.Request("GET", route.url(), params=httpx.QueryParams(params)).url)

    def _resolve(self, url: str) -> Route:
        base = self._base_route
        if PLAIN_PATH.match(url) and "/." not in url:  # appended to the base path, no re-encoding needed
            rest = url[1:]
            return Route(base.scheme, base.host, base.check_port, base.netloc, base.target + rest.encode("ascii"),
                         base.path + rest)  # fmt: skip
        return Route.of(self._merge_url(httpx.URL(url)))

    def _merge_url(self, url: httpx.URL) -> httpx.URL:
        if url.is_relative_url:  # httpx's _merge_url
            return self._base.copy_with(raw_path=self._base.raw_path + url.raw_path.lstrip(b"/"))
        return url

    def _client_headers(self) -> dict[bytes, tuple[bytes, bytes]]:
        """The client's headers as bytes, encoded once per change (callers copy before they change it)."""
        headers = self._headers
        version, encoded = self._encoded
        if version != headers.version:
            encoded = headers.encoded()
            self._encoded = (headers.version, encoded)
        return encoded

    def _request_headers(self, headers: Any) -> dict[bytes, tuple[bytes, bytes]]:
        merged = dict(self._client_headers())
        for name, value in header_items(headers):
            raw_name, raw_value = header_bytes(name), header_bytes(value)
            lower = raw_name.lower()
            key = lower.decode("latin-1")
            if key in REFUSED_HEADERS and (key != "expect" or raw_value.strip().lower() == b"100-continue"):
                unsupported(REFUSED_HEADERS[key])
            merged[lower] = (raw_name, raw_value)
        return merged

    def _encode(
        self,
        method: str,
        url: str | httpx.URL,
        route: Route,
        extra: dict[bytes, tuple[bytes, bytes]] | None,
        body: bytes | None,
        body_type: bytes | None,
        cookies: Any,
        drop_auth: bool,
        off_origin: bool,
    ) -> bytes:
        """The request's bytes: request line, Host, headers, Cookie, body headers, body."""
        cookie_cache = self._cookie_cache
        jar = cookie_cache is not None and self._cookies is not None and cookie_cache.any(self._cookies)
        simple = extra is None and body is None and cookies is None and not jar and not drop_auth and not off_origin
        headers = self._headers
        if simple and isinstance(url, str):
            heads = self._shared_heads if headers.shared else self._heads
            cached = heads.get((method, url)) if heads is not None else None
            if cached is not None and cached[0] == headers.version:
                return cached[1]
        version, block = self._block
        if headers.shared:
            block = DEFAULT_BLOCK
        elif version != headers.version:
            encoded = self._client_headers()
            block = None if b"host" in encoded else b"".join(b"%s: %s\r\n" % pair for pair in encoded.values())
            self._block = (headers.version, block)
        if extra is None and not drop_auth and block is not None:
            parts = [method.encode("ascii"), b" ", route.target, b" HTTP/1.1\r\nHost: ", route.netloc, b"\r\n", block]
            merged = None
        else:  # headers of this request, a redirect that drops some, or a Host header of the journey's
            merged = dict(extra if extra is not None else self._client_headers())
            if drop_auth:
                merged.pop(b"authorization", None)
            host = merged.pop(b"host", None)
            # A Host of the journey's, but on a redirect off the first origin (httpx sets the new one then).
            name, netloc = host if host is not None and not off_origin else (b"Host", route.netloc)
            parts = [method.encode("ascii"), b" ", route.target, b" HTTP/1.1\r\n", name, b": ", netloc, b"\r\n"]
            parts.append(b"".join(b"%s: %s\r\n" % pair for pair in merged.values()))
        if (jar or cookies is not None) and (merged is None or b"cookie" not in merged):
            if cookies is not None:  # httpx merges them into a copy of the client's jar for this request
                source = httpx.Cookies(self._cookies)
                source.update(cookies)
                cookie = cookie_header(source, route.full, method)
            else:
                jar_cookies = self._cookies
                assert cookie_cache is not None  # there are cookies: the jar and its cache were built
                assert jar_cookies is not None
                cookie = cookie_cache.header(jar_cookies, route.full, method)
            if cookie:
                parts += (b"Cookie: ", cookie.encode("latin-1"), b"\r\n")
        if body is not None:
            if merged is None or b"content-length" not in merged:
                parts.append(b"Content-Length: %d\r\n" % len(body))
            elif merged[b"content-length"][1].strip() != str(len(body)).encode():
                raise httpx.LocalProtocolError(
                    f"request body is {len(body)} bytes, its Content-Length header says otherwise"
                )
            if body_type is not None and (merged is None or b"content-type" not in merged):
                parts += (b"Content-Type: ", body_type, b"\r\n")
            parts += (b"\r\n", body)
        else:
            if method in BODY_METHODS and (merged is None or b"content-length" not in merged):
                parts.append(b"Content-Length: 0\r\n")
            if body_type is not None and (merged is None or b"content-type" not in merged):
                parts += (b"Content-Type: ", body_type, b"\r\n")  # a redirect turned the request into a GET
            parts.append(b"\r\n")
        data = b"".join(parts)
        if simple and isinstance(url, str):
            if headers.shared:
                heads, limit = self._shared_heads, MAX_ROUTES
            else:
                heads, limit = self._heads, MAX_HEADS
                if heads is None:
                    heads = self._heads = {}
            if len(heads) >= limit:
                heads.clear()
            heads[(method, url)] = (headers.version, data)
        return data

    # ---- sending and recording ---------------------------------------------------------------

    async def _send(
        self,
        method: str,
        route: Route,
        data: bytes,
        extensions: dict[str, Any],
        timeouts: Mapping[str, float | None],
        limit: float,
    ) -> FastResponse:
        """One request on the wire, recorded as RecordingTransport records it."""
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            unsupported("the lean client on an event loop other than asyncio or uvloop (trio)")
        context = self._context
        name = extensions.get("name") or route.name(method)
        clock = _WireClock(name, perf_counter(), None)
        clock.deadline = clock.start + limit
        context.recorder.inflight.add(clock)
        try:
            if not self._policy.check_host(route.host, route.check_port):
                raise TargetRefused(route.host)
            if route.scheme not in DEFAULT_PORTS:
                raise httpx.UnsupportedProtocol(f"Request URL has an unsupported protocol '{route.scheme}://'.")
            loop_deadline = loop.time() + limit
            status, reason, headers, body, truncated, version = await self._transport.roundtrip(
                route.key,
                data,
                head=method == "HEAD",
                retry=method in IDEMPOTENT,
                max_body=extensions.get("max_body", self._max_body),
                timeouts=timeouts,
                clock=clock,
                deadline=loop_deadline,
                limit=limit,
            )
        except Exception as exc:
            if isinstance(exc, TargetRefused):
                self._counters.refused.add(exc.host)
            clock.finish(context, _transport_error_kind(exc))
            mark_recorded(exc)
            if isinstance(exc, httpx.RequestError):
                try:
                    exc.request  # noqa: B018 - set by whoever raised it?
                except RuntimeError:
                    exc.request = httpx.Request(method, route.url())
            raise
        expect = extensions.get("expect")
        error = None
        if (status not in expect) if expect else status >= 400:
            error = f"HTTP {status}"
        if truncated:
            self._counters.truncated_bodies += 1
        clock.finish(context, error)
        extract_cookies(self._jar, route.full, method, headers)
        return FastResponse(status, reason, headers, body, version, clock.end - clock.start, method, route, error)


def _no_fallback() -> httpx.AsyncBaseTransport:
    raise AssertionError("the lean client never delegates")  # pragma: no cover - roundtrip has no fallback
