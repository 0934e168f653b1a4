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
import json
import subprocess
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


# Run in a fresh interpreter: import third-party libraries once, then fork one child per module;
# each child imports its module and reports the project modules it now holds.
_FORK_EACH = r"""
import json, os, sys
import numpy, PIL.Image, timm, torch, torchvision, yaml
roots = sys.argv[1].split(",")
assert not [m for m in sys.modules if m.split(".")[0] in roots], "parent holds project modules"
out = {}
for name in sys.argv[2:]:
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(read)
        import importlib
        importlib.import_module(name)
        loaded = sorted(m for m in sys.modules if m.split(".")[0] in roots)
        os.write(write, json.dumps(loaded).encode())
        os._exit(0)
    os.close(write)
    with os.fdopen(read) as f:
        data = f.read()
    _, status = os.waitpid(pid, 0)
    out[name] = json.loads(data) if status == 0 and data else None
print(json.dumps(out))
"""


def test_the_layer_table_reads_dotted_names():
    assert layer_of("launch.engine.loop") == "launch.engine"
    assert layer_of("launch.runs.plan") == "launch.runs"
    assert layer_of("launch.submit") is None       # a command
    assert layer_of("launch") is None
    assert layer_of("tome.patch.timm_vit") == "tome"
    assert layer_of("torch") is None


def test_each_module_imported_alone_pulls_in_only_lower_layers():
    names = project_modules()
    done = subprocess.run([sys.executable, "-c", _FORK_EACH, ",".join(ROOTS), *names], cwd=REPO,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    loaded = json.loads(done.stdout.strip().splitlines()[-1])
    failed = [name for name, mods in loaded.items() if mods is None]
    assert not failed, f"modules that do not import on their own: {failed}"
    bad = [f"{name} -> {m}" for name, mods in loaded.items() for m in mods
           if m != "launch" and layer_of(m) not in ALLOWED[layer_of(name)]]
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


def test_the_fresh_import_reports_what_a_module_pulls_in():
    """The fork check itself: a command pulls in the run plumbing and the engine below it, and the
    table flags both for a module of the engine's layer."""
    done = subprocess.run([sys.executable, "-c", _FORK_EACH, ",".join(ROOTS), "launch.submit"],
                          cwd=REPO, capture_output=True, text=True, timeout=300)
    loaded = json.loads(done.stdout.strip().splitlines()[-1])["launch.submit"]
    assert "launch.runs.submission" in loaded and "launch.engine.config" in loaded
    assert "image.task" not in loaded  # modalities load only when a config names one
    assert layer_of("launch.runs.submission") not in ALLOWED["launch.engine"]
