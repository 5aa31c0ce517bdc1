"""Dependencies point one way: main → handlers → bot → services → (ml, db), with no cycles.

The graph is read from the source (every import, including the ones inside functions and under
TYPE_CHECKING, relative ones resolved), so a lazy import cannot hide a wrong arrow or a cycle.
"""

from __future__ import annotations

import ast
from collections.abc import Iterable
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("bot", "handlers", "services", "ml", "db", "migrations")

# What each top-level package may import from the project (itself always). main.py may import all.
ALLOWED: dict[str, frozenset[str]] = {
    "handlers": frozenset({"bot", "services"}),
    "bot": frozenset({"services"}),
    "services": frozenset({"ml", "db"}),
    "ml": frozenset(),
    "db": frozenset(),
    "migrations": frozenset({"db", "bot"}),  # env.py reads the settings for the URL
}
# Third-party packages a layer must not touch (delivery mechanisms stay in handlers and bot).
FOREIGN: dict[str, tuple[str, ...]] = {
    "services": ("aiogram", "aiohttp.web", "jinja2"),
    "ml": ("aiogram", "aiohttp", "jinja2", "sqlalchemy"),
    "db": ("aiogram", "aiohttp", "jinja2"),
}


# All SQL lives in db/ (repositories, the engine): above it, SQLAlchemy only for the session types
# and its error classes.
SQLALCHEMY_ABOVE_DB = ("sqlalchemy.ext.asyncio", "sqlalchemy.exc")


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def project_modules() -> dict[str, Path]:
    found = {"main": ROOT / "main.py"}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            found[module_name(path)] = path
    return found


def imports_of(path: Path, module: str) -> list[str]:
    """Every module `path` imports, anywhere in the file; `from x import y` also yields x.y."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    is_package = path.name == "__init__.py"
    names: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.extend(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: from the module's package, `level` steps up
                package = module.split(".") if is_package else module.split(".")[:-1]
                package = package[: len(package) - (node.level - 1)]
                base = ".".join([*package, base] if base else package)
            names.append(base)
            names.extend(f"{base}.{alias.name}" for alias in node.names)
    return names


def project_graph() -> dict[str, set[str]]:
    """module → the project modules it imports (a name that is an attribute resolves to its module)."""
    modules = project_modules()
    graph: dict[str, set[str]] = {}
    for module, path in modules.items():
        targets = set()
        for name in imports_of(path, module):
            while name and name not in modules:
                name = name.rpartition(".")[0]
            if name and name != module:
                targets.add(name)
        graph[module] = targets
    return graph


def top(module: str) -> str:
    return module.split(".")[0]


def layer_violations(graph: dict[str, set[str]]) -> list[str]:
    found = []
    for module, targets in sorted(graph.items()):
        source = top(module)
        if source == "main":
            continue
        for target in sorted(targets):
            if top(target) != source and top(target) not in ALLOWED[source]:
                found.append(f"{module} imports {target}")
    return found


def foreign_violations() -> list[str]:
    found = []
    for module, path in project_modules().items():
        banned = FOREIGN.get(top(module), ())
        for name in imports_of(path, module):
            if any(name == b or name.startswith(b + ".") for b in banned):
                found.append(f"{module} imports {name}")
    return sorted(set(found))


def sql_outside_db() -> list[str]:
    found = []
    for module, path in project_modules().items():
        if top(module) in ("db", "migrations"):
            continue
        for name in imports_of(path, module):
            if (name == "sqlalchemy" or name.startswith("sqlalchemy.")) and not any(
                name == allowed or name.startswith(allowed + ".") for allowed in SQLALCHEMY_ABOVE_DB
            ):
                found.append(f"{module} imports {name}")
    return sorted(set(found))


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    counter = 0
    for start in sorted(graph):
        if start in index:
            continue
        work: list[tuple[str, Iterable[str]]] = [(start, iter(sorted(graph[start])))]
        index[start] = low[start] = counter
        counter += 1
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            child = next(iter(children), None)  # type: ignore[call-overload]
            if child is not None:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph.get(child, ())))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
    return found


GRAPH = project_graph()


def test_layers_point_one_way() -> None:
    assert layer_violations(GRAPH) == []


def test_lower_layers_stay_free_of_delivery_libraries() -> None:
    assert foreign_violations() == []


def test_sql_stays_in_db() -> None:
    assert sql_outside_db() == []


def test_no_import_cycles() -> None:
    assert cycles(GRAPH) == []


def test_the_schema_and_the_model_read_the_same_audio_features() -> None:
    """db keeps its own list (db never imports ml); the two must not drift apart."""
    from db.models import AUDIO_FEATURE_COLUMNS
    from ml.features import AUDIO_FEATURES

    assert AUDIO_FEATURE_COLUMNS == AUDIO_FEATURES


# -- the checks themselves ---------------------------------------------------------------------


def test_cycles_are_found_however_long() -> None:
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}, "e": {"e2"}, "e2": set()}
    assert cycles(graph) == [["a", "b", "c"]]
    assert cycles({"x": {"y"}, "y": set()}) == []


def test_wrong_arrows_and_lazy_relative_imports_are_seen(tmp_path: Path) -> None:
    graph = {"db.models": {"ml.features"}, "bot.cli": {"handlers.cli"}, "handlers.x": {"bot.y", "services.z"}}
    assert layer_violations(graph) == ["bot.cli imports handlers.cli", "db.models imports ml.features"]
    source = tmp_path / "mod.py"
    source.write_text("def f():\n    from .sibling import thing\n    import aiogram.types\n")
    names = imports_of(source, "services.pkg.mod")
    assert "services.pkg.sibling" in names and "services.pkg.sibling.thing" in names and "aiogram.types" in names


@pytest.mark.parametrize("layer", sorted(FOREIGN))
def test_every_layer_has_modules(layer: str) -> None:
    assert any(top(m) == layer for m in GRAPH)
