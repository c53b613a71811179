"""Sionna's AWGN block, drawing from the caller's ``torch.Generator``."""

from __future__ import annotations

from typing import Optional

import torch
from sionna.phy.channel import AWGN

__all__ = ["GeneratorAWGN"]


class GeneratorAWGN(AWGN):
    r"""Sionna :class:`~sionna.phy.channel.AWGN` whose noise comes from a given generator.

    Sionna's ``AWGN.call`` draws its noise with
    ``complex_normal(..., generator=self.torch_rng)``, and ``torch_rng`` is a
    property returning Sionna's global per-device config generator. This
    subclass overrides that property: while :meth:`add_noise` runs it returns
    the generator passed to that call, so every noise sample is a
    deterministic function of the caller's generator state. With
    ``generator=None`` it falls back to Sionna's config RNG
    (``sionna.phy.config.torch_rng(device)``, seeded by
    ``sionna.phy.config.seed``), exactly like the parent block.

    The generator cannot travel through ``Block.__call__`` (Sionna converts
    every argument to a tensor), hence the per-call attribute. Consequently an
    instance must not be shared between threads that call it concurrently.
    Under ``torch.compile`` Sionna ignores any generator and uses the global
    torch RNG.

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

    def __init__(self, precision: Optional[str] = None, device: Optional[str] = None, **kwargs) -> None:
        super().__init__(precision=precision, device=device, **kwargs)
        self._call_generator: Optional[torch.Generator] = None

    @property
    def torch_rng(self) -> torch.Generator:
        """The generator of the running :meth:`add_noise` call, else Sionna's config RNG."""
        if self._call_generator is not None:
            return self._call_generator
        return super().torch_rng

    def add_noise(self, x: torch.Tensor, no, generator: Optional[torch.Generator] = None) -> torch.Tensor:
        """Run the block with noise drawn from ``generator`` (see class docstring)."""
        self._call_generator = generator
        try:
            return self(x, no)
        finally:
            self._call_generator = None
