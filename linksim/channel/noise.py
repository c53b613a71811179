"""Sionna's AWGN block, drawing from the caller's ``torch.Generator``."""

from __future__ import annotations

from typing import Optional

import torch
from sionna.phy.channel import AWGN

from linksim.channel.call_generator import DrawsFromCallGenerator

__all__ = ["GeneratorAWGN"]


class GeneratorAWGN(DrawsFromCallGenerator, AWGN):
    r"""Sionna :class:`~sionna.phy.channel.AWGN` whose noise comes from a given generator.

    Sionna's ``AWGN.call`` draws its noise with
    ``complex_normal(..., generator=self.torch_rng)``; while :meth:`add_noise` runs,
    ``torch_rng`` is the generator passed to that call
    (:class:`~linksim.channel.call_generator.DrawsFromCallGenerator`), so every noise
    sample is a deterministic function of the caller's generator state. With
    ``generator=None`` it falls back to Sionna's config RNG (seeded by
    ``sionna.phy.config.seed``), exactly like the parent block.

    :param precision: ``"single"`` (complex64) or ``"double"`` (complex128).
    :param device: device of inputs and outputs, e.g. ``"cpu"`` or ``"cuda:0"``.

    :input x: [...], complex. Channel input.
    :input no: scalar or tensor broadcastable to ``x`` (dims appended on the
        right), float. Noise variance per complex dimension (σ²/2 per real one).
    :input generator: ``torch.Generator`` on ``device`` or ``None``.
    :output y: same shape as ``x``, complex: ``x + w``, ``w ~ CN(0, no)``.

    .. code-block:: python

        awgn = GeneratorAWGN(device="cpu")
        g = torch.Generator().manual_seed(0)
        y = awgn.add_noise(torch.ones(2, 8, dtype=torch.complex64), 0.1, g)
    """

    def add_noise(self, x: torch.Tensor, no, generator: Optional[torch.Generator] = None) -> torch.Tensor:
        """Run the block with noise drawn from ``generator`` (see class docstring)."""
        with self.drawing_from(generator):
            return self(x, no)
