"""The machine probe tells the generator, the target and everything else apart, with real processes."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager

from pytest_shopflow_perf.metrics.machine import MachineProbe, micro_benchmark_us

BUSY = "while True: pass"
BUSY_SHARE = 0.15  # the least a busy loop gets over a second, even beside a dozen other busy processes
# A "service" that listens on a port and burns a core: its CPU is the target's, not the machine's noise.
BUSY_LISTENER = (
    "import socket, sys\n"
    "s = socket.socket(); s.bind(('127.0.0.1', 0)); s.listen()\n"
    "print(s.getsockname()[1], flush=True)\n"
    "while True: pass\n"
)


@contextmanager
def foreign_busy_loop() -> Iterator[int]:
    """A busy loop that is not our child (re-parented by the shell that started it): another job's."""
    out = subprocess.run(
        ["sh", "-c", f'"{sys.executable}" -c "{BUSY}" >/dev/null 2>&1 & echo $!'],
        capture_output=True,
        text=True,
        check=True,
    )
    pid = int(out.stdout.strip())
    try:
        yield pid
    finally:
        os.kill(pid, signal.SIGKILL)


def measure(target_url: str | None, seconds: float = 1.0, requests: int = 100) -> dict:
    probe = MachineProbe(target_url)
    probe.start()
    time.sleep(seconds)
    return probe.finish(requests)


def test_another_jobs_busy_loop_is_foreign_and_named():
    with foreign_busy_loop() as pid:
        time.sleep(0.1)
        load = measure(None)
    # Classification, not amounts: on a loaded machine a busy loop gets 2 cores / (runnable processes).
    assert load["foreign_cpu_cores"] >= BUSY_SHARE, load
    # another busy process (a CI job keeping a core busy) may rank above it: it is named, not necessarily first
    named = {p["pid"]: p["cpu_cores"] for p in load["foreign_top"]}
    assert named.get(pid, 0.0) >= BUSY_SHARE, load
    assert load["generator_cpu_cores"] < 0.3, load
    assert load["target_cpu_cores"] is None  # no target named: nothing is counted as the target's


def test_a_busy_child_of_the_generator_is_the_generators():
    child = subprocess.Popen([sys.executable, "-c", BUSY])
    try:
        time.sleep(0.1)
        load = measure(None)
    finally:
        child.kill()
        child.wait()
    assert load["generator_cpu_cores"] >= BUSY_SHARE, load
    assert child.pid not in {p["pid"] for p in load["foreign_top"]}


def test_a_target_burning_cpu_is_the_targets_not_the_machines():
    with subprocess.Popen([sys.executable, "-c", BUSY_LISTENER], stdout=subprocess.PIPE, text=True) as server:
        try:
            assert server.stdout is not None
            port = int(server.stdout.readline())
            load = measure(f"http://127.0.0.1:{port}/api")
        finally:
            server.kill()
    assert load["target_pids"] == [server.pid]
    assert load["target_cpu_cores"] >= BUSY_SHARE, load
    assert server.pid not in {p["pid"] for p in load["foreign_top"]}  # whatever else the machine is doing


def test_figures_are_plain_data_and_the_benchmark_is_milliseconds():
    load = measure("http://127.0.0.1:9/", seconds=0.2, requests=0)
    assert load["generator_cpu_us_per_request"] is None
    assert 0 < load["bench_us"]["before"] < 100_000
    assert 0 < load["bench_us"]["after"] < 100_000
    assert load["cpu_count"] >= 1
    assert micro_benchmark_us(repeats=1) > 0
    assert MachineProbe(None).finish(10) == {}  # never started: nothing claimed
