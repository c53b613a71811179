"""Diffusion priors: diffusers ``UNet2DModel`` checkpoint folders, loaded offline.

A prior folder is what ``UNet2DModel.save_pretrained`` writes — ``config.json`` and
``diffusion_pytorch_model.safetensors`` — optionally with a ``scheduler_config.json``
beside it (what ``DDPMScheduler.save_pretrained`` writes). A whole pipeline folder
(``DDPMPipeline.save_pretrained``: ``unet/`` and ``scheduler/`` subfolders) loads too.
Without a scheduler config the standard DDPM schedule is assumed: 1000 steps, linear
betas 1e-4 … 0.02 (Ho et al. 2020). Weights load from safetensors only (pickles can run
code) and never from the network (``local_files_only=True``).

The prior works on images in [−1, 1] of its own resolution (``unet.config.sample_size``)
and channel count (``in_channels``); :func:`check_prior_fits` says clearly when images do
not fit. :func:`inspect_prior` reads a folder's layout and configs without loading the
weights (what a scenario checks when it is loaded). A folder written by
``linksim train prior`` is a pipeline folder with linksim's ``config.json`` (kind
``ddpm-prior``) and ``MODEL_CARD.md`` at its root.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from linksim.errors import ConfigError

__all__ = ["Prior", "PriorFiles", "check_prior_fits", "default_scheduler", "inspect_prior", "load_prior"]

WEIGHTS = "diffusion_pytorch_model.safetensors"
SCHEDULER_CONFIG = "scheduler_config.json"
_PICKLES = ("diffusion_pytorch_model.bin", "pytorch_model.bin", "model.ckpt", "model.pt", "model.pth")


@dataclass
class Prior:
    """A loaded prior: the denoiser, its noise schedule, where it runs.

    :ivar unet: a diffusers ``UNet2DModel`` in eval mode.
    :ivar scheduler: its ``DDPMScheduler`` (the training schedule).
    :ivar path: the folder it came from.
    """

    unet: Any
    scheduler: Any
    path: Path

    @property
    def device(self) -> torch.device:
        return next(self.unet.parameters()).device

    @property
    def image_shape(self) -> tuple[int, int, int]:
        """The per-image (C, H, W) the prior generates."""
        size = self.unet.config.sample_size
        h, w = (size, size) if isinstance(size, int) else tuple(size)
        return (int(self.unet.config.in_channels), int(h), int(w))


@dataclass(frozen=True)
class PriorFiles:
    """Where the parts of a prior folder are, and what its configs say (no weights loaded).

    :ivar root: the folder given.
    :ivar unet: the folder holding the UNet's ``config.json`` and weights.
    :ivar weights: the safetensors weights file.
    :ivar scheduler_config: the scheduler's JSON config, or None (standard DDPM schedule).
    :ivar image_shape: the per-image (C, H, W) of the UNet config.
    :ivar num_train_timesteps: the training schedule's length.
    """

    root: Path
    unet: Path
    weights: Path
    scheduler_config: Path | None
    image_shape: tuple[int, int, int]
    num_train_timesteps: int


def inspect_prior(path: str | Path) -> PriorFiles:
    """Check a prior folder's layout and read its configs, without loading the weights.

    :raises ConfigError: field ``prior`` — no such folder, no UNet config, pickled weights
        only, an unreadable or non-UNet config.
    """
    root = Path(path).expanduser()
    if not root.is_dir():
        raise ConfigError("prior", str(path), "a folder holding a diffusers UNet2DModel "
                                              f"(config.json + {WEIGHTS}); no such folder")
    folder = root / "unet" if (root / "unet" / "config.json").is_file() else root
    if not (folder / "config.json").is_file():
        raise ConfigError("prior", str(root), f"a diffusers UNet2DModel folder with config.json and {WEIGHTS} "
                                              "(or a pipeline folder with a unet/ subfolder)")
    if not (folder / WEIGHTS).is_file():
        pickles = [p for p in _PICKLES if (folder / p).is_file()]
        found = f"only pickled weights ({', '.join(pickles)}), which are never loaded" if pickles else f"no {WEIGHTS}"
        raise ConfigError("prior", str(folder), f"safetensors weights {WEIGHTS}: found {found}; convert them with "
                                                "UNet2DModel.from_pretrained(...).save_pretrained(..., safe_serialization=True)")
    config = _read_json(folder / "config.json")
    size, channels = config.get("sample_size"), config.get("in_channels", 3)
    if isinstance(size, int) and not isinstance(size, bool):
        size = (size, size)
    if (not isinstance(size, (list, tuple)) or len(size) != 2 or not all(isinstance(v, int) for v in size)
            or not isinstance(channels, int)):
        raise ConfigError("prior", str(folder / "config.json"), "a UNet2DModel config with an integer sample_size "
                                                               "and in_channels")
    sched_cfg = next((p for p in (root / "scheduler" / SCHEDULER_CONFIG, folder / SCHEDULER_CONFIG,
                                  root / SCHEDULER_CONFIG) if p.is_file()), None)
    steps = 1000 if sched_cfg is None else _read_json(sched_cfg).get("num_train_timesteps", 1000)
    return PriorFiles(root, folder, folder / WEIGHTS, sched_cfg, (int(channels), int(size[0]), int(size[1])), int(steps))


def _read_json(path: Path) -> dict:
    try:
        config = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise ConfigError("prior", str(path), f"a readable JSON config ({exc})") from exc
    if not isinstance(config, dict):
        raise ConfigError("prior", str(path), "a JSON object")
    return config


def default_scheduler():
    """The standard DDPM schedule: 1000 steps, linear betas 1e-4 … 0.02, ε-prediction."""
    from diffusers import DDPMScheduler

    return DDPMScheduler(num_train_timesteps=1000, beta_start=1e-4, beta_end=0.02, beta_schedule="linear")


def load_prior(path: str | Path, *, device: str | torch.device | None = None, dtype: torch.dtype | None = None,
               image_shape: Sequence[int] | None = None) -> Prior:
    """Load a diffusers ``UNet2DModel`` folder (and its scheduler config) offline.

    :param path: the folder (see the module docstring for layouts).
    :param device: default CUDA when present, else the CPU.
    :param dtype: default float16 on CUDA, float32 on the CPU; float16 on the CPU is refused.
    :param image_shape: optionally the per-image (C, H, W) the prior must fit, checked now.
    :raises ConfigError: field ``prior`` — no such folder, no UNet config, pickled weights
        only, not loadable as a ``UNet2DModel``; ``dtype`` — float16 on the CPU;
        ``image_size`` — images that do not fit (see :func:`check_prior_fits`).
    """
    from diffusers import DDPMScheduler, UNet2DModel

    files = inspect_prior(path)
    root, folder = files.root, files.unet
    device = torch.device(device) if device is not None else torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dtype = dtype if dtype is not None else (torch.float16 if device.type == "cuda" else torch.float32)
    if dtype == torch.float16 and device.type != "cuda":
        raise ConfigError("dtype", "float16", "float32 on the CPU (float16 priors run on CUDA only)")
    try:
        # low_cpu_mem_usage needs `accelerate` (not a dependency) and only matters for large UNets;
        # asking for it explicitly off also silences diffusers' warning about its absence
        unet = UNet2DModel.from_pretrained(folder, local_files_only=True, use_safetensors=True, torch_dtype=dtype,
                                           low_cpu_mem_usage=False)
    except (OSError, ValueError, TypeError, KeyError, RuntimeError) as exc:
        raise ConfigError("prior", str(folder), f"a folder loadable as a diffusers UNet2DModel ({type(exc).__name__}: "
                                                f"{str(exc).splitlines()[0] if str(exc) else ''})") from exc
    unet = unet.to(device).eval().requires_grad_(False)

    if files.scheduler_config is None:
        scheduler = default_scheduler()
    else:
        config = _read_json(files.scheduler_config)
        scheduler = DDPMScheduler.from_config(config)  # the training schedule, whatever sampler wrote it
    prior = Prior(unet, scheduler, root)
    if image_shape is not None:
        check_prior_fits(unet, image_shape)
    return prior


def check_prior_fits(model, image_shape: Sequence[int]) -> None:
    """Refuse images whose size or channel count differs from the prior's.

    A model without a diffusers config (a plain callable) is not checked.

    :param image_shape: per-image (C, H, W).
    :raises ConfigError: field ``image_size``, naming both shapes.
    """
    cfg = getattr(model, "config", None)
    if cfg is None or getattr(cfg, "sample_size", None) is None:
        return
    size = cfg.sample_size
    h, w = (size, size) if isinstance(size, int) else tuple(size)
    want = (int(cfg.in_channels), int(h), int(w))
    got = tuple(int(v) for v in image_shape)
    if got != want:
        raise ConfigError("image_size", "x".join(map(str, got)),
                          f"{'x'.join(map(str, want))} (C x H x W), the resolution and channels of the prior "
                          f"(sample_size {size}, in_channels {cfg.in_channels}); crop or resize the images, or "
                          "use a prior trained at this size")
