"""The package's shape, pinned: the core never reaches into the command line or the user
interface, never prints, logs under `livctl`, and every class says what it is."""

from __future__ import annotations

import ast
from pathlib import Path

import livctl

PACKAGE = Path(livctl.__file__).resolve().parent
EDGES = ("cli", "ui")
"""The command line and the user interface: they use the core; the core knows nothing of them."""
ENTRY = ("__main__.py",)


def _modules():
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(PACKAGE)
        yield rel, ast.parse(path.read_text(), filename=str(path))


def _in_core(rel: Path) -> bool:
    return rel.parts[0] not in EDGES and rel.name not in ENTRY


def _imported(tree: ast.AST) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            names.update(f"{node.module}.{a.name}" for a in node.names)
    return names


def test_the_core_never_imports_the_command_line_or_the_user_interface():
    found = []
    for rel, tree in _modules():
        if not _in_core(rel):
            continue
        for name in _imported(tree):
            if any(name == f"livctl.{edge}" or name.startswith(f"livctl.{edge}.") for edge in EDGES):
                found.append(f"{rel}: {name}")
    assert not found, found


def test_the_user_interface_never_imports_the_command_line():
    found = [f"{rel}: {name}" for rel, tree in _modules() if rel.parts[0] == "ui"
             for name in _imported(tree) if name == "livctl.cli" or name.startswith("livctl.cli.")]
    assert not found, found


def test_the_core_prints_nothing():
    found = []
    for rel, tree in _modules():
        if not _in_core(rel):
            continue
        for node in ast.walk(tree):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "print":
                found.append(f"{rel}:{node.lineno}: print")
            if (isinstance(node, ast.Attribute) and node.attr in ("stdout", "stderr")
                    and isinstance(node.value, ast.Name) and node.value.id == "sys"):
                found.append(f"{rel}:{node.lineno}: sys.{node.attr}")
    assert not found, found


def test_every_logger_is_in_the_livctl_hierarchy():
    for rel, tree in _modules():
        for node in ast.walk(tree):
            if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                    and node.func.attr == "getLogger" and node.args):
                arg = node.args[0]
                ok = (isinstance(arg, ast.Name) and arg.id == "__name__") or (
                    isinstance(arg, ast.Constant) and str(arg.value).split(".")[0] == "livctl")
                assert ok, f"{rel}:{node.lineno}"


def test_every_class_has_a_docstring():
    missing = [f"{rel}:{node.lineno} {node.name}" for rel, tree in _modules() for node in ast.walk(tree)
               if isinstance(node, ast.ClassDef) and ast.get_docstring(node) is None]
    assert not missing, missing


def test_verbose_shows_the_cores_steps_and_quiet_by_default(cli, tmp_path):
    args = ("session", "--device", "sim://", "--speed", "max", "--minutes", "0.1", "--operator", "A. Tech",
            "--log", str(tmp_path / "doses.sqlite"), "--quiet")
    plain = cli(*args)
    assert plain.code == 0 and "debug:" not in plain.err
    verbose = cli("-v", *args)
    assert verbose.code == 0, verbose
    assert "livctl: debug: procedures.session: session " in verbose.err
    assert "livctl: debug: procedures.guard: ramping down" in verbose.err
    assert verbose.out.splitlines()[0].split()[2:] == plain.out.splitlines()[0].split()[2:]


MAX_FUNCTION_LINES = 80
REASON = "One piece, by choice"


def test_no_function_runs_over_80_lines_without_its_reason():
    long = []
    for rel, tree in _modules():
        for node in ast.walk(tree):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                lines = node.end_lineno - node.lineno + 1
                if lines > MAX_FUNCTION_LINES and REASON not in (ast.get_docstring(node) or ""):
                    long.append(f"{rel}:{node.lineno} {node.name} ({lines} lines)")
    assert not long, long
