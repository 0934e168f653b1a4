"""Faults of long runs, created for real: two writers, a full disk, a truncated checkpoint, a
signal to the launcher, odd image modes, bad videos, and mistakes caught at submission."""
import json
import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from PIL import Image

from launch.engine import checkpoint as ckpt
from launch import submit
from launch.engine.config import resolve
from launch.engine.loop import run
from launch.engine.records import upsert_jsonl
from launch.engine.rundir_lock import LOCK, RunDirLock, RunDirLocked, check_free

from tests.repo import REPO
from tests.tiny_configs import write_config

PY = sys.executable


def _jsonl(path):
    return [json.loads(line) for line in open(path) if line.strip()]


def _wait_for(predicate, timeout, what):
    end = time.time() + timeout
    while time.time() < end:
        if predicate():
            return
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


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


# ------------------------------------------------------------------ run-directory lock

HOLD = textwrap.dedent("""\
    import sys, time
    sys.path.insert(0, {repo!r})
    from launch.engine.rundir_lock import RunDirLock
    with RunDirLock({run_dir!r}):
        open({ready!r}, "w").close()
        time.sleep(600)
    """)


@pytest.fixture
def holder(tmp_path):
    """A second, real process holding the lock of tmp_path/runs/tiny (killed at the end)."""
    run_dir = tmp_path / "runs" / "tiny"
    ready = tmp_path / "ready"
    proc = subprocess.Popen([PY, "-c", HOLD.format(repo=REPO, run_dir=str(run_dir), ready=str(ready))])
    _wait_for(ready.exists, 60, "the lock holder")
    yield proc, run_dir
    if proc.poll() is None:
        proc.kill()
        proc.wait()


def test_second_writer_of_a_run_dir_is_refused_naming_the_holder(tmp_path, holder, capsys):
    proc, run_dir = holder
    cfg = resolve(write_config(tmp_path), ["eval.throughput=false"])
    from launch.engine.tasks import get_task
    get_task("image").prepare(cfg)
    with pytest.raises(RunDirLocked) as err:
        run(cfg, str(run_dir))
    message = str(err.value)
    assert "\n" not in message and f"pid {proc.pid}" in message and socket.gethostname() in message
    assert not os.path.exists(run_dir / "log.jsonl") and not os.path.exists(run_dir / "config.yaml")
    # the launcher refuses before submitting anything
    code = submit.main([write_config(tmp_path), "--cluster", "local"])
    assert code == 2 and f"pid {proc.pid}" in capsys.readouterr().err
    assert not os.path.exists(run_dir / "submitit") and not os.path.exists(tmp_path / "runs" / "tiny" / "submitit")


def test_lock_of_a_killed_job_is_taken_over(tmp_path, holder):
    proc, run_dir = holder
    proc.kill()
    proc.wait()
    cfg = resolve(write_config(tmp_path), ["eval.throughput=false", "train.epochs=1", "tome.eval_r=[0]"])
    from launch.engine.tasks import get_task
    get_task("image").prepare(cfg)
    run(cfg, str(run_dir))
    log = open(run_dir / "log.txt").read()
    assert f"pid {proc.pid}" in log and "no longer running" in log
    assert not os.path.exists(run_dir / LOCK)  # released at the end


def _write_lock(run_dir, **holder):
    os.makedirs(run_dir, exist_ok=True)
    with open(os.path.join(run_dir, LOCK), "w") as f:
        f.write(json.dumps(holder) + "\n")


def test_lock_survives_requeue_on_another_node_and_stale_heartbeats(tmp_path, monkeypatch):
    run_dir = str(tmp_path / "r")
    # written by this very SLURM job before its requeue, on another node, heartbeat fresh
    _write_lock(run_dir, job="slurm:4242", host="other-node", pid=1)
    monkeypatch.setenv("SLURM_JOB_ID", "4242")
    with pytest.raises(RunDirLocked, match="job slurm:4242, host other-node, pid 1"):
        check_free(run_dir)  # a launcher outside the job sees a live holder
    lock = RunDirLock(run_dir).acquire()
    assert json.load(open(os.path.join(run_dir, LOCK)))["pid"] == os.getpid()
    lock.release()
    assert not os.path.exists(os.path.join(run_dir, LOCK))
    # another job on another node: live while its heartbeat is fresh, dead once it is old
    monkeypatch.setenv("SLURM_JOB_ID", "777")
    _write_lock(run_dir, job="slurm:4242", host="other-node", pid=1)
    with pytest.raises(RunDirLocked, match="in use by job slurm:4242"):
        RunDirLock(run_dir).acquire()
    old = time.time() - 3600
    os.utime(os.path.join(run_dir, LOCK), (old, old))
    notes = []
    RunDirLock(run_dir, notes.append).acquire().release()
    assert "heartbeat is 3600s old" in notes[0]


def test_heartbeat_refreshes_the_lock(tmp_path):
    run_dir = str(tmp_path / "r")
    lock = RunDirLock(run_dir, heartbeat_s=0.05).acquire()
    path = os.path.join(run_dir, LOCK)
    os.utime(path, (0, 0))
    _wait_for(lambda: os.stat(path).st_mtime > 0, 5, "a heartbeat")
    lock.release()


# ------------------------------------------------------------------ idempotent records

def test_upsert_keeps_one_record_per_key(tmp_path):
    path = str(tmp_path / "results.jsonl")
    upsert_jsonl(path, {"r": 0, "acc1": 1.0}, ["r"])
    upsert_jsonl(path, {"r": [4, 2], "acc1": 2.0}, ["r"])
    assert upsert_jsonl(path, {"r": 0, "acc1": 3.0}, ["r"]) is True
    assert _jsonl(path) == [{"r": 0, "acc1": 3.0}, {"r": [4, 2], "acc1": 2.0}]
    with open(path, "a") as f:
        f.write('{"r": 9, "acc')  # a torn line of a crash
    upsert_jsonl(path, {"r": 9, "acc1": 4.0}, ["r"])
    assert [row["r"] for row in _jsonl(path)] == [0, [4, 2], 9]


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


# ------------------------------------------------------------------ checkpoints

@pytest.fixture
def small_fs(tmp_path):
    """A real 1 MiB tmpfs (needs root, as in this project's containers)."""
    mount = tmp_path / "fs"
    mount.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mount)],
                          capture_output=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.decode().strip()}")
    yield mount
    subprocess.run(["umount", "-l", str(mount)], check=False)


def _fill(mount, leave: int) -> str:
    """Fill the filesystem until ``leave`` bytes are free; returns the filler's path."""
    filler = os.path.join(mount, "filler")
    free = os.statvfs(mount).f_bavail * os.statvfs(mount).f_frsize
    with open(filler, "ab") as f:
        f.write(b"\0" * max(free - leave, 0))
    return filler


def test_save_on_a_full_disk_keeps_the_last_good_checkpoints(small_fs):
    run_dir = str(small_fs / "run")
    os.makedirs(run_dir)
    notes = []
    saver = ckpt.Saver(run_dir, notes.append)
    states = [{"model": {"w": torch.full((50_000,), float(i))}, "epoch": i, "step": 0} for i in range(4)]
    assert saver.save(states[0]) and saver.save(states[1])  # 2 x 200 KB
    filler = _fill(small_fs, leave=100_000)  # the next 200 KB write fails mid-way
    assert not saver.save(states[2])
    assert len(notes) == 1 and "ENOSPC" in notes[0] and ckpt.LAST in notes[0] and "free" in notes[0]
    assert sorted(os.listdir(run_dir)) == sorted([ckpt.LAST, ckpt.PREVIOUS])  # no temporary file left
    assert ckpt.load_last(run_dir)["epoch"] == 1
    os.remove(filler)  # space again: saving resumes and the failure count starts over
    assert saver.save(states[2]) and saver.failures == 0
    _fill(small_fs, leave=100_000)
    assert not saver.save(states[3])
    with pytest.raises(ckpt.CheckpointError) as err:
        saver.save(states[3])  # the disk stays full: stop, naming the path and the free space
    message = str(err.value)
    assert "\n" not in message and os.path.join(run_dir, ckpt.LAST) in message
    assert "KB free" in message and "2 saves in a row" in message
    assert sorted(os.listdir(run_dir)) == sorted([ckpt.LAST, ckpt.PREVIOUS])
    assert [ckpt.load_last(run_dir)["epoch"], torch.load(os.path.join(run_dir, ckpt.PREVIOUS),
                                                         weights_only=True)["epoch"]] == [2, 1]


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


def test_unreadable_checkpoints_never_restart_silently(tmp_path):
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / ckpt.LAST).write_bytes(b"")
    with pytest.raises(ckpt.CheckpointError) as err:
        ckpt.load_last(str(run_dir))
    assert str(run_dir / ckpt.LAST) in str(err.value) and "from scratch" in str(err.value)
    assert "\n" not in str(err.value)


def test_verify_catches_a_flipped_byte(tmp_path):
    path = str(tmp_path / "c.pth")
    torch.save({"w": torch.arange(10_000.0)}, path)
    data = bytearray(open(path, "rb").read())
    data[len(data) // 2] ^= 0xFF
    open(path, "wb").write(bytes(data))
    with pytest.raises(ckpt.CheckpointError, match="CRC"):
        ckpt.verify(path)


# ------------------------------------------------------------------ signals to the launcher

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


# ------------------------------------------------------------------ image modes

def test_16bit_png_is_scaled_by_value(tmp_path):
    from image.data import load_rgb
    values = np.array([[0, 257, 1000, 25700], [32768, 60000, 65278, 65535]], dtype=np.uint16)
    path = tmp_path / "grey16.png"
    Image.fromarray(values).save(path)
    assert Image.open(path).mode == "I;16"
    rgb = np.asarray(load_rgb(str(path)))
    # by hand: round(v / 257)
    expected = np.array([[0, 1, 4, 100], [128, 233, 254, 255]], dtype=np.uint8)
    assert rgb.dtype == np.uint8 and rgb.shape == (2, 4, 3)
    for c in range(3):
        np.testing.assert_array_equal(rgb[..., c], expected)


def test_other_image_modes_convert_by_value_over_white():
    from image.modes import to_rgb
    big = Image.fromarray(np.array([[0, 514, 65535]], dtype=">u2"))
    assert big.mode == "I;16B"
    assert np.asarray(to_rgb(big))[0, :, 0].tolist() == [0, 2, 255]
    i32 = Image.fromarray(np.array([[0, 771, 65535]], dtype=np.int32))
    assert i32.mode == "I" and np.asarray(to_rgb(i32))[0, :, 0].tolist() == [0, 3, 255]
    # palette with a transparent entry: transparent pixels show the white background
    pal = Image.new("P", (2, 1))
    pal.putpalette([10, 20, 30, 200, 100, 50] + [0] * 762)
    pal.putpixel((0, 0), 0)
    pal.putpixel((1, 0), 1)
    pal.info["transparency"] = 0
    assert np.asarray(to_rgb(pal)).tolist() == [[[255, 255, 255], [200, 100, 50]]]
    cmyk = Image.new("CMYK", (2, 1))
    cmyk.putpixel((0, 0), (0, 0, 0, 0))
    cmyk.putpixel((1, 0), (255, 0, 0, 0))
    assert np.asarray(to_rgb(cmyk)).tolist() == [[[255, 255, 255], [0, 255, 255]]]
    la = Image.new("LA", (3, 1))
    for x, px in enumerate([(100, 255), (100, 0), (100, 128)]):
        la.putpixel((x, 0), px)
    out = np.asarray(to_rgb(la))[0, :, 0].astype(int).tolist()
    # over white: 100 * a + 255 * (1 - a), a = 1, 0, 128/255 -> 100, 255, 177.8
    assert out[:2] == [100, 255] and abs(out[2] - 178) <= 1


def test_unhandled_mode_is_counted_unreadable_with_its_reason(tmp_path):
    from image.data import ImageFolderDataset
    for split in ("val",):
        d = tmp_path / split / "a"
        d.mkdir(parents=True)
        Image.fromarray(np.zeros((8, 8), dtype=np.float32)).save(d / "0_float.tiff")
        Image.fromarray(np.zeros((8, 8, 3), dtype=np.uint8)).save(d / "1_ok.png")
    ds = ImageFolderDataset(tmp_path, "val")
    item = ds[0]
    assert item["skipped"] >= 1 and "image mode F is not supported" in item["unreadable"]
    assert "0_float.tiff" in item["unreadable"]


# ------------------------------------------------------------------ skipped files

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


# ------------------------------------------------------------------ checks at submission

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


FSIZE = textwrap.dedent("""\
    import os, resource, signal, sys
    sys.path.insert(0, {repo!r})
    import torch
    from launch.engine import checkpoint as ckpt
    run_dir = {run_dir!r}
    notes = []
    saver = ckpt.Saver(run_dir, notes.append)
    small = {{"model": {{"w": torch.zeros(1000)}}, "epoch": 1, "step": 0}}
    assert saver.save(small)
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # writes past the limit fail with EFBIG
    resource.setrlimit(resource.RLIMIT_FSIZE, (100_000, 100_000))
    big = {{"model": {{"w": torch.zeros(100_000)}}, "epoch": 2, "step": 0}}
    assert not saver.save(big)
    print(notes[0])
    print(sorted(os.listdir(run_dir)))
    print(ckpt.load_last(run_dir)["epoch"])
    """)


def test_write_that_fails_at_the_os_call_keeps_the_previous_checkpoint(tmp_path):
    """Without root (no tmpfs): a file-size limit makes the OS write itself fail mid-file."""
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    out = subprocess.run([PY, "-c", FSIZE.format(repo=REPO, run_dir=str(run_dir))],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    note, listing, epoch = out.stdout.strip().splitlines()
    assert "EFBIG" in note and "training goes on" in note
    assert listing == str([ckpt.LAST]) and epoch == "1"


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


def test_same_slurm_job_with_a_live_process_on_this_host_is_a_second_writer(tmp_path, holder, monkeypatch):
    """Two writers inside one SLURM allocation share the job id: the live pid decides."""
    proc, run_dir = holder
    data = json.load(open(run_dir / LOCK))
    _write_lock(str(run_dir), **{**data, "job": "slurm:99"})
    monkeypatch.setenv("SLURM_JOB_ID", "99")
    with pytest.raises(RunDirLocked, match=f"pid {proc.pid}"):
        RunDirLock(str(run_dir)).acquire()
