"""Additive white Gaussian noise channel."""

from __future__ import annotations

from typing import Optional

import torch

from linksim.channel.base import Channel

__all__ = ["AWGNChannel"]


class AWGNChannel(Channel):
    r"""AWGN channel :math:`y = x + w`, :math:`w \sim \mathcal{CN}(0, \sigma^2)`, h = 1.

    :math:`\sigma^2 = 10^{-\mathrm{SNR}/10}` per complex use (P = 1). The noise is
    drawn by Sionna's AWGN block from the caller's generator.

    :input x: complex64 [B, k], power-normalized (‖x_b‖² = k).
    :input snr_db: float or tensor [B], SNR per complex use in dB.
    :input generator: ``torch.Generator`` on ``x.device`` or ``None`` (Sionna config RNG).
    :output: :class:`~linksim.channel.base.ChannelOutput` — ``y`` complex64 [B, k],
        ``h`` all ones complex64 [B, k], ``noise_var`` float32 [B].

    .. code-block:: python

        import torch
        from linksim.channel import AWGNChannel
        from linksim.units import normalize_power

        z = normalize_power(torch.randn(2, 256, dtype=torch.complex64))
        out = AWGNChannel()(z, 10.0, torch.Generator().manual_seed(0))
        out.y.shape, out.noise_var        # (torch.Size([2, 256]), tensor([0.1000, 0.1000]))
    """

    name = "awgn"

    def draw_coefficients(self, x: torch.Tensor, generator: Optional[torch.Generator]) -> None:
        return None
