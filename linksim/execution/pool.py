"""Local worker processes: :class:`concurrent.futures.ProcessPoolExecutor`, results in canonical order.

Workers start with ``spawn`` (a fresh interpreter: forking a process whose PyTorch and
OpenMP threads are running can deadlock), with
:data:`~linksim.execution.worker.WORKER_ENVIRONMENT`. They start when the executor is made,
so that their interpreters import PyTorch, Sionna and linksim while the writing process
loads the images and checks the codec tables. A worker that dies breaks the whole pool
(``BrokenProcessPool``): the results that had arrived are kept, the pool is rebuilt and the
units without a result are submitted again, up to :data:`MAX_RESTARTS` times.
"""

from __future__ import annotations

import multiprocessing
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool

from linksim.errors import LinkSimError

#: pool rebuilds after dead workers before the run gives up (a unit that kills every worker
#: it meets would otherwise loop forever)
MAX_RESTARTS = 3


class PoolExecutor:
    """``workers`` local processes, each building its schemes and models once."""

    def __init__(self, workers: int):
        self.workers = workers
        self.restarts = 0
        self._pool = self._start()

    @property
    def slots(self) -> int:
        """Units that run at once."""
        return self.workers

    def _start(self) -> ProcessPoolExecutor:
        """A pool whose ``workers`` processes are starting (each importing the simulator)."""
        from linksim.execution.worker import import_simulator, set_threads, spawning_environment

        with spawning_environment():
            pool = ProcessPoolExecutor(max_workers=self.workers, mp_context=multiprocessing.get_context("spawn"),
                                       initializer=set_threads, initargs=(self.workers,))
            for _ in range(self.workers):  # each submission to a pool without an idle process starts one
                pool.submit(import_simulator)
        return pool

    def run(self, recipe, units: list) -> Iterator:
        """Yield the :class:`~linksim.runner.UnitResult` of each of ``units``, in their order."""
        from linksim.execution.worker import compute_unit

        results: dict[int, object] = {}  # arrived, not yet handed out
        waiting = list(units)
        position = 0
        while position < len(units):
            pool, self._pool = self._pool or self._start(), None
            futures = {unit.index: pool.submit(compute_unit, recipe, unit) for unit in waiting}
            try:
                while position < len(units):
                    index = units[position].index
                    if index not in results:
                        results[index] = futures[index].result()
                    yield results.pop(index)
                    position += 1
            except BrokenProcessPool:
                self.restarts += 1
                if self.restarts > MAX_RESTARTS:
                    raise LinkSimError(f"worker processes died {self.restarts} times; giving up "
                                       "(rerun the same command to resume)") from None
                for index, future in futures.items():  # keep what finished before the pool broke
                    if future.done() and not future.cancelled() and future.exception() is None:
                        results.setdefault(index, future.result())
                waiting = [unit for unit in units[position:] if unit.index not in results]
            finally:
                pool.shutdown(wait=True, cancel_futures=True)

    def close(self) -> None:
        """Stop the processes of a pool that ran nothing (e.g. the sweep's inputs were refused)."""
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None
