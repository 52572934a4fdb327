"""The suite's network guard catches what it must, in this process and in the children tests start."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from support import netguard


@pytest.fixture
def own_entries() -> list[dict[str, object]]:
    """The log lines this test makes on purpose, removed at the end (the autouse check must not see them)."""
    start = NETGUARD_LOG.stat().st_size
    entries: list[dict[str, object]] = []
    yield entries
    with open(NETGUARD_LOG, "rb") as log:
        log.seek(start)
        entries.extend(json.loads(line) for line in log.read().splitlines())
    os.truncate(NETGUARD_LOG, start)


NETGUARD_LOG = Path(os.environ[netguard.LOG_ENV])  # set by tests/conftest.py before any test module


def _read_since(start: int) -> list[dict[str, object]]:
    with open(NETGUARD_LOG, "rb") as log:
        log.seek(start)
        return [json.loads(line) for line in log.read().splitlines()]


def test_resolving_an_outside_name_is_refused_and_logged(own_entries: list[dict[str, object]]) -> None:
    start = NETGUARD_LOG.stat().st_size
    with pytest.raises(OSError, match="netguard"):
        socket.getaddrinfo("shop.invalid", 80)
    with pytest.raises(OSError, match="netguard"), socket.socket() as sock:
        sock.connect(("10.1.2.3", 9))
    with pytest.raises(OSError, match="netguard"):
        socket.create_connection(("shop.invalid", 80), timeout=1)

    async def through_asyncio() -> None:
        with pytest.raises(OSError, match="netguard"):
            await asyncio.open_connection("shop.invalid", 80)
        with pytest.raises(OSError, match="netguard"):
            await asyncio.open_connection("10.1.2.3", 80)

    asyncio.run(through_asyncio())
    entries = _read_since(start)
    assert [(e["what"], e["host"]) for e in entries] == [
        ("getaddrinfo", "shop.invalid"),
        ("connect", "10.1.2.3"),
        ("create_connection", "shop.invalid"),
        ("loop.create_connection", "shop.invalid"),
        ("loop.create_connection", "10.1.2.3"),
    ]
    socket.getaddrinfo("localhost", 80)  # loopback names and addresses still resolve
    socket.getaddrinfo("127.0.0.1", 80)


def test_uvloop_is_guarded_too(own_entries: list[dict[str, object]]) -> None:
    uvloop = pytest.importorskip("uvloop")

    async def attempt() -> None:
        loop = asyncio.get_running_loop()
        with pytest.raises(OSError, match="netguard"):
            await loop.getaddrinfo("shop.invalid", 80)
        with pytest.raises(OSError, match="netguard"):
            await asyncio.open_connection("shop.invalid", 80)

    start = NETGUARD_LOG.stat().st_size
    loop = uvloop.new_event_loop()  # what anyio's use_uvloop and the fault proxy build
    try:
        loop.run_until_complete(attempt())
    finally:
        loop.close()
    assert [(e["what"], e["host"]) for e in _read_since(start)] == [
        ("loop.getaddrinfo", "shop.invalid"),
        ("loop.create_connection", "shop.invalid"),
    ]


def test_child_processes_are_guarded(own_entries: list[dict[str, object]]) -> None:
    code = "import socket\ntry:\n    socket.getaddrinfo('shop.invalid', 80)\nexcept OSError as e:\n    print(e)\n"
    start = NETGUARD_LOG.stat().st_size
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert "netguard" in out.stdout
    (entry,) = _read_since(start)
    assert entry["host"] == "shop.invalid"
    assert entry["pid"] != os.getpid()
    assert netguard.LOG_ENV in os.environ


def test_pytester_subprocesses_are_guarded(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
import socket

def test_inner():
    assert getattr(socket, "_shopflow_netguard_installed", False)
"""
    )
    pytester.runpytest_subprocess("-p", "no:cacheprovider").assert_outcomes(passed=1)
