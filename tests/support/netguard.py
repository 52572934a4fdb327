"""A guard over the whole test suite: no test may send a packet off loopback, not even a DNS query.

``install()`` wraps name resolution and connects in this process: ``socket.getaddrinfo``,
``socket.socket.connect``/``connect_ex``, ``socket.create_connection``, asyncio's
``BaseEventLoop.create_connection``/``sock_connect``/``getaddrinfo``, and uvloop (whose
``new_event_loop()`` builds the Python class ``uvloop.Loop``: it is replaced by a subclass,
since uvloop resolves and connects in C, past the socket module). A violation raises
``NetGuardViolation`` (an OSError) and appends one JSON line to ``$SHOPFLOW_NETGUARD_LOG``.

tests/conftest.py installs it in the pytest process; ``netguard_site/sitecustomize.py``
(put first on PYTHONPATH by the conftest) installs it in every child Python process.
"""

from __future__ import annotations

import asyncio
import asyncio.base_events
import functools
import importlib.abc
import importlib.util
import ipaddress
import json
import os
import socket
import sys
import traceback
from typing import Any

LOG_ENV = "SHOPFLOW_NETGUARD_LOG"
_MARK = "_shopflow_netguard_installed"
_INET = (socket.AF_INET, socket.AF_INET6)


class NetGuardViolation(OSError):
    """A test tried to resolve a name or connect off loopback."""


def _loopback_ip(host: str) -> bool:
    try:
        return ipaddress.ip_address(host.strip("[]").split("%", 1)[0]).is_loopback
    except ValueError:
        return False


@functools.cache
def _hosts_loopback_names() -> frozenset[str]:
    """Names /etc/hosts maps to a loopback address: files, not DNS, answer them."""
    names: set[str] = set()
    try:
        with open("/etc/hosts", encoding="utf-8", errors="replace") as hosts:
            for line in hosts:
                fields = line.split("#", 1)[0].split()
                if len(fields) > 1 and _loopback_ip(fields[0]):
                    names.update(name.lower() for name in fields[1:])
    except OSError:
        pass
    return frozenset(names)


def _text(host: object) -> str | None:
    if host is None:
        return None
    return host.decode("ascii", "replace") if isinstance(host, (bytes, bytearray)) else str(host)


def lookup_ok(host: object) -> bool:
    """A name or address that may be resolved without a packet leaving loopback."""
    text = _text(host)
    if text is None or text == "":
        return True
    lowered = text.lower()
    return lowered == "localhost" or _loopback_ip(lowered) or lowered in _hosts_loopback_names()


def violation(what: str, host: object, port: object = None) -> NetGuardViolation:
    """Log the attempt and return the error to raise."""
    entry = {
        "pid": os.getpid(),
        "what": what,
        "host": _text(host),
        "port": port if isinstance(port, (int, str)) or port is None else repr(port),
        "argv": sys.argv[:3],
        "test": os.environ.get("PYTEST_CURRENT_TEST"),
        "stack": [f"{frame.filename}:{frame.lineno} {frame.name}" for frame in traceback.extract_stack()[-8:-2]],
    }
    path = os.environ.get(LOG_ENV)
    if path:
        try:
            fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
            try:
                os.write(fd, (json.dumps(entry) + "\n").encode())
            finally:
                os.close(fd)
        except OSError:
            pass
    return NetGuardViolation(f"netguard: {what} {_text(host)!r}:{port} refused: tests stay on loopback")


def _check_address(what: str, family: int, address: object) -> None:
    if family not in _INET or not isinstance(address, tuple) or not address:
        return  # AF_UNIX and friends never leave the host
    if not lookup_ok(address[0]):
        raise violation(what, address[0], address[1] if len(address) > 1 else None)


def install() -> None:
    """Wrap every resolver and connect path (idempotent, also across copies of this module)."""
    if getattr(socket, _MARK, False):
        return
    setattr(socket, _MARK, True)

    real_getaddrinfo = socket.getaddrinfo

    @functools.wraps(real_getaddrinfo)
    def getaddrinfo(host: Any, port: Any, *args: Any, **kwargs: Any) -> Any:
        if not lookup_ok(host):
            raise violation("getaddrinfo", host, port)
        return real_getaddrinfo(host, port, *args, **kwargs)

    socket.getaddrinfo = getaddrinfo

    def wrap_connect(real: Any, what: str) -> Any:
        @functools.wraps(real)
        def connect(self: socket.socket, address: Any) -> Any:
            _check_address(what, self.family, address)
            return real(self, address)

        return connect

    socket.socket.connect = wrap_connect(socket.socket.connect, "connect")  # type: ignore[method-assign]
    socket.socket.connect_ex = wrap_connect(socket.socket.connect_ex, "connect_ex")  # type: ignore[method-assign]

    real_create_connection = socket.create_connection

    @functools.wraps(real_create_connection)
    def create_connection(address: Any, *args: Any, **kwargs: Any) -> Any:
        if not lookup_ok(address[0]):
            raise violation("create_connection", address[0], address[1])
        return real_create_connection(address, *args, **kwargs)

    socket.create_connection = create_connection
    _install_loop(asyncio.base_events.BaseEventLoop)
    _install_uvloop()


def _install_loop(cls: Any, *, resolver: bool = False) -> None:
    """Guard ``create_connection``, ``sock_connect`` (and ``getaddrinfo``) of an event loop class in place.

    asyncio's own ``getaddrinfo`` calls ``socket.getaddrinfo`` (guarded, and patchable by a test);
    uvloop's resolves in C, so only there is it guarded as well.
    """
    real_create = cls.create_connection
    real_sock_connect = cls.sock_connect
    real_getaddrinfo = cls.getaddrinfo

    @functools.wraps(real_create)
    async def create_connection(self: Any, protocol_factory: Any, host: Any = None, port: Any = None, **kw: Any) -> Any:
        if host is not None and not lookup_ok(host):
            raise violation("loop.create_connection", host, port)
        return await real_create(self, protocol_factory, host, port, **kw)

    @functools.wraps(real_sock_connect)
    async def sock_connect(self: Any, sock: socket.socket, address: Any) -> Any:
        _check_address("loop.sock_connect", sock.family, address)
        return await real_sock_connect(self, sock, address)

    @functools.wraps(real_getaddrinfo)
    async def getaddrinfo(self: Any, host: Any, port: Any, *args: Any, **kw: Any) -> Any:
        if not lookup_ok(host):
            raise violation("loop.getaddrinfo", host, port)
        return await real_getaddrinfo(self, host, port, *args, **kw)

    cls.create_connection = create_connection
    cls.sock_connect = sock_connect
    if resolver:
        cls.getaddrinfo = getaddrinfo


def _install_uvloop() -> None:
    """Guard uvloop when it is imported (now, or later: importing it here would load it in every child
    process, where the plugin's own start-up test checks that a run without load tests never does)."""
    if "uvloop" in sys.modules:
        _guard_uvloop(sys.modules["uvloop"])
    else:
        sys.meta_path.insert(0, _UvloopFinder())


class _UvloopFinder(importlib.abc.MetaPathFinder):
    """Patches uvloop right after its first import."""

    def find_spec(self, name: str, path: Any, target: Any = None) -> Any:
        if name != "uvloop":
            return None
        sys.meta_path.remove(self)
        spec = importlib.util.find_spec(name)
        if spec is None or spec.loader is None:
            return spec
        loader = spec.loader
        real_exec = loader.exec_module

        def exec_module(module: Any) -> None:
            real_exec(module)
            _guard_uvloop(module)

        loader.exec_module = exec_module  # type: ignore[method-assign]
        return spec


def _guard_uvloop(uvloop: Any) -> None:
    """uvloop resolves and connects in C: ``uvloop.Loop`` becomes a guarded subclass (``new_event_loop`` uses it)."""
    guarded = type("Loop", (uvloop.Loop,), {"__module__": "uvloop", "__doc__": "uvloop.Loop, guarded by netguard"})
    _install_loop(guarded, resolver=True)
    uvloop.Loop = guarded  # type: ignore[misc]
