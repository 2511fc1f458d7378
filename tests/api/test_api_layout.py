"""api/'s shape: app.py assembles, routers/ depend on deps.py, no import cycle (function-level imports included), and
importing the API loads neither torch nor diffusers (it starts in a second and runs on a machine without them)."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

API = Path(__file__).resolve().parents[2] / "api"


def module_name(path: Path) -> str:
    parts = path.relative_to(API.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(p): p for p in API.rglob("*.py")}


def imported(path: Path) -> set[str]:
    """Every api module this file imports, at any depth of its code (a module's parent packages too)."""
    names: set[str] = set()
    package = module_name(path) if path.name == "__init__.py" else module_name(path).rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(package.split(".")[: len(package.split(".")) - node.level + 1] + ([base] if base else []))
            names.add(base)
            names.update(f"{base}.{alias.name}" for alias in node.names)
    found = set()
    for name in names:
        parts = name.split(".")
        found.update(".".join(parts[:i]) for i in range(1, len(parts) + 1) if ".".join(parts[:i]) in MODULES)
    return found - {module_name(path)}


GRAPH = {name: imported(path) for name, path in MODULES.items()}


def test_the_routers_are_in_routers_and_only_app_includes_them():
    assert {"api.app", "api.deps", "api.routers.jobs", "api.routers.runs", "api.routers.metrics",
            "api.routers.foresight", "api.routers.prometheus", "api.routers.health"} <= set(MODULES)
    for name, deps in GRAPH.items():
        if name.startswith("api.routers."):
            assert "api.deps" in deps, name
            assert not {d for d in deps if d.startswith("api.routers.")}, f"{name} imports another router"
        if name not in ("api.app", "api.__main__"):
            assert "api.app" not in deps, f"{name} imports api.app: only the entry point may"
    assert "api.app" not in GRAPH["api.deps"] and not {d for d in GRAPH["api.deps"] if d.startswith("api.routers")}


def test_no_import_cycle_in_api():
    done: set[str] = set()

    def visit(name: str, path: list[str]) -> None:
        if name in path:
            raise AssertionError("import cycle: " + " → ".join(path[path.index(name):] + [name]))
        if name in done:
            return
        for dep in sorted(GRAPH[name]):
            visit(dep, path + [name])
        done.add(name)

    for name in sorted(GRAPH):
        visit(name, [])


def test_importing_the_api_loads_no_torch_or_diffusers():
    code = ("import sys, api.app, api.__main__; import api.routers.jobs, api.routers.foresight, api.routers.prometheus; "
            "print(sorted(m for m in ('torch', 'diffusers', 'transformers', 'streamlit') if m in sys.modules))")
    done = subprocess.run([sys.executable, "-c", code], cwd=API.parent, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"
