"""A checkpoint one stage writes and a later stage loads is checked when the writing stage ends.

At submission (:mod:`launch.precheck`) such a file usually does not exist yet, so only its name is
checked there. The launcher gives each job the later runs that load a file of its run directory
(:func:`loaders_of`); when the job's run has finished, :func:`check_produced` reads that file's
keys and shapes (``Task.load_checkpoint(..., check_only=True)`` on a ``meta`` model, the same check
as at submission, through :func:`launch.state_dict.check_fits`) against each of those runs' model.
A file that does not fit, or was not written, fails the job with one line naming the file, both
stages and the first mismatching key or shape, so the next stage never starts (locally the
launcher stops; on SLURM its ``afterok`` dependency is never met).
"""
from __future__ import annotations

import os
import re
import sys

from launch.engine.errors import ConfigError


class StageCheckpointMismatch(ConfigError):
    """A checkpoint written by one stage does not fit a later stage's model (one line)."""


def _where(run) -> str:
    return "/".join(p for p in (run.stage, run.name) if p) or "(single run)"


def _local(path) -> bool:
    from launch.engine.weights import is_remote
    return isinstance(path, str) and bool(path) and not is_remote(path)


def loaders_of(plan, run) -> list:
    """The later runs of ``plan`` whose ``model.checkpoint`` is a file in ``run``'s directory:
    ``[{"path", "writer", "reader", "cfg"}]`` (``cfg`` as a dict, so it pickles into the job)."""
    own = os.path.abspath(run.run_dir)
    later, seen = [], False
    for stage in plan:
        if seen:
            later += stage
        seen = seen or any(r is run for r in stage)
    out = []
    for other in later:
        path = getattr(other.cfg.model, "checkpoint", None)
        if _local(path) and os.path.dirname(os.path.abspath(path)) == own:
            out.append({"path": os.path.abspath(path), "writer": _where(run), "reader": _where(other),
                        "cfg": other.cfg.to_dict()})
    return out


def _reason(err: Exception, path: str) -> str:
    text = (str(err).strip().splitlines() or [type(err).__name__])[0]
    for prefix in (f"checkpoint {path!r}: ", f"checkpoint {path!r} "):
        if text.startswith(prefix):
            return text[len(prefix):]
    return text


def check_produced(loaders) -> None:
    """Raise :class:`StageCheckpointMismatch` at the first loader whose file is missing or does not
    fit its model; the line also goes to the writer's ``log.txt`` (from the main process)."""
    from launch.engine.config import from_dict
    from launch.engine.state_dict import check_fits
    from launch.engine.tasks import get_task

    for entry in loaders or ():
        path, writer, reader = entry["path"], entry["writer"], entry["reader"]
        message = None
        if not os.path.isfile(path):
            message = (f"stage {writer} ended without writing {path}, which stage {reader} loads "
                       f"(model.checkpoint); stage {reader} is not started")
        else:
            cfg = from_dict(entry["cfg"])
            try:
                check_fits(path, cfg, get_task(cfg.task))
            except ConfigError as err:
                message = (f"checkpoint {path} written by stage {writer} does not fit stage {reader}: "
                           f"{_reason(err, path)}; stage {reader} is not started")
        if message is None:
            continue
        _note(os.path.dirname(path), message)
        raise StageCheckpointMismatch(message)


def _note(run_dir: str, message: str) -> None:
    print(f"error: {message}", file=sys.stderr, flush=True)
    if int(os.environ.get("RANK", "0") or 0) != 0:
        return
    try:
        with open(os.path.join(run_dir, "log.txt"), "a") as f:
            f.write(f"error: {message}\n")
    except OSError:
        pass


_TRACE_LINE = re.compile(r"StageCheckpointMismatch: (.+)")


def job_results(job):
    """``job.results()``, except that a job that failed this check raises its one line as a
    :class:`StageCheckpointMismatch` instead of submitit's error with the job's traceback."""
    try:
        return job.results()
    except StageCheckpointMismatch:
        raise
    except Exception as err:
        found = _TRACE_LINE.findall(str(err))
        if found:
            raise StageCheckpointMismatch(found[-1].strip()) from None
        raise
