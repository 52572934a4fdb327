"""Network faults between the load engine and its target: a fault-injection HTTP/1.1 proxy in its own thread.

The engine points its clients at :class:`FaultProxy` instead of the target, so
faults hit real sockets (latency, throttled bodies, error answers, TCP resets,
hung requests, outages) whatever the target is, and the target needs no fault
hooks of its own. The proxy runs its own asyncio loop in a daemon thread so it
never shares (or stalls) the engine's loop; it sits in the measured path, so
the pass-through is kept lean (no HTTP library, one upstream connection per
client connection, headers forwarded untouched except ``Host``).

The faults are :class:`~pytest_shopflow_perf.faults.spec.Fault` data, scheduled
on the run's clock: a fault applies while ``fault.active(perf_counter() - start)``.
Per request, the newest active fault (latest ``at``; the later one in the list on
a tie) whose path scope matches applies, and only that one. Ratio decisions and
jitter come from one ``random.Random(seed)``, re-seeded by
:meth:`FaultProxy.begin`, so a run with the same request order makes the same
decisions.

One module (~530 lines): the connection's client and upstream halves share its state and its
fault decision; the HTTP/1.1 framing and the fault data are apart (``_http1.py``, ``spec.py``).
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import socket
import ssl
import struct
import threading
import time
from collections.abc import Iterable, Sequence
from types import TracebackType
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from pytest_shopflow_perf.faults._http1 import (
    _END_OF_HEAD,
    _EOF,
    _LENGTH,
    _NONE,
    _READ_SIZE,
    Send,
    _discard,
    _Head,
    _local_response,
    _ProtocolError,
    _pump,
    _read_response_head,
    _read_whole,
    _request_framing,
    _response_framing,
    _send_to,
    _upstream_head,
)
from pytest_shopflow_perf.faults.spec import KINDS, Fault, applying, full_outage

if TYPE_CHECKING:
    from pytest_shopflow_perf.target.policy import TargetPolicy

__all__ = ["FaultProxy"]

_LINGER_RST = struct.pack("ii", 1, 0)
_BUFFER_LIMIT = 1 << 20  # request bodies up to this size are read whole (one write upstream, retry possible)
_HANG_POLL_S = 0.02  # how often a held request looks for its client giving up or its fault ending
_THROTTLE_SLICE_S = 0.01  # a throttled body goes out in slices worth this much time
_STOP_TIMEOUT_S = 10.0


def _throttled(writer: asyncio.StreamWriter, rate: float) -> Send:
    """A sink that lets byte ``n`` of the body leave no earlier than ``n / rate`` seconds after the first."""
    piece = max(1, min(_READ_SIZE, int(rate * _THROTTLE_SLICE_S)))
    start = time.perf_counter()
    sent = 0

    async def send(data: bytes) -> None:
        nonlocal sent
        for offset in range(0, len(data), piece):
            chunk = data[offset : offset + piece]
            sent += len(chunk)
            wait = start + sent / rate - time.perf_counter()
            if wait > 0:
                await asyncio.sleep(wait)
            writer.write(chunk)
            await writer.drain()

    return send


def _reset(writer: asyncio.StreamWriter) -> None:
    """Close with a TCP RST instead of a FIN: the peer sees ECONNRESET, as with a crashed host or a firewall."""
    sock = writer.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _LINGER_RST)
    writer.transport.abort()


def _new_loop() -> asyncio.AbstractEventLoop:
    """uvloop when installed: less added latency (about 55 us a request on loopback, against 70-120 with asyncio)."""
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is a dependency except on Windows
        return asyncio.new_event_loop()
    return uvloop.new_event_loop()


class _Connection:
    """One client connection and its own upstream connection (opened on its first forwarded request)."""

    __slots__ = ("reader", "task", "up_reader", "up_writer", "writer")

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.up_reader: asyncio.StreamReader | None = None
        self.up_writer: asyncio.StreamWriter | None = None
        self.task: asyncio.Task[Any] | None = asyncio.current_task()

    def close_upstream(self) -> None:
        if self.up_writer is not None:
            self.up_writer.transport.abort()
        self.up_reader = self.up_writer = None

    def close(self) -> None:
        """After the last answer: flush it, then FIN (an abort could cut off a body still in the buffer)."""
        self.close_upstream()
        self.writer.close()

    def abort(self) -> None:
        self.close_upstream()
        self.writer.transport.abort()

    def reset(self) -> None:
        self.close_upstream()
        _reset(self.writer)


# -- the proxy -----------------------------------------------------------------------------------------------------


class FaultProxy:
    """A fault-injection HTTP/1.1 reverse proxy on a free 127.0.0.1 port, in a thread with its own event loop.

    ``start()`` returns the URL to load-test instead of ``upstream_base_url``
    (its path kept); ``begin(faults)`` sets the run's time zero and schedule;
    ``set_faults()`` switches faults by hand; ``stop()`` closes everything.
    Without faults every request is forwarded untouched (``Host`` rewritten to
    the upstream's). Upstream failures are answered with 502. Limits: no
    HTTP/2, no forward-proxy (absolute-form) requests, no upstream timeout of
    its own (a hung upstream holds its connection until the client or
    ``stop()`` closes it).
    """

    def __init__(self, upstream_base_url: str, *, seed: int = 0, policy: TargetPolicy | None = None) -> None:
        parts = urlsplit(upstream_base_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(
                f"FaultProxy: upstream {upstream_base_url!r} is not an http:// or https:// URL with a host"
            )
        self.upstream = upstream_base_url
        self.seed = seed
        if policy is None:
            from pytest_shopflow_perf.target.policy import TargetPolicy

            policy = TargetPolicy()  # loopback only
        self.policy = policy  # every upstream connection goes to an address it checked
        self._host = parts.hostname
        self._upstream_port = parts.port or (443 if parts.scheme == "https" else 80)
        self._ssl: ssl.SSLContext | None = ssl.create_default_context() if parts.scheme == "https" else None
        self._host_line = b"Host: " + parts.netloc.rpartition("@")[2].encode("idna")
        self._base_path = parts.path.rstrip("/")
        self._random = random.Random(seed)
        self._schedule: tuple[tuple[Fault, ...], float] = ((), time.perf_counter())
        self._stats: dict[str, int] = dict.fromkeys(
            ("connections", "requests", "forwarded", "upstream_connections", "upstream_errors", "proxy_errors", *KINDS),
            0,
        )
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stopping: asyncio.Event | None = None
        self._changed: asyncio.Event | None = None
        self._connections: set[_Connection] = set()
        self._error: BaseException | None = None
        self._url: str | None = None

    # -- control, from any thread ----------------------------------------------------------------------------------

    @property
    def url(self) -> str | None:
        """The proxy's base URL while it runs, else None."""
        return self._url

    @property
    def stats(self) -> dict[str, int]:
        """A snapshot: connections, requests, forwarded, upstream connections/errors, and one count per fault kind."""
        return dict(self._stats)

    def start(self) -> str:
        """Listen on a free loopback port and return the proxy's base URL (the upstream's path kept)."""
        with self._lock:
            if self._thread is not None and self._url is not None:
                return self._url
            ready = threading.Event()
            self._error = None
            thread = threading.Thread(target=self._run, args=(ready,), name="shopflow-perf fault proxy", daemon=True)
            thread.start()
            ready.wait()
            if self._error is not None:
                thread.join(_STOP_TIMEOUT_S)
                raise RuntimeError(f"FaultProxy could not start: {self._error!r}") from self._error
            self._thread = thread
            assert self._url is not None
            return self._url

    def stop(self) -> None:
        """Close the listener and every connection, and join the thread; safe to call twice."""
        with self._lock:
            thread, loop, stopping = self._thread, self._loop, self._stopping
            if thread is None:
                return
            if loop is not None and stopping is not None:
                with contextlib.suppress(RuntimeError):  # the loop already ended
                    loop.call_soon_threadsafe(stopping.set)
            thread.join(_STOP_TIMEOUT_S)
            if thread.is_alive():
                raise RuntimeError(f"FaultProxy thread did not stop within {_STOP_TIMEOUT_S:g} s")
            self._thread = None
            self._url = None

    def begin(self, faults: Sequence[Fault], start: float | None = None) -> None:
        """Start the run's fault schedule: fault windows count from ``start`` (``perf_counter()`` by default)."""
        self._random.seed(self.seed)
        self._install(faults, time.perf_counter() if start is None else start)

    def set_faults(self, faults: Iterable[Fault] = ()) -> None:
        """Replace the faults, keeping the time zero (the proxy's creation or the last ``begin``); ``()`` clears."""
        self._install(faults, self._schedule[1])

    def _install(self, faults: Iterable[Fault], start: float) -> None:
        items = list(faults)
        for fault in items:
            if not isinstance(fault, Fault):
                raise TypeError(f"{fault!r} is not a Fault (use latency(), errors(), resets(), ... from this module)")
        # oldest first, so the last match of a scan is the newest fault (list order breaks ties)
        ordered = tuple(sorted(items, key=lambda fault: fault.at))
        self._schedule = (ordered, start)  # one assignment: the proxy thread never sees half a schedule
        loop, changed = self._loop, self._changed
        if loop is not None and changed is not None:
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(changed.set)

    def __enter__(self) -> FaultProxy:
        self.start()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, value: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.stop()

    # -- the proxy thread ------------------------------------------------------------------------------------------

    def _run(self, ready: threading.Event) -> None:
        loop = _new_loop()
        try:
            loop.run_until_complete(self._main(ready))
        except BaseException as exc:  # reported by start(); the thread must not die silently
            self._error = exc
        finally:
            try:
                leftovers = asyncio.all_tasks(loop)
                for task in leftovers:
                    task.cancel()
                if leftovers:
                    loop.run_until_complete(asyncio.gather(*leftovers, return_exceptions=True))
                loop.run_until_complete(loop.shutdown_asyncgens())
            finally:
                loop.close()
                self._loop = self._stopping = self._changed = None
                ready.set()

    async def _main(self, ready: threading.Event) -> None:
        self._loop = asyncio.get_running_loop()
        self._stopping = asyncio.Event()
        self._changed = asyncio.Event()
        server = await asyncio.start_server(self._accept, "127.0.0.1", 0, backlog=1024)
        port = server.sockets[0].getsockname()[1]
        self._url = f"http://127.0.0.1:{port}{self._base_path}"
        watcher = asyncio.create_task(self._watch())
        ready.set()
        try:
            await self._stopping.wait()
        finally:
            server.close()
            tasks: list[asyncio.Task[Any]] = [watcher]
            for conn in list(self._connections):
                conn.abort()
                if conn.task is not None:
                    tasks.append(conn.task)
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            await server.wait_closed()
            for _ in range(3):  # let the transports run their connection_lost callbacks and close their sockets
                await asyncio.sleep(0)

    def _now_faults(self) -> tuple[tuple[Fault, ...], float]:
        faults, start = self._schedule
        return faults, time.perf_counter() - start

    def _global_outage(self) -> bool:
        return full_outage(*self._now_faults())

    async def _watch(self) -> None:
        """Reset every connection the moment a full outage begins (in-flight requests included)."""
        assert self._changed is not None
        while True:
            faults, t = self._now_faults()
            if full_outage(faults, t):
                for conn in list(self._connections):
                    self._stats["outage"] += 1
                    conn.reset()
            edges = [e for f in faults if f.kind == "outage" for e in (f.at, f.until) if e is not None and e > t]
            self._changed.clear()
            timeout = min(edges) - t + 0.0005 if edges else None
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._changed.wait(), timeout)

    def _pick(self, path: bytes) -> Fault | None:
        faults, start = self._schedule
        if not faults:
            return None
        return applying(faults, time.perf_counter() - start, path.split(b"?", 1)[0].decode("latin-1"))

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        conn = _Connection(reader, writer)
        self._stats["connections"] += 1
        if self._global_outage():
            self._stats["outage"] += 1
            conn.reset()
            return
        self._connections.add(conn)
        try:
            while await self._exchange(conn):
                pass
        except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, _ProtocolError):
            pass  # a peer went away or broke the protocol mid-message: nothing to answer
        except asyncio.CancelledError:
            pass  # stop(): end quietly (asyncio 3.11 logs a traceback for every cancelled connection task)
        except Exception:
            self._stats["proxy_errors"] += 1
        finally:
            self._connections.discard(conn)
            conn.close()

    async def _exchange(self, conn: _Connection) -> bool:
        """Serve one request; whether the client connection stays open for the next."""
        try:
            raw = await conn.reader.readuntil(_END_OF_HEAD)
        except asyncio.IncompleteReadError:
            return False  # the client closed between requests
        except asyncio.LimitOverrunError:
            conn.writer.write(_local_response(431, {"error": "request head too large"}, close=True))
            return False
        try:
            request = _Head(raw)
            method, target, version = request.lines[0].split(b" ", 2)
        except ValueError:
            conn.writer.write(_local_response(400, {"error": "malformed HTTP/1.x request"}, close=True))
            return False
        self._stats["requests"] += 1
        framing, close = _request_framing(request, version)
        fault = self._pick(target)
        throttle = None
        if fault is not None:
            kind, params = fault.kind, fault.params
            if kind == "outage" or (kind == "resets" and self._random.random() < params["ratio"]):
                self._stats[kind] += 1
                conn.reset()
                return False
            if kind == "errors" and self._random.random() < params["ratio"]:
                self._stats[kind] += 1
                if request.expect_index > 0:
                    close = True  # the body was never sent: closing is the only way to keep the framing
                else:
                    await _pump(conn.reader, framing, request.length or 0, _discard)
                payload = {"error": "injected fault", "fault": fault.name, "status": params["status"]}
                conn.writer.write(_local_response(params["status"], payload, close=close, kind=kind))
                await conn.writer.drain()
                return not close
            if kind == "timeouts" and self._random.random() < params["ratio"]:
                self._stats[kind] += 1
                body = await self._read_body(conn, request, framing, whole=True)
                if not await self._hold(conn, fault):
                    return False
                return await self._forward(conn, request, method, body, framing, close, None)
            if kind == "latency":
                self._stats[kind] += 1
                delay = params["delay_s"]
                if params["jitter_s"]:
                    delay = max(0.0, delay + self._random.uniform(-params["jitter_s"], params["jitter_s"]))
                body = await self._read_body(conn, request, framing)
                await asyncio.sleep(delay)
                return await self._forward(conn, request, method, body, framing, close, None)
            if kind == "bandwidth":
                self._stats[kind] += 1
                throttle = float(params["bytes_per_second"])
        body = await self._read_body(conn, request, framing)
        return await self._forward(conn, request, method, body, framing, close, throttle)

    async def _read_body(self, conn: _Connection, request: _Head, framing: int, *, whole: bool = False) -> bytes | None:
        """The request body when it is small (or ``whole``), else None: it is then streamed while forwarding."""
        if request.expect_index > 0 and framing != _NONE:
            conn.writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")  # the client waits for it before sending a body
        if framing == _NONE:
            return b""
        if framing == _LENGTH and request.length is not None and (whole or request.length <= _BUFFER_LIMIT):
            return await conn.reader.readexactly(request.length)
        return await _read_whole(conn.reader, framing) if whole else None

    async def _hold(self, conn: _Connection, fault: Fault) -> bool:
        """Answer nothing while ``fault`` is in force; whether the client is still there when it ends."""
        reader = conn.reader
        while not reader.at_eof() and reader.exception() is None and not conn.writer.transport.is_closing():
            faults, t = self._now_faults()
            if not (any(f is fault for f in faults) and fault.active(t)):
                return True
            await asyncio.sleep(_HANG_POLL_S)
        return False

    async def _open_upstream(self, conn: _Connection) -> tuple[asyncio.StreamReader, asyncio.StreamWriter, bool]:
        """The connection's upstream, opened when missing or closed by the upstream; whether it was reused."""
        if conn.up_reader is not None and conn.up_writer is not None:
            if not conn.up_reader.at_eof() and not conn.up_writer.transport.is_closing():
                return conn.up_reader, conn.up_writer, True
            conn.close_upstream()
        from pytest_shopflow_perf.target.refused import TargetRefused

        try:
            address = await self.policy.connect_address(self._host, self._upstream_port)
        except TargetRefused as exc:  # answered 502 like any upstream that cannot be reached
            raise PermissionError(str(exc)) from None
        reader, writer = await asyncio.open_connection(
            address, self._upstream_port, ssl=self._ssl, server_hostname=self._host if self._ssl else None
        )
        self._stats["upstream_connections"] += 1
        conn.up_reader, conn.up_writer = reader, writer
        return reader, writer, False

    async def _forward(
        self,
        conn: _Connection,
        request: _Head,
        method: bytes,
        body: bytes | None,
        framing: int,
        close: bool,
        throttle: float | None,
    ) -> bool:
        """Send the request upstream and its answer back; whether the client connection stays open."""
        head = _upstream_head(request, self._host_line)
        writer = conn.writer
        attempt = 0
        while True:
            attempt += 1
            reused = False
            try:
                up_reader, up_writer, reused = await self._open_upstream(conn)
                if body is not None:
                    up_writer.write(head + body)
                else:
                    up_writer.write(head)
                    await _pump(conn.reader, framing, request.length or 0, _send_to(up_writer))
                raw, response, status = await _read_response_head(up_reader, writer.write)
                break
            except (OSError, ValueError, asyncio.IncompleteReadError, asyncio.LimitOverrunError) as exc:
                conn.close_upstream()
                if writer.transport.is_closing() or conn.reader.exception() is not None:
                    return False  # the client is gone (or an outage reset it): nobody to answer
                partial = isinstance(exc, asyncio.IncompleteReadError) and exc.partial
                if attempt == 1 and body is not None and reused and not partial and not isinstance(exc, ValueError):
                    continue  # the upstream closed an idle keep-alive connection: retry once on a fresh one
                self._stats["upstream_errors"] += 1
                if body is None:
                    close = True  # part of a streamed body may be unread: the framing is lost
                detail = f"upstream {self._host}:{self._upstream_port}: {type(exc).__name__}: {exc}"
                writer.write(_local_response(502, {"error": "bad gateway", "detail": detail}, close=close))
                await writer.drain()
                return not close
        self._stats["forwarded"] += 1
        if status == 101:
            writer.write(raw)
            await self._tunnel(conn, up_reader, up_writer)
            return False
        resp_framing, length, upstream_close = _response_framing(method, status, response)
        try:
            if throttle is None and (resp_framing == _NONE or (resp_framing == _LENGTH and length <= _READ_SIZE)):
                writer.write(raw + await up_reader.readexactly(length) if length else raw)
            else:
                writer.write(raw)
                send = _send_to(writer) if throttle is None else _throttled(writer, throttle)
                await _pump(up_reader, resp_framing, length, send)
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, _ProtocolError, ConnectionError):
            # the answer is cut off after its head went out: only closing the client tells it so
            self._stats["upstream_errors"] += 1
            return False
        await writer.drain()
        if upstream_close or close:
            conn.close_upstream()
        return not (upstream_close or close)

    async def _tunnel(
        self, conn: _Connection, up_reader: asyncio.StreamReader, up_writer: asyncio.StreamWriter
    ) -> None:
        """After ``101 Switching Protocols``: copy raw bytes both ways until either side closes."""

        async def copy(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            with contextlib.suppress(OSError, asyncio.IncompleteReadError):
                await _pump(reader, _EOF, 0, _send_to(writer))

        tasks = [asyncio.create_task(copy(conn.reader, up_writer)), asyncio.create_task(copy(up_reader, conn.writer))]
        try:
            await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
