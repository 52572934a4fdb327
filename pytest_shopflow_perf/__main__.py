"""``python -m pytest_shopflow_perf baseline show|diff|prune``: look at baselines without running load."""

from __future__ import annotations

import sys

from pytest_shopflow_perf.cli import main

if __name__ == "__main__":
    sys.exit(main())
