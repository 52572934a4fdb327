"""The response of the lean client (``client="fast"``), and the errors and cookie glue it shares.

``FastResponse`` holds what the wire gave (status, raw headers, body) and builds httpx objects
only when a journey asks for them: ``headers`` (an ``httpx.Headers``), ``url``, ``request``,
a compressed body's decoding, and the ``httpx.HTTPStatusError`` of ``raise_for_status()``
(raised with a real ``httpx.Request`` and ``httpx.Response``, as httpx does).
"""

from __future__ import annotations

import codecs
import datetime
import email.message
import http.cookiejar
import json as jsonlib
import math
import time
import urllib.request
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, NoReturn

import httpx

from pytest_shopflow_perf._errors import ShopflowPerfError
from pytest_shopflow_perf.engine.marks import ERROR_EXTENSION

if TYPE_CHECKING:
    from pytest_shopflow_perf.engine.fast_request import Route

__all__ = ["FastClientUnsupported", "FastResponse"]

RawHeaders = list[tuple[bytes, bytes]]
MAX_CACHED_COOKIE_URLS = 1024


class FastClientUnsupported(ShopflowPerfError, TypeError, AttributeError):
    """A feature of httpx the lean client (``client="fast"``) does not offer; the message names it.

    A ``TypeError`` (an unsupported keyword argument) and an ``AttributeError`` (an unsupported
    attribute, so ``hasattr`` and ``getattr(..., default)`` keep working).
    """

    def __init__(self, feature: str) -> None:
        self.feature = feature
        super().__init__(
            f'{feature} is not supported by the lean client (client="fast"): use client="httpx" '
            '(the default, a real httpx.AsyncClient: marker `client="httpx"`, `--perf-client httpx` '
            "or ini `perf_client = httpx`) for it"
        )


def unsupported(feature: str) -> NoReturn:
    raise FastClientUnsupported(feature)


def header_value(headers: RawHeaders, lower_name: bytes) -> bytes | None:
    """The first value of a header (name given in lower case), or None."""
    size = len(lower_name)
    for name, value in headers:
        if len(name) == size and name.lower() == lower_name:
            return value
    return None


def _charset(headers: RawHeaders) -> str:
    """The charset of Content-Type if Python knows it, else utf-8 (httpx's default encoding)."""
    content_type = header_value(headers, b"content-type")
    if content_type:
        message = email.message.Message()
        message["content-type"] = content_type.decode("latin-1")
        charset = message.get_content_charset()
        if charset:
            try:
                return codecs.lookup(charset).name
            except LookupError:
                pass
    return "utf-8"


class FastResponse:
    """What ``user.client.get(...)`` returns under ``client="fast"``: the common part of ``httpx.Response``."""

    __slots__ = (
        "_content",
        "_elapsed_s",
        "_error",
        "_headers",
        "_httpx",
        "_method",
        "_raw_body",
        "_route",
        "_text",
        "_version",
        "history",
        "raw_headers",
        "reason",
        "status_code",
    )

    def __init__(
        self,
        status: int,
        reason: bytes,
        raw_headers: RawHeaders,
        body: bytes,
        version: bytes,
        elapsed_s: float,
        method: str,
        route: Route,
        error: str | None,
    ) -> None:
        self.status_code = status
        self.reason = reason
        self.raw_headers = raw_headers
        self._raw_body = body
        self._version = version
        self._elapsed_s = elapsed_s
        self._method = method
        self._route = route
        self._error = error  # recorded as this error ("HTTP 404"): raise_for_status's error says so
        self._content: bytes | None = None
        self._text: str | None = None
        self._headers: httpx.Headers | None = None
        self._httpx: httpx.Response | None = None
        self.history: Sequence[FastResponse] = ()  # the redirect responses that led here, as a list

    def __repr__(self) -> str:
        return f"<FastResponse [{self.status_code} {self.reason_phrase}]>"

    if not TYPE_CHECKING:  # mypy keeps checking attribute names of this class

        def __getattr__(self, name: str) -> Any:
            if name.startswith("__"):
                raise AttributeError(name)
            unsupported(f"response.{name}")

    # ---- the body ------------------------------------------------------------------

    @property
    def content(self) -> bytes:
        content = self._content
        if content is None:
            if header_value(self.raw_headers, b"content-encoding") is None:
                content = self._raw_body
            else:  # gzip, deflate, br...: decoded exactly as httpx would
                content = httpx.Response(self.status_code, headers=self.raw_headers, content=self._raw_body).content
            self._content = content
        return content

    @property
    def text(self) -> str:
        text = self._text
        if text is None:
            text = self._text = self.content.decode(self.encoding, errors="replace")
        return text

    @property
    def encoding(self) -> str:
        return _charset(self.raw_headers)

    def json(self, **kwargs: Any) -> Any:
        return jsonlib.loads(self.content, **kwargs)

    def read(self) -> bytes:
        return self.content

    async def aread(self) -> bytes:
        return self.content

    def close(self) -> None:
        """Nothing to release: the body was read with the response."""

    async def aclose(self) -> None:
        """Nothing to release: the body was read with the response."""

    @property
    def num_bytes_downloaded(self) -> int:
        return len(self._raw_body)

    # ---- status and metadata ------------------------------------------------------------

    @property
    def headers(self) -> httpx.Headers:
        headers = self._headers
        if headers is None:
            headers = self._headers = httpx.Headers(self.raw_headers)
        return headers

    @property
    def reason_phrase(self) -> str:
        return self.reason.decode("ascii", errors="ignore")

    @property
    def http_version(self) -> str:
        return self._version.decode("ascii")

    @property
    def elapsed(self) -> datetime.timedelta:
        return datetime.timedelta(seconds=self._elapsed_s)

    @property
    def url(self) -> httpx.URL:
        return self._route.url()

    @property
    def request(self) -> httpx.Request:
        return httpx.Request(self._method, self.url)

    @property
    def is_informational(self) -> bool:
        return 100 <= self.status_code < 200

    @property
    def is_success(self) -> bool:
        return 200 <= self.status_code < 300

    @property
    def is_redirect(self) -> bool:
        return self.status_code in (301, 302, 303, 307, 308)

    @property
    def is_client_error(self) -> bool:
        return 400 <= self.status_code < 500

    @property
    def is_server_error(self) -> bool:
        return 500 <= self.status_code < 600

    @property
    def is_error(self) -> bool:
        return 400 <= self.status_code < 600

    @property
    def has_redirect_location(self) -> bool:
        return self.is_redirect and header_value(self.raw_headers, b"location") is not None

    def as_httpx(self) -> httpx.Response:
        """This response as a real ``httpx.Response`` (with its request), built once."""
        response = self._httpx
        if response is None:
            extensions: dict[str, Any] = {"http_version": self._version, "reason_phrase": self.reason}
            if self._error is not None:
                extensions[ERROR_EXTENSION] = self._error  # counted already: is_recorded() sees it
            response = self._httpx = httpx.Response(
                self.status_code,
                headers=self.raw_headers,
                stream=httpx.ByteStream(self._raw_body),
                request=self.request,
                extensions=extensions,
            )
        return response

    def raise_for_status(self) -> FastResponse:
        """``httpx.HTTPStatusError`` unless 2xx, as httpx raises it; ``self`` otherwise."""
        if self.is_success:
            return self
        self.as_httpx().raise_for_status()
        return self  # pragma: no cover - httpx raised


# ---- cookies: the stdlib's http.cookiejar, fed what it reads ------------------------------


class _SetCookies:
    """The ``info()`` of a response as ``http.cookiejar`` reads it: only its Set-Cookie headers."""

    __slots__ = ("values",)

    def __init__(self, values: list[str]) -> None:
        self.values = values

    def get_all(self, name: str, default: list[str] | None = None) -> list[str]:
        if name.lower() == "set-cookie":
            return self.values
        return default if default is not None else []

    def info(self) -> _SetCookies:
        return self


def extract_cookies(jar_of: Callable[[], httpx.Cookies], url: str, method: str, headers: RawHeaders) -> bool:
    """Store a response's Set-Cookie headers in ``jar_of()`` (expiry, Max-Age=0 deletion, path: the stdlib's).

    Whether there were any; without, the jar is not asked for (nor built).
    """
    values = [value.decode("latin-1") for name, value in headers if len(name) == 10 and name.lower() == b"set-cookie"]
    if not values:
        return False
    jar = jar_of()
    jar.jar.extract_cookies(_SetCookies(values), urllib.request.Request(url, method=method))  # type: ignore[arg-type]
    return True


# The stdlib's default rules, one object for every jar of a run (a policy is configuration; the
# jar sets its clock on it before each use): ~1 KB less per virtual user.
SHARED_COOKIE_POLICY = http.cookiejar.DefaultCookiePolicy()


class CountingJar(http.cookiejar.CookieJar):
    """A CookieJar that counts its changes (every store and removal goes through these two)."""

    generation = 0

    def set_cookie(self, cookie: http.cookiejar.Cookie) -> None:
        self.generation += 1
        super().set_cookie(cookie)

    def clear(self, domain: str | None = None, path: str | None = None, name: str | None = None) -> None:
        self.generation += 1
        super().clear(domain, path, name)


class CookieCache:
    """The Cookie header per URL, asked of the stdlib's jar only after it changed or a cookie expired.

    ``CookieJar.add_cookie_header`` costs ~20 us a request; most requests of a run send the
    same cookies to the same URLs.
    """

    __slots__ = ("expires", "generation", "headers", "nonempty")

    def __init__(self) -> None:
        self.generation = -1
        self.nonempty = False
        self.expires = math.inf
        self.headers: dict[str, str | None] = {}

    def _sync(self, jar: http.cookiejar.CookieJar) -> None:
        generation = getattr(jar, "generation", None)
        if (
            generation is None
            or generation != self.generation
            or (self.expires < math.inf and time.time() >= self.expires)
        ):
            cookies = list(jar)
            self.nonempty = bool(cookies)
            self.expires = min((c.expires for c in cookies if c.expires is not None), default=math.inf)
            self.headers.clear()
            self.generation = -1 if generation is None else generation  # a foreign jar: asked every time

    def any(self, jar: httpx.Cookies) -> bool:
        self._sync(jar.jar)
        return self.nonempty

    def header(self, jar: httpx.Cookies, url: str, method: str) -> str | None:
        self._sync(jar.jar)
        headers = self.headers
        if url in headers:
            return headers[url]
        value = cookie_header(jar, url, method)
        if len(headers) >= MAX_CACHED_COOKIE_URLS:
            headers.clear()
        generation = getattr(jar.jar, "generation", None)
        if generation is not None and generation == self.generation:  # not changed by expiring a cookie
            headers[url] = value
        return value


def cookie_header(jar: httpx.Cookies, url: str, method: str) -> str | None:
    """The Cookie header ``jar`` sends to ``url`` (host, path, expiry and Secure rules: the stdlib's)."""
    request = urllib.request.Request(url, method=method)
    jar.jar.add_cookie_header(request)
    return request.get_header("Cookie")
