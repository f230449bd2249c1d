"""The package's shape: every module imports on its own, and no two modules import each other."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest_ft

PACKAGE = Path(pytest_ft.__file__).parent
OPTIONAL = {"torch", "transformers", "peft", "fastapi", "uvicorn", "starlette", "gguf", "accelerate", "multipart"}


def modules() -> dict[str, tuple[Path, bool]]:
    """Module name -> (file, is a package)."""
    found = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
        is_package = parts[-1] == "__init__"
        if is_package:
            parts = parts[:-1]
        if parts[-1] != "__main__":
            found[".".join(parts)] = (path, is_package)
    return found


def module_level_imports(name: str, path: Path, is_package: bool, known: set[str]) -> set[str]:
    """The pytest_ft modules ``name`` imports when it is imported: not inside functions, not for
    type checkers only."""
    package = name if is_package else name.rpartition(".")[0]
    found: set[str] = set()

    def visit(statements: list[ast.stmt]) -> None:
        for node in statements:
            if isinstance(node, ast.ImportFrom):
                if node.level:
                    base = package.split(".")[: len(package.split(".")) - node.level + 1]
                    target = ".".join(base + ([node.module] if node.module else []))
                else:
                    target = node.module or ""
                for alias in node.names:
                    submodule = f"{target}.{alias.name}"
                    found.add(submodule if submodule in known else target)
            elif isinstance(node, ast.Import):
                found.update(alias.name for alias in node.names)
            elif isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
                visit(node.orelse)
            elif isinstance(node, (ast.If, ast.Try, ast.With)):
                for block in ("body", "orelse", "finalbody", "handlers"):
                    for child in getattr(node, block, []):
                        visit(child.body if isinstance(child, ast.ExceptHandler) else [child])

    visit(ast.parse(path.read_text(encoding="utf-8")).body)
    return {m for m in found if m in known and m != name}


def test_no_module_imports_one_that_imports_it_back():
    found = modules()
    graph = {name: module_level_imports(name, path, is_package, set(found)) for name, (path, is_package) in found.items()}
    order: list[str] = []
    state: dict[str, str] = {}

    def visit(name: str, trail: list[str]) -> None:
        if state.get(name) == "done":
            return
        assert state.get(name) != "open", "import cycle: " + " -> ".join(trail[trail.index(name):] + [name])
        state[name] = "open"
        for dependency in sorted(graph[name]):
            visit(dependency, trail + [name])
        state[name] = "done"
        order.append(name)

    for name in sorted(graph):
        visit(name, [])
    assert len(order) == len(graph) > 40


def test_every_module_imports_on_its_own():
    """Each module imported first, in a process where no other pytest_ft module was imported yet."""
    script = """
import importlib, json, sys
results = {}
for name in json.loads(sys.argv[1]):
    for loaded in [m for m in sys.modules if m == "pytest_ft" or m.startswith("pytest_ft.")]:
        del sys.modules[loaded]
    try:
        importlib.import_module(name)
        results[name] = None
    except ModuleNotFoundError as exc:
        results[name] = "missing:" + (exc.name or "").split(".")[0]
    except Exception as exc:
        results[name] = f"{type(exc).__name__}: {exc}"
print(json.dumps(results))
"""
    names = sorted(modules())
    done = subprocess.run([sys.executable, "-c", script, json.dumps(names)], capture_output=True, text=True,
                          timeout=300, check=True)
    results = json.loads(done.stdout.strip().splitlines()[-1])
    failures = {name: error for name, error in results.items()
                if error is not None and not (error.startswith("missing:") and error[8:] in OPTIONAL)}
    assert failures == {}
