"""Run a layer's small bookkeeping ops on the calling thread only (CPU, OpenMP builds of torch).

ToMe adds a dozen small ops to every layer (the head-averaged keys, the A-B similarities, the
argsort, the row gathers and the size-weighted scatter). On the CPU most of them are just large
enough for ATen to split them over its OpenMP threads, and every split op ends at a barrier that
waits for all threads. On an idle machine that costs microseconds. On an oversubscribed one (2 cores
shared by other CPU-heavy jobs) a waiting thread may not run again for a scheduler time
slice, so each small op can cost several milliseconds, whatever its size: measured on the 2-core
machine at load average ~11, one Audio-MAE layer's metric plus merge (batch 4, 441 tokens) took a
median 260 ms with 2 threads and 43 ms on the calling thread, with bitwise equal results.

``calling_thread(x)`` limits the calling thread's OpenMP team (and MKL, for the similarity
``bmm``) to one thread inside the block and restores both afterwards. The settings are
per-thread, so other Python threads are untouched. It does nothing off the CPU, under
``torch.compile``, when the OpenMP runtime cannot be found (then ops run as usual), or when
``ENABLED`` is False.

A few of these ops are large: a video clip's 784 x 784 A-B similarities, the gather of all kept
tokens, the head average of the keys (each ``TEAM_ELEMENTS`` elements or more, a millisecond or
more on one core). On an idle machine the calling thread alone doubles their time, about 2% of a
MAE-ST ViT-B forward; there ``whole_team`` (and ``calling_thread(x, elements=...)``) give them
the caller's threads back. When the machine is oversubscribed (load average above its number
of CPUs plus one half) those barriers cost more than the second thread saves (a layer's merge,
MAE-ST B batch 2, 2 busy processes on the 2 cores: mean 37 ms with the team for the large ops,
20 ms with none), so then every op stays on the calling thread.
"""
from __future__ import annotations

import contextlib
import ctypes
import os
import threading
import time
from typing import Optional, Tuple

import torch

ENABLED = True
# An op over at least this many elements (4 MiB of fp32: about a millisecond on one core) is
# worth its barrier on an idle machine: it keeps the whole team (see whole_team).
TEAM_ELEMENTS = 1 << 20
# How long a reading of the load average stands (seconds): it is a one-minute average anyway.
LOAD_CHECK_S = 1.0
_LOAD = {"checked": -1e9, "busy": False}
_LIBS: Optional[Tuple[object, object]] = None
_SAVED = threading.local()  # .counts: (OpenMP, MKL) thread counts saved by the innermost calling_thread


def _loaded_library(*names: str):
    """The first shared library already mapped into this process whose file name contains one
    of ``names`` (Linux: /proc/self/maps), opened with ctypes; None if there is none."""
    try:
        with open("/proc/self/maps") as maps:
            paths = [line.split()[-1] for line in maps if line.rstrip().endswith(".so") or ".so." in line]
    except OSError:
        return None
    # torch's own copy first: other packages (scikit-learn, scipy) may map a libgomp of their own
    torch_dir = os.path.dirname(os.path.realpath(torch.__file__))
    paths.sort(key=lambda path: not os.path.realpath(path).startswith(torch_dir))
    for name in names:
        for path in paths:
            if name in path.rsplit("/", 1)[-1]:
                try:
                    return ctypes.CDLL(path)
                except OSError:
                    continue
    return None


def _libs():
    """(OpenMP runtime, library exporting MKL_Set_Num_Threads_Local, which takes its count by value) or Nones."""
    global _LIBS
    if _LIBS is None:
        torch.get_num_threads()  # torch has loaded its runtime
        omp = _loaded_library("libgomp", "libiomp5", "libomp")
        if omp is not None and not (hasattr(omp, "omp_get_max_threads") and hasattr(omp, "omp_set_num_threads")):
            omp = None
        mkl = _loaded_library("libtorch_cpu", "libmkl_rt")
        if mkl is not None and not hasattr(mkl, "MKL_Set_Num_Threads_Local"):
            mkl = None
        _LIBS = (omp, mkl)
    return _LIBS


def oversubscribed() -> bool:
    """Whether more threads wanted the CPUs than there are, over the last minute (the load
    average counts this process's own threads). False where there is no load average."""
    now = time.monotonic()
    if now - _LOAD["checked"] >= LOAD_CHECK_S:
        try:
            load = os.getloadavg()[0]
        except (AttributeError, OSError):
            load = 0.0
        # This process's own busy threads count too: load equal to the CPUs is a full machine,
        # not an oversubscribed one; half a thread of slack covers the system's own daemons.
        _LOAD.update(checked=now, busy=load > (os.cpu_count() or 1) + 0.5)
    return _LOAD["busy"]


def _keeps_team(elements: Optional[int]) -> bool:
    """An op this large keeps the caller's threads (only while the machine is not oversubscribed)."""
    return elements is not None and elements >= TEAM_ELEMENTS and not oversubscribed()


@contextlib.contextmanager
def calling_thread(x: torch.Tensor, elements: Optional[int] = None):
    """Inside the block, ops on CPU tensors run on the calling thread only (see the module doc).
    ``elements``: the size of the one op the block holds; an op that keeps the team (see
    :func:`whole_team`) is left alone."""
    if not ENABLED or x.device.type != "cpu" or torch.compiler.is_compiling() or _keeps_team(elements):
        yield
        return
    omp, mkl = _libs()
    # torch.get_num_threads() also runs torch's per-thread lazy init of the OpenMP setting, so that
    # it cannot overwrite ours inside the block.
    threads = torch.get_num_threads()
    if omp is None or threads <= 1:
        yield
        return
    omp_threads = omp.omp_get_max_threads()
    omp.omp_set_num_threads(1)
    mkl_before = mkl.MKL_Set_Num_Threads_Local(1) if mkl is not None else None
    outer = getattr(_SAVED, "counts", None)
    _SAVED.counts = (omp_threads, mkl_before)
    try:
        yield
    finally:
        _SAVED.counts = outer
        omp.omp_set_num_threads(omp_threads)
        if mkl is not None:
            mkl.MKL_Set_Num_Threads_Local(mkl_before)


@contextlib.contextmanager
def whole_team(elements: int):
    """Inside a :func:`calling_thread` block, give one op over ``elements`` elements back all the
    threads the caller had, if it has at least TEAM_ELEMENTS and the machine is not
    oversubscribed (see the module doc). Outside a calling_thread block it does nothing."""
    counts = getattr(_SAVED, "counts", None)
    if counts is None or not _keeps_team(elements):
        yield
        return
    omp, mkl = _libs()
    omp_threads, mkl_before = counts
    omp.omp_set_num_threads(omp_threads)
    if mkl is not None:
        mkl.MKL_Set_Num_Threads_Local(mkl_before)
    try:
        yield
    finally:
        omp.omp_set_num_threads(1)
        if mkl is not None:
            mkl.MKL_Set_Num_Threads_Local(1)
