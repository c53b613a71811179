"""Units on a Ray cluster: a local instance, or a running cluster at an address.

Each unit is one Ray task (``max_retries``: a task whose worker process dies is run again);
the results are fetched in canonical order. Ray reuses its worker processes, so the
:mod:`~linksim.execution.worker` cache builds a process's schemes and models once. The
scenario travels once through the object store (``ray.put``); each unit carries its image.

On a cluster every node needs linksim installed (``pip install linksim[ray]``) and the
scenario's checkpoints (by name, or at the same paths on every node).
"""

from __future__ import annotations

import socket
from collections.abc import Iterator

from linksim.errors import ConfigError
from linksim.execution.worker import import_simulator

#: times Ray runs a task again after its worker process died
MAX_RETRIES = 3


class RayExecutor:
    """Connect to Ray: ``address`` None starts a local instance of ``workers`` CPUs (stopped at
    :meth:`close`); else the running cluster at ``address`` (its own CPUs; ``workers`` unused).

    :raises ConfigError: Ray is not installed (field ``executor``) or the address cannot be
        reached (field ``address``), before anything is written.
    """

    def __init__(self, workers: int, address: str | None = None):
        try:
            import ray
        except ImportError:
            raise ConfigError("executor", "ray", "an installed Ray (pip install 'linksim[ray]'), or executor local") from None
        self.ray, self.workers, self.address = ray, workers, address
        self.started = not ray.is_initialized()
        if not self.started:
            return  # a caller's own ray.init (e.g. in a notebook) is used as it is
        if address is None:
            # on the loopback interface: a sweep's local instance is nobody else's
            ray.init(address="local", num_cpus=workers, include_dashboard=False, log_to_driver=False,
                     configure_logging=False, _node_ip_address="127.0.0.1")
        else:
            _check_reachable(address)
            try:
                ray.init(address=address, log_to_driver=False, configure_logging=False)
            except (ConnectionError, RuntimeError, ValueError) as error:
                raise ConfigError("address", address, f"the address of a running Ray cluster ({error})") from None
        # one task per slot starts Ray's worker processes now: they import the simulator while
        # this process prepares the sweep, and Ray reuses them for the units (same options)
        self._warm_up = [self._remote(import_simulator).remote() for _ in range(self.slots)]

    def _remote(self, function):
        """``function`` as a Ray task of one CPU, retried, in the workers' environment."""
        from linksim.execution.worker import worker_environment

        return self.ray.remote(num_cpus=1, max_retries=MAX_RETRIES,
                               runtime_env={"env_vars": worker_environment()})(function)

    @property
    def slots(self) -> int:
        """Units that run at once: the local instance's CPUs, or the cluster's."""
        if self.address is None and self.started:
            return self.workers
        return max(1, int(self.ray.cluster_resources().get("CPU", self.workers)))

    def run(self, recipe, units: list) -> Iterator:
        """Yield the :class:`~linksim.runner.UnitResult` of each of ``units``, in their order."""
        ray = self.ray
        remote = self._remote(_task)
        shared = ray.put(recipe)
        refs = [remote.remote(shared, unit, self.workers) for unit in units]
        done = 0
        try:
            for ref in refs:
                yield ray.get(ref)
                done += 1
        finally:
            for ref in refs[done:]:  # an interrupted run leaves no task behind
                ray.cancel(ref, force=True)

    def close(self) -> None:
        if self.started and self.ray.is_initialized():
            self.ray.shutdown()


def _task(recipe, unit, workers: int):
    """A Ray task: one unit on a Ray worker process."""
    from linksim.execution.worker import compute_unit, set_threads

    set_threads(workers)
    return compute_unit(recipe, unit)


def _check_reachable(address: str, timeout: float = 5.0) -> None:
    """A TCP connection to HOST:PORT, so that a wrong address fails in seconds (Ray itself
    retries for minutes). ``auto`` and ``ray://`` addresses are left to Ray."""
    if address == "auto":
        return
    host, _, port = address.removeprefix("ray://").rpartition(":")
    if not host or not port.isdigit():
        raise ConfigError("address", address, "HOST:PORT of a Ray cluster's head (ray start --head), ray://HOST:PORT or auto")
    try:
        socket.create_connection((host, int(port)), timeout=timeout).close()
    except OSError as error:
        raise ConfigError("address", address, f"a reachable Ray cluster head ({error.strerror or error})") from None
