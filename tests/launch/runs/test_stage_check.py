"""A checkpoint an earlier stage writes is checked against every later stage's model when the
writing stage ends, and a mismatch stops the experiment before the next stage starts."""
import json
import os
import pickle

import pytest
import torch

from launch import submit
from launch.engine.config import load_yaml
from launch.runs.job import Job
from launch.runs.plan import expand
from launch.runs.stage_check import StageCheckpointMismatch, check_produced, loaders_of

from tests.tiny_configs import write_config

TWO_STAGES = """\
    stages:
      - {name: pre, set: {tome.r: 0}, sweep: {}}
      - {name: ft, set: {tome.r: 1, model.checkpoint: "${stage:pre}/checkpoint.pth"READER}}
    """


def _plan(tmp_path, reader: str = "", sweep: str = ""):
    return expand(load_yaml(write_config(tmp_path, TWO_STAGES.replace("READER", reader).rstrip() + "\n" + sweep)))


def tiny_vit_state(dim: int = 32, depth: int = 2, classes: int = 2, mlp: int = 128) -> dict:
    """The state dict of the tiny ViT of tests/tiny_configs.py (16 px, patch 8, MAE pooling), written out by
    hand from the timm ViT's layout: 4 patches + the class token, qkv fused, fc_norm, head."""
    shapes = {"cls_token": (1, 1, dim), "pos_embed": (1, 5, dim),
              "patch_embed.proj.weight": (dim, 3, 8, 8), "patch_embed.proj.bias": (dim,)}
    for i in range(depth):
        b = f"blocks.{i}."
        shapes.update({b + "norm1.weight": (dim,), b + "norm1.bias": (dim,),
                       b + "attn.qkv.weight": (3 * dim, dim), b + "attn.qkv.bias": (3 * dim,),
                       b + "attn.proj.weight": (dim, dim), b + "attn.proj.bias": (dim,),
                       b + "norm2.weight": (dim,), b + "norm2.bias": (dim,),
                       b + "mlp.fc1.weight": (mlp, dim), b + "mlp.fc1.bias": (mlp,),
                       b + "mlp.fc2.weight": (dim, mlp), b + "mlp.fc2.bias": (dim,)})
    shapes.update({"fc_norm.weight": (dim,), "fc_norm.bias": (dim,),
                   "head.weight": (classes, dim), "head.bias": (classes,)})
    return {k: torch.full(s, 0.5) for k, s in shapes.items()}


def _write_stage_checkpoint(run_dir, state):
    """What a training stage leaves: the weights under "model", with its bookkeeping."""
    os.makedirs(run_dir, exist_ok=True)
    path = os.path.join(run_dir, "checkpoint.pth")
    torch.save({"model": state, "optimizer": {}, "epoch": 2, "step": 0, "train_done": True}, path)
    return path


# ------------------------------------------------------------------ which runs read a stage's file

def test_each_later_run_that_loads_the_stages_file_is_a_loader(tmp_path):
    plan = _plan(tmp_path, sweep="    sweep:\n      tome.r: [1, 2]\n")
    loaders = loaders_of(plan, plan[0][0])
    path = f"{tmp_path}/runs/tiny/pre/checkpoint.pth"
    assert [(e["path"], e["writer"], e["reader"]) for e in loaders] == [
        (path, "pre", "ft/r1"), (path, "pre", "ft/r2")]
    assert [e["cfg"]["tome"]["r"] for e in loaders] == [1, 2]
    pickle.dumps(loaders)  # travels to the job with its arguments
    assert loaders_of(plan, plan[1][0]) == []  # nothing after the last stage


def test_a_later_run_loading_another_file_is_not_a_loader(tmp_path):
    other = tmp_path / "elsewhere.pth"
    plan = expand(load_yaml(write_config(tmp_path, TWO_STAGES.replace(
        '"${stage:pre}/checkpoint.pth"READER', f'"{other}"'))))
    assert loaders_of(plan, plan[0][0]) == []


# ------------------------------------------------------------------ the check, on hand-made files

def test_a_stage_checkpoint_that_fits_the_next_stage_passes(tmp_path):
    plan = _plan(tmp_path)
    _write_stage_checkpoint(plan[0][0].run_dir, tiny_vit_state())
    check_produced(loaders_of(plan, plan[0][0]))


def test_a_new_head_for_other_classes_is_not_a_mismatch(tmp_path):
    """Fine-tuning onto other classes starts a new head: the loader skips a head of other shape."""
    plan = _plan(tmp_path, reader=", model.num_classes: 5")
    _write_stage_checkpoint(plan[0][0].run_dir, tiny_vit_state(classes=2))
    check_produced(loaders_of(plan, plan[0][0]))


def test_a_wrong_shape_fails_in_one_line_naming_file_stages_and_key(tmp_path):
    plan = _plan(tmp_path)
    path = _write_stage_checkpoint(plan[0][0].run_dir, tiny_vit_state(mlp=64))
    with pytest.raises(StageCheckpointMismatch) as err:
        check_produced(loaders_of(plan, plan[0][0]))
    message = str(err.value)
    assert "\n" not in message
    assert message.startswith(f"checkpoint {path} written by stage pre does not fit stage ft: ")
    assert "blocks.0.mlp.fc1.weight has shape (64, 32) but the model needs (128, 32)" in message
    assert message.endswith("stage ft is not started")
    log = open(os.path.join(plan[0][0].run_dir, "log.txt")).read()
    assert log == f"error: {message}\n"


def test_a_shallower_checkpoint_fails_naming_the_first_missing_tensor(tmp_path):
    plan = _plan(tmp_path)
    path = _write_stage_checkpoint(plan[0][0].run_dir, tiny_vit_state(depth=1))
    with pytest.raises(StageCheckpointMismatch) as err:
        check_produced(loaders_of(plan, plan[0][0]))
    # the second block's 12 tensors are missing, the first of them in the model's order is norm1.weight
    assert (f"{path} written by stage pre does not fit stage ft: lacks 12 model tensors, "
            f"first 'blocks.1.norm1.weight'") in str(err.value)


def test_a_stage_that_wrote_no_checkpoint_fails(tmp_path):
    plan = _plan(tmp_path)
    with pytest.raises(StageCheckpointMismatch, match=f"stage pre ended without writing "
                       f"{tmp_path}/runs/tiny/pre/checkpoint.pth, which stage ft loads"):
        check_produced(loaders_of(plan, plan[0][0]))


def test_a_requeued_job_keeps_its_loaders(tmp_path):
    """On preemption submitit resubmits ``Job().checkpoint(...)``'s arguments: the check travels."""
    plan = _plan(tmp_path)
    pre = plan[0][0]
    again = Job().checkpoint(pre.cfg.to_dict(), pre.run_dir, loaders_of(plan, pre))
    assert again.args[1] == pre.run_dir and [e["reader"] for e in again.args[2]] == ["ft"]


# ------------------------------------------------------------------ through the launcher

def test_two_stages_whose_checkpoint_fits_run_through(tmp_path):
    path = write_config(tmp_path, TWO_STAGES.replace("READER", ""))
    submit.submit(path, ["train.epochs=1", "tome.eval_r=[0]", "eval.throughput=false"],
                  cluster="debug", compare=False)
    for stage in ("pre", "ft"):
        rows = [json.loads(line) for line in open(tmp_path / "runs" / "tiny" / stage / "results.jsonl")]
        assert [r["r"] for r in rows] == [0]


def test_a_stage_checkpoint_that_does_not_fit_stops_before_the_next_stage(tmp_path, capsys):
    """Stage ft builds a wider ViT than pre trained: the local launcher stops right after pre
    with one line, and ft never starts (no run directory, no second job)."""
    path = write_config(tmp_path, TWO_STAGES.replace(
        "READER", ", model.kwargs: {patch_size: 8, embed_dim: 48, depth: 2, num_heads: 2}"))
    code = submit.main([path, "train.epochs=1", "tome.eval_r=[0]", "eval.throughput=false",
                        "--cluster", "local", "--no-compare"])
    err = capsys.readouterr().err
    root = tmp_path / "runs" / "tiny"
    assert code == 2
    lines = [line for line in err.splitlines() if line.startswith("config error:")]
    assert lines == [f"config error: checkpoint {root}/pre/checkpoint.pth written by stage pre does "
                     f"not fit stage ft: cls_token has shape (1, 1, 32) but the model needs (1, 1, 48); "
                     f"build the matching architecture; stage ft is not started"]
    assert "Traceback" not in err
    assert os.path.isfile(root / "pre" / "DONE")
    assert not os.path.exists(root / "ft")
    jobs = [d for d in os.listdir(root / "submitit") if d.isdigit()]  # one folder per job id
    assert len(jobs) == 1
