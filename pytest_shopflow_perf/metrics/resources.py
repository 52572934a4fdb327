"""Samples the target's resources while a run goes: psutil for a local process, Prometheus text for the rest.

A thread of its own, once a second: the engine's event loop never waits for a sample (a
``/proc`` read or a scrape of a slow ``/metrics`` would otherwise show up as generator lag).
The thread blocks in ``Event.wait`` between samples, so it takes the GIL a few hundred
microseconds a second.

- ``pid``: the process and its children (a gunicorn's workers), summed: CPU in percent of one
  core from the CPU time used since the previous sample, RSS, threads, open inet connections.
- ``metrics_url``: a Prometheus text endpoint, parsed with ``prometheus_client``'s parser:
  ``process_cpu_seconds_total`` and ``process_resident_memory_bytes`` stand in for psutil when
  there is no PID; every other counter becomes a rate per second, every gauge a value
  (``name`` or ``name{label="value"}``).

What cannot be read (no such process, access denied, a scrape that fails) becomes a note of
the result, never a guessed figure. psutil, prometheus_client and httpx load on ``start()``.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable
from typing import Any

ResourceSample = dict[str, Any]  # the record of result/resources.py, which builds Resources from these

__all__ = ["ResourceSampler", "check_pid"]

INTERVAL_S = 1.0
SCRAPE_TIMEOUT_S = 0.8
MAX_SERIES = 200  # gauges and rates kept per sample: a /metrics with thousands of series stays bounded
MAX_NOTES = 10
CPU_SECONDS = "process_cpu_seconds"  # the parser drops a counter's _total from the family name
RESIDENT_BYTES = "process_resident_memory_bytes"
MB = 1_000_000


def check_pid(pid: int) -> str | None:
    """Why ``pid`` cannot be sampled (no such process, a zombie), or None when it can."""
    import psutil

    try:
        process = psutil.Process(pid)
        if process.status() == psutil.STATUS_ZOMBIE:
            return f"process {pid} has exited (a zombie)"
        process.memory_info()
    except psutil.NoSuchProcess:
        return f"no process with PID {pid} on this machine"
    except psutil.AccessDenied:
        return f"process {pid} belongs to another user: psutil may not read it (run as that user)"
    return None


def series_key(name: str, labels: dict[str, str]) -> str:
    if not labels:
        return name
    inner = ",".join(f'{key}="{value}"' for key, value in sorted(labels.items()))
    return f"{name}{{{inner}}}"


class ResourceSampler:
    """Started before the run, told when its clock starts, stopped after it: ``stop()`` gives the samples."""

    def __init__(
        self,
        *,
        pid: int | None = None,
        metrics_url: str | None = None,
        source: str = "",
        interval_s: float = INTERVAL_S,
        clock: Callable[[], float] = time.perf_counter,
    ) -> None:
        if pid is None and metrics_url is None:
            raise ValueError("a resource sampler needs a pid or a metrics_url")
        self.pid = pid
        self.metrics_url = metrics_url
        self.source = source or ", ".join(
            part for part in (f"pid {pid}" if pid is not None else "", metrics_url or "") if part
        )
        self.interval_s = interval_s
        self._clock = clock
        self._t0: float | None = None
        self._samples: list[tuple[float, ResourceSample]] = []
        self._notes: list[str] = []
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._cpu_seen: dict[int, tuple[float, float]] = {}  # pid -> (create time, CPU seconds)
        self._previous_wall: float | None = None
        self._previous_counters: dict[str, float] = {}
        self._previous_scrape: float | None = None
        self._client: Any = None
        self._psutil: Any = None

    # ---- life cycle -------------------------------------------------------------

    def start(self) -> None:
        self.prime()
        self._thread = threading.Thread(target=self._loop, name="shopflow-perf-resources", daemon=True)
        self._thread.start()

    def prime(self) -> None:
        """The first readings: CPU and counters need a "before" to make the first interval's rate."""
        if self.pid is not None:
            import psutil

            self._psutil = psutil
            self._sample_process(self._clock())  # the CPU reference: the first interval has a "before"
        if self.metrics_url is not None:
            import httpx

            self._client = httpx.Client(timeout=SCRAPE_TIMEOUT_S, trust_env=False)
            self._scrape(self._clock())

    def clock_started(self, t0: float) -> None:
        """The run's time zero (``perf_counter``): samples are placed on the run's timeline."""
        self._t0 = t0

    def stop(self) -> tuple[list[ResourceSample], list[str]]:
        """Ends the sampling (one last sample): the samples on the run's timeline, and the notes."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None
        if self._client is not None:
            self._client.close()
            self._client = None
        t0 = self._t0 if self._t0 is not None else (self._samples[0][0] if self._samples else 0.0)
        samples = [dict(sample, t_s=round(at - t0, 3)) for at, sample in self._samples if at >= t0]
        return samples, list(self._notes)

    def _loop(self) -> None:
        while not self._stop.wait(self.interval_s):
            self._sample_or_note()
        self._sample_or_note()  # the end of the run: its last second counts too

    def _sample_or_note(self) -> None:
        try:
            self.sample()
        except Exception as exc:  # the run goes on without this sample; the report says why
            self._note(f"sampling failed: {type(exc).__name__}: {exc}")

    def sample(self) -> None:
        """One sample now (the thread's, once a second)."""
        now = self._clock()
        sample: ResourceSample = {}
        if self.pid is not None:
            sample.update(self._sample_process(now))
        if self.metrics_url is not None:
            for key, value in self._scrape(now).items():
                if key in ("cpu_percent", "rss_mb") and key in sample:
                    continue  # psutil's figure of the process wins over what it says of itself
                sample[key] = value
        if "cpu_percent" in sample or "rss_mb" in sample or sample.get("gauges") or sample.get("rates"):
            sample.setdefault("cpu_percent", None)  # unknown, never a guess (JSON null)
            sample.setdefault("rss_mb", None)
            self._samples.append((now, sample))

    def _note(self, text: str) -> None:
        if text not in self._notes and len(self._notes) < MAX_NOTES:
            self._notes.append(text)

    # ---- psutil -----------------------------------------------------------------

    def _sample_process(self, now: float) -> ResourceSample:
        psutil = self._psutil
        try:
            root = psutil.Process(self.pid)
            tree = [root, *root.children(recursive=True)]
        except psutil.NoSuchProcess:
            self._note(f"process {self.pid} exited during the run")
            return {}
        except psutil.AccessDenied:
            self._note(f"process {self.pid}: access denied")
            return {}
        cpu = rss = 0.0
        threads = connections = 0
        counted_connections = True
        seen: dict[int, tuple[float, float]] = {}
        for process in tree:
            try:
                with process.oneshot():
                    created = process.create_time()
                    times = process.cpu_times()
                    used = times.user + times.system
                    rss += process.memory_info().rss
                    threads += process.num_threads()
                    try:
                        connections += len(process.net_connections(kind="inet"))
                    except psutil.AccessDenied:
                        counted_connections = False
            except (psutil.NoSuchProcess, psutil.ZombieProcess):
                continue  # a child that ended between listing and reading
            except psutil.AccessDenied:
                self._note(f"process {process.pid}: access denied")
                continue
            seen[process.pid] = (created, used)
            before = self._cpu_seen.get(process.pid)
            if before is not None and before[0] == created:
                cpu += used - before[1]
            elif self._previous_wall is not None and created >= self._previous_wall:
                cpu += used  # born since the last sample: all its CPU is this interval's
        wall = time.time()
        interval = None if self._previous_wall is None else wall - self._previous_wall
        self._cpu_seen, self._previous_wall = seen, wall
        sample: ResourceSample = {"rss_mb": round(rss / MB, 3), "threads": threads}
        if counted_connections:
            sample["connections"] = connections
        else:
            self._note("connections: access denied (not counted)")
        if interval is not None and interval > 0:
            sample["cpu_percent"] = round(100.0 * cpu / interval, 2)
        return sample

    # ---- Prometheus -------------------------------------------------------------

    def _scrape(self, now: float) -> ResourceSample:
        import httpx

        try:
            response = self._client.get(self.metrics_url)
            response.raise_for_status()
            families = _parse(response.text)
        except httpx.HTTPError as exc:
            self._note(f"{self.metrics_url}: {type(exc).__name__}: {exc}")
            return {}
        except ValueError as exc:  # not the Prometheus text format
            self._note(f"{self.metrics_url}: not Prometheus text ({exc})")
            return {}
        counters: dict[str, float] = {}
        gauges: dict[str, float] = {}
        for family in families:
            if family.type == "counter":
                for sample in family.samples:
                    if sample.name.endswith("_total") or sample.name == family.name:
                        counters[series_key(sample.name, sample.labels)] = float(sample.value)
            elif family.type == "gauge" and not family.name.endswith("_created"):  # a series' birth time
                for sample in family.samples:
                    if len(gauges) < MAX_SERIES:
                        gauges[series_key(sample.name, sample.labels)] = float(sample.value)
        figures: ResourceSample = {}
        resident = gauges.get(RESIDENT_BYTES)
        if resident is not None:
            figures["rss_mb"] = round(resident / MB, 3)
        previous, at = self._previous_counters, self._previous_scrape
        self._previous_counters, self._previous_scrape = counters, now
        if at is not None and now > at:
            rates: dict[str, float] = {}
            for key, value in counters.items():
                if key in previous and value >= previous[key] and len(rates) < MAX_SERIES:
                    rates[key] = round((value - previous[key]) / (now - at), 6)  # a reset (restart) is skipped
            cpu_rate = rates.pop(f"{CPU_SECONDS}_total", None)
            if cpu_rate is not None:
                figures["cpu_percent"] = round(100.0 * cpu_rate, 2)
            if rates:
                figures["rates"] = rates
        if gauges:
            figures["gauges"] = gauges
        return figures


def _parse(text: str) -> Iterable[Any]:
    from prometheus_client.parser import text_string_to_metric_families

    return list(text_string_to_metric_families(text))
