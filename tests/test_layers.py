"""Layers import only downward: ``tome`` nothing of the project; the engine only ``tome``; a
modality only ``tome`` and the engine; the run plumbing ``tome`` and the engine; the commands
anything.

Two checks, each against the table below rather than against the code:
- every module is imported on its own, in a process that holds no project module (a fork of a
  parent that imported only third-party libraries), and what it pulled in is compared with the
  table: this catches module-level imports, however indirect;
- every ``import`` statement in the source, including those inside functions, is read with
  ``ast``: this catches the lazy ones.
The engine names the modalities in one plugin table (``launch/engine/tasks.py`` ``TASKS``, module
paths as strings, resolved when a config asks for a task): no import statement, so neither check
counts it, by design.
"""
from __future__ import annotations

import ast
import multiprocessing
import sys
from pathlib import Path

import pytest

from tests.repo import REPO

ROOTS = ("tome", "launch", "image", "video", "audio")
# layer -> the layers it may import (itself included)
ALLOWED = {
    "tome": {"tome"},
    "launch.engine": {"tome", "launch.engine"},
    "image": {"tome", "launch.engine", "image"},
    "video": {"tome", "launch.engine", "video"},
    "audio": {"tome", "launch.engine", "audio"},
    "launch.runs": {"tome", "launch.engine", "launch.runs"},
}


def layer_of(module: str) -> str | None:
    """The layer a dotted module name belongs to (None: a command, or not the project's)."""
    for layer in sorted(ALLOWED, key=len, reverse=True):
        if module == layer or module.startswith(layer + "."):
            return layer
    return None


def project_modules() -> list[str]:
    out = []
    for root in ROOTS:
        for path in sorted(Path(REPO, root).rglob("*.py")):
            parts = list(path.relative_to(REPO).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts = parts[:-1]
            name = ".".join(parts)
            if layer_of(name) is not None:
                out.append(name)
    return out


def _import_alone(name, queue):
    import importlib
    importlib.import_module(name)
    queue.put(sorted(m for m in sys.modules if m.split(".")[0] in ROOTS))


def test_the_layer_table_reads_dotted_names():
    assert layer_of("launch.engine.loop") == "launch.engine"
    assert layer_of("launch.runs.plan") == "launch.runs"
    assert layer_of("launch.submit") is None       # a command
    assert layer_of("launch") is None
    assert layer_of("tome.patch.timm_vit") == "tome"
    assert layer_of("torch") is None


def test_each_module_imported_alone_pulls_in_only_lower_layers():
    # Third-party libraries first, so that each child only adds the project's modules.
    import numpy, PIL.Image, timm, torch, torchvision, yaml  # noqa: E401,F401
    assert not [m for m in sys.modules if m.split(".")[0] in ROOTS and m != "tests"], \
        "the parent must hold no project module"
    ctx = multiprocessing.get_context("fork")
    bad = []
    for name in project_modules():
        queue = ctx.Queue()
        child = ctx.Process(target=_import_alone, args=(name, queue))
        child.start()
        loaded = queue.get(timeout=120)
        child.join()
        allowed = ALLOWED[layer_of(name)]
        for m in loaded:
            layer = layer_of(m)
            if m.split(".")[0] in ROOTS and m != "launch" and layer not in allowed:
                bad.append(f"{name} -> {m}")
    assert not bad, "imports from a higher layer:\n" + "\n".join(bad)


def _imports_in(path: Path, package: str) -> list[tuple[int, str]]:
    tree = ast.parse(path.read_text(), str(path))
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, a.name) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: resolve against the module's package
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module
            # `from launch import submit` reaches launch.submit: name what is imported
            found += [(node.lineno, f"{module}.{a.name}") for a in node.names]
    return found


@pytest.mark.parametrize("name", project_modules())
def test_no_import_statement_reaches_a_higher_layer(name):
    parts = name.split(".")
    path = Path(REPO, *parts)
    path = path / "__init__.py" if path.is_dir() else path.with_suffix(".py")
    package = name if path.name == "__init__.py" else ".".join(parts[:-1])
    allowed = ALLOWED[layer_of(name)]
    bad = [f"{path.relative_to(REPO)}:{line} imports {target}"
           for line, target in _imports_in(path, package)
           if target.split(".")[0] in ROOTS and layer_of(target) not in allowed]
    assert not bad, "\n".join(bad)


def test_the_ast_check_flags_an_engine_module_importing_a_modality_and_a_command(tmp_path):
    """The AST check itself: an engine module importing a modality and a command is flagged."""
    path = tmp_path / "bad.py"
    path.write_text("import tome\nfrom image.model import x\n\ndef f():\n    from launch.submit import main\n"
                    "    from . import loop\n")
    targets = [t for _, t in _imports_in(path, "launch.engine")]
    assert targets == ["tome", "image.model.x", "launch.submit.main", "launch.engine.loop"]
    flagged = [t for t in targets if layer_of(t) not in ALLOWED["launch.engine"]]
    assert flagged == ["image.model.x", "launch.submit.main"]
