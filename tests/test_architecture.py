"""The import contract that keeps the layout true (``docs/architecture.md``).

Every module of ``oneshot`` belongs to one layer; a module imports only from its own unit or
from lower layers, so the library never imports a command line and the units have no cycles.
Units on one layer (``miners`` and ``reducers``) are independent. Imports inside functions count
too (they would hide an edge), and each one says why it is late: an optional dependency, or
keeping a command's ``--help`` light. No module is over 400 lines, and every serializable class
registers through ``oneshot.pieces.register``.
"""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PACKAGE = REPO / "oneshot"

#: lowest first; a module may import its own unit and the units of lower layers
LAYERS: tuple[tuple[str, ...], ...] = (
    ("oneshot.errors", "oneshot.checks", "oneshot.names", "oneshot.pieces", "oneshot.startup",
     "oneshot.version"),
    ("oneshot.data",),
    ("oneshot.distances",),
    ("oneshot.miners", "oneshot.reducers"),
    ("oneshot.losses",),
    ("oneshot.models",),
    ("oneshot.evaluation",),
    ("oneshot.plots",),
    ("oneshot.training",),
    ("oneshot.runs",),
    ("oneshot.experiments",),
    ("oneshot.applications",),
    ("oneshot.cli",),
)  # fmt: skip
#: ``python -m oneshot.<command>``, the commands' old names: each imports its command only
COMMAND_ALIASES = {
    "oneshot.train", "oneshot.evaluate", "oneshot.compare", "oneshot.index", "oneshot.identify",
    "oneshot.verify", "oneshot.cluster", "oneshot.novelty", "oneshot.networks",
    "oneshot.data.__main__",
}  # fmt: skip
#: a comment on an import inside a function must say why it is late
LATE_REASONS = ("late import", "optional dependency")
MAX_LINES = 400


def module_name(path: Path) -> str:
    parts = list(path.relative_to(REPO).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def unit_of(module: str) -> tuple[int, str] | None:
    """(layer index, unit) of a module, None for the package root and unknown modules."""
    for index, units in enumerate(LAYERS):
        for unit in units:
            if module == unit or module.startswith(unit + "."):
                return index, unit
    return None


def imports(path: Path) -> list[tuple[str, int, bool, str]]:
    """(imported oneshot module, line, inside a function, the import's last source line)."""
    source = path.read_text()
    lines = source.splitlines()
    tree = ast.parse(source)
    package = (
        module_name(path) if path.name == "__init__.py" else module_name(path).rsplit(".", 1)[0]
    )
    inner = {
        id(node)
        for function in ast.walk(tree)
        if isinstance(function, (ast.FunctionDef, ast.AsyncFunctionDef))
        for node in ast.walk(function)
    }
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                source_module = ".".join(base + ([node.module] if node.module else []))
            else:
                source_module = node.module or ""
            names = [f"{source_module}.{alias.name}" for alias in node.names]
            # ``from oneshot.x import y``: module oneshot.x (y may be a submodule or a name)
            targets = names if source_module == "oneshot" else [source_module, *names]
        else:
            continue
        line = lines[node.end_lineno - 1]
        for target in targets:
            found.append((target, node.lineno, id(node) in inner, line))
    return found


def library_modules() -> dict[str, Path]:
    return {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def violations(edges: list[tuple[str, str]]) -> list[str]:
    """The (importer, imported) edges that break the layers: an import of a higher layer, of
    another unit of the same layer, or by an old command name of anything but the commands."""
    bad = []
    for importer, imported in edges:
        if importer in COMMAND_ALIASES:
            if not imported.startswith("oneshot.cli"):
                bad.append(f"{importer} (an old command name) imports {imported}")
            continue
        source = unit_of(importer)
        # an old command name is a command line
        target = (
            (len(LAYERS) - 1, "oneshot.cli") if imported in COMMAND_ALIASES else unit_of(imported)
        )
        if source is None or target is None:
            continue
        if target[0] > source[0] or (target[0] == source[0] and target[1] != source[1]):
            bad.append(f"{importer} ({source[1]}) imports {imported} ({target[1]})")
    return bad


def oneshot_edges(inner: bool = True) -> list[tuple[str, str, int]]:
    edges = []
    for name, path in library_modules().items():
        for target, line, in_function, _ in imports(path):
            if target.startswith("oneshot.") and (inner or not in_function):
                edges.append((name, target, line))
    return edges


def test_every_module_belongs_to_a_layer():
    modules = set(library_modules()) - COMMAND_ALIASES - {"oneshot"}
    assert not sorted(m for m in modules if unit_of(m) is None)


def test_imports_point_down_the_layers_and_never_to_a_command_line():
    edges = oneshot_edges()
    assert not violations([(a, b) for a, b, _ in edges])


def test_the_contract_catches_an_import_that_points_up():
    """The check itself: the edges the layout forbids are reported."""
    assert violations([("oneshot.losses.triplet", "oneshot.train")])
    assert violations([("oneshot.miners.base", "oneshot.reducers.means")])  # same layer
    assert violations([("oneshot.train", "oneshot.training.runner")])
    assert not violations(
        [("oneshot.cli.train", "oneshot.losses"), ("oneshot.losses", "oneshot.pieces")]
    )


def test_no_import_cycle_between_modules():
    """At import time (module level): a cycle would make the import order matter."""
    modules = library_modules()
    graph: dict[str, set[str]] = {m: set() for m in modules}
    for importer, imported, _ in oneshot_edges(inner=False):
        parts = imported.split(".")
        for k in range(len(parts), 1, -1):  # the longest prefix that is a module
            if ".".join(parts[:k]) in modules:
                target = ".".join(parts[:k])
                if target != importer and not importer.startswith(target + "."):
                    graph[importer].add(target)
                break
    state: dict[str, int] = {}
    cycles = []

    def visit(node: str, path: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                cycles.append(" -> ".join([*path[path.index(nxt) :], nxt]))
            elif nxt not in state:
                visit(nxt, [*path, nxt])
        state[node] = 2

    for module in sorted(graph):
        if module not in state:
            visit(module, [module])
    assert not cycles


def test_every_import_inside_a_function_says_why_it_is_late():
    """An import in a function hides an edge; in the library it is for an optional dependency
    or for keeping ``python -m oneshot.<command> --help`` light, and its comment says which.
    The command lines import the library after parsing their arguments by design."""
    unexplained = []
    for name, path in library_modules().items():
        if name.startswith("oneshot.cli"):
            continue
        for target, line, in_function, text in imports(path):
            if in_function and not any(reason in text for reason in LATE_REASONS):
                unexplained.append(f"{path.relative_to(REPO)}:{line} imports {target}")
    assert not sorted(set(unexplained))


def test_no_module_is_over_400_lines():
    long = {
        str(path.relative_to(REPO)): n
        for path in PACKAGE.rglob("*.py")
        if (n := len(path.read_text().splitlines())) > MAX_LINES
    }
    assert not long


def test_one_registration_style():
    """Serializable classes register through ``oneshot.pieces.register`` (package "oneshot")."""
    direct = [
        str(path.relative_to(REPO))
        for path in PACKAGE.rglob("*.py")
        if "register_keras_serializable" in path.read_text() and path.name != "pieces.py"
    ]
    assert not direct


@pytest.mark.parametrize(
    "command",
    ["train", "evaluate", "compare", "data", "networks", "index", "verify", "identify", "cluster",
     "novelty"],
)  # fmt: skip
def test_every_command_answers_under_its_old_and_its_new_name(command):
    """``python -m oneshot.<command>`` (old) and ``oneshot <command>`` (the console script's
    ``python -m oneshot.cli <command>``) print the same help, before TensorFlow starts."""
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    old, new = (
        subprocess.run([sys.executable, "-m", *args, "--help"], capture_output=True, text=True,
                       cwd=REPO, env=env, timeout=120)
        for args in ([f"oneshot.{command}"], ["oneshot.cli", command])
    )  # fmt: skip
    assert old.returncode == 0 and new.returncode == 0, old.stderr + new.stderr
    assert old.stdout == new.stdout and "usage:" in old.stdout


def test_the_console_script_lists_the_commands_and_refuses_an_unknown_one():
    from oneshot.cli import COMMANDS
    from oneshot.cli.main import main

    assert main(["no-such-command"]) == 2
    assert main([]) == 2
    assert set(COMMANDS) == {alias.split(".")[1] for alias in COMMAND_ALIASES}
