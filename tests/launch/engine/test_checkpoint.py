"""Run checkpoints (launch/engine/checkpoint.py): atomic, verified, the last two kept, a full disk loses nothing."""
import os
import subprocess
import textwrap

import pytest
import torch

from launch.engine import checkpoint as ckpt

from tests.repo import REPO
from tests.fault_helpers import PY, _fill, small_fs  # noqa: F401,F811


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
