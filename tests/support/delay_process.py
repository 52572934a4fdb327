"""The known-latency server (``delay_server.py``) in a process of its own, stopped on the way out."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

DELAY_SERVER = Path(__file__).parent / "delay_server.py"


@contextmanager
def delay_server_process() -> Iterator[tuple[str, int]]:
    """(base URL, PID) of a fresh delay server: its own process, so it never shares the engine's GIL."""
    process = subprocess.Popen([sys.executable, str(DELAY_SERVER)], stdout=subprocess.PIPE, text=True)
    assert process.stdout is not None
    port = process.stdout.readline().strip()
    try:
        yield f"http://127.0.0.1:{port}", process.pid
    finally:
        process.terminate()
        process.wait(timeout=10)
        process.stdout.close()
