"""The embedded reference service: an ASGI app under uvicorn in a subprocess, started and stopped for a session.

It listens on a free loopback port and is health-checked before the first test;
its output goes to a temporary log whose tail is shown when it fails to start.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path

from pytest_shopflow_perf.target.policy import TargetError

DEFAULT_APP = "pytest_shopflow_perf.service:create_app()"
HEALTH_PATH = "/health"
STARTUP_TIMEOUT_S = 30.0


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class EmbeddedServer:
    """An ASGI app under uvicorn in a subprocess on a free loopback port, health-checked.

    :param app: ``module:attribute``; a trailing ``()`` means the attribute is a factory.
    """

    def __init__(
        self,
        app: str = DEFAULT_APP,
        *,
        env: Mapping[str, str] | None = None,
        health_path: str = HEALTH_PATH,
        startup_timeout: float = STARTUP_TIMEOUT_S,
    ) -> None:
        self.app = app
        self.env = dict(env or {})
        self.health_path = health_path
        self.startup_timeout = startup_timeout
        self.base_url = ""
        self._process: subprocess.Popen[bytes] | None = None
        self._log_dir = Path(tempfile.mkdtemp(prefix="shopflow-perf-"))
        self.log_path = self._log_dir / "service.log"

    def start(self) -> str:
        last_error: TargetError | None = None
        for _ in range(3):  # a free port can be taken between probing and binding
            try:
                return self._start_once()
            except TargetError as exc:
                last_error = exc
                if "address already in use" not in self.log_tail().lower():
                    break
        assert last_error is not None
        raise last_error

    def _command(self, port: int) -> list[str]:
        app, factory = (self.app[:-2], True) if self.app.endswith("()") else (self.app, False)
        # The launcher makes uvicorn exit when its stdin (our pipe) closes: it dies with pytest, even on SIGKILL.
        command = [
            sys.executable,
            "-m",
            "pytest_shopflow_perf.target._launch",
            app,
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
        ]
        command += ["--no-access-log", "--log-level", "info", "--timeout-graceful-shutdown", "3"]
        if factory:
            command.append("--factory")
        return command

    def _start_once(self) -> str:
        import httpx

        port = _free_port()
        self.base_url = f"http://127.0.0.1:{port}"
        env = {**os.environ, **self.env}
        with open(self.log_path, "ab") as log:
            self._process = subprocess.Popen(
                self._command(port), stdout=log, stderr=subprocess.STDOUT, env=env, stdin=subprocess.PIPE
            )
        deadline = time.monotonic() + self.startup_timeout
        with httpx.Client(base_url=self.base_url, timeout=2.0, trust_env=False) as client:
            while time.monotonic() < deadline:
                if self._process.poll() is not None:
                    self._close(self._process)
                    self._process = None
                    raise TargetError(
                        f"the embedded service {self.app!r} exited during start-up; its log:\n{self.log_tail()}"
                    )
                try:
                    client.get(self.health_path)
                    return self.base_url  # any HTTP answer means it is serving
                except httpx.TransportError:
                    time.sleep(0.05)
        tail = self.log_tail()
        self._stop_process()
        raise TargetError(
            f"the embedded service {self.app!r} did not answer on {self.base_url} within "
            f"{self.startup_timeout:.0f} s; its log:\n{tail}"
        )

    def stop(self) -> None:
        """Stop the service and remove its temp log dir (the log is readable until now)."""
        self._stop_process()
        shutil.rmtree(self._log_dir, ignore_errors=True)

    def _stop_process(self) -> None:
        process, self._process = self._process, None
        if process is None:
            return
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)
        self._close(process)

    @staticmethod
    def _close(process: subprocess.Popen[bytes]) -> None:
        if process.stdin is not None:
            with contextlib.suppress(OSError):
                process.stdin.close()

    @property
    def pid(self) -> int | None:
        """The launcher's process (uvicorn runs in it); None when the service is not running."""
        return self._process.pid if self.running and self._process is not None else None

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def log_tail(self, lines: int = 60) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return "(no log)"
        return "\n".join(text.splitlines()[-lines:])
