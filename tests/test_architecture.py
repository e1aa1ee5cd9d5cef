"""The code's layers, read from its source: who may import what, no import
cycles, and no long functions without a reason (docs/architecture.md)."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("perfrnn", "webapp", "training", "datasets", "infra", "benchmarks")
LONGEST_FUNCTION_LINES = 80
# Where boto3 may be imported: the AWS storage and queue modules, and infra.
# (benchmarks.kill_recovery sets up moto's bucket and queues, as the AWS tests do)
BOTO3_HOMES = ("webapp.storage.s3", "webapp.jobs.sqs", "webapp.jobs.worker", "infra",
               "benchmarks.kill_recovery")
# Where Flask may be imported: the web layer, the app factory and its resources.
FLASK_HOMES = ("webapp", "webapp.__main__", "webapp.services", "webapp.web")
# Modules a worker imports: importing them must not load Flask, even indirectly.
FLASK_FREE_MODULES = ("webapp.jobs.worker", "webapp.jobs.store", "webapp.jobs.services",
                      "webapp.jobs.runner", "webapp.jobs.expiry", "webapp.jobs.queues",
                      "webapp.jobs.remote", "webapp.jobs.sqs", "webapp.jobs.rendering",
                      "webapp.jobs.server", "webapp")
# perfrnn modules that import quickly (no TensorFlow at import time).
LIGHT_PERFRNN_MODULES = ("perfrnn", "perfrnn.cli", "perfrnn.errors", "perfrnn.options",
                         "perfrnn.console", "perfrnn.folders", "perfrnn.configs")
WEB_AND_CLOUD = ("flask", "boto3", "botocore")
CYCLE_FREE_PACKAGES = ("perfrnn", "webapp", "training", "datasets", "infra")


def module_files() -> dict[str, Path]:
    """Every module of the project's packages by dotted name."""
    modules = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            parts = path.relative_to(ROOT).with_suffix("").parts
            name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
            modules[name] = path
    return modules


def runtime_imports(name: str, path: Path, type_checking: bool = False) -> set[str]:
    """The dotted names a module imports when it runs (at the top or inside
    functions), without those under `if TYPE_CHECKING:` unless `type_checking`."""
    tree = ast.parse(path.read_text())
    found: set[str] = set()

    def visit(node: ast.AST) -> None:
        if (not type_checking and isinstance(node, ast.If)
                and "TYPE_CHECKING" in ast.unparse(node.test)):
            for child in node.orelse:
                visit(child)
            return
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                package = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
                package = package[:len(package) - node.level + 1]
                base = ".".join(package + ([node.module] if node.module else []))
            found.add(base)
            found.update(f"{base}.{alias.name}" for alias in node.names)
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(tree)
    return found


def within(module: str, homes: tuple[str, ...]) -> bool:
    return any(module == home or module.startswith(home + ".") for home in homes)


@pytest.fixture(scope="module")
def imports() -> dict[str, set[str]]:
    return {name: runtime_imports(name, path) for name, path in module_files().items()}


def test_perfrnn_imports_no_web_cloud_or_training_code(imports):
    bad = {name: sorted(target for target in targets
                        if target.split(".")[0] in ("flask", "boto3", "botocore", "webapp",
                                                    "training"))
           for name, targets in imports.items() if within(name, ("perfrnn",))}
    assert not {name: targets for name, targets in bad.items() if targets}


def test_flask_stays_in_the_web_layer(imports):
    users = {name for name, targets in imports.items()
             if any(target.split(".")[0] in ("flask", "flask_wtf", "flask_bootstrap")
                    for target in targets)}
    assert users and all(name in FLASK_HOMES or within(name, ("webapp.web",))
                         for name in users), sorted(users)


def test_boto3_stays_in_the_aws_modules(imports):
    users = {name for name, targets in imports.items()
             if any(target.split(".")[0] in ("boto3", "botocore") for target in targets)}
    assert users and all(within(name, BOTO3_HOMES) for name in users), sorted(users)


def modules_loaded_by_importing(modules: tuple[str, ...], watched: tuple[str, ...]) -> list[str]:
    """Which of the `watched` top-level packages a fresh interpreter has loaded
    after importing `modules` (transitively, as Python really imports them)."""
    code = (f"import sys\nfor name in {list(modules)!r}:\n    __import__(name)\n"
            f"print(' '.join(name for name in {list(watched)!r} if name in sys.modules))")
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    return result.stdout.split()


def test_the_job_layer_loads_no_flask():
    """A GPU worker imports the job system without the web server: no Flask,
    however deep the import chain."""
    assert modules_loaded_by_importing(FLASK_FREE_MODULES, ("flask",)) == []


def test_the_library_loads_no_flask_or_boto3():
    """perfrnn's light modules (those that load no TensorFlow) pull in neither
    Flask nor boto3."""
    assert modules_loaded_by_importing(LIGHT_PERFRNN_MODULES, WEB_AND_CLOUD) == []


def test_the_jobs_and_storage_do_not_reach_up_into_the_web_layer(imports):
    bad = {name: sorted(target for target in targets if within(target, ("webapp.web",)))
           for name, targets in imports.items()
           if within(name, ("webapp.jobs", "webapp.storage", "webapp.services"))}
    assert not {name: targets for name, targets in bad.items() if targets}


def test_the_website_uses_training_only_through_its_pipeline(imports):
    """The website reaches training through its pipeline, and reads the table
    of training kinds (which imports nothing)."""
    bad = {name: sorted(target for target in targets if target.split(".")[0] == "training"
                        and not within(target, ("training.pipeline", "training.kinds")))
           for name, targets in imports.items() if within(name, ("webapp",))}
    assert not {name: targets for name, targets in bad.items() if targets}


def import_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected groups of more than one module (Tarjan's algorithm)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles = []

    def connect(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in graph[node]:
            if target not in index:
                connect(target)
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
                cycles.append(sorted(group))

    for node in graph:
        if node not in index:
            connect(node)
    return cycles


def test_import_cycles_are_found():
    assert import_cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_there_are_no_import_cycles():
    """No two modules import each other, even through others, counting the
    imports inside functions and those only for type checkers: a cycle means
    two modules are one concern, or one of them is in the wrong place."""
    files = {name: path for name, path in module_files().items()
             if within(name, CYCLE_FREE_PACKAGES)}
    imports = {name: runtime_imports(name, path, type_checking=True)
               for name, path in files.items()}
    graph = {name: {target for target in targets if target in imports and target != name}
             for name, targets in imports.items()}
    cycles = import_cycles(graph)
    assert not cycles, "import cycles: " + "; ".join(" <-> ".join(cycle) for cycle in cycles)


def test_no_long_functions_without_a_reason():
    """A function in perfrnn/ or webapp/ over 80 lines says why in its docstring
    (the word "long")."""
    long = []
    for name, path in module_files().items():
        if not within(name, ("perfrnn", "webapp")):
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                lines = node.end_lineno - node.lineno + 1
                reason = "long" in (ast.get_docstring(node) or "").lower()
                if lines > LONGEST_FUNCTION_LINES and not reason:
                    long.append(f"{name}.{node.name}: {lines} lines")
    assert not long
