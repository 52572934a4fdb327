"""Where the load goes: loopback safety, and the embedded service under uvicorn.

Never load-test production by accident: any host that is not loopback must be
named with ``--perf-allow-host``.
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterable, Mapping
from pathlib import Path
from urllib.parse import urlsplit

DEFAULT_APP = "pytest_shopflow_perf.service:create_app()"
HEALTH_PATH = "/health"
STARTUP_TIMEOUT_S = 30.0
_LOOPBACK_NAMES = {"localhost", "localhost.localdomain", "ip6-localhost", "ip6-loopback"}

# check_host verdicts
_REFUSED, _LOOPBACK_IP, _ALLOWED, _RESOLVE = range(4)


class TargetError(Exception):
    """The target is refused or could not be started; the message says how to fix it."""


def _bare(host: str) -> str:
    return host.strip("[]").lower()


def _loopback_ip(host: str) -> bool:
    """127.0.0.0/8 or ::1 written plainly; odd forms (``127.1``, ``0x7f000001``, ``::ffff:127.0.0.1``) are not."""
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return False  # Python versions disagree on whether a mapped 127.x is loopback: refuse it
    return address.is_loopback


def _localhost_name(host: str) -> bool:
    return host in _LOOPBACK_NAMES or (host.endswith(".localhost") and len(host) > len(".localhost"))


def is_loopback_host(host: str) -> bool:
    """Loopback by its spelling: an IP literal in 127.0.0.0/8 or ::1, or a localhost-family name (unresolved)."""
    host = _bare(host)
    return _localhost_name(host) or _loopback_ip(host)


def refusal_message(host: str) -> str:
    return (
        f"host {host!r} is not loopback (127.0.0.0/8, ::1, localhost) and not allowed: if this is a test "
        f"environment you own, allow it explicitly with `--perf-allow-host {host}` (or ini `perf_allow_hosts`)"
    )


class TargetPolicy:
    """Which hosts load may go to, checked for every request and every connection.

    Loopback IP literals pass; explicitly allowed hosts pass (and are resolved
    normally); localhost-family names pass only if every address they resolve
    to is loopback, and the connection then goes to that checked address (no
    second resolution, so no DNS rebinding); any other name is refused without
    resolving it. Verdicts and resolutions are cached: the check is on the hot path.
    """

    def __init__(self, allowed_hosts: Iterable[str] = ()) -> None:
        self.allowed = frozenset(h.strip().lower() for h in allowed_hosts if h.strip())
        self._verdicts: dict[tuple[str, int | None], int] = {}
        self._resolved: dict[tuple[str, int], tuple[str, ...]] = {}
        self._not_loopback: dict[str, str] = {}  # localhost-family names that resolved elsewhere -> why
        self._lock = threading.Lock()

    def allowing(self, *hosts: str) -> TargetPolicy:
        """A copy that also allows ``hosts`` (the in-process host of an ASGI run, which is never connected to)."""
        return TargetPolicy([*self.allowed, *hosts])

    def _verdict(self, host: str, port: int | None) -> int:
        key = (host, port)
        verdict = self._verdicts.get(key)
        if verdict is None:
            bare = _bare(host)
            if bare in self.allowed or (port is not None and f"{bare}:{port}" in self.allowed):
                verdict = _ALLOWED
            elif _loopback_ip(bare):
                verdict = _LOOPBACK_IP
            elif _localhost_name(bare):
                verdict = _RESOLVE
            else:
                verdict = _REFUSED
            if len(self._verdicts) < 4096:  # journeys that invent hosts must not grow it without end
                self._verdicts[key] = verdict
        return verdict

    def check_host(self, host: str, port: int | None = None) -> bool:
        """Whether a request to ``host`` may be sent (sync, no DNS); localhost names are checked again at connect."""
        verdict = self._verdict(host, port)
        return verdict != _REFUSED and not (verdict == _RESOLVE and _bare(host) in self._not_loopback)

    def resolve_loopback(self, host: str, port: int) -> tuple[str, ...]:
        """Every address of a localhost-family name, all loopback, or ``TargetError`` (blocking: getaddrinfo)."""
        key = (_bare(host), port)
        with self._lock:
            cached = self._resolved.get(key)
            if cached is not None:
                return cached
            if key[0] in self._not_loopback:
                raise TargetError(self._not_loopback[key[0]])
            infos = socket.getaddrinfo(key[0], port, type=socket.SOCK_STREAM)
            addresses = tuple(dict.fromkeys(str(info[4][0]) for info in infos))
            outside = [a for a in addresses if not _loopback_ip(a)]
            if outside or not addresses:
                why = (
                    f"host {host!r} resolves to {', '.join(outside) or 'nothing'}, not only to loopback; "
                    f"if that is a test environment you own, allow it with `--perf-allow-host {_bare(host)}`"
                )
                self._not_loopback[key[0]] = why  # refused from now on, without asking the resolver again
                raise TargetError(why)
            self._resolved[key] = addresses
            return addresses

    async def connect_address(self, host: str, port: int) -> str:
        """The address to connect to for ``host``: checked, so the connection goes where the check looked.

        Raises ``TargetRefused`` (an httpx ``TransportError``) for a refused host.
        """
        verdict = self._verdict(host, port)
        if verdict == _LOOPBACK_IP:
            return _bare(host)
        if verdict == _ALLOWED:
            return host  # the user vouched for it: resolved by the connection as usual
        from pytest_shopflow_perf.engine.user import TargetRefused

        if verdict == _REFUSED:
            raise TargetRefused(_bare(host))
        bare = _bare(host)
        cached = self._resolved.get((bare, port))
        if cached is not None:
            return cached[0]
        if bare in self._not_loopback:
            raise TargetRefused(bare, self._not_loopback[bare])
        import anyio.to_thread

        try:
            return (await anyio.to_thread.run_sync(self.resolve_loopback, host, port))[0]
        except TargetError as exc:
            raise TargetRefused(_bare(host), str(exc)) from None

    def other_addresses(self, host: str, port: int, tried: str) -> tuple[str, ...]:
        """The other checked addresses of a resolved localhost-family name, to try when ``tried`` refuses."""
        return tuple(a for a in self._resolved.get((_bare(host), port), ()) if a != tried)

    def check_url(self, base_url: str) -> None:
        """Set-up check of a base URL (resolves localhost-family names); ``TargetError`` says how to fix it."""
        parts = urlsplit(base_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise TargetError(f"target {base_url!r} is not an http:// or https:// URL with a host")
        host = parts.hostname
        try:
            port = parts.port
        except ValueError:
            raise TargetError(f"target {base_url!r} has an invalid port") from None
        verdict = self._verdict(host, port)
        if verdict == _REFUSED:
            raise TargetError(
                f"refusing to load-test {base_url!r}: {refusal_message(host)}. Never point a load test at production."
            )
        if verdict == _RESOLVE:
            try:
                self.resolve_loopback(host, port or (443 if parts.scheme == "https" else 80))
            except OSError as exc:
                why = f"host {host!r} does not resolve ({exc})"
                raise TargetError(f"refusing to load-test {base_url!r}: {why}") from None
            except TargetError as exc:
                raise TargetError(f"refusing to load-test {base_url!r}: {exc}") from None


def check_target(base_url: str, allowed_hosts: Iterable[str]) -> None:
    """Refuse non-loopback hosts unless allowed; localhost-family names must resolve to loopback only."""
    TargetPolicy(allowed_hosts).check_url(base_url)


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
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def log_tail(self, lines: int = 60) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return "(no log)"
        return "\n".join(text.splitlines()[-lines:])
