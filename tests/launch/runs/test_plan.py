"""Run plans (launch/runs/plan.py): stages x sweeps expand to named run directories."""
import os

import pytest

from launch.engine.errors import ConfigError
from launch.runs.plan import expand

from tests.tiny_configs import write_config


def test_sweep_and_stages_expand_to_named_runs(tmp_path):
    path = write_config(tmp_path, """\
        stages:
          - {name: a, set: {tome.r: 0}, sweep: {}}
          - {name: b, set: {model.checkpoint: "${stage:a}/checkpoint.pth"}}
        sweep:
          tome.r: [1, 2]
        """)
    from launch.engine.config import load_yaml
    raw = load_yaml(path)
    plan = expand(raw)
    assert [r.run_dir for r in plan[0]] == [f"{tmp_path}/runs/tiny/a"]
    assert [os.path.basename(r.run_dir) for r in plan[1]] == ["r1", "r2"]
    assert [r.cfg.tome.r for r in plan[1]] == [1, 2]
    assert plan[1][0].cfg.model.checkpoint == f"{tmp_path}/runs/tiny/a/checkpoint.pth"
    # a stage swept into several runs cannot be referenced
    raw["stages"][0]["sweep"] = None
    with pytest.raises(ConfigError, match="not an earlier single-run stage"):
        expand(raw)
