"""Shards as tasks on a Dask cluster: one task per Dask worker, pinned to it, windows over a Dask queue.

The shard is the same ``ShardRun`` as a local worker process's; only its link differs: it puts its
messages on a ``distributed.Queue`` and reads the start and stop orders from ``distributed.Variable``s,
polled by a thread of its own. The start is a wall time on the coordinator's clock, converted with
the worker's measured clock offset. A task is pinned to its worker (never re-run elsewhere), so a
worker that disappears is a lost shard, not a second, late one.
"""

from __future__ import annotations

import contextlib
import queue
import threading
import time
import uuid
from typing import TYPE_CHECKING, Any

from pytest_shopflow_perf.engine.shards.wire import ShardError

if TYPE_CHECKING:
    from collections.abc import Callable

    from pytest_shopflow_perf.engine.shards.local import Event

# distributed's objects as this module uses them (its API is only partly typed): Client, Future.
Client = Any
Future = Any

POLL_S = 0.05
ORDER_POLL_S = 0.02
WORKERS_POLL_S = 1.0
CONNECT_TIMEOUT_S = 5.0
INSTALL_HINT = "pip install 'pytest-shopflow-perf[distributed]'"


def plugin_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("pytest-shopflow-perf")
    except PackageNotFoundError:
        return "not installed"


def connect(address: str, timeout: float = CONNECT_TIMEOUT_S) -> Client:
    """A client of the scheduler at ``address``, after checking that every worker runs this plugin's version."""
    try:
        import distributed
    except ImportError:
        raise ShardError(f"--perf-cluster needs Dask distributed on this machine: {INSTALL_HINT}") from None
    try:
        client = distributed.Client(address, timeout=timeout, set_as_default=False)
    except (OSError, TimeoutError, ValueError) as exc:
        raise ShardError(
            f"the Dask scheduler at {address} is unreachable ({type(exc).__name__}: {exc}); start one "
            "(`dask scheduler`, then `dask worker ADDRESS` on each load machine) or fix --perf-cluster"
        ) from None
    try:
        workers = worker_addresses(client)
        if not workers:
            raise ShardError(f"the Dask scheduler at {address} has no worker: start `dask worker {address}`")
        found = client.run(plugin_version)
    except BaseException:
        client.close()
        raise
    ours = plugin_version()
    wrong = {worker: theirs for worker, theirs in found.items() if theirs != ours}
    if wrong:
        client.close()
        listed = ", ".join(f"{worker} has {theirs}" for worker, theirs in sorted(wrong.items()))
        raise ShardError(
            f"pytest-shopflow-perf {ours} here, but {listed}: install the same version on every Dask worker"
        )
    return client


def worker_addresses(client: Client) -> list[str]:
    return sorted(client.run_on_scheduler(_scheduler_workers))


def _scheduler_workers(dask_scheduler: Any) -> list[str]:
    return list(dask_scheduler.workers)


def clock_offsets(client: Client, workers: list[str], rounds: int = 3) -> dict[str, float]:
    """Each worker's wall clock minus ours, from the round trip with the smallest delay (NTP's rule)."""
    best: dict[str, tuple[float, float]] = {}
    for _ in range(rounds):
        sent = time.time()
        theirs = client.run(time.time, workers=workers)
        back = time.time()
        for worker, remote in theirs.items():
            delay = back - sent
            if worker not in best or delay < best[worker][0]:
                best[worker] = (delay, remote - (sent + back) / 2)
    return {worker: offset for worker, (_, offset) in best.items()}


# ---- the shard's side, on a Dask worker --------------------------------------------------


class DaskLink:
    """A shard's messages on the run's queue; its orders from the run's variables."""

    def __init__(self, run: str, index: int, offset: float) -> None:
        from distributed import Event, Queue, Variable

        self.index = index
        self.offset = offset
        self._queue: Any = Queue(run)
        self._start: Any = Variable(f"{run}-start")
        self._stop: Any = Variable(f"{run}-stop")
        self._started: Any = Event(f"{run}-started")
        self._stopped: Any = Event(f"{run}-stopped")
        self._start_wall: float | None = None
        self.on_stop: Callable[[str], None] = lambda reason: None
        self._done = threading.Event()

    def send(self, kind: str, payload: Any) -> None:
        self._queue.put((self.index, kind, payload))

    def start_wall_time(self) -> float | None:
        return self._start_wall

    def listen(self) -> None:
        """Poll the orders until the shard ends (a Variable is one scheduler round trip to read)."""
        while not self._done.is_set():
            if self._start_wall is None and self._started.is_set():
                self._start_wall = float(self._start.get()) + self.offset
            if self._stopped.is_set():
                self.on_stop(str(self._stop.get()))
                return
            self._done.wait(ORDER_POLL_S)

    def close(self) -> None:
        self._done.set()


def shard_task(payload: bytes, run: str, index: int, offset: float) -> str:
    """A shard on a Dask worker: the same run as a local worker process's, in this task's thread."""
    from pytest_shopflow_perf.engine.shards.runner import serve

    link = DaskLink(run, index, offset)
    try:
        serve(payload, link)
    finally:
        link.close()
    return "done"


# ---- the coordinator's side ---------------------------------------------------------------


class ClusterShard:
    """One shard as a Dask task pinned to one worker (the coordinator's handle, as ``LocalShard``)."""

    def __init__(self, index: int, worker: str, future: Future, run: ClusterRun) -> None:
        self.index = index
        self.worker = worker
        self.future = future
        self._run = run

    def send(self, kind: str, payload: Any) -> None:
        self._run.order(kind, payload)

    def kill(self) -> None:
        self._run.order("stop", "killed")
        self.future.cancel()

    def close(self, timeout: float = 5.0) -> None:
        with contextlib.suppress(Exception):
            self.future.result(timeout=timeout)
        self._run.close()


class ClusterRun:
    """The shards of one run on a cluster, and the thread that turns the queue into the coordinator's events."""

    def __init__(self, client: Client, workers: list[str], payloads: list[bytes], events: queue.Queue[Event]) -> None:
        from distributed import Event, Queue, Variable

        self.client = client
        self.name = f"shopflow-perf-{uuid.uuid4().hex[:12]}"
        self._queue: Any = Queue(self.name, client=client)
        self._start: Any = Variable(f"{self.name}-start", client=client)
        self._stop: Any = Variable(f"{self.name}-stop", client=client)
        self._started: Any = Event(f"{self.name}-started", client=client)
        self._stopped: Any = Event(f"{self.name}-stopped", client=client)
        self._events = events
        self._ended: set[int] = set()
        self._closed = threading.Event()
        offsets = clock_offsets(client, workers)
        self.shards = [
            ClusterShard(
                index,
                worker,
                client.submit(
                    shard_task,
                    payload,
                    self.name,
                    index,
                    offsets.get(worker, 0.0),
                    key=f"{self.name}-shard-{index}",
                    workers=[worker],
                    allow_other_workers=False,
                    pure=False,
                ),
                self,
            )
            for index, (worker, payload) in enumerate(zip(workers, payloads, strict=True))
        ]
        self._reader = threading.Thread(target=self._read, name="shopflow-perf cluster reader", daemon=True)
        self._reader.start()

    def order(self, kind: str, payload: Any) -> None:
        with contextlib.suppress(Exception):
            if kind == "start" and not self._started.is_set():
                self._start.set(payload)
                self._started.set()
            elif kind == "stop" and not self._stopped.is_set():
                self._stop.set(payload)
                self._stopped.set()

    def _drain(self) -> None:
        for index, kind, payload in self._queue.get(batch=True):
            self._events.put((index, kind, payload))

    def _read(self) -> None:
        next_check = time.monotonic() + WORKERS_POLL_S
        while len(self._ended) < len(self.shards) and not self._closed.is_set():
            with contextlib.suppress(Exception):
                self._drain()
            for shard in self.shards:
                if shard.index not in self._ended and shard.future.done():
                    with contextlib.suppress(Exception):
                        self._drain()  # its final message is queued before its task returns
                    self._ended.add(shard.index)
                    self._events.put((shard.index, "exit", f"Dask task {shard.future.status}"))
            if time.monotonic() >= next_check:
                next_check += WORKERS_POLL_S
                with contextlib.suppress(Exception):
                    alive = set(worker_addresses(self.client))
                    for shard in self.shards:
                        if shard.index not in self._ended and shard.worker not in alive:
                            self._ended.add(shard.index)
                            self._events.put((shard.index, "exit", f"Dask worker {shard.worker} lost"))
            time.sleep(POLL_S)

    def close(self) -> None:
        if self._closed.is_set():
            return
        self._closed.set()
        self._reader.join(5)
        for shard in self.shards:
            shard.future.cancel()
        for variable in (self._start, self._stop):
            with contextlib.suppress(Exception):
                variable.delete()


def start_cluster(client: Client, payloads: list[bytes], events: queue.Queue[Event]) -> list[ClusterShard]:
    workers = worker_addresses(client)
    if len(workers) < len(payloads):
        raise ShardError(f"{len(payloads)} shards but {len(workers)} Dask worker(s): lower workers= or add workers")
    return ClusterRun(client, workers[: len(payloads)], payloads, events).shards
