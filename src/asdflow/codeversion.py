"""Code versions of the workflow's stages, derived from what each stage's command imports.

A rule runs `python -m asdflow <command>`: that loads `asdflow/__main__.py` and `cli.py`, then
the command's function imports the stage's modules (inside the function, so that commands start
fast). A stage's code version is a hash of every package module in that import closure, found
by reading the source (imports inside functions included), so that a change to any module a
stage runs reruns it and a change elsewhere does not (README, "What runs").
"""

from __future__ import annotations

import ast
import hashlib
import inspect
import textwrap
from functools import cache
from pathlib import Path

PACKAGE = "asdflow"
PACKAGE_DIR = Path(__file__).resolve().parent


def module_file(name: str, package_dir: Path = PACKAGE_DIR) -> Path | None:
    """The source file of a module of the package (`asdflow.data.synth`), or None."""
    parts = name.split(".")
    if parts[0] != package_dir.name:
        return None
    base = package_dir.joinpath(*parts[1:])
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def imports_in(tree: ast.AST, module: str, package_dir: Path = PACKAGE_DIR) -> set[str]:
    """Package modules imported anywhere in `tree` (functions included) of module `module`.

    `from asdflow.data import synth` names the module `asdflow.data.synth` when it is one, else
    the package `asdflow.data`; relative imports are resolved against `module`.
    """
    package = package_dir.name
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                anchor = module.split(".")
                is_package = module_file(module, package_dir) == (
                    package_dir.joinpath(*anchor[1:]) / "__init__.py"
                )
                anchor = anchor if is_package else anchor[:-1]
                anchor = anchor[: len(anchor) - (node.level - 1)]
                base = ".".join(anchor + ([node.module] if node.module else []))
            else:
                base = node.module or ""
            names = [base] + [f"{base}.{alias.name}" for alias in node.names]
        else:
            continue
        for name in names:
            if name.split(".")[0] != package:
                continue
            # the module itself and every package on its way (their __init__ runs first)
            parts = name.split(".")
            for end in range(1, len(parts) + 1):
                prefix = ".".join(parts[:end])
                if module_file(prefix, package_dir) is not None:
                    found.add(prefix)
    return found


@cache
def _module_imports(name: str, package_dir: Path = PACKAGE_DIR) -> frozenset[str]:
    path = module_file(name, package_dir)
    if path is None:
        return frozenset()
    return frozenset(imports_in(ast.parse(path.read_text(), str(path)), name, package_dir))


def import_closure(modules: set[str], package_dir: Path = PACKAGE_DIR) -> set[str]:
    """Every package module reachable from `modules` through imports."""
    seen: set[str] = set()
    todo = list(modules)
    while todo:
        name = todo.pop()
        if name in seen or module_file(name, package_dir) is None:
            continue
        seen.add(name)
        todo.extend(_module_imports(name, package_dir))
    return seen


@cache
def _subcommands() -> dict:
    from asdflow import cli

    parser = cli.build_parser()
    return next(a for a in parser._actions if a.dest == "command").choices


def command_function(command: str):
    """The function `asdflow <command>` calls (set by `cli.build_parser`)."""
    subcommands = _subcommands()
    if command not in subcommands:
        raise ValueError(f"Unsupported asdflow command {command!r}: known {sorted(subcommands)}")
    return subcommands[command].get_default("func")


def command_modules(command: str) -> set[str]:
    """Package modules that `python -m asdflow <command>` loads: the entry point and the CLI
    (whose other commands' imports do not run), and the closure of what cli.py imports at
    module level, the module that defines the command's function, and what that function
    imports."""
    entry = {f"{PACKAGE}.__main__", f"{PACKAGE}.cli"}
    cli_file = module_file(f"{PACKAGE}.cli")
    top_level = ast.Module(
        body=[
            node
            for node in ast.parse(cli_file.read_text()).body
            if isinstance(node, (ast.Import, ast.ImportFrom))
        ],
        type_ignores=[],
    )
    function = command_function(command)
    home = function.__module__  # cli.py, or a module whose parser cli.py takes in (bench)
    body = ast.parse(textwrap.dedent(inspect.getsource(function)))
    imported = imports_in(top_level, f"{PACKAGE}.cli") | imports_in(body, home) | {home}
    return entry | import_closure(imported - entry)


@cache  # several rules run the same command; the workflow asks once per rule at start-up
def command_version(command: str) -> str:
    """Hash of the sources of every module `asdflow <command>` loads (12 hex digits)."""
    digest = hashlib.sha1()
    for name in sorted(command_modules(command)):
        digest.update(name.encode() + b"\0" + module_file(name).read_bytes())
    return digest.hexdigest()[:12]
