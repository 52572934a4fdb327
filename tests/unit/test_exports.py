"""The public API: ``__all__`` is sorted, every name in it resolves, and the README's imports are all in it."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

import pytest_shopflow_perf

ROOT = Path(__file__).parents[2]
README = ROOT / "README.md"
pytest_plugins = ["pytester"]


def test_all_is_sorted_and_every_name_resolves_to_the_package() -> None:
    names = pytest_shopflow_perf.__all__
    assert names == sorted(names)
    assert len(set(names)) == len(names)
    for name in names:
        value = getattr(pytest_shopflow_perf, name)
        assert value.__module__.startswith("pytest_shopflow_perf."), (name, value.__module__)


DOCUMENTS = [README, ROOT / "tests" / "performance" / "README.md"]
DESIGN = ROOT.parent / "shared" / "DESIGN.md"


def _documented_imports() -> dict[str, set[str]]:
    """module -> names that the README (and DESIGN.md, when it is there) import from the plugin."""
    imported: dict[str, set[str]] = {}
    for document in [*DOCUMENTS, *([DESIGN] if DESIGN.exists() else [])]:
        if not document.exists():
            continue
        for block in re.findall(r"```python\n(.*?)```", document.read_text(), flags=re.DOTALL):
            try:
                tree = ast.parse(block)
            except SyntaxError:
                continue  # a fragment, not a program
            for node in ast.walk(tree):
                if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("pytest_shopflow_perf"):
                    imported.setdefault(str(node.module), set()).update(alias.name for alias in node.names)
    return imported


def test_every_name_the_readme_imports_from_the_package_is_exported() -> None:
    imported = _documented_imports()
    assert imported.get("pytest_shopflow_perf"), "the README shows no import from pytest_shopflow_perf"
    missing = sorted(imported["pytest_shopflow_perf"] - set(pytest_shopflow_perf.__all__))
    assert not missing, f"the README imports names the package does not export: {missing}"


def test_every_documented_import_resolves() -> None:
    """Documented module paths (``pytest_shopflow_perf.faults``...) keep working after any restructuring."""
    import importlib

    for module, names in _documented_imports().items():
        loaded = importlib.import_module(module)
        assert not [name for name in names if not hasattr(loaded, name)], module


def test_the_fault_builders_are_exported_where_the_readme_shows_them() -> None:
    import pytest_shopflow_perf.faults as faults

    for name in faults.__all__:
        assert getattr(faults, name) is not None
    assert {"action", "latency", "outage", "errors"} <= set(pytest_shopflow_perf.__all__)


def test_an_unknown_name_is_an_attribute_error() -> None:
    with pytest.raises(AttributeError, match="no attribute 'NoSuchThing'"):
        pytest_shopflow_perf.NoSuchThing  # noqa: B018


def test_lazy_names_come_from_their_modules() -> None:
    from pytest_shopflow_perf.engine.user import User
    from pytest_shopflow_perf.result.model import LoadResult

    assert pytest_shopflow_perf.LoadResult is LoadResult
    assert pytest_shopflow_perf.User is User


HEAVY = ("httpx", "scipy", "numpy", "hdrh", "matplotlib", "uvloop", "psutil", "distributed", "httptools")
PROBE = """
import json, sys

def pytest_unconfigure(config):
    heavy = {heavy!r}
    with open("loaded.json", "w") as handle:
        json.dump(sorted(m for m in heavy if m in sys.modules), handle)
"""


@pytest.mark.parametrize("args", [("--co", "-q"), ("-q",)])
def test_a_pytest_run_without_load_tests_imports_no_heavy_module(
    pytester: pytest.Pytester, args: tuple[str, ...]
) -> None:
    """The plugin loads in every pytest run of every project that installs it: a whole session, summary included."""
    import json

    pytester.makeconftest(PROBE.format(heavy=HEAVY))
    pytester.makepyfile(test_plain="def test_plain():\n    assert 1 + 1 == 2\n")
    result = pytester.runpytest_subprocess(*args, "-p", "no:cacheprovider")
    assert result.ret == 0
    assert json.loads((pytester.path / "loaded.json").read_text()) == []


def test_every_error_of_the_plugin_has_one_base_and_keeps_its_builtin() -> None:
    """``except ShopflowPerfError`` catches them all; ``except ValueError`` and friends still work as before."""
    import httpx

    base = pytest_shopflow_perf.ShopflowPerfError
    builtins = {
        "ProfileError": ValueError,
        "SloError": ValueError,
        "BaselineError": ValueError,
        "TargetError": Exception,
        "TargetRefused": httpx.TransportError,
    }
    for name, builtin in builtins.items():
        error = getattr(pytest_shopflow_perf, name)
        assert issubclass(error, base), name
        assert issubclass(error, builtin), name
    refused = pytest_shopflow_perf.TargetRefused("example.com")
    assert "--perf-allow-host example.com" in str(refused)
