"""The virtual user's ``httpx.AsyncClient``, without the per-request work that changes no result.

``user.client`` stays a real ``httpx.AsyncClient`` (every httpx feature works); this
subclass only skips work that a load run pays on every request for nothing. Measured with
py-spy on the engine's default path (httpx over the fast transport, uvloop, nginx, 50 users),
share of the generator's CPU before the trims:

- merging a relative URL with ``base_url`` (two URL parses, a copy and httpx's IPv4 check of
  the host): 16.5 %. Merged URLs are cached per base URL, shared by every client of a run
  (``httpx.URL`` is immutable), bounded so that journeys inventing paths cannot grow it;
- cookie extraction on every response, even without ``Set-Cookie`` (a ``urllib`` request and
  response adapter, ``email.message`` headers): 12 %. The jar is only consulted when a
  response sets a cookie;
- reading a body the transport already holds in memory through httpx's stream layers: 6.5 %.
  An in-memory body without ``Content-Encoding`` becomes the response's content at once
  (``elapsed``, ``is_closed`` and ``is_stream_consumed`` set as httpx sets them);
- the auth flow, an async generator per request, when there is no auth (``httpx.Auth()``,
  the flow that yields the request once and ignores the response).

These replace private methods of httpx (``_merge_url``, ``_send_single_request``,
``_send_handling_auth``): httpx is pinned ``<0.30`` and tests/unit/engine/test_httpx_client.py
compares this client with a stock one request by request and checks the replaced methods'
signatures, so an upgrade that changes them fails there first.
"""

from __future__ import annotations

import datetime
import http.cookiejar
import logging
from time import perf_counter
from typing import Any

import httpx
from httpx._exceptions import request_context

from pytest_shopflow_perf.engine.fast_response import SHARED_COOKIE_POLICY

__all__ = ["EngineClient", "MergedUrls"]

MERGED_URLS_LIMIT = 4096  # distinct relative URLs kept per base URL
_logger = logging.getLogger("httpx")  # httpx's own: its "HTTP Request: ..." line, when INFO is on


class MergedUrls:
    """Relative URLs already merged with a base URL, shared by the clients of one run."""

    __slots__ = ("_tables",)

    def __init__(self) -> None:
        self._tables: dict[str, dict[str, httpx.URL]] = {}

    def table(self, base_url: httpx.URL) -> dict[str, httpx.URL]:
        key = str(base_url)
        table = self._tables.get(key)
        if table is None:
            table = self._tables[key] = {}
        return table


class _ReplyCookies(httpx.Cookies):
    """A cookie jar that only does the jar's work when a response sets a cookie."""

    def extract_cookies(self, response: httpx.Response) -> None:
        if "set-cookie" in response.headers:
            super().extract_cookies(response)


class EngineClient(httpx.AsyncClient):
    """``httpx.AsyncClient`` with the trims above; everything else is httpx's own code."""

    def __init__(self, *, merged_urls: MergedUrls | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if self._cookies:
            self._cookies = _ReplyCookies(self._cookies)
        else:  # the usual case: an empty jar on the stdlib's default rules, one policy object for every client
            self._cookies = _ReplyCookies(http.cookiejar.CookieJar(SHARED_COOKIE_POLICY))
        self._merged_urls = merged_urls if merged_urls is not None else MergedUrls()
        self._merged_base: httpx.URL | None = None
        self._merged: dict[str, httpx.URL] = {}

    @property
    def cookies(self) -> httpx.Cookies:
        return self._cookies

    @cookies.setter
    def cookies(self, cookies: Any) -> None:
        self._cookies = _ReplyCookies(cookies)

    def _merge_url(self, url: httpx.URL | str) -> httpx.URL:
        if type(url) is not str:
            return super()._merge_url(url)
        base = self._base_url
        if base is not self._merged_base:  # first request, or base_url was set since
            self._merged = self._merged_urls.table(base)
            self._merged_base = base
        merged = self._merged.get(url)
        if merged is None:
            merged = super()._merge_url(url)
            if len(self._merged) < MERGED_URLS_LIMIT:
                self._merged[url] = merged
        return merged

    async def _send_handling_auth(
        self,
        request: httpx.Request,
        auth: httpx.Auth,
        follow_redirects: bool,
        history: list[httpx.Response],
    ) -> httpx.Response:
        if type(auth) is httpx.Auth:  # no auth: its flow yields the request once and ignores the response
            return await self._send_handling_redirects(request, follow_redirects=follow_redirects, history=history)
        return await super()._send_handling_auth(request, auth, follow_redirects, history)

    async def _send_single_request(self, request: httpx.Request) -> httpx.Response:
        """httpx's own, but a body already in memory is not streamed again and cookies only when set."""
        transport = self._transport_for_url(request.url)
        start = perf_counter()
        if not isinstance(request.stream, httpx.AsyncByteStream):
            raise RuntimeError("Attempted to send a sync request with an AsyncClient instance.")
        with request_context(request=request):
            response = await transport.handle_async_request(request)
        stream = response.stream
        response.request = request
        if isinstance(stream, httpx.ByteStream) and "content-encoding" not in response.headers:
            response._content = b"".join(stream)
            response.is_stream_consumed = True
            response.is_closed = True
            response.elapsed = datetime.timedelta(seconds=perf_counter() - start)
        else:
            assert isinstance(stream, httpx.AsyncByteStream)
            from httpx._client import BoundAsyncStream

            response.stream = BoundAsyncStream(stream, response=response, start=start)
        self._cookies.extract_cookies(response)
        response.default_encoding = self._default_encoding
        if _logger.isEnabledFor(logging.INFO):
            _logger.info(
                'HTTP Request: %s %s "%s %d %s"',
                request.method,
                request.url,
                response.http_version,
                response.status_code,
                response.reason_phrase,
            )
        return response
