"""Helpers and fixtures the fault tests share: a tiny filesystem, waiting, JSONL reading."""
"""Faults of long runs, created for real: two writers, a full disk, a truncated checkpoint, a
signal to the launcher, odd image modes, bad videos, and mistakes caught at submission."""
import json
import os
import subprocess
import sys
import time

import pytest


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

