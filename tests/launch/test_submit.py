"""The launcher (launch/submit.py): signals reach its jobs, and mistakes fail at submission in one line, before anything runs or is written."""
import json
import os
import signal
import subprocess

import pytest
import torch

from launch.engine import checkpoint as ckpt
from launch import submit
from launch.engine.rundir_lock import LOCK

from tests.repo import REPO
from tests.tiny_configs import write_config
from tests.fault_helpers import PY, _wait_for  # noqa: F401,F811


def _alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # a zombie still answers kill(0); it writes nothing any more
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(")")[-1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def test_sigterm_to_the_local_launcher_stops_its_job_at_a_checkpoint(tmp_path):
    path = write_config(tmp_path, name="sig")
    run_dir = tmp_path / "runs" / "sig"
    proc = subprocess.Popen([PY, os.path.join(REPO, "launch", "submit.py"), path, "--cluster", "local",
                             "train.epochs=500", "train.eval_every=0", "train.checkpoint_every=1",
                             "eval.throughput=false"],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=REPO)
    try:
        _wait_for(lambda: (run_dir / ckpt.LAST).exists(), 240, "the job's first checkpoint")
        job_pid = json.load(open(run_dir / LOCK))["pid"]
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=240)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 128 + signal.SIGTERM, out
    assert "stopping at the next checkpoint" in out and "stopped on SIGTERM" in out
    assert not _alive(job_pid)  # no orphan
    assert not (run_dir / LOCK).exists()
    state = torch.load(run_dir / ckpt.LAST, weights_only=True)
    assert not state["train_done"] and state["epoch"] < 500
    assert not (run_dir / "compare.md").exists()


STAGED = """\
    stages:
      - {name: pretrain, set: {tome.r: 0}, sweep: {}}
      - {name: merge_ft, set: {tome.r: 1, model.checkpoint: "CKPT"}}
    """


@pytest.mark.parametrize("override, match", [
    ("tome.r=[1,1,1]", r"tome.r=\[1, 1, 1\] does not fit demo_vit_mae \(2 layers\)"),
    ("tome.eval_r=[0,[1,1,1,1]]", r"tome.eval_r=\[1, 1, 1, 1\] does not fit demo_vit_mae \(2 layers\)"),
    ("data.img_size=-5", "data.img_size must be a positive integer, got -5"),
])
def test_mistakes_fail_at_submission_in_one_line(tmp_path, capsys, override, match):
    import re
    code = submit.main([write_config(tmp_path), override, "--dry-run"])
    err = capsys.readouterr().err
    assert code == 2 and re.search(match, err), err
    assert err.count("\n") == 1


def test_checkpoint_typo_under_out_dir_fails_unless_an_earlier_stage_writes_it(tmp_path, capsys):
    good = write_config(tmp_path, STAGED.replace("CKPT", "${stage:pretrain}/checkpoint.pth"), name="ok")
    assert submit.main([good, "--dry-run"]) == 0
    typo = write_config(tmp_path, STAGED.replace("CKPT", f"{tmp_path}/runs/ok/pretrian/checkpoint.pth"),
                        name="ok")
    assert submit.main([typo, "--dry-run"]) == 2
    err = capsys.readouterr().err
    assert "pretrian/checkpoint.pth' does not exist" in err and "runs/ok/pretrain/checkpoint.pth" in err
    # a stage that does not train writes no checkpoint
    assert submit.main([good, "--dry-run", "train.epochs=0"]) == 2


def test_empty_image_folder_fails_at_submission(tmp_path, capsys):
    for split in ("train", "val"):
        (tmp_path / "empty" / split / "cls").mkdir(parents=True)
    code = submit.main([write_config(tmp_path), "data.demo=false", f"data.root={tmp_path}/empty",
                        "--dry-run"])
    assert code == 2 and "no images found" in capsys.readouterr().err


def test_dry_run_writes_nothing(tmp_path):
    before = sorted(os.listdir(tmp_path))
    code = submit.main([write_config(tmp_path), f"data.root={tmp_path}/fresh", "--dry-run"])
    assert code == 0
    assert sorted(os.listdir(tmp_path)) == sorted(before + ["tiny.yaml"])  # only the test's config


@pytest.mark.parametrize("config, lists", [
    ("video/configs/demo.yaml", ("train.csv", "val.csv")),
    ("audio/configs/demo.yaml", ("train.json", "val.json")),
])
def test_video_and_audio_dry_runs_generate_no_demo_data(tmp_path, config, lists):
    root = tmp_path / "data"
    code = submit.main([os.path.join(REPO, config), f"data.root={root}",
                        f"data.train_list={root}/{lists[0]}", f"data.val_list={root}/{lists[1]}",
                        f"launch.out_dir={tmp_path}/runs", "--dry-run"])
    assert code == 0 and os.listdir(tmp_path) == []


def test_a_training_batch_larger_than_the_training_set_fails_at_submission(tmp_path, capsys):
    # 2 classes x 8 images = 16 training images; 2 local processes x batch 12 need 24
    path = write_config(tmp_path)
    code = submit.main([path, "train.batch_size=12", "launch.tasks_per_node=2", "--cluster", "local"])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1, err
    assert "train.batch_size=12 x 2 process(es) exceeds the 16 training samples (8 per process and epoch)" in err
    assert not (tmp_path / "runs").exists()  # nothing submitted
    # a dry run checks a dataset on disk too (demo data, which it does not write, is checked at submission)
    assert submit.main([path, "train.batch_size=17", "data.demo=false", "--dry-run"]) == 2
    assert "train.batch_size=17 x 1 process(es) exceeds the 16 training samples" in capsys.readouterr().err
