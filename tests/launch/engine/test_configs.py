"""Every shipped config validates, and the data-free ones prepare against small local data."""
import glob
import os

import pytest
import yaml

from launch.engine.config import load_yaml
from launch.runs.plan import expand
from launch.engine.tasks import get_task

from tests.repo import REPO  # noqa: E402
CONFIGS = sorted(glob.glob(os.path.join(REPO, "*", "configs", "*.yaml")))


def _bases():
    used = set()
    for path in CONFIGS:
        with open(path) as f:
            base = (yaml.safe_load(f) or {}).get("_base_")
        for b in [base] if isinstance(base, str) else base or []:
            used.add(os.path.normpath(os.path.join(os.path.dirname(path), b)))
    return used


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: os.path.relpath(p, REPO))
def test_every_shipped_config_expands_to_runs_under_its_out_dir(path):
    raw = load_yaml(path)
    if "name" not in raw:
        assert path in _bases(), f"{path} has no name and is no other config's base"
        return
    plan = expand(raw)
    assert plan and all(plan)
    for stage in plan:
        for run in stage:
            assert run.run_dir.startswith(os.path.join(run.cfg.launch.out_dir, run.cfg.name))


@pytest.mark.parametrize("path", [p for p in CONFIGS if "/image/" in p and "demo" not in p],
                         ids=os.path.basename)
def test_image_configs_prepare_on_an_imagefolder(path, tmp_path):
    from image.demo import write_demo_images
    raw = load_yaml(path)
    if "name" not in raw:
        return
    root = write_demo_images(tmp_path / "imnet", num_classes=2, train_per_class=1, val_per_class=1,
                             size=16)
    raw["data"]["root"] = str(root)
    raw["model"]["checkpoint"] = None
    for stage in expand(raw):
        for run in stage:
            get_task("image").prepare(run.cfg)
