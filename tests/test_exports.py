"""The public API: every name in ``__all__`` exists, and ``__all__`` lists every public name (as httpx does)."""

from __future__ import annotations

import pytest_shopflow_perf


def test_all_is_sorted_and_complete() -> None:
    assert pytest_shopflow_perf.__all__ == sorted(pytest_shopflow_perf.__all__)
    for name in pytest_shopflow_perf.__all__:
        assert getattr(pytest_shopflow_perf, name) is not None
        assert name in dir(pytest_shopflow_perf)


def test_lazy_names_come_from_their_modules() -> None:
    from pytest_shopflow_perf.result import LoadResult
    from pytest_shopflow_perf.user import User

    assert pytest_shopflow_perf.LoadResult is LoadResult
    assert pytest_shopflow_perf.User is User


def test_importing_the_plugin_does_not_import_heavy_modules() -> None:
    import subprocess
    import sys

    heavy = ("httpx", "scipy", "numpy", "hdrh", "matplotlib", "pytest_html", "anyio")
    code = f"import sys, pytest_shopflow_perf.plugin; print([m for m in {heavy!r} if m in sys.modules])"
    output = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert output.strip() == "[]"
