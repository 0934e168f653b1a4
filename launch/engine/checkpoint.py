"""Checkpoints of a run: atomic, verified, the last two kept, and a fallback when one is unreadable.

A run directory holds up to two checkpoints:
  checkpoint.pth        the newest
  checkpoint.prev.pth   the one before it
Each save writes ``checkpoint.pth.tmp.<pid>``, flushes it to disk, reads it back (every zip
record's CRC and the pickled structure), then rotates: the newest becomes the previous, the new
file the newest. A save that fails (disk full, I/O error, a file that does not read back) removes
its temporary file and leaves both kept checkpoints untouched; :class:`Saver` logs one line and
training goes on, and after ``max_failures`` failed saves in a row (or a failed final save) it
stops the run with one line naming the path and the free space.

:func:`load_last` resumes from the newest checkpoint that reads; when it has to skip one it says so
in the log, and when checkpoints exist but none reads it raises rather than start from scratch.
"""
from __future__ import annotations

import errno
import glob
import os
import shutil
import zipfile
from typing import Callable, Optional

import torch

LAST = "checkpoint.pth"
PREVIOUS = "checkpoint.prev.pth"


class CheckpointError(RuntimeError):
    """A checkpoint cannot be written or read; the message is one line naming the file."""


def _human(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if n < 1024 or unit == "TB":
            return f"{n:.1f} {unit}" if unit != "B" else f"{int(n)} B"
        n /= 1024
    return f"{n:.1f} TB"


def free_space(path: str) -> str:
    try:
        return _human(shutil.disk_usage(os.path.dirname(os.path.abspath(path)) or ".").free)
    except OSError:
        return "unknown space"


def _first_line(err: BaseException) -> str:
    text = str(err).strip().splitlines()
    return f"{type(err).__name__}: {text[0][:200]}" if text else type(err).__name__


class _Recording:
    """A binary file whose write errors are remembered: torch wraps them in a bare RuntimeError."""

    def __init__(self, f):
        self.f, self.error = f, None

    def write(self, data):
        try:
            return self.f.write(data)
        except OSError as err:
            self.error = err
            raise

    def flush(self):
        return self.f.flush()


def verify(path: str) -> None:
    """Raise CheckpointError unless ``path`` reads back: every zip record's CRC, then the pickle."""
    try:
        with zipfile.ZipFile(path) as z:
            bad = z.testzip()
        if bad is not None:
            raise CheckpointError(f"checkpoint {path}: record {bad} fails its CRC check")
        torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except CheckpointError:
        raise
    except Exception as err:
        raise CheckpointError(f"checkpoint {path} does not read back ({_first_line(err)})") from None


def _write(state: dict, tmp: str) -> None:
    with open(tmp, "wb") as raw:
        f = _Recording(raw)
        try:
            torch.save(state, f)
            raw.flush()
            os.fsync(raw.fileno())
        except RuntimeError as err:  # torch's zip writer reports the OS error as "unexpected pos"
            if f.error is not None:
                raise f.error from None
            raise OSError(errno.EIO, _first_line(err)) from None


def _fsync_dir(path: str) -> None:
    try:
        fd = os.open(os.path.dirname(os.path.abspath(path)), os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def save_atomic(state: dict, path: str, keep_previous: Optional[str] = None) -> None:
    """Write ``state`` to ``path`` atomically and verified; the old ``path`` becomes
    ``keep_previous`` when given. On any failure the temporary file is removed and the existing
    files are untouched."""
    tmp = f"{path}.tmp.{os.getpid()}"
    try:
        _write(state, tmp)
        verify(tmp)
        if keep_previous and os.path.isfile(path):
            os.replace(path, keep_previous)
        os.replace(tmp, path)
        _fsync_dir(path)
    finally:
        if os.path.exists(tmp):
            try:
                os.unlink(tmp)
            except OSError:
                pass


class Saver:
    """Saves a run's checkpoints (the last two kept); tolerates isolated failures."""

    def __init__(self, run_dir: str, log: Callable[[str], None], max_failures: int = 2):
        self.run_dir, self.log, self.max_failures = run_dir, log, max_failures
        self.path = os.path.join(run_dir, LAST)
        self.failures = 0

    def save(self, state: dict, final: bool = False) -> bool:
        """True when saved. A failure logs one line and returns False; the ``max_failures``-th in
        a row, or a failed ``final`` save (a later stage reads it), raises CheckpointError."""
        try:
            save_atomic(state, self.path, os.path.join(self.run_dir, PREVIOUS))
        except (OSError, CheckpointError) as err:
            self.failures += 1
            what = (f"{errno.errorcode.get(err.errno, err.errno)} {err.strerror or err}"
                    if isinstance(err, OSError) and err.errno else str(err))
            message = (f"checkpoint save to {self.path} failed ({what}); "
                       f"{free_space(self.path)} free there")
            if final or self.failures >= self.max_failures:
                count = "the final save" if final else f"{self.failures} saves in a row"
                raise CheckpointError(f"{message}; stopping after {count} failed. Free space and "
                                      f"rerun to resume from the last good checkpoint") from None
            self.log(f"{message}; the previous checkpoint is kept and training goes on until the "
                     f"next save")
            return False
        self.failures = 0
        return True


def remove_partial(run_dir: str, log: Callable[[str], None]) -> None:
    """Delete temporary files of saves that never finished (call it holding the run's lock)."""
    for path in sorted(glob.glob(os.path.join(glob.escape(run_dir), f"{LAST}.tmp.*"))):
        try:
            os.unlink(path)
            log(f"removed the partial checkpoint {path} of an interrupted save")
        except OSError:
            pass


def _read(path: str) -> dict:
    state = torch.load(path, map_location="cpu", weights_only=True)
    if not isinstance(state, dict) or "model" not in state or "epoch" not in state:
        raise ValueError("not a checkpoint of this engine (no model/epoch entries)")
    return state


def load_last(run_dir: str, log: Optional[Callable[[str], None]] = None,
              clean: bool = False) -> Optional[dict]:
    """The newest readable checkpoint of ``run_dir``, or None when it has none at all; ``clean``
    (for the process holding the run's lock) also removes partial files of interrupted saves.

    Our own checkpoints hold only tensors, numbers, strings and dicts (no pickled objects)."""
    log = log or (lambda message: None)
    if clean:
        remove_partial(run_dir, log)
    problems = []
    for name in (LAST, PREVIOUS):
        path = os.path.join(run_dir, name)
        if not os.path.isfile(path):
            continue
        try:
            state = _read(path)
        except Exception as err:  # truncated, empty, not a zip, wrong content
            problems.append(f"{path} ({_first_line(err)})")
            log(f"checkpoint {path} cannot be read ({_first_line(err)}); skipping it")
            continue
        if problems or name == PREVIOUS:
            why = "the newer one cannot be read" if problems else f"{LAST} is missing"
            log(f"resuming from the previous checkpoint {path} (epoch {state['epoch']}, step "
                f"{state['step']}): {why}")
        return state
    if problems:
        raise CheckpointError(f"no checkpoint of {run_dir} can be read: {'; '.join(problems)}; "
                              f"delete them to start this run from scratch")
    return None


def model_weights(path: str) -> dict:
    """The model state dict of any of our checkpoints (or a plain state dict)."""
    state = torch.load(path, map_location="cpu", weights_only=True)
    for key in ("model_ema", "model", "state_dict", "model_state"):
        if isinstance(state, dict) and key in state and isinstance(state[key], dict):
            return state[key] if key != "model_ema" or state[key] else state["model"]
    return state
