"""The structure of docs/ARCHITECTURE.md as executable rules, one rule a test (and one test of the cycle finder).

Product code is every .py file under the project's own packages (PACKAGES); tests/ and benchmarks/ are not
product code. Imports are read with `ast`, so an import inside a function counts as much as one at the top
of a module; only imports under `if TYPE_CHECKING:` are left out of the cycle rule (they never run), and
kept in the layering rules (a type named across a layer is still a dependency on it).
"""

from __future__ import annotations

import ast
import json
import re
import subprocess
import sys
from collections import Counter
from pathlib import Path

from tests.conftest import ROOT, subprocess_env

PACKAGES = ("engine", "collector", "data", "api", "app", "pages", "config")
HEAVY = ("torch", "diffusers", "transformers")


# -- reading the tree ---------------------------------------------------------------------------------------


def module_files(root: Path, packages: tuple[str, ...] = PACKAGES) -> dict[str, Path]:
    """Dotted module name → file, for every .py file under `packages` (a package is its __init__.py)."""
    files = {}
    for package in packages:
        for path in sorted((root / package).rglob("*.py")):
            parts = list(path.relative_to(root).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            files[".".join(parts)] = path
    return files


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _import_statements(module: str, path: Path, *, type_checking: bool) -> list[tuple[str, tuple[str, ...]]]:
    """(module, names taken from it) for every import in the file, at any depth: `import a.b` is ("a.b", ()),
    `from .x import y` inside package p is ("p.x", ("y",)), `importlib.import_module("a")` is ("a", ()).
    `type_checking=False` leaves out imports under `if TYPE_CHECKING:`."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    skipped: set[int] = set()
    if not type_checking:
        for node in ast.walk(tree):
            if isinstance(node, ast.If) and _is_type_checking(node):
                skipped.update(id(inner) for stmt in node.body for inner in ast.walk(stmt))
    package = module.split(".") if path.name == "__init__.py" else module.split(".")[:-1]
    statements = []
    for node in ast.walk(tree):
        if id(node) in skipped:
            continue
        if isinstance(node, ast.Import):
            statements += [(alias.name, ()) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            target = node.module or ""
            if node.level:
                target = ".".join(package[: len(package) - (node.level - 1)] + ([node.module] if node.module else []))
            statements.append((target, tuple(alias.name for alias in node.names)))
        elif isinstance(node, ast.Call) and node.args and isinstance(node.args[0], ast.Constant):
            func = node.func
            called = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", None)
            if called in ("import_module", "__import__") and isinstance(node.args[0].value, str):
                statements.append((node.args[0].value, ()))
    return statements


def imported_names(module: str, path: Path) -> set[str]:
    """Every module the file imports anywhere, as dotted names (`from a.b import c` gives a.b and a.b.c: c may be
    a submodule), imports under `if TYPE_CHECKING:` included."""
    names = set()
    for target, taken in _import_statements(module, path, type_checking=True):
        names.add(target)
        names.update(f"{target}.{name}" for name in taken)
    return names


def import_graph(root: Path, packages: tuple[str, ...] = PACKAGES) -> dict[str, set[str]]:
    """Module → the project's modules it imports when it runs (imports under `if TYPE_CHECKING:` never do).
    `from pkg import name` points at the submodule pkg.name where there is one, else at pkg (its __init__);
    `import a.b.c` at a.b.c. So a package importing its submodule is an edge down, and a cycle needs an import
    back up: a submodule that imports its parent package's __init__ while that __init__ imports it."""
    files = module_files(root, packages)
    graph: dict[str, set[str]] = {}
    for module, path in files.items():
        edges = set()
        for target, taken in _import_statements(module, path, type_checking=False):
            for name in taken or (None,):
                if name is not None and f"{target}.{name}" in files:
                    edges.add(f"{target}.{name}")
                elif target in files:
                    edges.add(target)
        graph[module] = edges - {module}
    return graph


def import_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected groups of more than one module (Tarjan), each as one cycle through them."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    groups: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in sorted(graph.get(node, ())):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            group = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                group.append(member)
                if member == node:
                    break
            if len(group) > 1:
                groups.append(sorted(group))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return [_one_cycle(graph, set(group)) for group in groups]


def _one_cycle(graph: dict[str, set[str]], group: set[str]) -> list[str]:
    start = min(group)
    paths = {start: [start]}
    queue = [start]
    while queue:  # breadth-first back to start, inside the group
        node = queue.pop(0)
        for target in sorted(graph[node] & group):
            if target == start:
                return paths[node] + [start]
            if target not in paths:
                paths[target] = paths[node] + [target]
                queue.append(target)
    return sorted(group)


PRODUCT = module_files(ROOT)


def _relative(path: Path) -> str:
    return path.relative_to(ROOT).as_posix()


# -- (a) no import cycle --------------------------------------------------------------------------------------


def test_no_import_cycle_among_the_projects_modules():
    cycles = import_cycles(import_graph(ROOT))
    assert not cycles, "import cycles:\n" + "\n".join(" → ".join(cycle) for cycle in cycles)


def test_a_cycle_through_a_function_level_import_of_the_parent_package_is_found(tmp_path):
    # The rule's own check: pkg/__init__ imports pkg.a; pkg.a imports pkg (its parent's __init__) inside a
    # function. A package importing its submodule alone is no cycle.
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "__init__.py").write_text("from pkg.a import f\nVALUE = 1\n")
    (tmp_path / "pkg" / "a.py").write_text("def f():\n    from pkg import VALUE\n    return VALUE\n")
    (tmp_path / "pkg" / "b.py").write_text("from pkg.a import f\nfrom . import a\n")
    graph = import_graph(tmp_path, ("pkg",))
    assert graph == {"pkg": {"pkg.a"}, "pkg.a": {"pkg"}, "pkg.b": {"pkg.a"}}
    assert import_cycles(graph) == [["pkg", "pkg.a", "pkg"]]
    (tmp_path / "pkg" / "a.py").write_text("def f():\n    return 1\n")
    assert import_cycles(import_graph(tmp_path, ("pkg",))) == []


# -- (b) the UI and the API load no torch --------------------------------------------------------------------

# Imports every module, then runs the UI's entrypoint and each page once (Streamlit's AppTest, an empty data
# directory): code a page imports only while it draws counts too. Prints the heavy modules loaded.
_UI_PROBE = """
import importlib, json, sys
from streamlit.testing.v1 import AppTest
for name in {modules!r}:
    importlib.import_module(name)
errors = []
for script in {scripts!r}:
    run = AppTest.from_file(script, default_timeout=60).run()
    errors += [f"{{script}}: {{e.message}}" for e in run.exception]
print(json.dumps({{"heavy": sorted(m for m in {heavy!r} if m in sys.modules), "errors": errors}}))
"""


def _probe(tmp_path: Path, modules: list[str], scripts: list[str]) -> dict:
    code = _UI_PROBE.format(modules=modules, scripts=scripts, heavy=HEAVY)
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=subprocess_env(tmp_path / "data"),
                          capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, done.stderr[-4000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_the_ui_loads_no_torch_diffusers_or_transformers(tmp_path):
    scripts = [name for name in PRODUCT if name == "app.ui" or name.startswith("pages.")]  # run by Streamlit
    modules = [name for name in PRODUCT if name.split(".")[0] == "app" and name not in scripts]
    result = _probe(tmp_path, modules, [str(PRODUCT[name]) for name in scripts])
    assert result["errors"] == []
    assert result["heavy"] == []


def test_the_api_loads_no_torch_diffusers_or_transformers(tmp_path):
    result = _probe(tmp_path, [name for name in PRODUCT if name.split(".")[0] == "api"], [])
    assert result["heavy"] == []


# -- (c), (d) layering ----------------------------------------------------------------------------------------


def _importers(packages: tuple[str, ...], forbidden: tuple[str, ...]) -> list[str]:
    found = []
    for module, path in PRODUCT.items():
        if module.split(".")[0] not in packages:
            continue
        for name in sorted(imported_names(module, path)):
            if name.split(".")[0] in forbidden:
                found.append(f"{_relative(path)} imports {name}")
    return found


def test_the_engine_and_the_collector_never_import_streamlit():
    found = _importers(("engine", "collector"), ("streamlit",))
    assert not found, "\n".join(found)


def test_data_imports_nothing_from_the_engine_the_app_or_the_api():
    found = _importers(("data",), ("engine", "app", "pages", "api"))
    assert not found, "\n".join(found)


def test_only_the_collectors_nvml_wrapper_imports_nvml():
    found = [line for line in _importers(PACKAGES, ("pynvml",)) if not line.startswith("collector/nvml_device.py ")]
    assert not found, "\n".join(found)


# -- (e), (f) one definition of a vocabulary ------------------------------------------------------------------


def _literals(path: Path, words: set[str]) -> list[tuple[str, int]]:
    """String constants (f-strings' text parts too) that are exactly one of `words`, and `words` quoted with
    single quotes inside a longer string (SQL: `state = 'running'`), with their lines."""
    quoted = re.compile(r"'(" + "|".join(re.escape(word) for word in sorted(words)) + r")'")
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            if node.value in words:
                found.append((node.value, node.lineno))
            else:
                found += [(match, node.lineno) for match in quoted.findall(node.value)]
    return found


def _literal_report(words: set[str], owners: set[str], allowed: dict[tuple[str, str], int]) -> list[str]:
    """Literals of `words` in product code outside `owners`, beyond the counts `allowed` per (file, word)."""
    problems = []
    for path in PRODUCT.values():
        where = _relative(path)
        if where in owners:
            continue
        counts = Counter(word for word, _ in _literals(path, words))
        for word, count in sorted(counts.items()):
            if count > allowed.get((where, word), 0):
                lines = [line for found, line in _literals(path, words) if found == word]
                problems.append(f"{where}:{','.join(map(str, lines))} {word!r} ×{count}")
    return problems


# The model list is engine/registry.py's MODELS (one ModelSpec a model). The random-weight builders
# (engine/pipelines/random_weights.py) are keyed by the spec's `random_build` name, which is the model id, and
# read engine/pipelines/model_configs/<id>/ (JSON, not code). Anywhere else a model id written as a string is
# a second list in the making: code reads MODELS / MODEL_IDS / a spec's fields instead. Documented exceptions,
# each by file, id and how many times:
MODEL_ID_OWNERS = {"engine/registry.py", "engine/pipelines/random_weights.py"}
MODEL_ID_EXCEPTIONS = {
    # engine.cpu_model's default (the Generate page's model on a host without a GPU): config/ sits below
    # engine/ and cannot read the registry; the page falls back to the first model when the id is unknown.
    ("config/settings.py", "tiny"): 1,
    # ISSUE_REFERENCE: memory measured by the project on an H100 (issue 5), rows of data about two models.
    ("engine/foresight/heldout.py", "i2vgen-xl"): 3,
    ("engine/foresight/heldout.py", "svd"): 1,
}


def test_model_ids_are_written_only_where_the_models_are_defined():
    from engine.registry import MODELS

    names = set(MODELS) | {spec.random_build for spec in MODELS.values() if spec.random_build}
    found = _literal_report(names, MODEL_ID_OWNERS, MODEL_ID_EXCEPTIONS)
    assert not found, "model ids written outside engine/registry.py:\n" + "\n".join(found)


# A job's states are defined in data/schemas.py (JobState, FinalState; the constants QUEUED … CANCELLED) and
# written nowhere else as strings: code compares with the constants and builds SQL from them. Prose that
# mentions a state ("only queued jobs can be reordered") is not a literal of it. The same words in other
# vocabularies are allowed where they stand, each by file, word and count:
JOB_STATE_OWNERS = {"data/schemas.py"}
JOB_STATE_EXCEPTIONS = {
    # ReapOutcome = Literal["requeued", "failed"] and DeathVerdict.outcome: what became of a dead worker's job.
    ("engine/queue/models.py", "failed"): 2,
    # error_kind "cancelled" (beside "oom", "disk_full", "worker_died") and a cancel's default reason text.
    ("engine/queue/models.py", "cancelled"): 2,
    ("engine/queue/sqlite.py", "cancelled"): 1,
    ("engine/queue/postgres.py", "cancelled"): 1,
    ("engine/worker/worker.py", "cancelled"): 1,
    # Analytics' per-model table: the count columns data/analytics.py names `succeeded` and `failed`, and the
    # header "failed" shown above one.
    ("pages/analytics.py", "succeeded"): 1,
    ("pages/analytics.py", "failed"): 2,
}


def test_job_states_are_written_only_where_they_are_defined():
    from data.schemas import JOB_STATES

    found = _literal_report(set(JOB_STATES), JOB_STATE_OWNERS, JOB_STATE_EXCEPTIONS)
    assert not found, "job states written outside data/schemas.py (use its constants):\n" + "\n".join(found)
