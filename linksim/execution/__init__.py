"""Where the points of a sweep run: here, on a pool of local worker processes, or on a Ray cluster.

    linksim run SCENARIO --workers 4                       # 4 local processes
    linksim run SCENARIO --executor ray                     # a local Ray instance
    linksim run SCENARIO --executor ray --address HOST:PORT # a running Ray cluster

or, in the scenario, ``execution: {executor: ray, workers: 8}`` (the command line wins).

Every unit computes with ``threads`` PyTorch threads (``--threads``, default 1), wherever it
runs: a convolution's float sums depend on how many threads split them (DeepJSCC's x̂ moves in
the 7th digit between 1 and 2 threads), so a fixed count is what makes the bytes of a run the
same on one process, on N workers or on a cluster, and on machines with more or fewer cores.
The parallelism of a sweep is its units (workers); threads are for the case of fewer units
than cores (``--threads 4`` on one image), and a run folder keeps the count it was made with.

The unit of work is :class:`linksim.runner.Unit` (one image × one bandwidth × all its schemes, or
one scheme when there are fewer images than twice the executor's ``slots``; all their SNRs
and trials and the restorers after each scheme): a worker builds the schemes, models
and metrics once (:mod:`linksim.execution.worker`) and computes units with
:meth:`linksim.runner.SweepWorker.compute`, a pure function of the unit (every draw comes from
the point's own generator). The executors hand the results back in canonical order; the
process that runs ``linksim run`` writes every file, so ``results.csv`` has the bytes of a
run on one process. Nothing here is a scheduler of its own: the local pool is
:class:`concurrent.futures.ProcessPoolExecutor`, the cluster is Ray's.

Faults: a worker process that dies mid-unit loses nothing that was written; its units are
computed again (the pool is rebuilt and they are resubmitted; Ray retries the task), and the
writer takes each unit's result once.
"""

from __future__ import annotations

from linksim.errors import ConfigError

EXECUTORS = ("local", "ray")
KEYS = ("executor", "workers", "address", "threads")
DEFAULT = {"executor": "local", "workers": 1, "address": None, "threads": 1}


def validate_execution(value: dict, where: str = "") -> dict:
    """``{executor, workers, address, threads}`` checked and completed with the defaults.

    ``where`` prefixes the field names of errors (``"execution."`` for the scenario field).

    :raises ConfigError: an unknown key, an executor not in :data:`EXECUTORS`, ``workers``
        not a positive integer, ``address`` not a non-empty string or given without Ray.
    """
    unknown = sorted(set(value) - set(KEYS))
    if unknown:
        raise ConfigError(f"{where}".rstrip(".") or "execution", unknown[0], f"keys among {list(KEYS)}")
    merged = {**DEFAULT, **{k: v for k, v in value.items() if v is not None}}
    if merged["executor"] not in EXECUTORS:
        raise ConfigError(f"{where}executor", merged["executor"], f"one of {list(EXECUTORS)}")
    _check_positive(f"{where}workers", merged["workers"], "1: the points run in this process")
    _check_positive(f"{where}threads", merged["threads"], "PyTorch threads per unit of work")
    address = merged["address"]
    if address is not None and (not isinstance(address, str) or not address.strip()):
        raise ConfigError(f"{where}address", address, "HOST:PORT of a Ray cluster's head, ray://HOST:PORT or auto")
    if address is not None and merged["executor"] != "ray":
        raise ConfigError(f"{where}address", address, f"no address with executor {merged['executor']!r} "
                                                       "(an address is a Ray cluster's: add --executor ray)")
    return merged


def _check_positive(field: str, value, meaning: str) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigError(field, value, f"a positive integer ({meaning})")


def make_executor(execution: dict):
    """The executor of validated ``execution`` settings: None (the points run in this process)
    for ``local`` with one worker, else a :class:`~linksim.execution.pool.PoolExecutor` or a
    connected :class:`~linksim.execution.ray_executor.RayExecutor`.

    :raises ConfigError: bad settings, Ray not installed, or its cluster unreachable.
    """
    execution = validate_execution(execution)
    if execution["executor"] == "ray":
        from linksim.execution.ray_executor import RayExecutor

        return RayExecutor(execution["workers"], execution["address"])
    if execution["workers"] == 1:
        return None
    from linksim.execution.pool import PoolExecutor

    return PoolExecutor(execution["workers"])
