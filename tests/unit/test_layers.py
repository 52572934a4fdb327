"""The package's layers import only downstream: profile -> engine -> metrics/result -> verdicts -> reporting.

Parsed from the source (every ``import``, also inside functions), so a lazy import cannot hide an
upward dependency. The plugin is the glue and may import every layer; nothing imports the plugin.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).parents[2] / "pytest_shopflow_perf"
NAME = "pytest_shopflow_perf"

# layer -> the other layers it may import (the package root, aliases and cli are facades: anything)
ALLOWED: dict[str, set[str]] = {
    "_errors": set(),
    "_atomic": set(),
    "_names": set(),
    "profile": set(),
    "metrics": set(),
    "result": {"metrics"},
    "target": set(),
    "engine": {"profile", "metrics", "result", "target"},
    "faults": {"profile", "result", "target"},
    "verdicts": {"profile", "metrics", "result", "reporting._format", "_atomic", "_names"},
    "reporting": {"metrics", "result", "_atomic", "_names"},
    "plugin": {
        "profile",
        "engine",
        "metrics",
        "result",
        "target",
        "faults",
        "verdicts",
        "reporting",
        "_atomic",
        "_names",
    },
    "service": set(),
}
SKIPPING_VERDICTS = {"verdicts/assertions.py", "verdicts/slo/evaluate.py"}
FACADES = {"<root>", "cli", "__main__", "regression", "schedule"}


def _module_of(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path) -> list[tuple[int, str]]:
    """(line, absolute module) of every import of the package in a file, relative ones resolved."""
    module = _module_of(path)
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found: list[tuple[int, str]] = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                target = ".".join([*base, *([node.module] if node.module else [])])
            else:
                target = node.module or ""
            if target == NAME:  # from pytest_shopflow_perf import x: x may be a module
                found += [(node.lineno, f"{NAME}.{alias.name}") for alias in node.names]
            elif target.startswith(f"{NAME}."):
                found.append((node.lineno, target))
        elif isinstance(node, ast.Import):
            found += [(node.lineno, a.name) for a in node.names if a.name.startswith(f"{NAME}.")]
    return found


def _layer(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "<root>"


def _allowed(source_layer: str, target: str) -> bool:
    target_layer = _layer(target)
    if target_layer in (source_layer, "_errors") or source_layer in FACADES:  # one error base for all
        return True
    rules = ALLOWED[source_layer]
    dotted = target.split(".", 1)[1] if "." in target else ""
    return target_layer in rules or any(dotted == rule or dotted.startswith(f"{rule}.") for rule in rules)


def _violations() -> list[str]:
    problems = []
    for path in sorted(PACKAGE.rglob("*.py")):
        module = _module_of(path)
        layer = _layer(module)
        if layer not in ALLOWED and layer not in FACADES:
            problems.append(f"{module}: layer {layer!r} has no rule in ALLOWED")
            continue
        for line, target in _imports(path):
            if not _allowed(layer, target):
                problems.append(f"{path.relative_to(PACKAGE.parent)}:{line}: {layer} imports {target}")
    return problems


def test_every_import_goes_downstream() -> None:
    assert _violations() == []


def test_the_service_imports_nothing_of_the_plugin() -> None:
    for path in (PACKAGE / "service").rglob("*.py"):
        outside = [(line, target) for line, target in _imports(path) if _layer(target) != "service"]
        assert outside == [], path


def test_the_engine_and_the_verdicts_know_nothing_of_pytest() -> None:
    """Only the plugin and the verdicts that skip a test as inconclusive (``pytest.skip``) touch pytest."""
    for layer in ("engine", "metrics", "result", "verdicts", "faults", "profile", "target", "reporting"):
        for path in (PACKAGE / layer).rglob("*.py"):
            if path.relative_to(PACKAGE).as_posix() in SKIPPING_VERDICTS:
                continue
            tree = ast.parse(path.read_text())
            names = {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
            names |= {n.module or "" for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
            assert not {n for n in names if n == "pytest" or n.startswith("_pytest")}, path


def test_the_check_catches_an_upward_import(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The rule table is only worth something if a violation is found: plant one in a copy."""
    import shutil

    copy = tmp_path / NAME
    shutil.copytree(PACKAGE, copy, ignore=shutil.ignore_patterns("__pycache__"))
    engine = copy / "engine" / "engine.py"
    engine.write_text(
        engine.read_text() + "\n\ndef _late() -> None:\n    from pytest_shopflow_perf.plugin import keys\n"
    )
    monkeypatch.setattr(__import__(__name__), "PACKAGE", copy)
    problems = _violations()
    assert len(problems) == 1, problems
    assert "engine imports pytest_shopflow_perf.plugin" in problems[0]


def test_the_ini_help_table_names_every_regression_policy_field() -> None:
    """The start-up table of ``perf_regression_*`` keys (no statistics import) and the policy's stay one list."""
    from pytest_shopflow_perf.plugin.options import REGRESSION_INI as HELP
    from pytest_shopflow_perf.verdicts.regression import REGRESSION_INI

    assert [name for name, _ in HELP] == list(REGRESSION_INI)


def test_the_transport_choices_of_the_options_are_the_engines() -> None:
    """plugin/options.py keeps its own copy (importing the engine there would load httpx in every pytest run)."""
    from pytest_shopflow_perf.engine.clients import HTTP_TRANSPORTS
    from pytest_shopflow_perf.plugin.options import HTTP_TRANSPORTS as OPTION_CHOICES

    assert OPTION_CHOICES == HTTP_TRANSPORTS
