"""Every third-party package the code imports is declared in pyproject.toml.

A package that is only present because something else pulled it in (or because a developer's venv
happens to have it) installs on one machine and fails collection on a clean clone; this test catches
that before CI does. Product code must use `[project] dependencies`; tests and benchmarks may also use
the `dev` extra.
"""

from __future__ import annotations

import ast
import re
import sys
import tomllib
from importlib.metadata import packages_distributions
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PRODUCT = ("main.py", "bot", "handlers", "services", "ml", "db", "migrations")
DEV_ONLY = ("tests", "bench")
OURS = frozenset({"main", "bot", "handlers", "services", "ml", "db", "migrations", "tests", "bench", "conftest"})


def _canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _requirement_names(requirements: list[str]) -> set[str]:
    return {_canonical(re.split(r"[\s<>=!~\[;]", item, maxsplit=1)[0]) for item in requirements}


def _declared() -> tuple[set[str], set[str]]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    product = _requirement_names(project["dependencies"])
    dev = _requirement_names(project.get("optional-dependencies", {}).get("dev", []))
    return product, product | dev


def _top_level_imports(paths: list[Path]) -> dict[str, Path]:
    found: dict[str, Path] = {}
    for path in paths:
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and not node.level and node.module:
                names = [node.module]
            else:
                continue
            for name in names:
                found.setdefault(name.split(".")[0], path)
    return found


def _files(roots: tuple[str, ...]) -> list[Path]:
    files: list[Path] = []
    for root in roots:
        path = ROOT / root
        files.extend([path] if path.is_file() else sorted(path.rglob("*.py")))
    return files


def _undeclared(roots: tuple[str, ...], allowed: set[str]) -> list[str]:
    owners = packages_distributions()
    problems = []
    for module, path in sorted(_top_level_imports(_files(roots)).items()):
        if module in OURS or module in sys.stdlib_module_names:
            continue
        distributions = owners.get(module)
        if not distributions:
            problems.append(f"{module} (imported by {path.relative_to(ROOT)}) is not installed at all")
        elif not {_canonical(d) for d in distributions} & allowed:
            problems.append(f"{module} from {sorted(distributions)} (imported by {path.relative_to(ROOT)})")
    return problems


def test_product_imports_are_declared_dependencies() -> None:
    product, _ = _declared()
    assert _undeclared(PRODUCT, product) == []


def test_test_and_bench_imports_are_declared() -> None:
    _, everything = _declared()
    assert _undeclared(DEV_ONLY, everything) == []


def test_the_check_sees_an_undeclared_import() -> None:
    """Guard against a check that passes vacuously: numpy is installed, so dropping it must be caught."""
    product, _ = _declared()
    assert "numpy" in product
    assert any(p.startswith("numpy ") for p in _undeclared(("ml",), product - {"numpy"}))
