"""Generalized divisive normalization (Ballé et al., 2016) and its inverse.

GDN is the normalization of learned image codecs and of the Bourtsoulatze et al. (2019)
DeepJSCC autoencoder: ``y_i = x_i / sqrt(β_i + Σ_j γ_ij x_j²)`` (IGDN multiplies instead).
β and γ are kept non-negative by a squared reparametrization with a lower bound, as in
Ballé's reference implementation (a pedestal keeps the gradient alive near zero).
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

__all__ = ["GDN"]

_PEDESTAL = 2.0 ** -36
_BETA_MIN = 1e-6


class _LowerBound(torch.autograd.Function):
    """``max(x, bound)`` whose gradient passes where x ≥ bound or where a descent step would raise x.

    A plain ``clamp_min`` has zero gradient at and below the bound, so a parameter stored at
    the bound (GDN's off-diagonal γ start there) would never move; this is the gradient rule
    of Ballé's ``LowerBound`` op.
    """

    @staticmethod
    def forward(ctx, x: torch.Tensor, bound: float) -> torch.Tensor:
        ctx.save_for_backward(x)
        ctx.bound = bound
        return x.clamp_min(bound)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        (x,) = ctx.saved_tensors
        return grad * ((x >= ctx.bound) | (grad < 0)).to(grad.dtype), None


class GDN(nn.Module):
    """GDN over the channel axis of a [B, C, H, W] tensor (``inverse=True``: IGDN).

    :param channels: C.
    :param inverse: IGDN (decoder side) instead of GDN.
    :input x: float [B, C, H, W].
    :output: float [B, C, H, W].

    >>> GDN(8)(torch.randn(2, 8, 4, 4)).shape
    torch.Size([2, 8, 4, 4])
    """

    def __init__(self, channels: int, inverse: bool = False, gamma_init: float = 0.1):
        super().__init__()
        self.inverse = inverse
        # stored as sqrt(value + pedestal): the square keeps β, γ ≥ 0 whatever the optimizer does
        self.beta = nn.Parameter(torch.sqrt(torch.ones(channels) + _PEDESTAL))
        self.gamma = nn.Parameter(torch.sqrt(gamma_init * torch.eye(channels) + _PEDESTAL))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        c = x.shape[1]
        beta = _LowerBound.apply(self.beta, (_BETA_MIN + _PEDESTAL) ** 0.5).square() - _PEDESTAL
        gamma = _LowerBound.apply(self.gamma, _PEDESTAL ** 0.5).square() - _PEDESTAL
        norm = F.conv2d(x * x, gamma.view(c, c, 1, 1), beta)  # β_i + Σ_j γ_ij x_j²
        return x * torch.sqrt(norm) if self.inverse else x * torch.rsqrt(norm)

    def extra_repr(self) -> str:
        return f"channels={self.beta.numel()}, inverse={self.inverse}"
