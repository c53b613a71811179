"""The worker side: build a :class:`~linksim.runner.SweepWorker` once per process and compute units.

A worker process keeps the workers it built, by recipe token, so that schemes, DeepJSCC
models, priors and LPIPS load once per process, not once per unit. It returns
:class:`~linksim.runner.UnitResult` objects and writes no file (the codec-table cache aside,
whose files are written to a temporary name and renamed into place:
:mod:`linksim.digital.codecs.table`).
"""

from __future__ import annotations

import os
from contextlib import contextmanager

_WORKERS: dict[str, object] = {}

#: Environment of the worker processes (a value the user set is kept):
#:
#: - ``OMP_WAIT_POLICY=PASSIVE``: each worker computes with the run's PyTorch threads per unit
#:   (:func:`compute_unit`: the same float sums everywhere), so with ``threads`` > 1, N workers
#:   run N times that many OpenMP threads on the cores; threads that spin while they wait would
#:   take the cores from those that compute, threads that sleep do not.
#: - ``MALLOC_MMAP_THRESHOLD_``/``MALLOC_TRIM_THRESHOLD_`` (glibc; elsewhere ignored): an image's
#:   tensors (5–50 MB) stay in the process's heap when freed instead of going back to the kernel
#:   and being faulted in again at the next point, the page-fault time that two workers would
#:   otherwise spend side by side.
#:
#: ``benchmarks/scaling.py``'s docstring has the measurements.
WORKER_ENVIRONMENT = {"OMP_WAIT_POLICY": "PASSIVE", "MALLOC_MMAP_THRESHOLD_": str(32 << 20),
                      "MALLOC_TRIM_THRESHOLD_": str(1 << 30)}


def worker_environment() -> dict[str, str]:
    """:data:`WORKER_ENVIRONMENT` less the variables already set in this process's environment."""
    return {name: value for name, value in WORKER_ENVIRONMENT.items() if name not in os.environ}


@contextmanager
def spawning_environment():
    """Within the block, processes started from here inherit :func:`worker_environment`; this
    process's environment is restored on exit (its own OpenMP has long read its settings)."""
    added = worker_environment()
    os.environ.update(added)
    try:
        yield
    finally:
        for name in added:
            os.environ.pop(name, None)


def set_threads(workers: int) -> None:
    """Share the cores among the worker processes for numba's threads (the LDPC decoder's
    parallel loop over codewords; each codeword is decoded alone, so the thread count changes
    no bit). PyTorch's is the run's threads per unit (:func:`compute_unit`): it does change
    float sums."""
    import numba

    threads = max(1, (os.cpu_count() or 1) // workers)
    if "NUMBA_NUM_THREADS" not in os.environ:
        numba.set_num_threads(min(threads, numba.config.NUMBA_NUM_THREADS))


def import_simulator() -> None:
    """Import what computing a unit needs (PyTorch, Sionna, the schemes), so that a process
    started ahead of the first unit does it while the writing process prepares the sweep."""
    import linksim.runner  # noqa: F401


def compute_unit(recipe, unit):
    """Every missing point of ``unit`` (a :class:`~linksim.runner.Unit`) → a ``UnitResult``."""
    import torch

    from linksim.runner import SweepWorker

    torch.set_num_threads(recipe.torch_threads)  # the run's, as in every process: the same float sums, the same bytes
    _fault_point(unit.index)
    worker = _WORKERS.get(recipe.token)
    if worker is None:
        worker = _WORKERS[recipe.token] = SweepWorker.build(recipe)
    return worker.compute(unit)


def _fault_point(index: int) -> None:
    """Fault-test hook (tests/test_parallel_sweep.py): ``LINKSIM_TEST_KILL_WORKER=INDEX:MARKER``
    makes the first worker that starts unit INDEX kill itself with SIGKILL (MARKER, a file it
    creates first, makes it happen once: the recomputed unit then goes through)."""
    spec = os.environ.get("LINKSIM_TEST_KILL_WORKER")
    if not spec:
        return
    at, marker = spec.split(":", 1)
    if int(at) == index:
        try:
            fd = os.open(marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
        except FileExistsError:
            return
        os.close(fd)
        import signal

        os.kill(os.getpid(), signal.SIGKILL)
