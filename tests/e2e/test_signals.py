"""SIGTERM (how CI cancels a job) keeps what was measured, and the embedded service never outlives pytest."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

pytest_plugins = ["pytester"]

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")

INNER = """
import time, pytest
from pytest_shopflow_perf.plugin.keys import perf_session_key

async def browse(user):
    await user.client.get("/api/products")
    await user.think(0.01)

def _record_service(request, load):
    load.base_url  # starts the embedded service
    pid = request.config.stash[perf_session_key].server._process.pid
    with open("service.pid", "w") as handle:
        handle.write(str(pid))

@pytest.mark.load(users=2, duration="10s")
def test_long(load, request):
    _record_service(request, load)
    load.run(browse)

@pytest.mark.load(users=1, duration="1s")
def test_then_wait(load, request):
    _record_service(request, load)
    load.run(browse)
    open("ran", "w").close()
    time.sleep(30)
"""


def _alive(pid: int) -> bool:
    """Running, and not a zombie waiting for a parent (init may not reap in a container)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        return True
    return state not in ("Z", "X")


def _wait_for(path: Path, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not (path.exists() and (path.suffix != ".pid" or path.read_text().strip())):
        assert time.monotonic() < deadline, f"{path} never appeared"
        time.sleep(0.1)


@pytest.fixture
def inner(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> Iterator[list[subprocess.Popen[str]]]:
    """Started pytest processes; they and their service are killed by PID if a test leaves them running."""
    pytester.makepyfile(test_sig=INNER)
    monkeypatch.setenv("PYTEST_ADDOPTS", "-o asyncio_default_fixture_loop_scope=function")
    started: list[subprocess.Popen[str]] = []
    yield started
    for process in started:
        if process.poll() is None:
            process.kill()
            process.communicate(timeout=30)
    pid_file = pytester.path / "service.pid"
    if pid_file.exists() and pid_file.read_text().strip():
        pid = int(pid_file.read_text())
        if _alive(pid):
            os.kill(pid, signal.SIGKILL)


def _start(pytester: pytest.Pytester, started: list[subprocess.Popen[str]], *args: str) -> subprocess.Popen[str]:
    command = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-p", "no:randomly", *args]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    env.pop("SHOPFLOW_BASE_URL", None)
    process = subprocess.Popen(
        command, cwd=pytester.path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env
    )
    started.append(process)
    return process


def _service_gone(pid: int, within: float) -> bool:
    deadline = time.monotonic() + within
    while _alive(pid):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.1)
    return True


def test_sigterm_during_a_run_keeps_partial_results_and_stops_the_service(
    pytester: pytest.Pytester, inner: list[subprocess.Popen[str]]
) -> None:
    process = _start(pytester, inner, "-k", "test_long", "--perf-report-dir", "out", "--junitxml", "j.xml")
    _wait_for(pytester.path / "service.pid")
    time.sleep(2)
    process.send_signal(signal.SIGTERM)
    output, _ = process.communicate(timeout=60)
    assert process.returncode == 2, output  # pytest's "interrupted", as for Ctrl-C
    assert "INTERRUPTED: partial results" in output, output
    assert (pytester.path / "out" / "summary.json").exists()
    assert (pytester.path / "out" / "test_sig.py__test_long.json").exists()
    assert (pytester.path / "j.xml").exists()
    assert _service_gone(int((pytester.path / "service.pid").read_text()), within=5)


def test_sigterm_between_runs_ends_pytest_with_its_reports(
    pytester: pytest.Pytester, inner: list[subprocess.Popen[str]]
) -> None:
    process = _start(pytester, inner, "-k", "test_then_wait", "--junitxml", "j.xml")
    _wait_for(pytester.path / "ran")
    process.send_signal(signal.SIGTERM)
    output, _ = process.communicate(timeout=60)
    assert process.returncode == 2, output
    assert "KeyboardInterrupt" in output
    assert (pytester.path / "j.xml").exists()
    assert _service_gone(int((pytester.path / "service.pid").read_text()), within=5)


def test_the_service_dies_with_a_killed_pytest(pytester: pytest.Pytester, inner: list[subprocess.Popen[str]]) -> None:
    process = _start(pytester, inner, "-k", "test_long")
    _wait_for(pytester.path / "service.pid")
    pid = int((pytester.path / "service.pid").read_text())
    process.kill()
    process.communicate(timeout=30)
    assert _service_gone(pid, within=10)
