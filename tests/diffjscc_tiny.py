"""Tiny random DiffJSCC components shared by the DiffJSCC tests (CPU, milliseconds to build).

A VAE of factor 2 (16×16 images → 4×8×8 latents), a two-level UNet2DConditionModel on those
latents with cross-attention width 32, and a base folder in the diffusers layout.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from diffusers import AutoencoderKL, DDPMScheduler, UNet2DConditionModel

LATENT_CHANNELS, LATENT_SIZE, TEXT_DIM = 4, 8, 32


def tiny_unet(seed: int = 0) -> UNet2DConditionModel:
    torch.manual_seed(seed)
    return UNet2DConditionModel(
        sample_size=LATENT_SIZE, in_channels=LATENT_CHANNELS, out_channels=LATENT_CHANNELS, block_out_channels=(32, 64),
        layers_per_block=1, down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"),
        up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"), cross_attention_dim=TEXT_DIM, attention_head_dim=8,
        norm_num_groups=8).eval()


def tiny_vae(seed: int = 0, sample_size: int = 16) -> AutoencoderKL:
    torch.manual_seed(seed)
    return AutoencoderKL(in_channels=3, out_channels=3, latent_channels=LATENT_CHANNELS, block_out_channels=(8, 16),
                         down_block_types=("DownEncoderBlock2D",) * 2, up_block_types=("UpDecoderBlock2D",) * 2,
                         layers_per_block=1, norm_num_groups=8, sample_size=sample_size).eval()


def save_tiny_base(folder: Path, vae: AutoencoderKL | None = None, unet: UNet2DConditionModel | None = None,
                   scheduler: DDPMScheduler | None = None) -> Path:
    """``folder`` with vae/, unet/ (safetensors) and scheduler/ — the tiny ones unless given."""
    (vae or tiny_vae()).save_pretrained(folder / "vae", safe_serialization=True)
    (unet or tiny_unet()).save_pretrained(folder / "unet", safe_serialization=True)
    (scheduler or DDPMScheduler(num_train_timesteps=1000)).save_pretrained(folder / "scheduler")
    return folder


def write_gradient_images(root: Path, count: int, height: int, width: int, seed: int) -> Path:
    """``count`` smooth colour gradients (height × width PNGs) with a little noise: training data
    with structure for the tiny models."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:height, 0:width] / (max(height, width) - 1)
    for i in range(count):
        a, b, c = rng.uniform(0.2, 1.0, 3)
        img = np.stack([a * xx, b * yy, c * (1 - xx) * yy], axis=-1) + 0.05 * rng.standard_normal((height, width, 3))
        Image.fromarray((np.clip(img, 0, 1) * 255).astype(np.uint8)).save(root / f"img{i}.png")
    return root
