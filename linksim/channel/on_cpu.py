"""A channel that draws on the CPU whatever device the model runs on.

A seeded CPU generator gives the same numbers on every machine; a CUDA generator does
not (and a generator must live on the device of the tensor it draws for). Wrapping the
channel moves the symbols to the CPU, runs the channel there with the caller's CPU
generator and moves the output back — so a model on a GPU sees exactly the channel
draws it would see on the CPU, and a training run keeps one generator whose state
resumes it. The moves are differentiable: gradients flow through the channel.
"""

from __future__ import annotations

import torch

from linksim.channel.base import ChannelOutput

__all__ = ["ChannelOnCPU"]


class ChannelOnCPU:
    """``channel`` run on the CPU, its output returned to ``device``.

    :param channel: a :class:`~linksim.channel.Channel`.
    :param device: where the caller's tensors live (the CPU makes this a plain call).
    :input z: complex [B, k] on any device; ``snr_db`` float or [B]; ``generator`` a CPU
        ``torch.Generator`` (or None).
    :output: :class:`~linksim.channel.ChannelOutput` on ``device``.
    """

    def __init__(self, channel, device: str | torch.device):
        self.channel, self.device = channel, torch.device(device)

    def __call__(self, z: torch.Tensor, snr_db, generator: torch.Generator | None) -> ChannelOutput:
        out = self.channel(z.to("cpu"), snr_db, generator)
        if self.device.type == "cpu":
            return out
        return ChannelOutput(y=out.y.to(self.device), h=out.h.to(self.device), noise_var=out.noise_var.to(self.device))
