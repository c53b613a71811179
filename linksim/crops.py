"""Random training crops drawn from image folders (the data side of ``linksim train``).

Two samplers, both keeping the decoded images in memory as uint8 tensors and drawing every
random choice from the generator passed to ``sample`` (so a seeded, checkpointed generator
makes a training run reproducible and resumable):

* :class:`PatchSampler` — ``crop``² patches at the images' own scale with random horizontal
  *and* vertical flips (DeepJSCC: a link code has no reason to prefer upright images).
* :class:`ResizedCrops` — images resized once (shorter side = ``size``, or only upscaled
  with ``keep_scale``), ``size``² crops with random horizontal flips only (a prior of
  upright photographs or faces must not learn upside-down ones).

Per sample the draws are, in this order: the image indices (``randint``), then one row of
uniforms per sample (``rand``) for top, left and the flip(s). Changing that order changes
every trained model, so it is fixed here.
"""

from __future__ import annotations

import numpy as np
import torch

from linksim.data import image_files, load_images, read_image
from linksim.errors import ConfigError

__all__ = ["PatchSampler", "ResizedCrops"]


def _draw_patches(images: list[torch.Tensor], size: int, batch: int, generator: torch.Generator,
                  vertical_flips: bool) -> torch.Tensor:
    """``batch`` random ``size``² patches of ``images`` (uint8 [3, H, W], H, W ≥ size).

    :output: float32 [batch, 3, size, size] in [0, 1].
    """
    idx = torch.randint(len(images), (batch,), generator=generator).tolist()
    draws = torch.rand(batch, 4 if vertical_flips else 3, generator=generator).tolist()
    out = torch.empty(batch, 3, size, size, dtype=torch.uint8)
    for b, (i, u) in enumerate(zip(idx, draws)):
        img = images[i]
        top = int(u[0] * (img.shape[1] - size + 1))
        left = int(u[1] * (img.shape[2] - size + 1))
        patch = img[:, top:top + size, left:left + size]
        if u[2] < 0.5:
            patch = patch.flip(2)
        if vertical_flips and u[3] < 0.5:
            patch = patch.flip(1)
        out[b] = patch
    return out.float() / 255


class PatchSampler:
    """Random ``crop``×``crop`` patches with random horizontal and vertical flips from images
    kept in memory at their own scale.

    Images smaller than the crop are left out (``skipped`` counts them).

    :output of ``sample(batch, generator)``: float32 [batch, 3, crop, crop] in [0, 1].
    :raises ConfigError: field ``crop`` when every image is smaller than the crop.
    """

    def __init__(self, paths: list[str], crop: int):
        items = load_images(image_files(paths))
        self.crop = crop
        self.images = [torch.from_numpy(it.pixels).permute(2, 0, 1).contiguous() for it in items
                       if min(it.pixels.shape[:2]) >= crop]
        self.skipped = len(items) - len(self.images)
        if not self.images:
            raise ConfigError("crop", crop, f"a crop no larger than the training images (all {len(items)} are smaller)")

    def __len__(self) -> int:
        return len(self.images)

    def sample(self, batch: int, generator: torch.Generator) -> torch.Tensor:
        return _draw_patches(self.images, self.crop, batch, generator, vertical_flips=True)


class ResizedCrops:
    """Images resized once (shorter side = ``size``, bicubic), drawn as random ``size``² crops
    with random horizontal flips. ``keep_scale``: resize only images whose shorter side is
    below ``size`` (crops then show the photographs at their own scale).

    :output of ``sample(batch, generator)``: float32 [batch, 3, size, size] in [0, 1].
    """

    def __init__(self, paths: list[str], size: int, progress: bool = False, keep_scale: bool = False):
        from PIL import Image
        from tqdm.auto import tqdm

        self.size = size
        self.files = image_files(paths)
        self.images = []
        for file in tqdm(self.files, desc="load images", unit="img", disable=not progress, leave=False):
            pixels = read_image(file)
            h, w = pixels.shape[:2]
            scale = max(1.0, size / min(h, w)) if keep_scale else size / min(h, w)
            new = (max(size, round(w * scale)), max(size, round(h * scale)))  # PIL: (width, height)
            if new != (w, h):
                pixels = np.asarray(Image.fromarray(pixels).resize(new, Image.Resampling.BICUBIC))
            self.images.append(torch.from_numpy(np.array(pixels)).permute(2, 0, 1).contiguous())  # a writable copy

    def __len__(self) -> int:
        return len(self.images)

    def sample(self, batch: int, generator: torch.Generator) -> torch.Tensor:
        return _draw_patches(self.images, self.size, batch, generator, vertical_flips=False)
