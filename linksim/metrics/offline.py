"""Full-reference perceptual metrics that need no downloaded weights: HaarPSI and VSI (piq).

Both are hand-designed models of the visual system, so they run on any machine, and both
track human judgement much better than PSNR or MS-SSIM on the two large full-reference IQA
databases. Spearman rank correlation with the mean opinion scores (piq's benchmark table,
reproducing the published numbers; TID2013 / KADID-10k):

============  ========  =========
metric        TID2013   KADID-10k
============  ========  =========
PSNR          0.69      0.68
MS-SSIM       0.80      0.80
GMSD          0.80      0.85
HaarPSI       0.87      0.89
VSI           0.90      0.88
============  ========  =========

- :func:`haarpsi` — Haar wavelet-based perceptual similarity index (Reisenhofer, Bosse,
  Kutyniok & Wiegand, "A Haar wavelet-based perceptual similarity index for image quality
  assessment", Signal Processing: Image Communication 61, 2018): local similarity of
  high-frequency Haar coefficients, weighted by low-frequency ones (where the eye looks).
  Of the weight-free metrics it is also the one that ranks best on PIPAL (0.59 vs. 0.55 for
  MS-SSIM), the database of GAN and restoration outputs — the kind of image a diffusion
  restorer makes.
- :func:`vsi` — visual saliency-induced index (Zhang, Shen & Li, IEEE TIP 23(10), 2014):
  saliency, gradient and chroma similarity, pooled with saliency weights; the best on TID2013.

Both are similarities in [0, 1], 1 for identical images, higher = better.
Inputs: x (reference), y float [B, 3, H, W] in [0, 1]; output float32 [B].
"""

from __future__ import annotations

import torch

from linksim.metrics.distortion import check_pair


def haarpsi(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """HaarPSI per image (``piq.haarpsi``, its defaults: 3 scales, α = 4.2, C = 30, the
    image first averaged 2×2 as in the reference implementation). Tensor float32 [B]."""
    import piq

    check_pair(x, y, "haarpsi", channels=3)
    with torch.no_grad():
        return piq.haarpsi(x.float().clamp(0, 1), y.float().clamp(0, 1), data_range=1.0, reduction="none").float()


def vsi(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """VSI per image (``piq.vsi``, the published constants; images larger than 256 px on the
    short side are downsampled by round(side / 256) first, as in the reference code). Tensor float32 [B]."""
    import piq

    check_pair(x, y, "vsi", channels=3)
    with torch.no_grad():
        return piq.vsi(x.float().clamp(0, 1), y.float().clamp(0, 1), data_range=1.0, reduction="none").float()
