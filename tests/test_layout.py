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


def _public_use(module: str, name: str) -> str | None:
    """Why `from module import name` is not a use of the public API, or None when it is: `livctl`'s
    `__all__`, or a module's `__all__` (a module that declares none offers nothing to the edges)."""
    import importlib

    mod = importlib.import_module(module)
    public = getattr(mod, "__all__", None)
    if public is None:
        return f"{module} declares no __all__"
    if name not in public and not isinstance(getattr(mod, name, None), type(ast)):
        return f"{name} is not in {module}.__all__"
    return None


def test_the_command_line_uses_only_the_public_api():
    """cli/ takes from the core only what `livctl.__all__` and the modules' `__all__` offer (a
    module imported whole is held to its `__all__` in every attribute the command uses); the user
    interface and the command line's own modules are its rendering."""
    import importlib

    found = []
    for rel, tree in _modules():
        if rel.parts[0] != "cli":
            continue
        modules: dict[str, str] = {}
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                found += [f"{rel}: import {a.name}" for a in node.names if a.name.startswith("livctl.")
                          and not a.name.startswith(("livctl.cli", "livctl.ui"))]
            elif isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("livctl"):
                if node.module.startswith(("livctl.cli", "livctl.ui")) or node.module in ("livctl.cli", "livctl.ui"):
                    continue
                for a in node.names:
                    try:  # a submodule (`from livctl.study import report`)
                        value = importlib.import_module(f"{node.module}.{a.name}")
                    except ModuleNotFoundError:
                        value = getattr(importlib.import_module(node.module), a.name, None)
                    if isinstance(value, type(ast)):
                        modules[a.asname or a.name] = value.__name__
                    elif (problem := _public_use(node.module, a.name)) is not None:
                        found.append(f"{rel}: {problem}")
        for node in ast.walk(tree):  # attributes of modules imported whole
            if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id in modules:
                if (problem := _public_use(modules[node.value.id], node.attr)) is not None:
                    found.append(f"{rel}: {problem}")
    assert not found, sorted(set(found))


def test_every_public_name_is_there():
    """Each module's `__all__` names what it holds (a renamed function cannot leave a stale entry)."""
    import importlib

    missing = []
    for rel, _ in _modules():
        if rel.name == "__main__.py":
            continue
        name = ".".join(("livctl", *rel.with_suffix("").parts)).removesuffix(".__init__")
        mod = importlib.import_module(name)
        missing += [f"{name}.{n}" for n in getattr(mod, "__all__", ()) if not hasattr(mod, n)]
    assert not missing, missing
