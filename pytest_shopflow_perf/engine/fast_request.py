"""Building the lean client's requests as httpx builds them: default headers, URLs, bodies, redirects.

``FastHeaders`` (the client's mutable, case-insensitive headers, re-encoded only after a change),
``Route`` (a URL resolved against the base URL once: scheme, host, port, request target, path and
endpoint names), the body encodings of httpx 0.28+ (``content``, ``data`` form, compact ``json``),
and httpx's redirect rules (next URL, method, same origin).
"""

from __future__ import annotations

import importlib.util
import json as jsonlib
import re
from collections.abc import Iterator, Mapping, MutableMapping
from typing import Any
from urllib.parse import urlencode

import httpx

from pytest_shopflow_perf.engine.fast_response import unsupported
from pytest_shopflow_perf.engine.fast_transport import DEFAULT_PORTS
from pytest_shopflow_perf.metrics.recorder import collapse_path

__all__ = ["DEFAULT_BLOCK", "DEFAULT_HEADERS", "FastHeaders", "Route", "SharedRequests", "encode_body", "redirect_url"]

# What httpx decodes (httpx._decoders.SUPPORTED_DECODERS): a compressed body is decoded by httpx itself.
ENCODINGS = ["gzip", "deflate"]
if importlib.util.find_spec("brotli") or importlib.util.find_spec("brotlicffi"):
    ENCODINGS.append("br")
if importlib.util.find_spec("zstandard"):
    ENCODINGS.append("zstd")
# The headers an httpx.AsyncClient sends by default, so the service sees the same requests in both modes.
DEFAULT_HEADERS = {
    "Accept": "*/*",
    "Accept-Encoding": ", ".join(ENCODINGS),
    "Connection": "keep-alive",
    "User-Agent": f"python-httpx/{httpx.__version__}",
}
# A relative URL sent as written (httpx would not re-encode it): no query, escapes or dot segments.
PLAIN_PATH = re.compile(r"/(?!/)[A-Za-z0-9\-._~!$&'()*+,;=:@/]*\Z")
BODY_METHODS = frozenset(("POST", "PUT", "PATCH"))
# Request headers the core cannot send (it frames bodies by Content-Length and reads one response).
REFUSED_HEADERS = {
    "transfer-encoding": "a Transfer-Encoding request header (streamed upload)",
    "upgrade": "an Upgrade request header",
    "expect": "an Expect request header",
}


def header_bytes(value: str | bytes) -> bytes:
    raw = value if isinstance(value, bytes) else value.encode("ascii")
    if b"\r" in raw or b"\n" in raw:
        raise httpx.LocalProtocolError(f"invalid header {raw!r}: CR or LF in it")
    return raw


class FastHeaders(MutableMapping[str, str]):
    """The client's default headers: case-insensitive and mutable (``client.headers["Authorization"] = ...``).

    Every change bumps ``version``, so the client encodes them again only after a change.
    ``FastHeaders.defaults()`` shares httpx's default headers (and their encoded form) between
    the clients of a run until one changes its own: ~1.4 KB less per virtual user.
    """

    __slots__ = ("_items", "shared", "version")

    def __init__(self, headers: Mapping[str, str] | None = None) -> None:
        self._items: dict[str, tuple[str, str]] = {}
        self.version = 0
        self.shared = False  # _items is _DEFAULT_ITEMS, copied on the first change
        if headers:
            self.update(headers)

    @classmethod
    def defaults(cls) -> FastHeaders:
        headers = cls()
        headers._items = _DEFAULT_ITEMS
        headers.shared = True
        return headers

    def _own(self) -> dict[str, tuple[str, str]]:
        if self.shared:
            self._items = dict(self._items)
            self.shared = False
        return self._items

    def __getitem__(self, key: str) -> str:
        return self._items[key.lower()][1]

    def __setitem__(self, key: str, value: str) -> None:
        if isinstance(value, bytes):
            value = value.decode("latin-1")
        self._own()[key.lower()] = (key, value)
        self.version += 1

    def __delitem__(self, key: str) -> None:
        del self._own()[key.lower()]
        self.version += 1

    def __iter__(self) -> Iterator[str]:
        return (name for name, _ in self._items.values())

    def __len__(self) -> int:
        return len(self._items)

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and key.lower() in self._items

    def __repr__(self) -> str:
        return f"FastHeaders({dict(self._items.values())!r})"

    def copy(self) -> FastHeaders:
        return FastHeaders(dict(self._items.values()))

    def encoded(self) -> dict[bytes, tuple[bytes, bytes]]:
        """lower-case name -> (name, value), as bytes (the shared defaults' one object: never change it)."""
        if self.shared:
            return _DEFAULT_ENCODED
        return {
            lower.encode("ascii"): (header_bytes(name), header_bytes(value))
            for lower, (name, value) in self._items.items()
        }


_DEFAULT_ITEMS: dict[str, tuple[str, str]] = FastHeaders(DEFAULT_HEADERS)._items
_DEFAULT_ENCODED: dict[bytes, tuple[bytes, bytes]] = FastHeaders(DEFAULT_HEADERS).encoded()
DEFAULT_BLOCK = b"".join(b"%s: %s\r\n" % pair for pair in _DEFAULT_ENCODED.values())  # as sent


class SharedRequests:
    """What the lean clients of a run share: parsed base URLs, resolved URLs, and the bytes of the
    requests sent with the default headers (a ``Route`` is immutable but for its endpoint names,
    which depend on its path only). Per client these were most of a thinking user's memory."""

    __slots__ = ("bases", "heads", "routes")

    def __init__(self) -> None:
        self.bases: dict[str, tuple[httpx.URL, Route]] = {}
        self.routes: dict[str, dict[str, Route]] = {}  # base URL -> URL -> Route
        self.heads: dict[str, dict[tuple[str, str], tuple[int, bytes]]] = {}  # base URL -> (method, URL) -> bytes


class Route:
    """A URL resolved against the base URL: where it goes, what goes on the wire, its endpoint names."""

    __slots__ = ("check_port", "full", "host", "key", "names", "netloc", "path", "scheme", "target")

    def __init__(self, scheme: str, host: str, port: int | None, netloc: bytes, target: bytes, path: str) -> None:
        self.scheme = scheme
        self.host = host
        self.check_port = port  # None for the scheme's default port, as httpx.URL.port
        self.key = (scheme, host, port if port is not None else DEFAULT_PORTS.get(scheme, 0))
        self.netloc = netloc
        self.target = target
        self.path = path
        self.full = f"{scheme}://{netloc.decode('ascii')}{target.decode('ascii')}"
        self.names: dict[str, str] = {}

    @classmethod
    def of(cls, url: httpx.URL) -> Route:
        return cls(url.scheme, url.host, url.port, url.netloc, url.raw_path, url.path)

    def with_query(self, query: bytes) -> Route:
        route = Route(self.scheme, self.host, self.check_port, self.netloc, self.target + b"?" + query, self.path)
        route.names = self.names  # same path, same endpoint names
        return route

    def url(self) -> httpx.URL:
        return httpx.URL(self.full)

    def name(self, method: str) -> str:
        name = self.names.get(method)
        if name is None:
            name = self.names[method] = f"{method} {collapse_path(self.path)}"
        return name


def header_items(headers: Any) -> Iterator[tuple[Any, Any]]:
    if isinstance(headers, httpx.Headers):
        return iter(headers.raw)
    if isinstance(headers, Mapping):
        return iter(headers.items())
    return iter(headers)


def timeouts_of(timeout: Any, fallback: float) -> tuple[dict[str, float | None], float]:
    """httpx's per-phase timeouts, and the whole-request deadline as RecordingTransport takes it."""
    phases = (timeout if isinstance(timeout, httpx.Timeout) else httpx.Timeout(timeout)).as_dict()
    limit = max((value for value in phases.values() if value is not None), default=0.0)
    return phases, limit or fallback


def deadline_of(timeouts: Mapping[str, float | None], fallback: float) -> float:
    limit = max((value for value in timeouts.values() if value is not None), default=0.0)
    return limit or fallback


def encode_body(content: Any, data: Any, json: Any) -> tuple[bytes | None, bytes | None]:
    """(body, Content-Type) as httpx encodes them: ``content``, else ``data`` (a form), else ``json``."""
    body: bytes | None = None
    body_type: bytes | None = None
    if content is not None:
        if isinstance(content, str):
            body = content.encode("utf-8")
        elif isinstance(content, (bytes, bytearray, memoryview)):
            body = bytes(content)
        else:
            unsupported("content= of an iterator or stream (a body of unknown length)")
    elif data is not None:
        if isinstance(data, Mapping):
            body = urlencode(
                [(k, primitive(v)) for k, vs in data.items() for v in (vs if isinstance(vs, (list, tuple)) else (vs,))],
                doseq=True,
            ).encode("utf-8")
            body_type = b"application/x-www-form-urlencoded"
        elif isinstance(data, (str, bytes)):
            body = data.encode("utf-8") if isinstance(data, str) else data  # httpx: content= (deprecated)
        else:
            unsupported("data= of an iterator or stream")
    elif json is not None:
        body = jsonlib.dumps(json, ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode("utf-8")
        body_type = b"application/json"
    return body, body_type


def redirect_url(current: httpx.URL, location: bytes, method: str) -> httpx.URL:
    """httpx's _redirect_url: the Location header joined to the URL that answered."""
    try:
        text = location.decode("utf-8")
    except UnicodeDecodeError:
        text = location.decode("latin-1")
    try:
        url = httpx.URL(text)
    except httpx.InvalidURL as exc:
        raise httpx.RemoteProtocolError(
            f"Invalid URL in location header: {exc}.", request=httpx.Request(method, current)
        ) from None
    if url.scheme and not url.host:
        url = url.copy_with(host=current.host)
    if url.is_relative_url:
        url = current.join(url)
    return url


def no_body(method: str, kwargs: dict[str, Any]) -> None:
    """httpx's get/head/options/delete take no body: the same TypeError as theirs."""
    for key in ("content", "data", "files", "json"):
        if key in kwargs:
            raise TypeError(f"FastClient.{method}() got an unexpected keyword argument {key!r}")


def primitive(value: Any) -> str:
    """httpx's primitive_value_to_str: JSON-style true/false, None as empty."""
    if value is True:
        return "true"
    if value is False:
        return "false"
    if value is None:
        return ""
    return str(value)


def port_or_default(url: httpx.URL) -> int | None:
    return url.port if url.port is not None else DEFAULT_PORTS.get(url.scheme)


def same_origin(url: httpx.URL, other: httpx.URL) -> bool:
    return url.scheme == other.scheme and url.host == other.host and port_or_default(url) == port_or_default(other)


def is_https_redirect(url: httpx.URL, location: httpx.URL) -> bool:
    return (
        url.host == location.host
        and url.scheme == "http"
        and port_or_default(url) == 80
        and location.scheme == "https"
        and port_or_default(location) == 443
    )
