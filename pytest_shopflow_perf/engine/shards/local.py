"""Shards as worker processes of this machine: spawned (never forked from a process with threads).

Each process is a new interpreter that gets one pipe, then its ``sys.path`` and spec over it; a
thread per shard turns what arrives into events on one queue for the coordinator. A process
stops on its own when its pipe closes (the pytest process died), and the coordinator kills
what is left when a run ends, so none outlives the session.
"""

from __future__ import annotations

import contextlib
import queue
import signal
import subprocess
import threading
from typing import Any

_BOOT = "import sys; from pytest_shopflow_perf.engine.shards.runner import process_main; process_main(int(sys.argv[1]))"
# (shard index, kind, payload): kinds of ShardLink.send, and "exit" (payload: how the process ended)
Event = tuple[int, str, Any]


def describe_exit(exitcode: int | None) -> str:
    if exitcode is None:
        return "still running"
    if exitcode < 0:
        try:
            name = signal.Signals(-exitcode).name
        except ValueError:
            name = f"signal {-exitcode}"
        return f"process killed by {name}"
    return f"process exited with code {exitcode}"


class LocalShard:
    """One shard process and the thread that reads its pipe."""

    def __init__(self, index: int, payload: bytes, events: queue.Queue[Event]) -> None:
        import socket
        import subprocess
        import sys
        from multiprocessing.connection import Connection

        self.index = index
        self.worker = f"local:{index}"
        self._events = events
        ours, theirs = socket.socketpair()
        # A fresh interpreter (not multiprocessing's spawn, which re-runs the parent's __main__: the
        # pytest script, or a user's own) that imports the runner and reads its spec from the pipe.
        self.process = subprocess.Popen(
            [sys.executable, "-c", _BOOT, str(theirs.fileno())],
            pass_fds=[theirs.fileno()],
            stdin=subprocess.DEVNULL,
        )
        theirs.close()
        self._connection = Connection(ours.detach())
        self._connection.send((list(sys.path), payload))
        self._reader = threading.Thread(target=self._read, name=f"shopflow-perf shard {index} reader", daemon=True)
        self._reader.start()

    def _read(self) -> None:
        while True:
            try:
                kind, payload = self._connection.recv()
            except (EOFError, OSError):
                break
            self._events.put((self.index, kind, payload))
        try:
            exitcode: int | None = self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            exitcode = None
        self._events.put((self.index, "exit", describe_exit(exitcode)))

    def send(self, kind: str, payload: Any) -> None:
        with contextlib.suppress(OSError, ValueError):  # the process is gone: its reader reports how it ended
            self._connection.send((kind, payload))

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()

    def close(self, timeout: float = 5.0) -> None:
        """Wait for the process to end, kill it if it does not; close the pipe."""
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout)
        self._reader.join(timeout)  # it sees the end of the pipe once the process is gone
        self._connection.close()


def start_local(payloads: list[bytes], events: queue.Queue[Event]) -> list[LocalShard]:
    shards: list[LocalShard] = []
    try:
        for index, payload in enumerate(payloads):
            shards.append(LocalShard(index, payload, events))
    except BaseException:
        for shard in shards:
            shard.kill()
            shard.close()
        raise
    return shards
