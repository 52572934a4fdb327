"""The ShopFlow service as a real process: uvicorn, the CLI, and a real Redis that dies."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import anyio
import httpx
import pytest

import pytest_shopflow_perf.service

REPO_ROOT = Path(pytest_shopflow_perf.service.__file__).resolve().parents[2]
REDIS_SERVER = shutil.which("redis-server")


def _child_env(**extra: str) -> dict[str, str]:
    path = os.pathsep.join(filter(None, [str(REPO_ROOT), os.environ.get("PYTHONPATH")]))
    return {**os.environ, "PYTHONPATH": path, **extra}


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait_for(check, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


@contextmanager
def _process(args: list[str], log: Path, **kwargs) -> Iterator[subprocess.Popen[bytes]]:
    with log.open("wb") as out:
        proc = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT, **kwargs)
        try:
            yield proc
        finally:
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(10)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()


def test_uvicorn_factory_on_an_inherited_socket(tmp_path):
    """How the plugin launches it: ``uvicorn --factory ... --fd N``, then polls /health."""
    temp_dir = tmp_path / "tmp"
    temp_dir.mkdir()
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(128)
    port = listener.getsockname()[1]
    args = [sys.executable, "-m", "uvicorn", "--factory", "pytest_shopflow_perf.service:create_app",
            "--fd", str(listener.fileno()), "--log-level", "warning"]  # fmt: skip
    env = _child_env(SHOPFLOW_PRODUCTS="400", SHOPFLOW_USERS="20", TMPDIR=str(temp_dir))
    try:
        with _process(args, tmp_path / "uvicorn.log", env=env, pass_fds=(listener.fileno(),)) as proc:
            listener.close()
            base = f"http://127.0.0.1:{port}"
            with httpx.Client(base_url=base, timeout=2.0) as client:

                def healthy() -> bool:
                    assert proc.poll() is None, (tmp_path / "uvicorn.log").read_text()
                    try:
                        return client.get("/health").status_code == 200
                    except httpx.TransportError:
                        return False

                _wait_for(healthy, 10, "GET /health")
                assert client.get("/health").json() == {"status": "ok", "cache": "memory", "db": "ok"}
                assert client.get("/api/products").json()["total"] == 400
                assert client.get("/admin/faults").status_code == 200, "the peer is loopback"
                assert len(list(temp_dir.iterdir())) >= 1
            proc.terminate()
            assert proc.wait(10) in {0, -signal.SIGTERM}  # uvicorn re-raises SIGTERM after a clean exit
        assert list(temp_dir.iterdir()) == [], "the temporary database is removed at shutdown"
    finally:
        listener.close()


def test_cli_serves_on_loopback(tmp_path):
    port = _free_port()
    db_path = tmp_path / "shop.sqlite3"
    args = [sys.executable, "-m", "pytest_shopflow_perf.service", "--port", str(port),
            "--db", str(db_path), "--products", "120", "--users", "3"]  # fmt: skip
    with _process(args, tmp_path / "cli.log", env=_child_env()) as proc, httpx.Client(timeout=2.0) as client:

        def healthy() -> bool:
            assert proc.poll() is None, (tmp_path / "cli.log").read_text()
            try:
                return client.get(f"http://127.0.0.1:{port}/health").status_code == 200
            except httpx.TransportError:
                return False

        _wait_for(healthy, 10, "GET /health")
        assert client.get(f"http://127.0.0.1:{port}/api/products").json()["total"] == 120
    assert db_path.exists(), "an explicit database file is kept"


@pytest.mark.parametrize("host", ["0.0.0.0", "192.168.1.10", "example.com", "::"])
def test_cli_refuses_non_loopback_hosts(host):
    result = subprocess.run(
        [sys.executable, "-m", "pytest_shopflow_perf.service", "--host", host, "--port", "0"],
        capture_output=True,
        text=True,
        env=_child_env(),
        timeout=30,
        check=False,
    )
    assert result.returncode == 2
    assert "loopback only" in result.stderr


# --------------------------------------------------------------------------- Redis


@contextmanager
def _redis(port: int, log: Path) -> Iterator[subprocess.Popen[bytes]]:
    assert REDIS_SERVER is not None
    args = [REDIS_SERVER, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
    with _process(args, log) as proc:

        def accepting() -> bool:
            assert proc.poll() is None, log.read_text()
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            except OSError:
                return False
            return True

        _wait_for(accepting, 5, "redis-server")
        yield proc


@pytest.mark.anyio
@pytest.mark.skipif(REDIS_SERVER is None, reason="redis-server is not installed (apt-get install redis-server)")
async def test_redis_outage_falls_back_to_the_database_and_recovers(start_service, tmp_path, caplog):
    pytest.importorskip("redis", reason="the redis client is not installed (pip install redis)")
    port = _free_port()
    url = f"redis://127.0.0.1:{port}/0"
    with _redis(port, tmp_path / "redis1.log") as redis_proc:
        async with start_service(redis_url=url, redis_retry_interval=0.2) as shop:
            assert (await shop.client.get("/health")).json()["cache"] == "redis"
            first = await shop.client.get("/api/products/5")
            assert (await shop.client.get("/api/products/5")).content == first.content
            assert shop.service.cache.hits == 1

            redis_proc.kill()
            redis_proc.wait()
            for product_id in (5, 6, 5, 7):
                r = await shop.client.get(f"/api/products/{product_id}")
                assert r.status_code == 200, r.text
            assert (await shop.client.get("/api/products/5")).content == first.content
            health = await shop.client.get("/health")
            assert health.status_code == 200
            assert health.json() == {"status": "ok", "cache": "degraded", "db": "ok"}
            headers = await shop.login(1)
            await shop.client.post("/api/cart/items", json={"product_id": 5, "quantity": 1}, headers=headers)
            assert (await shop.client.post("/api/checkout", headers=headers)).status_code == 201
            warnings = [r for r in caplog.records if "unavailable" in r.getMessage()]
            assert len(warnings) == 1, "the outage is logged once"

            with _redis(port, tmp_path / "redis2.log"):
                deadline = time.monotonic() + 5
                while (await shop.client.get("/health")).json()["cache"] != "redis":
                    assert time.monotonic() < deadline, "the cache never reconnected"
                    await anyio.sleep(0.05)
                hits = shop.service.cache.hits
                await shop.client.get("/api/products/9")
                assert (await shop.client.get("/api/products/9")).status_code == 200
                assert shop.service.cache.hits == hits + 1, "caching resumed"
                assert any("reachable again" in r.getMessage() for r in caplog.records)
