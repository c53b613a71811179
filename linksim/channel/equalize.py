"""Zero-forcing equalization with perfect CSI."""

from __future__ import annotations

import torch

from linksim.channel.base import ChannelOutput

__all__ = ["equalize"]


def equalize(out: ChannelOutput) -> tuple[torch.Tensor, torch.Tensor]:
    r"""Zero-forcing with perfect CSI: :math:`\hat x = y\,h^*/|h|^2`, :math:`\sigma^2_{\mathrm{eff}} = \sigma^2/|h|^2`.

    For analog (DeepJSCC) symbols ``x_hat`` is the receiver's estimate; for
    digital symbols pass ``noise_var_eff`` to the demapper
    (:meth:`linksim.digital.modulation.Modulation.demap`), which then yields the
    exact APP LLRs of the fading channel (the LLRs scale with |h|²/σ²).
    On AWGN (h = 1) it returns ``y`` and σ² broadcast to [B, k].
    |h|² is clamped to the smallest normal float to avoid division by zero
    (an event of probability zero).

    :input out: :class:`ChannelOutput` with ``y``, ``h`` complex [B, k], ``noise_var`` [B].
    :output x_hat: complex [B, k] (dtype of ``y``), differentiable w.r.t. ``y``.
    :output noise_var_eff: float32 [B, k], effective noise variance per symbol.

    .. code-block:: python

        out = RayleighFastChannel()(z, 10.0, g)
        x_hat, nv = equalize(out)
        llr = make_modulation("qpsk").demap(x_hat, nv)
    """
    h2 = out.h.real.square() + out.h.imag.square()
    h2 = h2.clamp_min(torch.finfo(h2.dtype).tiny)
    x_hat = out.y * out.h.conj() / h2
    noise_var_eff = out.noise_var.to(h2.dtype).unsqueeze(-1) / h2
    return x_hat, noise_var_eff
