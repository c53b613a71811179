"""Distortion metrics: PSNR and MS-SSIM (pixel fidelity; no weights needed).

Both take two float tensors ``x`` (reference) and ``y`` (test) of shape [B, C, H, W]
(C = 3 for MS-SSIM) with values in [0, 1] (``data_range`` = 1) and return one value per
image, a float32 tensor of shape [B] on the inputs' device.

- :func:`psnr` — ``10·log10(data_range² / MSE)`` in dB, MSE over C, H, W of each image.
  Identical images give ``+inf`` (no cap: a cap would bias averages; average MSEs or
  report the count of perfect images instead).
- :func:`ms_ssim` — multi-scale SSIM through ``pytorch_msssim`` (Gaussian window 11,
  σ = 1.5, K = (0.01, 0.03), the 5 standard weights). Five scales need the smaller
  side > 160 px; for smaller images the number of scales ``n`` is the largest with
  ``min(H, W) > 10·2^(n−1)`` and the first ``n`` weights are renormalized to sum to 1
  (``n = 1`` is plain SSIM). Images smaller than 11 px per side are refused.

Example
-------
>>> x = torch.rand(2, 3, 64, 64); y = (x + 0.01).clamp(0, 1)
>>> psnr(x, y)                      # tensor([~40.x, ~40.x])
>>> ms_ssim(x, x)                   # tensor([1., 1.])
"""

from __future__ import annotations

import torch

from linksim.errors import ImageError

MS_SSIM_WEIGHTS = (0.0448, 0.2856, 0.3001, 0.2363, 0.1333)


def check_pair(x: torch.Tensor, y: torch.Tensor, name: str, channels: int | None = None) -> None:
    """Refuse anything but two tensors of one shape [B, C, H, W] (C = ``channels`` when given)."""
    if not (isinstance(x, torch.Tensor) and isinstance(y, torch.Tensor)):
        raise ImageError(f"{name}: got {type(x).__name__} and {type(y).__name__} — expected two torch tensors")
    if x.shape != y.shape or x.ndim != 4 or (channels is not None and x.shape[1] != channels):
        want = f"[B, {channels}, H, W]" if channels else "[B, C, H, W]"
        raise ImageError(f"{name}: got shapes {tuple(x.shape)} and {tuple(y.shape)} — expected two "
                         f"tensors of the same shape {want}")


def psnr(x: torch.Tensor, y: torch.Tensor, data_range: float = 1.0) -> torch.Tensor:
    """Peak signal-to-noise ratio per image.

    Parameters
    ----------
    x, y : Tensor, float, [B, C, H, W]
        Images in [0, ``data_range``].
    data_range : float
        Peak value (1.0 for [0, 1] images, 255 for 8-bit values).

    Returns
    -------
    Tensor, float32, [B]
        PSNR in dB; ``+inf`` where x == y.
    """
    check_pair(x, y, "psnr")
    mse = (x.double() - y.double()).pow(2).flatten(1).mean(1)
    with torch.no_grad():
        out = 10.0 * torch.log10(torch.as_tensor(float(data_range) ** 2, dtype=torch.float64) / mse)
    return out.float()


def _ms_ssim_scales(side: int) -> int:
    n = 0
    while n < 5 and side > 10 * 2 ** n:
        n += 1
    return n


def ms_ssim(x: torch.Tensor, y: torch.Tensor, data_range: float = 1.0) -> torch.Tensor:
    """Multi-scale SSIM per image (1 = identical).

    Parameters
    ----------
    x, y : Tensor, float, [B, 3, H, W]
        Images in [0, ``data_range``]; ``min(H, W) >= 11``.

    Returns
    -------
    Tensor, float32, [B]
        Five scales when ``min(H, W) > 160``, fewer (weights renormalized) otherwise.
    """
    from pytorch_msssim import ms_ssim as _lib_ms_ssim
    from pytorch_msssim.ssim import _fspecial_gauss_1d, _ssim
    import torch.nn.functional as F

    check_pair(x, y, "ms_ssim", channels=3)
    side = min(x.shape[-2:])
    n = _ms_ssim_scales(side)
    if n == 0:
        raise ImageError(f"ms_ssim: got images of size {tuple(x.shape[-2:])} — expected at least 11 px per side")
    x, y = x.float(), y.float()
    with torch.no_grad():
        if n == 5:
            return _lib_ms_ssim(x, y, data_range=data_range, size_average=False).float()
        w = torch.tensor(MS_SSIM_WEIGHTS[:n], dtype=x.dtype, device=x.device)
        w = w / w.sum()
        win = _fspecial_gauss_1d(11, 1.5).to(x).repeat([3, 1, 1, 1])
        mcs = []
        for i in range(n):
            ssim_pc, cs = _ssim(x, y, data_range=data_range, win=win, size_average=False, K=(0.01, 0.03))
            if i < n - 1:
                mcs.append(torch.relu(cs))
                pad = [s % 2 for s in x.shape[2:]]
                x = F.avg_pool2d(x, kernel_size=2, padding=pad)
                y = F.avg_pool2d(y, kernel_size=2, padding=pad)
        vals = torch.stack(mcs + [torch.relu(ssim_pc)], dim=0)
        return torch.prod(vals ** w.view(-1, 1, 1), dim=0).mean(1).float()
