"""Configs (launch/engine/config.py): one-line errors, inherited bases and overrides."""

import pytest

from launch.engine.config import resolve
from launch.engine.errors import ConfigError

from tests.tiny_configs import write_config


@pytest.mark.parametrize("override, match", [
    ("train.epoch=3", "unknown config key train.epoch"),
    ("bogus=1", "unknown config key 'bogus'"),
    ("train.epochs=three", "train.epochs must be an integer, got 'three'"),
    ("train.amp=fp8", "train.amp must be none, bf16 or fp16, got 'fp8'"),
    ("tome.r=-2", "tome: r must be a non-negative integer, got -2"),
    ("tome.inflection=3.0", r"inflection must be in \[-1, 1\]"),
    ("tome.mode=median", "mode must be one of"),
    ("launch.cluster=kubernetes", "launch.cluster must be one of"),
    ("task=speech", "task must be one of image, video, audio, got 'speech'"),
    ("paper=nope", "paper must be one of"),
    ("train.batch_size=0", "train.batch_size must be positive"),
    ("epochs", "must look like key=value"),
])
def test_config_errors_are_one_line(tmp_path, override, match):
    path = write_config(tmp_path)
    with pytest.raises(ConfigError, match=match) as err:
        resolve(path, [override])
    assert "\n" not in str(err.value)


def test_overrides_apply_on_top_of_the_inherited_base_config(tmp_path):
    cfg = resolve(write_config(tmp_path), ["tome.r=3", "train.blr=2e-3"])
    assert cfg.tome.r == 3 and cfg.train.blr == 2e-3 and cfg.data.family == "demo"
    assert cfg.model.name == "demo_vit_mae"  # from the base file
