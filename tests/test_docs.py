"""The README and docs/*.md cannot rot: their code runs, their commands name what exists.

- Every fenced ``python`` block runs. The blocks of one file run in order in one namespace, as a
  reader pasting them one after the other would. A block that names a published checkpoint or a
  full-size input gets a tiny stand-in through SUBSTITUTIONS, an explicit table of exact strings.
- Every command line of a fenced ``bash`` block that names a project file: the file exists; for a
  ``launch`` command (``python launch/X.py``, ``python -m launch.X``, ``torchrun ... launch/X.py``)
  or ``python -m tome.vis``, every ``--option`` it uses is one that the command's own ``--help``
  lists (read in-process from its ``main(["--help"])``); for ``bash scripts/X.sh``, every option
  is one the script handles.
- Every relative link points at a file that exists, and every ``#anchor`` at one of its headings.
"""
import contextlib
import glob
import importlib
import io
import os
import re
import shlex

import pytest
import torch

from tests.repo import REPO

DOCS = ["README.md"] + sorted(os.path.relpath(p, REPO) for p in glob.glob(os.path.join(REPO, "docs", "*.md")))

# Exact text in a doc -> what the test runs instead: tiny models and inputs for published
# checkpoints and full-size inputs, so that every block runs on a CPU in seconds.
SUBSTITUTIONS = {
    'timm.create_model("vit_base_patch16_224")':
        'timm.create_model("vit_base_patch16_224", img_size=112, depth=2, embed_dim=64, num_heads=2)',
    "torch.randn(2, 3, 224, 224)": "torch.randn(2, 3, 112, 112)",
    'timm.create_model("vit_small_patch14_reg4_dinov2", pretrained=True, img_size=224)':
        'timm.create_model("vit_small_patch14_reg4_dinov2", img_size=112, depth=4, embed_dim=64, num_heads=2)',
    'transformers.VideoMAEForVideoClassification.from_pretrained(\n    "MCG-NJU/videomae-base-finetuned-kinetics")':
        "transformers.VideoMAEForVideoClassification(transformers.VideoMAEConfig(\n"
        "    image_size=64, num_frames=8, hidden_size=64, num_hidden_layers=2, num_attention_heads=2,\n"
        "    intermediate_size=128, num_labels=5))",
    "torch.randn(1, 16, 3, 224, 224)": "torch.randn(1, 8, 3, 64, 64)",
}

FENCE = re.compile(r"^```(\w*)[^\n]*\n(.*?)^```", re.M | re.S)
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")
LAUNCH_SCRIPT = re.compile(r"^launch/(\w+)\.py$")
PROJECT_TOP = ("image", "video", "audio", "launch", "tome", "scripts", "tests", "docs")


def read(doc: str) -> str:
    with open(os.path.join(REPO, doc)) as f:
        return f.read()


def blocks(doc: str, language: str) -> list:
    return [body for lang, body in FENCE.findall(read(doc)) if lang == language]


def substituted(code: str) -> str:
    for real, stand_in in SUBSTITUTIONS.items():
        code = code.replace(real, stand_in)
    return code


def test_every_substitution_is_used_by_some_doc():
    """A stand-in whose text no longer appears in any doc would hide that the doc changed."""
    python = "".join(body for doc in DOCS for body in blocks(doc, "python"))
    unused = [real for real in SUBSTITUTIONS if real not in python]
    assert not unused, f"SUBSTITUTIONS entries no doc's python block contains: {unused}"


@pytest.mark.parametrize("doc", [d for d in DOCS if blocks(d, "python")])
def test_python_blocks_run(doc, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # files a block writes (an exported model) land in a scratch folder
    namespace = {"__name__": "__doc_blocks__"}
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    torch.manual_seed(0)
    try:
        for i, code in enumerate(blocks(doc, "python")):
            try:
                exec(compile(substituted(code), f"{doc} python block {i + 1}", "exec"), namespace)
            except Exception as err:
                raise AssertionError(f"{doc}, python block {i + 1} fails: {err!r}\n{code}") from err
    finally:
        torch.set_num_threads(before)


def command_lines(doc: str) -> list:
    """The command lines of the file's bash blocks: continuations joined, comments dropped."""
    out = []
    for body in blocks(doc, "bash"):
        for line in body.replace("\\\n", " ").splitlines():
            words = shlex.split(line, comments=True)
            if words:
                out.append(words)
    return out


def command_module(words: list):
    """(module name, its arguments) when the line runs a launch command or tome.vis, else None."""
    for i, word in enumerate(words):
        if word == "-m" and i + 1 < len(words) and re.fullmatch(r"(launch\.\w+|tome\.vis)", words[i + 1]):
            return words[i + 1], words[i + 2:]
        m = LAUNCH_SCRIPT.match(word)
        if m and i > 0 and re.search(r"(python3?|torchrun)$", words[0]):
            return f"launch.{m.group(1)}", words[i + 1:]
    return None


_HELP = {}


def help_options(module: str) -> set:
    """The --options the command's own argparse help lists, read in-process once per module."""
    if module not in _HELP:
        main = importlib.import_module(module).main
        out = io.StringIO()
        with contextlib.redirect_stdout(out), pytest.raises(SystemExit):
            main(["--help"])
        _HELP[module] = set(re.findall(r"(?<![\w-])(--[a-z][\w-]*)", out.getvalue()))
    return _HELP[module]


def project_paths(words: list) -> list:
    """Arguments that name a file of this repository (not an output under runs/ or an absolute path)."""
    paths = []
    for word in words:
        value = word.split("=", 1)[1] if re.match(r"^[\w.]+=", word) else word
        if value.split("/")[0] in PROJECT_TOP and "/" in value and "<" not in value:
            paths.append(value)
    return paths


def all_command_lines():
    return [(doc, words) for doc in DOCS for words in command_lines(doc)]


@pytest.mark.parametrize("doc, words", all_command_lines(), ids=lambda x: x if isinstance(x, str) else " ".join(x)[:60])
def test_bash_commands_name_files_and_options_that_exist(doc, words):
    for path in project_paths(words):
        assert os.path.exists(os.path.join(REPO, path)), f"{doc}: `{' '.join(words)}` names {path}, which does not exist"
    found = command_module(words)
    if found is not None:
        module, args = found
        valid = help_options(module)
        used = {a.split("=", 1)[0] for a in args if a.startswith("--")}
        assert used <= valid, (f"{doc}: `{' '.join(words)}` uses {sorted(used - valid)}, which "
                               f"`python -m {module} --help` does not list (it lists {sorted(valid)})")
    if words[0] == "bash" and len(words) > 1 and words[1].startswith("scripts/"):
        script = read(words[1])
        for option in (a for a in words[2:] if a.startswith("-")):
            assert re.search(rf"(^|[\s|(]){re.escape(option)}\)", script, re.M), \
                f"{doc}: `{' '.join(words)}` uses {option}, which {words[1]} does not handle"


def anchors(doc: str) -> set:
    """GitHub's heading anchors: lower case, punctuation dropped, spaces to hyphens."""
    found = set()
    for heading in re.findall(r"^#+ +(.+?) *$", FENCE.sub("", read(doc)), re.M):
        found.add(re.sub(r"[^\w\- ]", "", heading.lower()).replace(" ", "-"))
    return found


@pytest.mark.parametrize("doc", DOCS)
def test_relative_links_point_at_files_and_headings_that_exist(doc):
    for target in LINK.findall(FENCE.sub("", read(doc))):
        if re.match(r"^[a-z]+:", target):
            continue  # an external address
        path, _, anchor = target.partition("#")
        linked = os.path.normpath(os.path.join(os.path.dirname(doc), path)) if path else doc
        assert os.path.exists(os.path.join(REPO, linked)), f"{doc} links {target}: {linked} does not exist"
        if anchor and linked.endswith(".md"):
            assert anchor in anchors(linked), f"{doc} links {target}: {linked} has no heading #{anchor}"


def test_the_checks_find_what_they_check():
    """The parsers see the commands: a launch command with options, a script, and a python block."""
    lines = [words for _, words in all_command_lines()]
    assert any(command_module(w) == ("launch.submit", w[2:]) for w in lines)
    assert any(command_module(w) and command_module(w)[0] == "launch.bench" for w in lines)
    assert "--dry-run" in help_options("launch.submit") and "--r" in help_options("launch.vis")
    assert project_paths(["python", "launch/submit.py", "image/configs/demo.yaml", "data.root=/datasets/x",
                          "runs/demo_image"]) == ["launch/submit.py", "image/configs/demo.yaml"]
    assert command_module(["python", "-m", "launch.bench", "--r", "8"]) == ("launch.bench", ["--r", "8"])
    assert command_module(["torchrun", "--nproc_per_node", "8", "launch/run.py", "c.yaml"]) == ("launch.run", ["c.yaml"])
