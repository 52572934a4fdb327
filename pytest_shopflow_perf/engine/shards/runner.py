"""A shard: the same ``Engine`` on its share of the profile, streaming its closed windows.

``run_shard`` is the whole of a shard's life and knows nothing of how it was started: a
``ShardLink`` carries its messages (a pipe to the pytest process here, a Dask queue on a
cluster) and tells it when to start and to stop. ``process_main`` is a local worker process.
"""

from __future__ import annotations

import contextlib
import math
import signal
import threading
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from time import perf_counter, time
from typing import TYPE_CHECKING, Any, Protocol

from pytest_shopflow_perf.engine.shards.wire import ShardFinal, WindowCollector, final_histograms
from pytest_shopflow_perf.metrics.recorder import DETAIL_WINDOWS

if TYPE_CHECKING:
    from multiprocessing.connection import Connection

    from pytest_shopflow_perf.engine.engine import Engine, Hook, Progress, TransportFactory
    from pytest_shopflow_perf.engine.journeys import JourneySpec
    from pytest_shopflow_perf.profile.resolve import LoadProfile
    from pytest_shopflow_perf.target.policy import TargetPolicy

START_POLL_S = 0.002


@dataclass(frozen=True)
class ShardSpec:
    """Everything a shard needs, picklable (journeys and hooks by value)."""

    index: int
    count: int
    profile: LoadProfile
    journeys: JourneySpec
    base_url: str
    target_policy: TargetPolicy
    on_start: Hook | None = None
    on_stop: Hook | None = None
    transport_factory: TransportFactory | None = None
    http_transport: str = "fast"
    event_loop: str = "auto"
    window_detail: int | None = DETAIL_WINDOWS  # the coordinator keeps the merged windows a run needs
    test: str = ""


class ShardLink(Protocol):
    """How a shard talks to its coordinator."""

    def send(self, kind: str, payload: Any) -> None:
        """``ready`` (None), ``windows`` (WindowBatch), ``final`` (ShardFinal) or ``error`` (text)."""
        ...

    def start_wall_time(self) -> float | None:
        """The agreed start (``time.time()`` of this machine) once the coordinator gave it, else None."""
        ...


class OrderedLink(ShardLink, Protocol):
    """A link whose orders a thread of the shard follows (``listen``) and hands to ``on_stop``."""

    on_stop: Callable[[str], None]

    def listen(self) -> None: ...


def backend_options(event_loop: str) -> dict[str, Any]:
    """uvloop unless asked otherwise, as ``load.run`` (a shard that cannot have it runs on asyncio)."""
    if event_loop == "asyncio":
        return {}
    try:
        import uvloop  # noqa: F401
    except ImportError:
        return {}
    return {"use_uvloop": True}


def build_engine(spec: ShardSpec, on_progress: Callable[[Progress], None]) -> Engine:
    from pytest_shopflow_perf.engine.engine import Engine

    return Engine(
        spec.profile,
        spec.journeys,
        base_url=spec.base_url,
        transport_factory=spec.transport_factory,
        on_start=spec.on_start,
        on_stop=spec.on_stop,
        on_progress=on_progress,
        test=spec.test,
        window_detail=spec.window_detail,
        target_policy=spec.target_policy,
        http_transport=spec.http_transport,
        shard=(spec.index, spec.count),
    )


class ShardRun:
    """One shard's engine and its stream of windows."""

    def __init__(self, spec: ShardSpec, link: ShardLink) -> None:
        self.spec = spec
        self.link = link
        self.engine = build_engine(spec, self._progress)
        self._collector: WindowCollector | None = None

    def _progress(self, progress: Progress) -> None:
        engine = self.engine
        if self._collector is None:
            self._collector = WindowCollector(engine.recorder, engine._checks)
        remaining = engine.remaining_capacity(progress.elapsed)
        self.link.send("windows", self._collector.batch(self.spec.index, progress.users, _finite(remaining)))

    async def _start_at(self) -> float:
        """The agreed start as this process's ``perf_counter`` instant, once the coordinator sent it."""
        import anyio

        self.link.send("ready", None)
        while (wall := self.link.start_wall_time()) is None:
            if self.engine.stop_reason is not None:
                return perf_counter()
            await anyio.sleep(START_POLL_S)
        return perf_counter() + (wall - time())

    async def run(self) -> None:
        engine = self.engine
        # The target rule, again where the packets leave (a cluster worker): refused before any is sent.
        self.spec.target_policy.check_url(self.spec.base_url)
        result = await engine.run(start_at=self._start_at)
        recorder = engine.recorder
        recorder.close_open_window()  # the coordinator must see every request, even of the last millisecond
        collector = self._collector or WindowCollector(recorder, engine._checks)
        batch = collector.batch(self.spec.index, 0, 0.0)
        self.link.send(
            "final",
            ShardFinal(
                shard=self.spec.index,
                batch=batch,
                histograms=final_histograms(recorder),
                generator=result.generator.to_dict(),  # type: ignore[arg-type]
                extra=dict(result.extra),
                started_at=result.started_at,
                elapsed_s=result.duration,
            ),
        )


def describe_error(exc: BaseException) -> str:
    """The plugin's own errors by their message (they say the fix); anything else with its traceback."""
    from pytest_shopflow_perf._errors import ShopflowPerfError

    if isinstance(exc, ShopflowPerfError):
        return f"{type(exc).__name__}: {exc}"
    return "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))


def _finite(value: float) -> float:
    return value if math.isfinite(value) else 1e18


# ---- a local worker process -------------------------------------------------------


class PipeLink:
    """A shard's end of the pipe to the pytest process; a thread reads the coordinator's orders."""

    def __init__(self, connection: Connection) -> None:
        self.connection = connection
        self._start: float | None = None
        self._lock = threading.Lock()
        self.on_stop: Callable[[str], None] = lambda reason: None

    def send(self, kind: str, payload: Any) -> None:
        with self._lock:
            self.connection.send((kind, payload))

    def start_wall_time(self) -> float | None:
        return self._start

    def listen(self) -> None:
        """Orders until the pipe closes; a closed pipe (the pytest process died) stops the shard."""
        while True:
            try:
                kind, payload = self.connection.recv()
            except (EOFError, OSError):
                self.on_stop("the coordinator is gone")
                return
            if kind == "start":
                self._start = float(payload)
            elif kind == "stop":
                self.on_stop(str(payload))


def serve(payload: bytes, link: OrderedLink, on_engine: Callable[[Engine], None] | None = None) -> None:
    """Unpickle a shard's spec, follow its orders, run it; an error is reported, never raised.

    The one life of a shard, whoever started it (a local worker process, a Dask task).
    """
    try:
        import anyio
        import cloudpickle

        spec: ShardSpec = cloudpickle.loads(payload)
        shard = ShardRun(spec, link)
        link.on_stop = shard.engine.request_stop
        if on_engine is not None:
            on_engine(shard.engine)
        threading.Thread(target=link.listen, name="shopflow-perf shard orders", daemon=True).start()
        anyio.run(shard.run, backend="asyncio", backend_options=backend_options(spec.event_loop))
    except BaseException as exc:  # reported, never a traceback on the terminal of the test run
        with contextlib.suppress(Exception):
            link.send("error", describe_error(exc))


def _stop_on_signals(engine: Engine) -> None:
    def on_signal(signum: int, frame: object) -> None:
        engine.request_stop("interrupted")

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)


def process_main(fd: int) -> None:
    """Entry point of a shard process: read ``sys.path`` and the spec from the pipe, then ``serve``."""
    # Until the engine exists a Ctrl-C at the terminal (sent to the whole process group) must not
    # kill the shard with a traceback: the coordinator decides (it sends "stop", or kills).
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    import sys
    from multiprocessing.connection import Connection

    connection = Connection(fd)
    link = PipeLink(connection)
    try:
        try:
            path, payload = connection.recv()
        except BaseException as exc:
            with contextlib.suppress(Exception):
                link.send("error", describe_error(exc))
            return
        sys.path[:] = [entry for entry in path if entry not in sys.path] + sys.path
        serve(payload, link, _stop_on_signals)
    finally:
        connection.close()
