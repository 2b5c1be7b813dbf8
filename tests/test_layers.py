"""The layering the architecture promises, checked on every import statement (module level or not).

- services/ never import a door (rest_compat, schema, resolvers, graphql_app) nor strawberry or starlette;
- the two doors never import each other (rest_compat <-> schema/resolvers/graphql_app);
- schema/ holds types only and never imports resolvers/ or graphql_app (no schema <-> resolvers cycle);
- extract/ (the engine) knows nothing of the database, the web framework or the services.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "imageextract"

GRAPHQL_DOOR = ("imageextract.schema", "imageextract.resolvers", "imageextract.graphql_app")
REST_DOOR = ("imageextract.rest_compat",)
RULES: dict[str, tuple[str, ...]] = {
    "imageextract.services": (*GRAPHQL_DOOR, *REST_DOOR, "imageextract.transport", "strawberry", "starlette"),
    "imageextract.rest_compat": GRAPHQL_DOOR,
    "imageextract.schema": (*REST_DOOR, "imageextract.resolvers", "imageextract.graphql_app"),
    "imageextract.resolvers": (*REST_DOOR, "imageextract.graphql_app"),
    "imageextract.extract": ("imageextract.models", "imageextract.services", "imageextract.rest_compat",
                             *GRAPHQL_DOOR, "tortoise", "starlette", "strawberry"),
}


def _module_name(path: Path) -> str:
    rel = path.relative_to(PACKAGE.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _imports(path: Path) -> list[tuple[int, str]]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.append((node.lineno, node.module))
            found += [(node.lineno, f"{node.module}.{alias.name}") for alias in node.names]
    return found


def _violations() -> list[str]:
    problems = []
    for path in sorted(PACKAGE.rglob("*.py")):
        name = _module_name(path)
        for layer, forbidden in RULES.items():
            if name != layer and not name.startswith(layer + "."):
                continue
            for line, imported in _imports(path):
                for bad in forbidden:
                    if imported == bad or imported.startswith(bad + "."):
                        problems.append(f"{path.relative_to(PACKAGE.parent)}:{line} imports {imported}")
    return sorted(set(problems))


def test_layers_import_only_downwards() -> None:
    assert _violations() == []


@pytest.mark.parametrize("layer", sorted(RULES))
def test_every_layer_exists(layer: str) -> None:
    """A rule over a folder that was renamed would pass silently: each layer must still have modules."""
    folder = PACKAGE / layer.removeprefix("imageextract.").replace(".", "/")
    assert any(folder.rglob("*.py")), layer


def test_every_module_imports_on_its_own() -> None:
    """Imports sit at module level (no function-local imports where no cycle needs one), so a cycle would
    show as a module that cannot be imported first: import each one alone, in a fresh interpreter."""
    import subprocess
    import sys
    from concurrent.futures import ThreadPoolExecutor

    modules = sorted(_module_name(p) for p in PACKAGE.rglob("*.py") if "migrations" not in p.parts)

    def alone(name: str) -> str | None:
        done = subprocess.run([sys.executable, "-c", f"import {name}"], capture_output=True, text=True, timeout=120)
        return None if done.returncode == 0 else f"{name}: {done.stderr.strip().splitlines()[-1]}"

    with ThreadPoolExecutor(max_workers=2) as pool:
        failures = [f for f in pool.map(alone, modules) if f]
    assert failures == []


def test_every_benchmark_imports() -> None:
    """`python -m bench NAME` imports its suite only when asked, so a suite whose imports broke (a helper
    renamed in another bench) would go unnoticed until someone ran it: import each one here."""
    import importlib

    from bench.__main__ import SUITES

    for module in sorted(set(SUITES.values())):
        importlib.import_module(module)
