"""Run a layer's small bookkeeping ops on the calling thread only (CPU, OpenMP builds of torch).

ToMe adds a dozen small ops to every layer (the head-averaged keys, the A-B similarities, the
argsort, the row gathers and the size-weighted scatter). On the CPU most of them are just large
enough for ATen to split them over its OpenMP threads, and every split op ends at a barrier that
waits for all threads. On an idle machine that costs microseconds. On an oversubscribed one (this
project's 2 cores shared by other jobs) a waiting thread may not run again for a scheduler time
slice, so each small op can cost several milliseconds, whatever its size: measured on the 2-core
machine at load average ~11, one Audio-MAE layer's metric plus merge (batch 4, 441 tokens) took a
median 260 ms with 2 threads and 43 ms on the calling thread, with bitwise equal results; the
fastest (undisturbed) calls of the merge took the same on 1 and 2 threads (~1.7 ms).

``calling_thread(x)`` limits the calling thread's OpenMP team (and MKL, for the similarity
``bmm``) to one thread inside the block and restores both afterwards. The settings are
per-thread, so other Python threads are untouched. It does nothing off the CPU, under
``torch.compile``, when the OpenMP runtime cannot be found (then ops run as usual), or when
``ENABLED`` is False.
"""
from __future__ import annotations

import contextlib
import ctypes
import os
from typing import Optional, Tuple

import torch

ENABLED = True
_LIBS: Optional[Tuple[object, object]] = None


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


@contextlib.contextmanager
def calling_thread(x: torch.Tensor):
    """Inside the block, ops on CPU tensors run on the calling thread only (see the module doc)."""
    if not ENABLED or x.device.type != "cpu" or torch.compiler.is_compiling():
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
    try:
        yield
    finally:
        omp.omp_set_num_threads(omp_threads)
        if mkl is not None:
            mkl.MKL_Set_Num_Threads_Local(mkl_before)
