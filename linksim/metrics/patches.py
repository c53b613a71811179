"""The patch protocol of FID/KID on a handful of large images (HiFiC's, which DiffJSCC follows).

A few dozen Kodak images are far too few samples for a Fréchet distance between 2048-d
Inception features, so Mentzer et al. ("High-Fidelity Generative Image Compression",
NeurIPS 2020, appendix) cut every image into 256×256 patches, *half-overlapping*: first the
⌊H/256⌋·⌊W/256⌋ non-overlapping patches from the top-left corner, then the same grid shifted
by 128 px in both directions, ⌊(H−128)/256⌋·⌊(W−128)/256⌋ more. The DiffJSCC paper measures
FID and KID on Kodak this way. A 768×512 Kodak image gives 3·2 + 2·1 = 8 patches.

An image smaller than 256 px on a side has no such patch; it is used whole, as one sample
(Inception resizes every input to 299×299 anyway) — the 64×64 faces of the SING scenarios.
"""

from __future__ import annotations

import torch

from linksim.errors import ImageError

PATCH = 256
SHIFT = PATCH // 2


def patch_origins(height: int, width: int, size: int = PATCH) -> list[tuple[int, int]]:
    """Top-left corners (row, column) in pixels of the half-overlapping ``size``×``size``
    patches of an image of ``height``×``width``: the unshifted grid first (row-major), then the
    grid shifted by ``size // 2``. ``[(0, 0)]`` with the whole image when a side is < ``size``."""
    if height < 1 or width < 1:
        raise ImageError(f"patches: got an image of {height}×{width} px — expected at least 1×1")
    if height < size or width < size:
        return [(0, 0)]
    origins = []
    for offset in (0, size // 2):
        rows = range(offset, height - size + 1, size)
        cols = range(offset, width - size + 1, size)
        origins += [(r, c) for r in rows for c in cols]
    return origins


def half_overlapping_patches(images: torch.Tensor, size: int = PATCH) -> torch.Tensor:
    """The patches of every image, image after image.

    Parameters
    ----------
    images : Tensor [B, C, H, W]

    Returns
    -------
    Tensor [B·P, C, size, size] (P = ``len(patch_origins(H, W))``), or the images themselves
    [B, C, H, W] when a side is smaller than ``size``.
    """
    if images.ndim != 4:
        raise ImageError(f"patches: got shape {tuple(images.shape)} — expected [B, C, H, W]")
    height, width = images.shape[-2:]
    if height < size or width < size:
        return images
    return torch.stack([images[:, :, r:r + size, c:c + size] for r, c in patch_origins(height, width, size)],
                       dim=1).flatten(0, 1)
