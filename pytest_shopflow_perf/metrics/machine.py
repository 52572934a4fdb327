"""What else the machine was doing while a run measured the service.

The environment fingerprint says which machine a run was on, not how busy it
was: on a shared runner another job can take a core in the middle of a
candidate run, and an unchanged service then looks slower. The probe records,
around each run, the CPU that processes other than the generator and the
target used (``foreign_cpu_cores``), the hypervisor's steal time, and a
few-millisecond micro-benchmark before and after, so the regression gate can
tell a busier machine from a slower service (verdicts/regression/machine.py).

The target's processes (whatever listens on the target's port on this
machine, and their children) are counted apart: a service that got slower by
burning more CPU is a regression, not a busy machine. psutil is imported
lazily; where it cannot see something (another user's processes, sockets
without privileges) the figure is left out, never guessed.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

__all__ = ["MachineProbe", "micro_benchmark_us"]

BENCH_REPEATS = 5
BENCH_LOOP = 20_000  # ~1 ms of pure-Python work on a current core
TOP_FOREIGN = 3
LOOPBACK_HOSTS = frozenset({"localhost", "::1", "0.0.0.0", "::"})


def micro_benchmark_us(repeats: int = BENCH_REPEATS) -> float:
    """The fastest of a few ~1 ms pure-Python loops, in microseconds: how fast this core is right now."""
    best = float("inf")
    for _ in range(repeats):
        started = time.perf_counter()
        total = 0
        for i in range(BENCH_LOOP):
            total += i * i
        best = min(best, time.perf_counter() - started)
    return round(best * 1e6, 1)


@dataclass
class _Snapshot:
    wall: float
    cpu: dict[int, tuple[float, float, str]] = field(default_factory=dict)  # pid -> (created, CPU s, name)
    steal: float | None = None
    total: float = 0.0


def _is_local(host: str) -> bool:
    return host in LOOPBACK_HOSTS or host.startswith("127.")


class MachineProbe:
    """Started before a run and finished after it; ``finish`` returns the figures as plain data."""

    def __init__(self, target_url: str | None) -> None:
        self._target_url = target_url
        self._start: _Snapshot | None = None
        self._bench_before = 0.0
        self._ours: set[int] = set()
        self._target: set[int] = set()
        self._target_known = False

    def start(self) -> None:
        import psutil

        self._bench_before = micro_benchmark_us()
        self._target, self._target_known = self._target_pids(psutil)
        self._ours = self._own_tree(psutil)
        self._start = self._snapshot(psutil)

    def finish(self, requests: int) -> dict[str, Any]:
        """The machine's load during the run; empty when the probe never started."""
        if self._start is None:
            return {}
        import psutil

        end = self._snapshot(psutil)
        bench_after = micro_benchmark_us()
        self._ours |= self._own_tree(psutil)
        wall = max(end.wall - self._start.wall, 1e-9)
        generator = target = 0.0
        foreign: list[tuple[float, int, str]] = []
        for pid, (created, cpu, name) in end.cpu.items():
            before = self._start.cpu.get(pid)
            used = cpu - before[1] if before is not None and before[0] == created else cpu
            if before is None and created < self._start.wall - 1.0:
                continue  # alive before the run but not seen at its start (no access then): not the run's
            if pid in self._target:
                target += used
            elif pid in self._ours:
                generator += used
            else:
                foreign.append((used, pid, name))
        foreign.sort(reverse=True)
        figures: dict[str, Any] = {
            "wall_s": round(wall, 3),
            "foreign_cpu_cores": round(sum(used for used, _, _ in foreign) / wall, 3),
            "foreign_top": [
                {"pid": pid, "name": name, "cpu_cores": round(used / wall, 3)}
                for used, pid, name in foreign[:TOP_FOREIGN]
                if used / wall >= 0.01
            ],
            "generator_cpu_cores": round(generator / wall, 3),
            "target_cpu_cores": round(target / wall, 3) if self._target_known else None,
            "target_pids": sorted(self._target),
            "generator_cpu_us_per_request": round(generator * 1e6 / requests, 1) if requests else None,
            "bench_us": {"before": self._bench_before, "after": bench_after},
            "cpu_count": psutil.cpu_count() or 1,
        }
        if end.steal is not None and self._start.steal is not None and end.total > self._start.total:
            figures["steal_share"] = round((end.steal - self._start.steal) / (end.total - self._start.total), 4)
        with contextlib.suppress(AttributeError, OSError):  # no load average on Windows
            figures["loadavg_1m"] = round(os.getloadavg()[0], 2)
        return figures

    # ---- what is whose ----------------------------------------------------------

    @staticmethod
    def _own_tree(psutil: Any) -> set[int]:
        me = psutil.Process()
        try:
            return {me.pid, *(child.pid for child in me.children(recursive=True))}
        except psutil.Error:
            return {me.pid}

    def _target_pids(self, psutil: Any) -> tuple[set[int], bool]:
        """The processes listening on the target's port here, with their children (a gunicorn's workers)."""
        if not self._target_url:
            return set(), False
        parts = urlsplit(self._target_url)
        host = (parts.hostname or "").lower()
        if not _is_local(host):
            return set(), False
        port = parts.port or (443 if parts.scheme == "https" else 80)
        try:
            listeners = {
                conn.pid
                for conn in psutil.net_connections(kind="inet")
                if conn.status == psutil.CONN_LISTEN and conn.laddr and conn.laddr.port == port and conn.pid
            }
        except (psutil.Error, OSError):
            return set(), False
        pids = set(listeners)
        for pid in listeners:
            try:
                pids.update(child.pid for child in psutil.Process(pid).children(recursive=True))
            except psutil.Error:
                continue
        return pids, bool(pids)

    @staticmethod
    def _snapshot(psutil: Any) -> _Snapshot:
        snapshot = _Snapshot(wall=time.time())
        for process in _processes(psutil):
            info = process.info
            times = info.get("cpu_times")
            if times is None or info.get("create_time") is None:
                continue
            snapshot.cpu[info["pid"]] = (info["create_time"], times.user + times.system, info.get("name") or "?")
        machine = psutil.cpu_times()
        snapshot.steal = getattr(machine, "steal", None)
        snapshot.total = sum(machine)
        return snapshot


def _processes(psutil: Any) -> Iterable[Any]:
    processes: Iterable[Any] = psutil.process_iter(["pid", "name", "create_time", "cpu_times"])
    return processes
