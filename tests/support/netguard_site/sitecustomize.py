"""Installs the test suite's network guard in every child Python process the tests start.

tests/conftest.py puts this directory first on PYTHONPATH; the guard is loaded by
file path so that nothing else of tests/support lands on the child's sys.path.
"""

from __future__ import annotations

import importlib.util
import os
import sys


def _install() -> None:
    path = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "netguard.py")
    spec = importlib.util.spec_from_file_location("_shopflow_netguard", path)
    if spec is None or spec.loader is None:
        return
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    module.install()


_install()
