"""Stage code versions: the import closure of what a command loads, read from the source."""

import re
from pathlib import Path

from conftest import REPO

from asdflow import codeversion


def write_package(root: Path) -> Path:
    """A small package: imports at module level, inside functions, relative, from packages."""
    pkg = root / "pkg"
    (pkg / "sub").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "a.py").write_text("import os\n\ndef run():\n    from pkg import b\n    return b\n")
    (pkg / "b.py").write_text("from .sub import c\nfrom pkg.sub.c import VALUE\n")
    (pkg / "sub" / "__init__.py").write_text("from . import helper\n")
    (pkg / "sub" / "c.py").write_text("from ..d import THING as VALUE\n")
    (pkg / "sub" / "helper.py").write_text("")
    (pkg / "d.py").write_text("THING = 1\n")
    (pkg / "unused.py").write_text("import pkg.a\n")
    return pkg


def test_import_closure_follows_function_level_and_relative_imports(tmp_path):
    pkg = write_package(tmp_path)
    closure = codeversion.import_closure({"pkg.a"}, pkg)
    assert closure == {"pkg", "pkg.a", "pkg.b", "pkg.sub", "pkg.sub.c", "pkg.sub.helper", "pkg.d"}
    assert "pkg.unused" not in closure
    assert codeversion.module_file("pkg.sub", pkg) == pkg / "sub" / "__init__.py"
    assert codeversion.module_file("os", pkg) is None


def test_commands_load_what_their_stage_imports():
    """The modules the hand-kept lists used to miss (issue 12) are part of the versions now."""
    modules = {c: codeversion.command_modules(c) for c in ("score-encoder", "embed", "tsne")}
    assert {"asdflow.checkpoint", "asdflow.models", "asdflow.knn"} <= modules["score-encoder"]
    assert {"asdflow.train", "asdflow.features"} <= modules["embed"]
    assert {"asdflow.figures", "asdflow.tables", "asdflow.features"} <= modules["tsne"]
    for command, loaded in modules.items():
        assert {"asdflow.cli", "asdflow.__main__"} <= loaded, command
        assert "asdflow.bench" not in loaded and "asdflow.data.synth" not in loaded, command


def test_every_rule_versions_the_command_it_runs():
    """A rule's `code` param names the command of its shell line, so the two cannot drift."""
    checked = 0
    for path in sorted((REPO / "rules").glob("*.smk")):
        for block in re.split(r"\n(?=\s*rule \w+:)", path.read_text()):
            command = re.search(r'"\{params\.asdflow\} ([\w-]+)', block)
            code = re.search(r'code=code_version\("([\w-]+)"\)', block)
            if command is None:
                assert code is None, f"{path.name}: code version without an asdflow command"
                continue
            rule = re.search(r"rule (\w+):", block).group(1)
            if rule == "download_archive":
                assert code is None  # downloads carry no code version on purpose (README)
                continue
            assert code is not None, f"{path.name}: rule {rule} has no code version"
            assert code.group(1) == command.group(1), f"{path.name}: rule {rule}"
            checked += 1
    assert checked >= 20
