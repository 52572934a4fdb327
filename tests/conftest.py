from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from support.hostile import attempts  # noqa: F401  (a fixture: records connection attempts)

SUPPORT = Path(__file__).parent / "support"


@pytest.fixture(scope="session")
def delay_server() -> Iterator[str]:
    """The known-latency server, in its own process so it never shares the engine's GIL."""
    process = subprocess.Popen([sys.executable, str(SUPPORT / "delay_server.py")], stdout=subprocess.PIPE, text=True)
    assert process.stdout is not None
    port = process.stdout.readline().strip()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        process.terminate()
        process.wait(timeout=10)
        process.stdout.close()


@pytest.fixture
def shopflow_with_redis():
    """The ShopFlow service under uvicorn, caching in a real redis-server that a fault can kill."""
    from support.redis import REDIS_SERVER, RedisProcess

    from pytest_shopflow_perf.target import EmbeddedServer

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
    from pytest_shopflow_perf.target import EmbeddedServer

    service = EmbeddedServer()
    try:
        yield service.start()
    finally:
        service.stop()
