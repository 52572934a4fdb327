#!/usr/bin/env python3
"""Throughput of the shopflow-perf engine against Locust, measured in one run on loopback.

One invocation:

1. starts a fast local target on 127.0.0.1 (nginx with a temp config, or a
   builtin raw-asyncio HTTP/1.1 keep-alive server), pinned to core 1;
2. runs each generator in its own subprocess, pinned to core 0, for the same
   duration with the same number of closed-model users and no think time:
   the shopflow-perf engine as a test runs it (the httpx client over the fast
   transport, on uvloop when installed), with the lean client ``client="fast"``
   and with httpx's own httpcore transport, Locust FastHttpUser, Locust HttpUser
   and, as a reference of what the target can take, wrk;
3. prints req/s, p50, p99, generator CPU and target CPU per generator, and the
   engine / Locust FastHttpUser ratio (the figure to track, since absolute
   numbers drift between machines and with other load).

Every request goes to the target this script starts on 127.0.0.1; nothing else
is contacted. Run ``python benchmarks/throughput.py --help`` for the options.

The script also runs its own subprocesses (``--worker ...``, not for direct
use): the engine and Locust must live in separate processes, since Locust
monkey-patches the standard library with gevent when it is imported.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import importlib.util
import json
import os
import re
import resource
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, cast

BODY = b'{"ok":true,"products":[1,2,3]}'
RESULT_PREFIX = "BENCH-RESULT "
ENGINE_NAMES = {
    "engine": "shopflow-perf engine (httpx client)",
    "engine-fast-client": 'shopflow-perf engine, client="fast"',
    "engine-httpcore": "shopflow-perf engine, httpcore transport",
}
TARGET_CPU = 1
GENERATOR_CPU = 0
SATURATION_CPU_PERCENT = 90.0  # the engine's own threshold (monitor.CPU_LIMIT_PERCENT), used for Locust too
OTHERS_CPU_NOTE_PERCENT = 15.0  # other processes busier than this during a generator run: say so
WRK_MAX_SECONDS = 3.0
START_TIMEOUT_S = 10.0
WORKER_SLACK_S = 40.0  # start-up and shutdown allowance of a generator subprocess beyond --duration

# Locust imports gevent and monkey-patches the standard library at import time:
# patch first, before anything else, then run this script as the worker.
LOCUST_BOOTSTRAP = (
    "from gevent import monkey\n"
    "monkey.patch_all()\n"
    "import runpy, sys\n"
    "sys.argv = sys.argv[1:]\n"
    "runpy.run_path(sys.argv[0], run_name='__main__')\n"
)

NGINX_CONF = """\
daemon off;
master_process on;
worker_processes 1;
pid {tmp}/nginx.pid;
error_log {tmp}/error.log warn;
events {{
    worker_connections 4096;
}}
http {{
    access_log off;
    keepalive_timeout 65;
    keepalive_requests 10000000;
    client_body_temp_path {tmp}/client_body;
    proxy_temp_path {tmp}/proxy;
    fastcgi_temp_path {tmp}/fastcgi;
    uwsgi_temp_path {tmp}/uwsgi;
    scgi_temp_path {tmp}/scgi;
    default_type application/json;
    server {{
        listen 127.0.0.1:{port};
        location / {{ return 200 '{body}'; }}
    }}
}}
"""


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def parse_seconds(text: str) -> float:
    """``5``, ``5s``, ``2.5s`` or ``500ms`` -> seconds."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*(ms|s)?\s*", text)
    if not match:
        raise argparse.ArgumentTypeError(f"duration {text!r}: use seconds, e.g. 5 or 5s or 500ms")
    value = float(match.group(1)) / (1000.0 if match.group(2) == "ms" else 1.0)
    if not 0.5 <= value <= 600:
        raise argparse.ArgumentTypeError(f"duration {text!r}: must lie between 0.5 s and 600 s")
    return value


def positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r}: must be at least 1")
    return value


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for_port(port: int, process: subprocess.Popen[Any], timeout: float = START_TIMEOUT_S) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"target exited with code {process.returncode} before listening")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return
        time.sleep(0.05)
    raise RuntimeError(f"target did not listen on 127.0.0.1:{port} within {timeout:.0f} s")


def stop_process(process: subprocess.Popen[Any], sig: int = signal.SIGTERM) -> None:
    if process.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        process.send_signal(sig)
    try:
        process.wait(timeout=5)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=5)


# ---- CPU accounting from /proc --------------------------------------------------


_CLOCK_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def _stat_fields(pid: int) -> list[str] | None:
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return text[text.rindex(")") + 2 :].split()  # fields from the 3rd (state) on


def process_tree_cpu_seconds(root: int) -> float | None:
    """User + system CPU of ``root`` and its direct children (nginx master and workers)."""
    if not Path("/proc").is_dir():
        return None
    total = 0.0
    found = False
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        pid = int(entry.name)
        fields = _stat_fields(pid)
        if fields is None:
            continue
        if pid == root or int(fields[1]) == root:  # fields[1] is the ppid
            total += (int(fields[11]) + int(fields[12])) / _CLOCK_TICKS  # utime, stime
            found = True
    return total if found else None


def machine_busy_seconds() -> float | None:
    """CPU time spent by every process on the machine, all cores (``/proc/stat``)."""
    try:
        fields = Path("/proc/stat").read_text().splitlines()[0].split()
    except (OSError, IndexError):
        return None
    user, nice, system, _idle, _iowait, irq, softirq, steal = (int(v) for v in fields[1:9])
    return (user + nice + system + irq + softirq + steal) / _CLOCK_TICKS


def children_cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


@dataclass
class CpuWatch:
    """CPU of the generator subprocess, of the target and of everything else while a generator runs."""

    target: Target
    wall: float = 0.0
    machine: float | None = None
    children: float = 0.0
    target_cpu: float | None = None

    def __post_init__(self) -> None:
        self.wall = time.perf_counter()
        self.machine = machine_busy_seconds()
        self.children = children_cpu_seconds()
        self.target_cpu = self.target.cpu_seconds()

    def finish(self, measurement: Measurement) -> None:
        """Fill in target CPU, and what other processes used (they lower every figure)."""
        wall = time.perf_counter() - self.wall
        machine = machine_busy_seconds()
        generator = children_cpu_seconds() - self.children
        target = self.target.cpu_seconds()
        if measurement.cpu_percent is None and measurement.seconds:
            measurement.cpu_percent = round(100.0 * generator / measurement.seconds, 1)
        if target is None or self.target_cpu is None:
            return
        target_delta = target - self.target_cpu
        if measurement.seconds > 0:
            # The target idles while the generator starts up: its CPU over the subprocess ~ under load.
            measurement.target_cpu_percent = round(100.0 * target_delta / measurement.seconds, 1)
        if machine is not None and self.machine is not None and wall > 0:
            others = (machine - self.machine) - generator - target_delta
            measurement.others_cpu_percent = round(max(0.0, 100.0 * others / wall), 1)


# ---- targets --------------------------------------------------------------------


@dataclass
class Target:
    kind: str
    description: str
    port: int
    process: subprocess.Popen[Any]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def cpu_seconds(self) -> float | None:
        return process_tree_cpu_seconds(self.process.pid)


def find_nginx() -> str | None:
    return shutil.which("nginx") or shutil.which("nginx", path="/usr/sbin:/usr/local/sbin")


def pin_prefix(cpu: int, pin: bool) -> list[str]:
    return ["taskset", "-c", str(cpu)] if pin else []


@contextlib.contextmanager
def nginx_target(nginx: str, pin: bool) -> Iterator[Target]:
    with tempfile.TemporaryDirectory(prefix="shopflow-bench-nginx-") as tmp:
        port = free_port()
        conf = Path(tmp) / "nginx.conf"
        conf.write_text(NGINX_CONF.format(tmp=tmp, port=port, body=BODY.decode()))
        version = subprocess.run([nginx, "-v"], capture_output=True, text=True, check=False).stderr.strip()
        command = [*pin_prefix(TARGET_CPU, pin), nginx, "-p", tmp, "-e", f"{tmp}/error.log", "-c", str(conf)]
        process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        try:
            try:
                wait_for_port(port, process)
            except RuntimeError as exc:
                stop_process(process)
                errors = (process.stderr.read() if process.stderr else "") + _read(Path(tmp) / "error.log")
                raise RuntimeError(f"nginx did not start: {exc}\n{errors.strip()}") from None
            name = version.split(":", 1)[-1].strip() or "nginx"
            yield Target("nginx", f"{name}, worker_processes 1", port, process)
        finally:
            stop_process(process, signal.SIGQUIT)  # graceful: workers finish, master removes its pid file


def _read(path: Path) -> str:
    try:
        return path.read_text()
    except OSError:
        return ""


@contextlib.contextmanager
def builtin_target(pin: bool) -> Iterator[Target]:
    script = str(Path(__file__).resolve())
    command = [*pin_prefix(TARGET_CPU, pin), sys.executable, script, "--worker", "server"]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert process.stdout is not None
        line = process.stdout.readline()  # the server prints its port once it listens
        if not line.strip().isdigit():
            stop_process(process)
            errors = process.stderr.read() if process.stderr else ""
            raise RuntimeError(f"builtin server did not start: {line!r}\n{errors.strip()}")
        port = int(line)
        wait_for_port(port, process)
        yield Target("builtin", "builtin raw-asyncio HTTP/1.1 server", port, process)
    finally:
        stop_process(process)


def serve_builtin() -> None:
    """The fallback target: HTTP/1.1 keep-alive on a raw asyncio protocol, one fixed response."""
    import asyncio

    response = (
        b"HTTP/1.1 200 OK\r\nServer: shopflow-bench\r\nContent-Type: application/json\r\n"
        b"Content-Length: " + str(len(BODY)).encode() + b"\r\nConnection: keep-alive\r\n\r\n" + BODY
    )

    class Http(asyncio.Protocol):
        def __init__(self) -> None:
            self.transport: asyncio.Transport | None = None
            self.buffer = b""

        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            self.transport = cast(asyncio.Transport, transport)  # uvloop's is no asyncio.Transport subclass

        def data_received(self, data: bytes) -> None:
            self.buffer += data
            answers = 0
            close = False
            while True:
                end = self.buffer.find(b"\r\n\r\n")
                if end < 0:
                    break
                head = self.buffer[:end].lower()
                length = 0
                match = re.search(rb"\r\ncontent-length:\s*(\d+)", head)
                if match:
                    length = int(match.group(1))
                if len(self.buffer) < end + 4 + length:
                    break  # the body has not arrived yet
                self.buffer = self.buffer[end + 4 + length :]
                answers += 1
                if b"\r\nconnection: close" in head:
                    close = True
                    break
            if self.transport is not None and answers:
                self.transport.write(response * answers)
                if close:
                    self.transport.close()

    async def main() -> None:
        loop = asyncio.get_running_loop()
        server = await loop.create_server(Http, "127.0.0.1", 0, backlog=1024)
        print(server.sockets[0].getsockname()[1], flush=True)
        stop = asyncio.Event()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await stop.wait()
        server.close()

    try:
        import uvloop

        uvloop.run(main())
    except ImportError:
        asyncio.run(main())


# ---- generators (each runs in its own subprocess) ------------------------------------


@dataclass
class Measurement:
    generator: str
    requests: int = 0
    errors: int = 0
    seconds: float = 0.0
    rps: float = 0.0
    p50_ms: float | None = None
    p99_ms: float | None = None
    cpu_percent: float | None = None
    target_cpu_percent: float | None = None
    others_cpu_percent: float | None = None
    saturated: bool = False
    notes: list[str] = field(default_factory=list)
    failed: str | None = None


def engine_worker(
    url: str,
    users: int,
    duration: float,
    http_transport: str = "fast",
    client: str = "httpx",
    event_loop: str = "auto",
) -> Measurement:
    """Closed model, ``users`` users, no think time, one journey: ``GET /``, as ``load.run`` runs it."""
    import anyio

    from pytest_shopflow_perf.engine.engine import Engine
    from pytest_shopflow_perf.profile.resolve import Source, resolve_profile

    empty = Source("none", {})
    marker = Source("bench", {"users": users, "duration": f"{duration}s", "client": client})
    profile = resolve_profile(ini=empty, marker=marker, env=empty, cli=empty)

    async def journey(user: Any) -> None:
        await user.client.get("/")

    use_uvloop = event_loop == "uvloop" or (event_loop == "auto" and importlib.util.find_spec("uvloop") is not None)
    engine = Engine(profile, journey, base_url=url, http_transport=http_transport)
    result = anyio.run(engine.run, backend_options={"use_uvloop": True} if use_uvloop else {})
    generator = result.generator
    notes = list(generator.reasons)
    if not any("lag" in reason for reason in notes):
        notes.append(f"event-loop lag p99 {generator.loop_lag_p99_ms:.1f} ms")
    if result.extra.get("fast_transport_delegated"):
        notes.append(f"{result.extra['fast_transport_delegated']} requests delegated to httpcore")
    notes.append(f"{generator.event_loop} loop")
    kind = (
        "engine-fast-client" if client == "fast" else ("engine-httpcore" if http_transport == "httpcore" else "engine")
    )
    return Measurement(
        generator=ENGINE_NAMES[kind],
        requests=result.requests,
        errors=result.errors,
        seconds=result.duration,
        rps=result.rps,
        p50_ms=result.percentile(50) * 1000,
        p99_ms=result.percentile(99) * 1000,
        cpu_percent=generator.cpu_percent,
        saturated=generator.saturated,
        notes=notes,
    )


def locust_worker(kind: str, url: str, users: int, duration: float) -> Measurement:
    """Locust through its library API: spawn ``users`` at ``users``/s, then measure ``duration``."""
    import gevent
    from locust import FastHttpUser, HttpUser, constant, task
    from locust.env import Environment

    base: type[HttpUser] | type[FastHttpUser] = FastHttpUser if kind == "locust-fast" else HttpUser

    class BenchUser(base):  # type: ignore[valid-type,misc]
        host = url
        wait_time = constant(0)

        @task
        def index(self) -> None:
            self.client.get("/")

    env = Environment(user_classes=[BenchUser], host=url)
    runner = env.create_local_runner()
    runner.start(users, spawn_rate=users)
    deadline = time.monotonic() + START_TIMEOUT_S
    while runner.user_count < users and time.monotonic() < deadline:
        gevent.sleep(0.05)
    env.stats.reset_all()  # measure the steady state, as the engine (all users start at t=0)
    wall0, cpu0 = time.perf_counter(), time.process_time()
    gevent.sleep(duration)
    seconds = time.perf_counter() - wall0
    cpu = 100.0 * (time.process_time() - cpu0) / seconds
    total = env.stats.total
    requests, errors = total.num_requests, total.num_failures
    p50 = float(total.get_response_time_percentile(0.5)) if requests else None
    p99 = float(total.get_response_time_percentile(0.99)) if requests else None
    cpu_warning = runner.cpu_warning_emitted
    runner.quit()
    saturated = cpu > SATURATION_CPU_PERCENT or cpu_warning
    notes = [f"generator CPU {cpu:.0f} % > {SATURATION_CPU_PERCENT:.0f} % of a core"] if saturated else []
    notes.append("percentiles rounded by Locust to whole ms")
    return Measurement(
        generator="Locust FastHttpUser" if kind == "locust-fast" else "Locust HttpUser",
        requests=requests,
        errors=errors,
        seconds=seconds,
        rps=requests / seconds,
        p50_ms=p50,
        p99_ms=p99,
        cpu_percent=round(cpu, 1),
        saturated=saturated,
        notes=notes,
    )


def run_worker(args: argparse.Namespace) -> int:
    if args.worker == "server":
        serve_builtin()
        return 0
    if args.worker == "engine":
        measurement = engine_worker(args.url, args.users, args.duration, event_loop=args.event_loop)
    elif args.worker == "engine-httpcore":
        measurement = engine_worker(
            args.url, args.users, args.duration, http_transport="httpcore", event_loop=args.event_loop
        )
    elif args.worker == "engine-fast-client":
        measurement = engine_worker(args.url, args.users, args.duration, client="fast", event_loop=args.event_loop)
    else:
        measurement = locust_worker(args.worker, args.url, args.users, args.duration)
    print(RESULT_PREFIX + json.dumps(asdict(measurement)), flush=True)
    return 0


def clean_env() -> dict[str, str]:
    """No proxy may route the load anywhere but the loopback target."""
    env = {key: value for key, value in os.environ.items() if "proxy" not in key.lower()}
    env["NO_PROXY"] = env["no_proxy"] = "127.0.0.1,localhost"
    return env


def run_generator(
    name: str, kind: str, target: Target, users: int, duration: float, pin: bool, event_loop: str = "auto"
) -> Measurement:
    script = str(Path(__file__).resolve())
    worker_args = ["--worker", kind, "--url", target.url, "--users", str(users), "--duration", f"{duration}s"]
    worker_args += ["--event-loop", event_loop]
    if kind.startswith("engine"):
        command = [sys.executable, script, *worker_args]
    else:
        command = [sys.executable, "-c", LOCUST_BOOTSTRAP, script, *worker_args]
    command = [*pin_prefix(GENERATOR_CPU, pin), *command]
    log(f"  running {name} ({users} users, {duration:g} s) ...")
    watch = CpuWatch(target)
    try:
        completed = subprocess.run(
            command,
            capture_output=True,
            text=True,
            timeout=duration + WORKER_SLACK_S,
            env=clean_env(),
            check=False,
        )
    except subprocess.TimeoutExpired:
        return Measurement(generator=name, failed=f"did not finish within {duration + WORKER_SLACK_S:.0f} s")
    lines = [line for line in completed.stdout.splitlines() if line.startswith(RESULT_PREFIX)]
    if completed.returncode != 0 or not lines:
        tail = "\n".join((completed.stderr or completed.stdout).strip().splitlines()[-15:])
        return Measurement(generator=name, failed=f"exit code {completed.returncode}\n{tail}")
    measurement = Measurement(**json.loads(lines[-1][len(RESULT_PREFIX) :]))
    if not measurement.requests:
        measurement.failed = "no request completed (is the target answering?)"
    watch.finish(measurement)
    return measurement


_WRK_UNITS = {"us": 0.001, "ms": 1.0, "s": 1000.0}


def run_wrk(wrk: str, target: Target, users: int, duration: float, pin: bool) -> Measurement:
    """wrk with one thread: what a C generator gets from the same core, i.e. the target's headroom."""
    seconds = max(1, round(min(duration, WRK_MAX_SECONDS)))
    name = "wrk -t1 (C, reference)"
    wrk_args = ["-t1", f"-c{users}", f"-d{seconds}s", "--latency", f"{target.url}/"]
    command = [*pin_prefix(GENERATOR_CPU, pin), wrk, *wrk_args]
    log(f"  running {name} ({users} connections, {seconds} s) ...")
    watch = CpuWatch(target)
    try:
        completed = subprocess.run(command, capture_output=True, text=True, timeout=seconds + 20, check=False)
    except subprocess.TimeoutExpired:
        return Measurement(generator=name, failed="wrk did not finish")
    out = completed.stdout
    match = re.search(r"(\d+) requests in ([\d.]+)(us|ms|s|m)", out)
    rps = re.search(r"Requests/sec:\s*([\d.]+)", out)
    if completed.returncode != 0 or not match or not rps or not int(match.group(1)):
        return Measurement(generator=name, failed=(completed.stderr or out).strip()[-500:])

    def latency(percent: str) -> float | None:
        found = re.search(rf"^\s*{percent}%\s+([\d.]+)(us|ms|s)\s*$", out, re.MULTILINE)
        return float(found.group(1)) * _WRK_UNITS[found.group(2)] if found else None

    errors = re.search(r"Non-2xx or 3xx responses:\s*(\d+)", out)
    socket_errors = re.search(r"Socket errors:.*", out)
    notes = [socket_errors.group(0)] if socket_errors else []
    measurement = Measurement(
        generator=name,
        requests=int(match.group(1)),
        errors=int(errors.group(1)) if errors else 0,
        seconds=float(match.group(2)) * {"us": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0}[match.group(3)],
        rps=float(rps.group(1)),
        p50_ms=latency("50"),
        p99_ms=latency("99"),
        notes=notes,
    )
    watch.finish(measurement)
    return measurement


# ---- report --------------------------------------------------------------------------


def _fmt(value: float | None, pattern: str) -> str:
    return "-" if value is None else format(value, pattern)


def ratio_to(measurement: Measurement, reference: Measurement | None) -> float | None:
    if reference is None or reference.failed or not reference.rps or measurement.failed:
        return None
    return measurement.rps / reference.rps


def render_table(results: list[Measurement], reference: Measurement | None) -> str:
    header = (
        "generator",
        "req/s",
        "p50 ms",
        "p99 ms",
        "gen CPU %",
        "target CPU %",
        "others CPU %",
        "vs Locust Fast",
    )
    rows = [header]
    for m in results:
        if m.failed:
            rows.append((m.generator, "failed", "", "", "", "", "", ""))
            continue
        ratio = ratio_to(m, reference)
        rows.append(
            (
                m.generator,
                f"{m.rps:,.0f}",
                _fmt(m.p50_ms, ".2f"),
                _fmt(m.p99_ms, ".2f"),
                _fmt(m.cpu_percent, ".0f"),
                _fmt(m.target_cpu_percent, ".0f"),
                _fmt(m.others_cpu_percent, ".0f"),
                "-" if ratio is None else f"{ratio:.2f}x",
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    lines = []
    for index, row in enumerate(rows):
        right = (cell.rjust(width) for cell, width in zip(row[1:], widths[1:], strict=True))
        cells = [row[0].ljust(widths[0]), *right]
        lines.append("  ".join(cells).rstrip())
        if index == 0:
            lines.append("  ".join("-" * width for width in widths))
    return "\n".join(lines)


def report_notes(results: list[Measurement]) -> list[str]:
    notes = []
    for m in results:
        if m.failed:
            notes.append(f"{m.generator} failed: {m.failed}")
            continue
        if m.errors:
            notes.append(f"{m.generator}: {m.errors} of {m.requests} requests failed")
        if m.saturated:
            why = "; ".join(note for note in m.notes if "%" in note or "lag" in note) or "CPU"
            notes.append(f"{m.generator} was saturated ({why}): it is the bottleneck, not the target")
        elif m.cpu_percent is not None and m.cpu_percent < 60 and not m.generator.startswith("wrk"):
            notes.append(
                f"{m.generator} used only {m.cpu_percent:.0f} % of its core: the target, the loopback or "
                "another process on that core limited it"
            )
        if m.target_cpu_percent is not None and m.target_cpu_percent > SATURATION_CPU_PERCENT:
            limit = (
                "wrk reached the target's capacity (expected: it is the reference)"
                if m.generator.startswith("wrk")
                else "the target was the limit, not the generator"
            )
            notes.append(f"target CPU {m.target_cpu_percent:.0f} % during {m.generator}: {limit}")
    busy = [m for m in results if (m.others_cpu_percent or 0.0) > OTHERS_CPU_NOTE_PERCENT]
    if busy:
        worst = max(busy, key=lambda m: m.others_cpu_percent or 0.0)
        notes.append(
            f"the machine was busy: other processes used up to {worst.others_cpu_percent:.0f} % of a core "
            f"(during {worst.generator}); absolute figures are low and noisy, the ratio is more robust"
        )
    return notes


# ---- orchestration ---------------------------------------------------------------


def cpus_for_pinning() -> bool:
    if shutil.which("taskset") is None or not hasattr(os, "sched_getaffinity"):
        return False
    return {TARGET_CPU, GENERATOR_CPU} <= os.sched_getaffinity(0)


def open_target(args: argparse.Namespace, pin: bool) -> contextlib.AbstractContextManager[Target]:
    nginx = find_nginx()
    if args.target == "nginx":
        if nginx is None:
            raise SystemExit("--target nginx: nginx not found on PATH (apt-get install -y nginx)")
        return nginx_target(nginx, pin)
    return builtin_target(pin)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="Engine vs Locust throughput against a local nginx or builtin target, in one run "
        "(loopback only, each generator pinned to one core).",
    )
    parser.add_argument("--duration", type=parse_seconds, default=5.0, help="per generator (default 5s)")
    parser.add_argument(
        "--users", "--connections", dest="users", type=positive_int, default=50,
        help="closed-model users = concurrent connections (default 50)",
    )  # fmt: skip
    parser.add_argument(
        "--target", choices=("nginx", "builtin"), default=None,
        help="nginx (default when installed) or the builtin raw-asyncio server",
    )  # fmt: skip
    parser.add_argument(
        "--pin", action=argparse.BooleanOptionalAction, default=True,
        help=f"taskset: target on core {TARGET_CPU}, generators on core {GENERATOR_CPU} (default on)",
    )  # fmt: skip
    parser.add_argument(
        "--locust-http", action=argparse.BooleanOptionalAction, default=True,
        help="also run Locust HttpUser (requests); default on",
    )  # fmt: skip
    parser.add_argument(
        "--wrk", action=argparse.BooleanOptionalAction, default=True,
        help=f"also run wrk -t1 for {WRK_MAX_SECONDS:g} s when installed: the target's headroom; default on",
    )  # fmt: skip
    parser.add_argument("--json", action="store_true", help="print one JSON line on stdout (the table goes to stderr)")
    parser.add_argument(
        "--httpcore", action=argparse.BooleanOptionalAction, default=True,
        help="also run the engine with httpx's own httpcore transport (--perf-transport httpcore); default on",
    )  # fmt: skip
    parser.add_argument(
        "--event-loop", choices=("auto", "uvloop", "asyncio"), default="auto",
        help="loop of the engine rows, as --perf-event-loop (auto: uvloop when installed, as load.run)",
    )  # fmt: skip
    parser.add_argument(
        "--fast-client", action=argparse.BooleanOptionalAction, default=True,
        help='also run the engine with the lean client client="fast" (engine/fast_client.py); default on',
    )  # fmt: skip
    workers = ("engine", "engine-httpcore", "engine-fast-client", "locust-fast", "locust-http", "server")
    parser.add_argument("--worker", choices=workers, help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.worker:
        return run_worker(args)

    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # run the finally blocks: stop the target
    out = sys.stderr if args.json else sys.stdout
    auto_target = args.target is None
    if auto_target:
        args.target = "nginx" if find_nginx() else "builtin"
    pin = args.pin and cpus_for_pinning()
    if args.pin and not pin:
        log(f"note: pinning needs taskset and cores {GENERATOR_CPU} and {TARGET_CPU}; running unpinned")
    has_locust = importlib.util.find_spec("locust") is not None
    load_before = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
    started = time.monotonic()
    results: list[Measurement] = []

    try:
        target_cm = open_target(args, pin)
        target = target_cm.__enter__()
    except RuntimeError as exc:
        if not auto_target or args.target != "nginx":
            raise
        log(f"{exc}\nfalling back to the builtin target")
        args.target = "builtin"
        target_cm = open_target(args, pin)
        target = target_cm.__enter__()
    try:
        log(f"target: {target.description} on {target.url}" + (f" (core {TARGET_CPU})" if pin else ""))
        wrk = shutil.which("wrk")
        if args.wrk and wrk:
            results.append(run_wrk(wrk, target, args.users, args.duration, pin))
        kinds = ["engine"] + ["engine-fast-client"] * args.fast_client + ["engine-httpcore"] * args.httpcore
        for kind in kinds:
            results.append(
                run_generator(ENGINE_NAMES[kind], kind, target, args.users, args.duration, pin, args.event_loop)
            )
        if has_locust:
            results.append(run_generator("Locust FastHttpUser", "locust-fast", target, args.users, args.duration, pin))
            if args.locust_http:
                results.append(run_generator("Locust HttpUser", "locust-http", target, args.users, args.duration, pin))
    finally:
        target_cm.__exit__(*sys.exc_info())

    engine = next(m for m in results if m.generator == ENGINE_NAMES["engine"])
    reference = next((m for m in results if m.generator == "Locust FastHttpUser"), None)
    ratio = ratio_to(engine, reference)
    httpcore_engine = next((m for m in results if m.generator == ENGINE_NAMES["engine-httpcore"]), None)
    httpcore_ratio = ratio_to(httpcore_engine, reference) if httpcore_engine is not None else None
    lean_engine = next((m for m in results if m.generator == ENGINE_NAMES["engine-fast-client"]), None)
    lean_ratio = ratio_to(lean_engine, reference) if lean_engine is not None else None
    load_after = os.getloadavg()[0] if hasattr(os, "getloadavg") else None

    print(
        f"\nshopflow-perf throughput, {datetime.date.today().isoformat()}: {args.users} users/connections, "
        f"{args.duration:g} s per generator, target {target.description}"
        + (f", pinned (generators core {GENERATOR_CPU}, target core {TARGET_CPU})" if pin else ", unpinned"),
        file=out,
    )
    print(render_table(results, reference), file=out)
    print(file=out)
    if not has_locust:
        print("locust not installed: ratio unavailable", file=out)
    elif ratio is None:
        print("engine / Locust FastHttpUser: unavailable (a run failed)", file=out)
    else:
        print(f"engine (httpx client) / Locust FastHttpUser: {ratio:.2f}x", file=out)
        if lean_ratio is not None:
            print(f'engine with client="fast" / Locust FastHttpUser: {lean_ratio:.2f}x', file=out)
        if httpcore_ratio is not None:
            print(f"engine with the httpcore transport / Locust FastHttpUser: {httpcore_ratio:.2f}x", file=out)
    for note in report_notes(results):
        print(f"note: {note}", file=out)
    if load_before is not None and load_after is not None:
        print(
            f"load average (1 min) before/after: {load_before:.2f} / {load_after:.2f} "
            f"(figures drop when other processes share the cores; compare ratios from one run)",
            file=out,
        )
    print(f"total time {time.monotonic() - started:.1f} s", file=out)

    if args.json:
        record = {
            "date": datetime.date.today().isoformat(),
            "target": args.target,
            "target_description": target.description,
            "users": args.users,
            "duration_s": args.duration,
            "pinned": pin,
            "load_average_before": load_before,
            "load_average_after": load_after,
            "results": [asdict(m) for m in results],
            "engine_vs_locust_fast": None if ratio is None else round(ratio, 4),
            "engine_httpcore_vs_locust_fast": None if httpcore_ratio is None else round(httpcore_ratio, 4),
            "event_loop": args.event_loop,
            "engine_fast_client_vs_locust_fast": None if lean_ratio is None else round(lean_ratio, 4),
            "locust_installed": has_locust,
        }
        print(json.dumps(record), flush=True)
    return 1 if engine.failed else 0


if __name__ == "__main__":
    sys.exit(main())
