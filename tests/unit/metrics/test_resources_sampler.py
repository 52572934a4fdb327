"""The target's resources: psutil on a process the test controls, Prometheus text from a server it serves.

Figures are checked against what the process itself says (its allocations, its own CPU time), never
against how fast this machine is.
"""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from pytest_shopflow_perf.metrics.resources import ResourceSampler, check_pid, series_key

BUSY_CHILD = Path(__file__).parents[2] / "support" / "busy_child.py"


class Child:
    def __init__(self) -> None:
        self.process = subprocess.Popen(
            [sys.executable, str(BUSY_CHILD)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
        )
        assert self.ask_line() == "ready"

    def ask_line(self) -> str:
        assert self.process.stdout is not None
        return self.process.stdout.readline().strip()

    def ask(self, command: str) -> str:
        assert self.process.stdin is not None
        self.process.stdin.write(command + "\n")
        self.process.stdin.flush()
        answer = self.ask_line()
        assert answer.startswith("ok"), answer
        return answer.removeprefix("ok").strip()

    def stop(self) -> None:
        """Ends it (and its child), closing the pipes, also when it already exited."""
        assert self.process.stdin is not None
        assert self.process.stdout is not None
        if self.process.poll() is None:
            try:
                self.process.stdin.write("exit\n")
                self.process.stdin.flush()
                self.process.wait(timeout=10)
            except (OSError, subprocess.TimeoutExpired):
                self.process.kill()
                self.process.wait()
        self.process.stdin.close()
        self.process.stdout.close()


@pytest.fixture
def child() -> Iterator[Child]:
    process = Child()
    try:
        yield process
    finally:
        process.stop()


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_rss_follows_what_the_process_and_its_children_hold(child: Child) -> None:
    clock = Clock()
    sampler = ResourceSampler(pid=child.process.pid, clock=clock)
    sampler.prime()
    sampler.clock_started(clock.now)
    clock.now += 1
    sampler.sample()
    child.ask("alloc 80")
    clock.now += 1
    sampler.sample()
    child.ask("spawn 60")
    clock.now += 1
    sampler.sample()
    samples, notes = sampler.stop()
    assert notes == []
    assert [s["t_s"] for s in samples] == [1.0, 2.0, 3.0]
    before, allocated, with_child = (s["rss_mb"] for s in samples)
    assert allocated - before >= 75  # 80 MB touched; the interpreter's own pages may move a little
    assert with_child - allocated >= 55  # the child's 60 MB count: a gunicorn's workers are the service too
    assert samples[2]["threads"] >= 2
    assert all("connections" in s or "connections: access denied (not counted)" in notes for s in samples)


def test_cpu_percent_adds_up_to_the_cpu_time_the_process_reports(child: Child) -> None:
    sampler = ResourceSampler(pid=child.process.pid, interval_s=0.1)
    start_cpu = float(child.ask("cpu"))
    sampler.start()
    sampler.clock_started(time.perf_counter())
    used = float(child.ask("burn 0.6")) - start_cpu
    samples, _ = sampler.stop()
    times = [0.0, *(s["t_s"] for s in samples)]
    measured = sum(s["cpu_percent"] / 100 * (t1 - t0) for s, t0, t1 in zip(samples, times, times[1:], strict=False))
    # the first sample's CPU covers prime() to it, its t_s clock_started() to it: a hair apart
    assert measured == pytest.approx(used, abs=0.15 + 0.25 * used)


def test_a_process_that_exits_during_the_run_is_a_note_not_a_crash(child: Child) -> None:
    clock = Clock()
    sampler = ResourceSampler(pid=child.process.pid, clock=clock)
    sampler.prime()
    sampler.clock_started(clock.now)
    clock.now += 1
    sampler.sample()
    child.stop()
    clock.now += 1
    sampler.sample()
    samples, notes = sampler.stop()
    assert len(samples) == 1
    assert notes == [f"process {child.process.pid} exited during the run"]


def test_check_pid_says_why_a_pid_cannot_be_sampled(child: Child) -> None:
    assert check_pid(child.process.pid) is None
    pid = child.process.pid
    child.stop()
    assert check_pid(pid) == f"no process with PID {pid} on this machine"


def test_a_real_process_metrics_endpoint_gives_its_cpu_and_memory(child: Child) -> None:
    """prometheus_client's own process collector in the child: what a Python service exposes."""
    url = f"http://127.0.0.1:{child.ask('metrics')}/metrics"
    sampler = ResourceSampler(metrics_url=url)
    start_cpu = float(child.ask("cpu"))
    sampler.prime()
    sampler.clock_started(time.perf_counter())
    sampler.sample()
    child.ask("alloc 80")
    used = float(child.ask("burn 0.5")) - start_cpu
    sampler.sample()
    samples, notes = sampler.stop()
    assert notes == []
    before, after = samples
    assert after["rss_mb"] - before["rss_mb"] >= 75
    intervals = [before["t_s"], after["t_s"] - before["t_s"]]
    measured = sum(s["cpu_percent"] / 100 * dt for s, dt in zip(samples, intervals, strict=True))
    assert measured == pytest.approx(used, abs=0.1 + 0.25 * used)  # /proc ticks: 10 ms resolution
    assert "process_open_fds" in after["gauges"]


class Exposition:
    """A Prometheus text endpoint on loopback whose body the test sets."""

    def __init__(self) -> None:
        self.body = ""
        self.status = 200
        exposition = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                body = exposition.body.encode()
                self.send_response(exposition.status)
                self.send_header("Content-Type", "text/plain; version=0.0.4")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/metrics"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def exposition() -> Iterator[Exposition]:
    server = Exposition()
    try:
        yield server
    finally:
        server.close()


def metrics_text(cpu_s: float, rss_bytes: int, orders: int, in_use: int) -> str:
    return f"""# HELP process_cpu_seconds_total Total user and system CPU time spent in seconds.
# TYPE process_cpu_seconds_total counter
process_cpu_seconds_total {cpu_s}
# HELP process_resident_memory_bytes Resident memory size in bytes.
# TYPE process_resident_memory_bytes gauge
process_resident_memory_bytes {rss_bytes}
# HELP orders_total Orders placed.
# TYPE orders_total counter
orders_total{{shop="eu"}} {orders}
# HELP db_connections_in_use Connections in use.
# TYPE db_connections_in_use gauge
db_connections_in_use{{pool="main"}} {in_use}
db_connections_in_use{{pool="replica"}} 1
# HELP request_seconds Latency.
# TYPE request_seconds histogram
request_seconds_bucket{{le="0.1"}} 3
request_seconds_bucket{{le="+Inf"}} 4
request_seconds_count 4
request_seconds_sum 0.5
"""


def test_counters_become_rates_and_gauges_values(exposition: Exposition) -> None:
    clock = Clock()
    sampler = ResourceSampler(metrics_url=exposition.url, clock=clock)
    exposition.body = metrics_text(cpu_s=10.0, rss_bytes=200_000_000, orders=100, in_use=2)
    sampler.prime()
    sampler.clock_started(clock.now)
    clock.now += 2
    exposition.body = metrics_text(cpu_s=11.5, rss_bytes=250_000_000, orders=160, in_use=7)
    sampler.sample()
    (sample,), notes = sampler.stop()
    assert notes == []
    assert sample["cpu_percent"] == pytest.approx(75.0)  # 1.5 CPU s in 2 s
    assert sample["rss_mb"] == pytest.approx(250.0)
    assert sample["rates"] == {'orders_total{shop="eu"}': pytest.approx(30.0)}
    assert sample["gauges"]['db_connections_in_use{pool="main"}'] == 7
    assert sample["gauges"]['db_connections_in_use{pool="replica"}'] == 1
    assert "threads" not in sample  # only psutil knows those


def test_a_counter_reset_is_skipped_not_a_negative_rate(exposition: Exposition) -> None:
    clock = Clock()
    sampler = ResourceSampler(metrics_url=exposition.url, clock=clock)
    exposition.body = metrics_text(cpu_s=10.0, rss_bytes=1, orders=100, in_use=0)
    sampler.prime()
    sampler.clock_started(clock.now)
    clock.now += 1
    exposition.body = metrics_text(cpu_s=0.5, rss_bytes=1, orders=3, in_use=0)  # the service restarted
    sampler.sample()
    (sample,), _ = sampler.stop()
    assert sample["cpu_percent"] is None
    assert "rates" not in sample


@pytest.mark.parametrize(
    ("status", "body", "note"),
    [
        (500, "oops", "HTTPStatusError"),
        (200, "<html>a login page</html>", "not Prometheus text"),
    ],
)
def test_a_scrape_that_fails_is_a_note(exposition: Exposition, status: int, body: str, note: str) -> None:
    clock = Clock()
    exposition.status, exposition.body = status, body
    sampler = ResourceSampler(metrics_url=exposition.url, clock=clock)
    sampler.prime()
    sampler.clock_started(clock.now)
    clock.now += 1
    sampler.sample()
    samples, notes = sampler.stop()
    assert samples == []
    assert len(notes) == 1
    assert note in notes[0]
    assert exposition.url in notes[0]


def test_series_keys_read_like_promql() -> None:
    assert series_key("up", {}) == "up"
    assert series_key("db_in_use", {"pool": "main", "az": "b"}) == 'db_in_use{az="b",pool="main"}'
