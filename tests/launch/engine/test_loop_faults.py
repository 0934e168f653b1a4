"""Faults of a long run, created for real, through the loop (launch/engine/loop.py): lost saves, full disks, truncated checkpoints, clamped r, early stops, bad videos."""
import os
from types import SimpleNamespace

import pytest
import torch

from launch.engine import checkpoint as ckpt
from launch.engine.config import resolve
from launch.engine.loop import run
from launch.engine.rundir_lock import LOCK

from tests.tiny_configs import write_config
from tests.fault_helpers import _fill, _jsonl, small_fs  # noqa: F401,F811


def test_epoch_logged_before_a_lost_save_is_not_duplicated(tmp_path):
    """Preemption after epoch 2's log write, before its checkpoint: the directory then holds the
    epoch-1 checkpoint and epoch 2's record; the requeued run redoes epoch 2 and logs it once."""
    cfg = resolve(write_config(tmp_path), ["eval.throughput=false"])
    from launch.engine.tasks import get_task
    get_task("image").prepare(cfg)
    run_dir = str(tmp_path / "run")
    run(cfg, run_dir)
    first = _jsonl(os.path.join(run_dir, "log.jsonl"))
    os.replace(os.path.join(run_dir, ckpt.PREVIOUS), os.path.join(run_dir, ckpt.LAST))
    os.remove(os.path.join(run_dir, "DONE"))
    run(cfg, run_dir)
    again = _jsonl(os.path.join(run_dir, "log.jsonl"))
    assert [e["epoch"] for e in again] == [1, 2]
    assert again[1]["train_loss"] == first[1]["train_loss"]  # the same epoch, redone exactly
    assert [row["r"] for row in _jsonl(os.path.join(run_dir, "results.jsonl"))] == [0, 1]


def test_run_on_a_disk_that_stays_full_stops_with_one_line(tmp_path, small_fs):
    cfg = resolve(write_config(tmp_path), ["eval.throughput=false", "train.checkpoint_every=1",
                                           f"launch.out_dir={small_fs}"])
    from launch.engine.tasks import get_task
    get_task("image").prepare(cfg)
    run_dir = str(small_fs / "run")
    os.makedirs(run_dir)
    _fill(small_fs, leave=64_000)  # room for the logs, not for a ~200 KB checkpoint
    with pytest.raises(ckpt.CheckpointError) as err:
        run(cfg, run_dir)
    assert "\n" not in str(err.value) and "free there" in str(err.value)
    log = open(os.path.join(run_dir, "log.txt")).read()
    assert log.count("training goes on until the next save") == 1  # the first failure, logged
    assert not [n for n in os.listdir(run_dir) if ".tmp." in n]
    assert not os.path.exists(os.path.join(run_dir, LOCK))


def test_leftover_temporary_file_is_removed_on_rerun(tmp_path):
    cfg = resolve(write_config(tmp_path), ["eval.throughput=false", "train.epochs=1", "tome.eval_r=[0]"])
    from launch.engine.tasks import get_task
    get_task("image").prepare(cfg)
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / f"{ckpt.LAST}.tmp.12345").write_bytes(b"\0" * 1000)
    run(cfg, str(run_dir))
    assert not (run_dir / f"{ckpt.LAST}.tmp.12345").exists()
    assert "removed the partial checkpoint" in (run_dir / "log.txt").read_text()


def test_truncated_checkpoint_falls_back_to_the_previous_one(tmp_path):
    cfg = resolve(write_config(tmp_path), ["eval.throughput=false", "tome.r=1"])
    from launch.engine.tasks import get_task
    get_task("image").prepare(cfg)
    broken = str(tmp_path / "broken")
    run(cfg, broken)
    last = os.path.join(broken, ckpt.LAST)
    a = torch.load(last, weights_only=True)["model"]
    data = open(last, "rb").read()
    with open(last, "wb") as f:
        f.write(data[: len(data) // 2])
    os.remove(os.path.join(broken, "DONE"))
    os.remove(os.path.join(broken, "results.jsonl"))
    run(cfg, broken)
    log = open(os.path.join(broken, "log.txt")).read()
    assert f"checkpoint {last} cannot be read" in log
    assert "resuming from the previous checkpoint" in log and "epoch 1" in log
    b = torch.load(last, weights_only=True)["model"]
    for key in a:  # epoch 2 redone from the epoch-1 checkpoint: the same weights
        torch.testing.assert_close(a[key], b[key], rtol=0, atol=0)


def test_four_bad_videos_of_three_views_count_four_skipped_files_and_twelve_standins(tmp_path):
    from launch.engine.loop import evaluate
    from launch.engine.runlog import RunLog
    from video.data import VideoClipDataset, write_demo_videos
    from video.task import VideoTask
    root = tmp_path / "videos"
    _, val_csv = write_demo_videos(root, num_classes=2, videos_per_class=(1, 2), frames=16,
                                   size=(32, 32), seed=0)
    bad = []
    for i in range(4):
        path = tmp_path / f"bad{i}.mp4"
        path.write_bytes(b"\0not a video" * 20)
        bad.append(path)
    lst = tmp_path / "val.csv"
    lst.write_text("".join(f"{p} 0\n" for p in bad) + val_csv.read_text())
    dataset = VideoClipDataset(lst, root, False, num_frames=4, sampling_rate=2, crop_size=32,
                               num_temporal_clips=3, num_spatial_crops=1)

    class Tiny(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = torch.nn.Linear(3, 2)

        def forward(self, x):
            return self.fc(x.mean(dim=(2, 3, 4)))

    cfg = SimpleNamespace(eval=SimpleNamespace(batch_size=4, amp="none"), launch=SimpleNamespace(num_workers=2),
                          train=SimpleNamespace(amp="none"))
    env = SimpleNamespace(rank=0, world_size=1, device=torch.device("cpu"))
    log = RunLog(str(tmp_path / "run"), True)
    metrics = evaluate(Tiny(), VideoTask(), cfg, dataset, env, log)
    log.close()
    assert metrics["skipped_files"] == 4
    assert metrics["standins"] == 12  # every view of a bad video was replaced
    text = (tmp_path / "run" / "log.txt").read_text()
    for path in bad:
        assert text.count(f"skipped unreadable file {path} ") == 1


def test_r_beyond_the_tokens_is_recorded_clamped_and_warned_once(tmp_path):
    cfg = resolve(write_config(tmp_path), ["train.epochs=0", "tome.eval_r=[0,1000,2000]",
                                           "eval.throughput=false"])
    from launch.engine.tasks import get_task
    get_task("image").prepare(cfg)
    run_dir = str(tmp_path / "run")
    rows = run(cfg, run_dir)
    # 16 px / patch 8: 4 patches + the class token. Layer 1 merges at most (5 - 1) // 2 = 2,
    # layer 2 then (3 - 1) // 2 = 1.
    assert rows[1]["r_requested"] == [1000, 1000] and rows[1]["r_applied"] == [2, 1]
    assert rows[2]["r_applied"] == [2, 1] and rows[0]["r_applied"] == [0, 0]
    log = open(os.path.join(run_dir, "log.txt")).read()
    assert log.count("warning: r=") == 1 and "r=1000" in log


def test_stop_requested_before_the_job_starts_is_not_lost(tmp_path):
    """A signal that reached the launcher while the job was still starting: the job finds the
    launcher's stop file, saves at its first optimizer step and stops."""
    from launch.engine.stop import STOP_FILE, Stopped
    cfg = resolve(write_config(tmp_path), ["eval.throughput=false", "train.eval_every=0"])
    from launch.engine.tasks import get_task
    get_task("image").prepare(cfg)
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / STOP_FILE).touch()
    with pytest.raises(Stopped, match="at epoch 1 step 1, checkpoint saved"):
        run(cfg, str(run_dir))
    state = torch.load(run_dir / ckpt.LAST, weights_only=True)
    assert (state["epoch"], state["step"]) == (0, 1)
    assert not (run_dir / LOCK).exists()
