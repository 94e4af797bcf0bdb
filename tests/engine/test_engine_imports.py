"""The engine's modules import one way: each imports alone in a fresh interpreter, and no
chain of imports (module-level or inside a function) leads from a module back to itself."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

import sheetsync.engine

ENGINE = Path(sheetsync.engine.__file__).parent


def engine_modules() -> dict[str, Path]:
    mods = {}
    for path in sorted(ENGINE.rglob("*.py")):
        parts = path.relative_to(ENGINE.parent.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        mods[name] = path
    return mods


def imports_of(name: str, path: Path, known: set[str]) -> set[str]:
    """The sheetsync.engine modules `name` imports anywhere in its file (relative imports
    resolved; `from . import x` counts x when x is a module)."""
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    found = set()
    tree = ast.parse(path.read_text())
    typing_only = {id(n) for node in ast.walk(tree) if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test)
                   for n in ast.walk(node)}  # annotations only: never run
    for node in ast.walk(tree):
        if id(node) in typing_only:
            continue
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                mod = ".".join(base + ([node.module] if node.module else []))
            else:
                mod = node.module or ""
            targets = [mod] + [f"{mod}.{a.name}" for a in node.names]
        else:
            continue
        for t in targets:
            while t and t not in known:  # a name inside a module: the module
                t = t.rpartition(".")[0]
            if t and t != name and t != "sheetsync.engine":  # the package's __init__ only re-exports
                found.add(t)
    return found


def test_no_import_cycle_among_engine_modules():
    mods = engine_modules()
    graph = {m: imports_of(m, p, set(mods)) for m, p in mods.items()}
    assert graph["sheetsync.engine.graddesc"] >= {"sheetsync.engine.loop.run"}  # the walk sees imports
    state: dict[str, int] = {}
    cycles = []

    def visit(m: str, stack: list[str]) -> None:
        state[m] = 1
        for n in sorted(graph[m]):
            if state.get(n) == 1:
                cycles.append(stack[stack.index(n):] + [n])
            elif n not in state:
                visit(n, stack + [n])
        state[m] = 2

    for m in mods:
        if m not in state:
            visit(m, [m])
    assert not cycles, "import cycles: " + "; ".join(" -> ".join(c) for c in cycles)


ALONE = """
import importlib, sys, traceback
failed = {}
for m in sys.argv[1:]:
    for k in [k for k in sys.modules if k == "sheetsync" or k.startswith("sheetsync.")]:
        del sys.modules[k]  # numpy and pandas stay loaded: only sheetsync's import order is under test
    try:
        importlib.import_module(m)
    except Exception:
        failed[m] = traceback.format_exc().strip().splitlines()[-1]
print(failed)
"""


def test_each_engine_module_imports_alone():
    """Each module first, as if nothing of sheetsync had been imported before it (one interpreter,
    sheetsync's modules dropped between imports: a fresh interpreter per module costs ~1 s each)."""
    env = dict(os.environ, PYTHONPATH=str(ENGINE.parent.parent) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    mods = [m for m in engine_modules() if not m.endswith("numba_support")]
    out = subprocess.run([sys.executable, "-c", ALONE, *mods], env=env, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "{}"
