"""Runs uvicorn so that it dies with its parent: ``python -m pytest_shopflow_perf._launch <uvicorn args>``.

The parent holds the write end of our stdin. When the parent goes away (even on
SIGKILL) the pipe reaches EOF: the service stops gracefully on SIGTERM, and
exits hard a few seconds later if that did not work. No orphan outlives pytest.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
import time

HARD_EXIT_AFTER_S = 5.0


def _watch_parent() -> None:
    """Block on stdin; EOF means the parent is gone."""
    try:
        while sys.stdin.buffer.read(1024):
            pass
    except (OSError, ValueError):
        pass
    os.kill(os.getpid(), signal.SIGTERM)
    time.sleep(HARD_EXIT_AFTER_S)
    os._exit(1)


def main() -> None:
    threading.Thread(target=_watch_parent, name="shopflow-perf-parent-watch", daemon=True).start()
    import runpy

    sys.argv = ["uvicorn", *sys.argv[1:]]
    runpy.run_module("uvicorn", run_name="__main__", alter_sys=True)


if __name__ == "__main__":
    main()
