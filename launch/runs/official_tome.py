"""The official ToMe implementation (github.com/facebookresearch/ToMe), loaded from a checkout the
user supplies, so that ``launch/bench.py --official PATH`` times it beside ours in the same rounds.

Nothing of it is copied here: ``load_official_timm_patch(path)`` imports the checkout's
``tome/merge.py``, ``tome/utils.py`` and ``tome/patch/timm.py`` under the private package name
``_official_tome`` (its modules import each other as ``tome.*``, which is this project's package, so
``tome`` is pointed at the checkout only while they load). The checkout's patch targets timm
0.4.12; on newer timm it still runs on plain ViTs (it ignores LayerScale and q/k norms, which the
AugReg ViT-S/B/L do not have).
"""
from __future__ import annotations

import importlib.util
import os
import sys
import types
from typing import Callable

PACKAGE = "_official_tome"
NEEDED = ("tome/merge.py", "tome/utils.py", "tome/patch/timm.py")


def _check_checkout(path: str) -> str:
    root = os.path.abspath(os.path.expanduser(path))
    missing = [name for name in NEEDED if not os.path.isfile(os.path.join(root, name))]
    if missing:
        raise ValueError(f"--official {path!r} is not a checkout of github.com/facebookresearch/ToMe: "
                         f"{', '.join(missing)} not found under it; pass the directory holding tome/")
    return root


def _load(name: str, file: str, package_path: str = None) -> types.ModuleType:
    spec = importlib.util.spec_from_file_location(
        name, file, submodule_search_locations=[package_path] if package_path else None)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def load_official_timm_patch(path: str) -> Callable:
    """The checkout's ``tome.patch.timm.apply_patch(model, trace_source=False, prop_attn=True)``
    (afterwards set ``model.r``). Raises ValueError naming the path if it is not a ToMe checkout."""
    root = _check_checkout(path)
    loaded = sys.modules.get(f"{PACKAGE}.patch.timm")
    if loaded is not None and getattr(loaded, "_official_root", None) == root:
        return loaded.apply_patch
    tome_dir = os.path.join(root, "tome")
    ours = {name: mod for name, mod in sys.modules.items() if name == "tome" or name.startswith("tome.")}
    try:
        for name in ours:
            del sys.modules[name]
        # Package shells without their __init__ (which imports the visualisation's dependencies).
        for name, where in (("tome", tome_dir), ("tome.patch", os.path.join(tome_dir, "patch"))):
            shell = types.ModuleType(name)
            shell.__path__ = [where]
            sys.modules[name] = shell
        merge = _load("tome.merge", os.path.join(tome_dir, "merge.py"))
        utils = _load("tome.utils", os.path.join(tome_dir, "utils.py"))
        patch = _load("tome.patch.timm", os.path.join(tome_dir, "patch", "timm.py"))
    except Exception as err:  # noqa: BLE001 - any import failure of foreign code, named
        raise ValueError(f"--official {path!r}: importing its tome/patch/timm.py failed: "
                         f"{type(err).__name__}: {err}") from err
    finally:
        for name in ("tome", "tome.patch", "tome.merge", "tome.utils", "tome.patch.timm"):
            sys.modules.pop(name, None)
        sys.modules.update(ours)
    # Keep them reachable under a private name (their functions hold their own globals).
    for short, module in (("merge", merge), ("utils", utils), ("patch.timm", patch)):
        sys.modules[f"{PACKAGE}.{short}"] = module
    patch._official_root = root
    return patch.apply_patch


def official_model(base, rs: list, path: str):
    """A copy of the unpatched timm ViT ``base`` patched by the official code with the per-layer
    schedule ``rs`` (the same one our merged model runs)."""
    import copy
    apply_patch = load_official_timm_patch(path)
    model = copy.deepcopy(base)
    apply_patch(model)  # in place
    model.r = list(rs)
    return model
