from __future__ import annotations

import atexit
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from support import netguard
from support.hostile import attempts  # noqa: F401  (a fixture: records connection attempts)

SUPPORT = Path(__file__).parent / "support"


def _guard_the_network() -> Path:
    """No test sends a packet off loopback: guard this process now and every child via sitecustomize."""
    if netguard.LOG_ENV not in os.environ:
        fd, name = tempfile.mkstemp(prefix="shopflow-netguard-", suffix=".log")
        os.close(fd)
        os.environ[netguard.LOG_ENV] = name
        atexit.register(lambda: Path(name).unlink(missing_ok=True) if not Path(name).stat().st_size else None)
    site = str(SUPPORT / "netguard_site")
    paths = [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p and p != site]
    os.environ["PYTHONPATH"] = os.pathsep.join([site, *paths])
    netguard.install()
    return Path(os.environ[netguard.LOG_ENV])


NETGUARD_LOG = _guard_the_network()


def _log_size() -> int:
    try:
        return NETGUARD_LOG.stat().st_size
    except FileNotFoundError:
        return 0


@pytest.fixture(autouse=True)
def _no_traffic_off_loopback() -> Iterator[None]:
    """Fail the test if it (or a process it started) tried to resolve or connect off loopback."""
    before = _log_size()
    yield
    if _log_size() > before:
        with open(NETGUARD_LOG, "rb") as log:
            log.seek(before)
            lines = log.read().decode(errors="replace").splitlines()
        if lines:
            shown = "\n".join(lines[:20]) + (f"\n... and {len(lines) - 20} more" if len(lines) > 20 else "")
            pytest.fail(f"network access off loopback during this test (netguard, {len(lines)} attempts):\n{shown}")


@pytest.fixture
def inner_ini(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> None:
    """A pytester session has no ini: set pytest-asyncio's loop scope, or its warning fills the inner output.

    After ``pytester``, which clears ``PYTEST_ADDOPTS`` when it is made.
    """
    monkeypatch.setenv("PYTEST_ADDOPTS", "-o asyncio_default_fixture_loop_scope=function")


@pytest.fixture(scope="session")
def delay_server() -> Iterator[str]:
    """The known-latency server, in its own process so it never shares the engine's GIL."""
    from support.delay_process import delay_server_process

    with delay_server_process() as (url, _pid):
        yield url


@pytest.fixture
def shopflow_with_redis():
    """The ShopFlow service under uvicorn, caching in a real redis-server that a fault can kill."""
    from support.redis import REDIS_SERVER, RedisProcess

    from pytest_shopflow_perf.target.embedded import EmbeddedServer

    if REDIS_SERVER is None:
        pytest.skip("redis-server is not installed (apt-get install redis-server)")
    pytest.importorskip("redis", reason="the redis client is not installed (pip install redis)")
    redis = RedisProcess()
    redis.start()
    service = EmbeddedServer(env={"SHOPFLOW_REDIS_URL": redis.url})
    try:
        service.start()
        yield service, redis
    finally:
        service.stop()
        redis.stop()


@pytest.fixture
def shopflow_service():
    """The ShopFlow reference service under uvicorn on a loopback port (in-process cache)."""
    from pytest_shopflow_perf.target.embedded import EmbeddedServer

    service = EmbeddedServer()
    try:
        yield service.start()
    finally:
        service.stop()
