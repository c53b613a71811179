"""Training on several processes with PyTorch DDP (``torchrun --nproc_per_node N -m linksim train deepjscc …``).

torchrun starts N processes and sets ``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK`` and the
rendezvous address; :meth:`DistributedRun.from_env` reads them (a single process, or
``--nproc_per_node 1``, is not distributed and trains exactly as before). The process group
uses ``gloo`` on the CPU and ``nccl`` on CUDA devices; each rank trains on
``cuda:LOCAL_RANK`` when the device is ``cuda``.

The draws: rank r at step s draws its crops, SNRs and channel noise from a generator derived
from (seed, r, s) (:func:`linksim.seeding.derive_seed`). The ranks draw different batches (the
effective batch is N × ``batch``), the gradients are averaged by DDP, and no generator state
needs saving: a run resumes from rank 0's checkpoint on any number of ranks, and on the same
number it ends with the weights of an uninterrupted run. Rank 0 alone writes the checkpoint
and the resumable state; every rank reads them when it resumes.

A multi-node run (2 nodes × 4 GPUs; the same command on each node, ``--node_rank`` 0 and 1)::

    torchrun --nnodes 2 --nproc_per_node 4 --node_rank 0 --master_addr HOST0 --master_port 29500 \\
        -m linksim train deepjscc --device cuda --bcr 1/48 --data /data/train --out runs/ddp
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch

from linksim.seeding import derive_seed


@dataclass
class DistributedRun:
    """This process's place in a DDP run (``world_size`` 1: not distributed)."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @classmethod
    def from_env(cls) -> DistributedRun:
        """The ranks torchrun set in the environment (none: a single process)."""
        return cls(int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1)),
                   int(os.environ.get("LOCAL_RANK", 0)))

    @property
    def active(self) -> bool:
        return self.world_size > 1

    @property
    def writer(self) -> bool:
        """Whether this process writes the outputs (rank 0)."""
        return self.rank == 0

    def device(self, device: torch.device) -> torch.device:
        """``cuda`` becomes this rank's GPU (``cuda:LOCAL_RANK``); the CPU stays the CPU."""
        if self.active and device.type == "cuda":
            device = torch.device("cuda", self.local_rank)
            torch.cuda.set_device(device)
        return device

    def start(self, device: torch.device) -> None:
        """Join the process group (gloo on the CPU, nccl on CUDA)."""
        if self.active and not torch.distributed.is_initialized():
            torch.distributed.init_process_group("nccl" if device.type == "cuda" else "gloo",
                                                 rank=self.rank, world_size=self.world_size)

    def wrap(self, model: torch.nn.Module, device: torch.device) -> torch.nn.Module:
        """``model`` in DDP (gradients averaged over the ranks; rank 0's weights broadcast at
        the start), or ``model`` itself in a single process."""
        if not self.active:
            return model
        ids = [device.index] if device.type == "cuda" else None
        return torch.nn.parallel.DistributedDataParallel(model, device_ids=ids)

    def generator(self, seed: int, step: int) -> torch.Generator:
        """The CPU generator of this rank at ``step``: derived from (seed, rank, step)."""
        return torch.Generator().manual_seed(derive_seed(seed, "ddp-rank", self.rank, step))

    def barrier(self) -> None:
        if self.active:
            torch.distributed.barrier()

    def stop(self) -> None:
        if self.active and torch.distributed.is_initialized():
            torch.distributed.destroy_process_group()
