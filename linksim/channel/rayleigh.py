"""Rayleigh fading channels (block and fast), perfect CSI at the receiver."""

from __future__ import annotations

import math
from typing import Optional

import torch
from sionna.phy.utils import complex_normal

from linksim.errors import ConfigError
from linksim.channel.base import Channel, _precision

__all__ = ["RayleighBlockChannel", "RayleighFastChannel"]


def _draw_cn(shape, x: torch.Tensor, generator: Optional[torch.Generator]) -> torch.Tensor:
    """CN(0, 1) samples on x's device and precision via Sionna's ``complex_normal``."""
    return complex_normal(list(shape), 1.0, precision=_precision(x), device=x.device, generator=generator)


class RayleighBlockChannel(Channel):
    r"""Block Rayleigh fading :math:`y = h\,x + w`, :math:`h \sim \mathcal{CN}(0,1)`, E|h|² = 1.

    ``block_length=None``: one coefficient per image (quasi-static: the whole
    row ``x[b]`` sees the same h). ``block_length=L``: one independent
    coefficient per block of L consecutive symbols; the last block of a row is
    shorter when L does not divide k. The receiver knows h (``out.h``); see
    :func:`linksim.channel.equalize`.

    Draw order from ``generator``: coefficients [B, ceil(k/L)] (real parts,
    then imaginary parts; Sionna ``complex_normal``), then the noise.

    :param block_length: ``None`` or an int ≥ 1 (symbols per coherence block).
    :input x: complex64 [B, k]; :input snr_db: float or [B] (dB); :input generator.
    :output: :class:`~linksim.channel.base.ChannelOutput` (``h`` complex64 [B, k]).
    :raises ConfigError: field ``"block_length"`` if not None or a positive int.

    .. code-block:: python

        ch = RayleighBlockChannel(block_length=64)
        out = ch(z, 5.0, torch.Generator().manual_seed(1))
        x_hat, nv = equalize(out)
    """

    name = "rayleigh-block"

    def __init__(self, block_length: Optional[int] = None) -> None:
        super().__init__()
        if block_length is not None and (
            isinstance(block_length, bool) or not isinstance(block_length, int) or block_length < 1
        ):
            raise ConfigError("block_length", block_length, "None (one coefficient per image) or an integer >= 1")
        self.block_length = block_length

    def draw_coefficients(self, x: torch.Tensor, generator: Optional[torch.Generator]) -> torch.Tensor:
        b, k = x.shape
        if self.block_length is None or self.block_length >= k:
            return _draw_cn((b, 1), x, generator).expand(b, k).contiguous()
        n_blocks = math.ceil(k / self.block_length)
        hb = _draw_cn((b, n_blocks), x, generator)
        return hb.repeat_interleave(self.block_length, dim=1)[:, :k].contiguous()

    def to_spec(self) -> dict:
        return {"type": self.name, "block_length": self.block_length}

    def extra_repr(self) -> str:
        return f"name={self.name!r}, block_length={self.block_length}"


class RayleighFastChannel(Channel):
    r"""Fast Rayleigh fading: i.i.d. :math:`h_i \sim \mathcal{CN}(0,1)` per symbol.

    Draw order from ``generator``: coefficients [B, k], then the noise.

    :input x: complex64 [B, k]; :input snr_db: float or [B] (dB); :input generator.
    :output: :class:`~linksim.channel.base.ChannelOutput` (``h`` complex64 [B, k]).

    .. code-block:: python

        out = RayleighFastChannel()(z, 10.0, torch.Generator().manual_seed(2))
    """

    name = "rayleigh-fast"

    def draw_coefficients(self, x: torch.Tensor, generator: Optional[torch.Generator]) -> torch.Tensor:
        return _draw_cn(x.shape, x, generator)
