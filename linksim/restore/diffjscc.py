"""DiffJSCC's restoration pipeline: a frozen latent diffusion model steered by a control module.

DiffJSCC (Yang, Liu, Wang, Kim 2024) restores the DeepJSCC receiver output x̂ with a frozen
latent diffusion model (diffusers ``AutoencoderKL`` + ``UNet2DConditionModel``, the Stable
Diffusion layout) whose UNet is steered by a trained control module
(:class:`~linksim.restore.diffjscc_control.ControlledUNet`) fed with

- the condition latent ``c = VAE.encode(2x̂ − 1).mode() · scaling_factor`` (deterministic:
  the mode of the encoder's Gaussian, no sampling), float [B, C_z, H/f, W/f];
- the channel SNR (dB), float [B];
- text features, float [B, L, cross_attention_dim] (see below).

:meth:`DiffJSCCPipeline.restore` samples the latent z with the project's one loop,
:class:`~linksim.restore.core.RestorationCore`, over ``eps(z_t, t) = controlled(z_t, t, c, snr,
text)`` — spaced DDPM (η = 1), ``steps`` grid steps, no classifier-free guidance, no
consistency hook (DiffJSCC steers by conditioning only, docs/ARCHITECTURE.md §5) — then decodes
``x̃ = (VAE.decode(z / scaling_factor) + 1) / 2`` clamped to [0, 1] and, optionally, applies
DiffBIR's wavelet colour fix (:func:`wavelet_color_fix`: the low frequencies of x̃ are
replaced by x̂'s). :meth:`DiffJSCCPipeline.sample_base` is the same loop over the bare base
UNet (no control): with a fresh (zero-initialized) control module both give the same latents
bit for bit.

Text features. When the base folder has ``text_encoder/`` and ``tokenizer/`` and the optional
``transformers`` package is importable, captions are encoded CLIP-style (padded to the
tokenizer's ``model_max_length``, the encoder's last hidden state). Otherwise a non-empty
caption is refused with a :class:`~linksim.errors.ConfigError`, and no/empty captions use
*null* text features: zeros [B, 77, cross_attention_dim]. That is what a model trained
without text (the project's small instance, which has no text encoder) sees; note that
Stable Diffusion's empty-prompt embedding is *not* zero, so a real SD base should be given
an encoder (or precomputed ``text_features``). Precomputed features are accepted directly.

Scheduler. Only its training schedule is used (``alphas_cumprod``, ``prediction_type``,
``clip_sample``, the ``set_timesteps`` grid); ``clip_sample`` is honoured as configured —
Stable Diffusion's scheduler config sets it False, as a latent model should.

Randomness comes only from the per-image generators (x_T and every step's noise of image i
from generator i, as the core does), so a batch gives the images of one-by-one runs. The
pipeline runs in float32 on one device (CUDA when present by default).

Nothing here imports ``linksim.channel``, ``linksim.digital`` or ``linksim.jscc``; training
the control module lives elsewhere; :class:`DiffJSCCRestorer` is what the registry (type
``diffjscc``) builds for scenarios.
"""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Optional, Union

import torch
import torch.nn.functional as F

from linksim.errors import ConfigError
from linksim.restore.core import RestorationCore, default_device, per_image_generators
from linksim.restore.diffjscc_control import ControlledUNet, ControlModule

__all__ = ["DiffJSCCPipeline", "DiffJSCCRestorer", "NULL_TEXT_LENGTH", "wavelet_blur", "wavelet_decomposition", "wavelet_color_fix"]

#: token length of null text features (CLIP's 77, Stable Diffusion's context length)
NULL_TEXT_LENGTH = 77

#: DiffBIR's 3×3 binomial kernel (outer product of [1, 2, 1] / 4)
_BINOMIAL = ((0.0625, 0.125, 0.0625), (0.125, 0.25, 0.125), (0.0625, 0.125, 0.0625))

PathLike = Union[str, os.PathLike]

#: the safetensors weights file of a diffusers model folder (sharded: plus ".index.json")
_WEIGHTS = "diffusion_pytorch_model.safetensors"


# ------------------------------------------------------------------------- colour fix


def wavelet_blur(image: torch.Tensor, dilation: int) -> torch.Tensor:
    """One à-trous blur: the 3×3 binomial kernel at ``dilation``, per channel, replicate padding.

    :param image: float [B, C, H, W].
    :returns: float [B, C, H, W].
    """
    c = image.shape[1]
    kernel = torch.tensor(_BINOMIAL, dtype=image.dtype, device=image.device)[None, None].repeat(c, 1, 1, 1)
    padded = F.pad(image, (dilation,) * 4, mode="replicate")
    return F.conv2d(padded, kernel, groups=c, dilation=dilation)


def wavelet_decomposition(image: torch.Tensor, levels: int = 5) -> tuple[torch.Tensor, torch.Tensor]:
    """(high, low) frequency parts, ``high + low == image`` (up to rounding).

    Low = ``levels`` successive blurs at dilations 1, 2, 4, … 2^(levels−1) (1 … 16 for 5
    levels); high = the sum of what each blur removed (DiffBIR's ``wavelet_decomposition``).

    :param image: float [B, C, H, W].
    """
    high = torch.zeros_like(image)
    low = image
    for i in range(levels):
        blurred = wavelet_blur(low, 2 ** i)
        high = high + (low - blurred)
        low = blurred
    return high, low


def wavelet_color_fix(content: torch.Tensor, reference: torch.Tensor, levels: int = 5) -> torch.Tensor:
    """DiffBIR's ``wavelet_reconstruction``: ``content``'s high frequencies + ``reference``'s low ones.

    Keeps the details the diffusion model generated and the colours/brightness of x̂ (a
    latent diffusion model tends to shift colours). Linear, so the data range does not matter.

    :param content: float [B, C, H, W] (the diffusion output x̃).
    :param reference: float [B, C, H, W] (x̂), same shape.
    :returns: float [B, C, H, W], not clamped.
    """
    high, _ = wavelet_decomposition(content, levels)
    _, low = wavelet_decomposition(reference, levels)
    return high + low


# --------------------------------------------------------------------------- loading


def _component_dir(root: Path, name: str, what: str) -> Path:
    folder = root / name
    if not folder.is_dir():
        raise ConfigError(name, str(folder), f"a folder holding {what} (the diffusers layout "
                                             f"vae/, unet/, scheduler/ under the base folder)")
    return folder


def _load_model(cls, folder: Path, field: str):
    """``cls.from_pretrained(folder)`` offline from safetensors; any failure → ConfigError(field)."""
    weights = [w for w in (_WEIGHTS, _WEIGHTS + ".index.json") if (folder / w).is_file()]
    if not (folder / "config.json").is_file() or not weights:
        missing = "config.json" if not (folder / "config.json").is_file() else _WEIGHTS
        raise ConfigError(field, str(folder), f"a diffusers {cls.__name__} folder with config.json and {_WEIGHTS} "
                                              f"({missing} is missing; pickled weights are never loaded)")
    try:
        # low_cpu_mem_usage needs `accelerate` (not a dependency); off also silences diffusers' warning
        return cls.from_pretrained(folder, local_files_only=True, use_safetensors=True, low_cpu_mem_usage=False)
    except (OSError, ValueError, TypeError, KeyError, RuntimeError) as exc:
        first = str(exc).splitlines()[0] if str(exc) else ""
        raise ConfigError(field, str(folder), f"a folder loadable as a diffusers {cls.__name__} with safetensors "
                                              f"weights ({type(exc).__name__}: {first})") from exc


def _load_scheduler(folder: Path):
    from diffusers import DDPMScheduler

    try:
        config = DDPMScheduler.load_config(folder, local_files_only=True)
        # the training schedule, whatever sampler wrote the config (SD ships a PNDMScheduler config)
        return DDPMScheduler.from_config(config)
    except (OSError, ValueError, TypeError, KeyError) as exc:
        first = str(exc).splitlines()[0] if str(exc) else ""
        raise ConfigError("scheduler", str(folder), f"a folder with a readable scheduler_config.json "
                                                    f"({type(exc).__name__}: {first})") from exc


def _text_availability(root: Path) -> tuple[bool, str]:
    """(usable, why not): a text encoder needs text_encoder/ + tokenizer/ and `transformers`."""
    missing = [name for name in ("text_encoder", "tokenizer") if not (root / name).is_dir()]
    if missing:
        return False, f"the base folder {root} has no {' or '.join(n + '/' for n in missing)}"
    if importlib.util.find_spec("transformers") is None:
        return False, "the optional package `transformers` is not installed (needed for text_encoder/)"
    return True, ""


def _load_text_encoder(root: Path):
    """(tokenizer, text_encoder) from ``root/tokenizer`` and ``root/text_encoder`` (transformers, offline)."""
    import transformers

    try:
        tokenizer = transformers.AutoTokenizer.from_pretrained(root / "tokenizer", local_files_only=True)
    except (OSError, ValueError, TypeError, KeyError) as exc:
        raise ConfigError("tokenizer", str(root / "tokenizer"), f"a loadable tokenizer folder ({exc})") from exc
    try:
        encoder = transformers.CLIPTextModel.from_pretrained(root / "text_encoder", local_files_only=True,
                                                             use_safetensors=True)
    except (OSError, ValueError, TypeError, KeyError, RuntimeError) as exc:
        raise ConfigError("text_encoder", str(root / "text_encoder"),
                          f"a folder loadable as a transformers CLIPTextModel with safetensors weights ({exc})") from exc
    return tokenizer, encoder.eval().requires_grad_(False)


# -------------------------------------------------------------------------- pipeline


class DiffJSCCPipeline:
    """The DiffJSCC restorer: VAE + controlled UNet + DDPM schedule (+ optional text encoder).

    :param vae: a diffusers ``AutoencoderKL``; frozen here (``requires_grad_(False)``, eval).
    :param controlled: the :class:`ControlledUNet` (base UNet + control module); put in eval mode.
    :param scheduler: a diffusers ``DDPMScheduler`` (the base model's training schedule).
    :param text_encoder, tokenizer: optional (transformers CLIP-style); both or neither.
    :param text_unavailable: why there is no text encoder (said by the error a caption raises).
    :param device: where everything runs; default the UNet's device (the VAE is moved there).
    :raises ConfigError: field ``scheduler`` (not a DDPMScheduler), ``vae`` (latent channels
        that differ from the UNet's/condition's), ``text_encoder`` (only one of the pair).
    """

    def __init__(self, vae, controlled: ControlledUNet, scheduler, text_encoder=None, tokenizer=None, *,
                 text_unavailable: str = "the pipeline was built without a text encoder",
                 device: Optional[Union[str, torch.device]] = None):
        if type(scheduler).__name__ != "DDPMScheduler":
            raise ConfigError("scheduler", type(scheduler).__name__, "a diffusers DDPMScheduler")
        if (text_encoder is None) != (tokenizer is None):
            raise ConfigError("text_encoder", "only one of text_encoder / tokenizer", "both or neither")
        unet = controlled.unet
        z_ch = int(vae.config.latent_channels)
        if z_ch != unet.config.in_channels or z_ch != controlled.control.config.condition_channels:
            raise ConfigError("vae", f"latent_channels={z_ch}",
                              f"the UNet's in_channels ({unet.config.in_channels}) and the control module's "
                              f"condition_channels ({controlled.control.config.condition_channels})")
        self.device = torch.device(device) if device is not None else next(unet.parameters()).device
        self.vae = vae.requires_grad_(False).eval().to(self.device)
        self.controlled = controlled.eval().to(self.device)
        self.scheduler = scheduler
        self.text_encoder = text_encoder.to(self.device) if text_encoder is not None else None
        self.tokenizer = tokenizer
        self.text_unavailable = text_unavailable

    # ---------------------------------------------------------------- construction

    @classmethod
    def from_pretrained(cls, base_folder: PathLike, control_folder: Optional[PathLike] = None,
                        device: Optional[Union[str, torch.device]] = None, *,
                        snr_embedding: bool = True) -> "DiffJSCCPipeline":
        """Load a local diffusers folder (``vae/``, ``unet/``, ``scheduler/``, optional
        ``text_encoder/`` + ``tokenizer/``) and a control module, offline, safetensors only.

        :param base_folder: the base model's folder (never a hub id: nothing is downloaded).
        :param control_folder: a folder written by :meth:`ControlModule.save`; None = a fresh
            zero-initialized control module (the pipeline then reproduces the base model).
        :param device: default CUDA when present, else the CPU.
        :param snr_embedding: for a fresh control module only (``control_folder`` None): False =
            the spatial-only ablation, no SNR embedding. A saved module's ``config.json`` decides.
        :raises ConfigError: field ``base_folder`` (no such folder); ``vae`` / ``unet`` /
            ``scheduler`` / ``text_encoder`` / ``tokenizer`` (missing or unloadable, naming the
            folder); ``control`` (no such folder) or the fields of :meth:`ControlModule.load`.
        """
        from diffusers import AutoencoderKL, UNet2DConditionModel

        root = Path(base_folder).expanduser()
        if not root.is_dir():
            raise ConfigError("base_folder", str(base_folder), "a local diffusers folder with vae/, unet/ and "
                                                               "scheduler/ (hub ids are not fetched); no such folder")
        device = torch.device(device) if device is not None else default_device()
        vae = _load_model(AutoencoderKL, _component_dir(root, "vae", "an AutoencoderKL"), "vae")
        unet = _load_model(UNet2DConditionModel, _component_dir(root, "unet", "a UNet2DConditionModel"), "unet")
        scheduler = _load_scheduler(_component_dir(root, "scheduler", "scheduler_config.json"))
        unet = unet.to(device)
        if control_folder is None:
            control = ControlModule.from_unet(unet, snr_embedding=snr_embedding)
        else:
            if not Path(control_folder).is_dir():
                raise ConfigError("control", str(control_folder), "a folder written by ControlModule.save "
                                                                  "(config.json + model.safetensors); no such folder")
            control = ControlModule.load(control_folder, unet)
        usable, why = _text_availability(root)
        tokenizer, encoder = _load_text_encoder(root) if usable else (None, None)
        return cls(vae, ControlledUNet(unet, control.to(device)), scheduler, encoder, tokenizer,
                   text_unavailable=why, device=device)

    # ---------------------------------------------------------------- properties

    @property
    def downsampling(self) -> int:
        """The VAE's spatial factor f = 2^(len(block_out_channels) − 1) (8 for SD)."""
        return 2 ** (len(self.vae.config.block_out_channels) - 1)

    @property
    def latent_channels(self) -> int:
        return int(self.vae.config.latent_channels)

    @property
    def cross_attention_dim(self) -> int:
        d = self.controlled.unet.config.cross_attention_dim
        return int(d[0] if isinstance(d, (list, tuple)) else d)

    # ---------------------------------------------------------------- pieces

    def check_x_hat(self, x_hat) -> torch.Tensor:
        """x̂ as float32 [B, 3, H, W] on the device; H, W multiples of :attr:`downsampling`.

        :raises ConfigError: field ``x_hat``.
        """
        f = self.downsampling
        ok = isinstance(x_hat, torch.Tensor) and x_hat.dim() == 4 and x_hat.shape[0] >= 1 and x_hat.shape[1] == 3
        if not ok or x_hat.shape[-2] % f or x_hat.shape[-1] % f or x_hat.shape[-1] == 0 or x_hat.shape[-2] == 0:
            got = tuple(x_hat.shape) if isinstance(x_hat, torch.Tensor) else type(x_hat).__name__
            raise ConfigError("x_hat", got, f"a float tensor [B, 3, H, W] in [0, 1] with H and W multiples of {f} "
                                            "(the VAE's downsampling factor)")
        return x_hat.to(self.device, torch.float32)

    @torch.no_grad()
    def encode(self, x_hat: torch.Tensor) -> torch.Tensor:
        """Condition latent ``(mode(VAE.encode(2x̂ − 1)) − shift) · scaling_factor``: float [B, C_z, H/f, W/f]."""
        x = self.check_x_hat(x_hat)
        z = self.vae.encode(2.0 * x - 1.0).latent_dist.mode()
        shift = getattr(self.vae.config, "shift_factor", None)
        if shift is not None:
            z = z - shift
        return z * self.vae.config.scaling_factor

    @torch.no_grad()
    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """Latent float [B, C_z, h, w] → image float [B, 3, f·h, f·w] in [0, 1] (clamped)."""
        z = z / self.vae.config.scaling_factor
        shift = getattr(self.vae.config, "shift_factor", None)
        if shift is not None:
            z = z + shift
        return ((self.vae.decode(z).sample + 1.0) / 2.0).clamp(0.0, 1.0)

    @torch.no_grad()
    def text_features(self, batch: int, captions: Union[str, Sequence[Optional[str]], None] = None,
                      text_features: Optional[torch.Tensor] = None) -> torch.Tensor:
        """Text features float [B, L, cross_attention_dim] for a batch.

        Precomputed ``text_features`` ([B or 1, L, D]) win; else captions (one string for all,
        or one per image) are encoded with the text encoder; no or only empty captions give
        the null features (zeros [B, 77, D]) when there is no text encoder, the encoder's
        empty-prompt embedding when there is one.

        :raises ConfigError: ``text_features`` (bad shape), ``captions`` (wrong count, or a
            non-empty caption without a text encoder — the message says what is missing).
        """
        d = self.cross_attention_dim
        if text_features is not None:
            t = text_features
            if (not isinstance(t, torch.Tensor) or t.dim() != 3 or t.shape[0] not in (1, batch) or t.shape[-1] != d):
                got = tuple(t.shape) if isinstance(t, torch.Tensor) else type(t).__name__
                raise ConfigError("text_features", got, f"a float tensor [B or 1, L, {d}] (B = {batch})")
            return t.to(self.device, torch.float32).expand(batch, -1, -1)
        if captions is None:
            captions = [""] * batch
        elif isinstance(captions, str):
            captions = [captions] * batch
        captions = ["" if c is None else c for c in captions]
        if len(captions) != batch or not all(isinstance(c, str) for c in captions):
            raise ConfigError("captions", f"{len(captions)} items", f"one string per image ({batch}) or one string")
        if self.text_encoder is None:
            if any(c.strip() for c in captions):
                raise ConfigError("captions", next(c for c in captions if c.strip()),
                                  f"no captions (or empty ones): no text encoder — {self.text_unavailable}")
            return torch.zeros(batch, NULL_TEXT_LENGTH, d, device=self.device)
        tok = self.tokenizer(list(captions), padding="max_length", max_length=self.tokenizer.model_max_length,
                             truncation=True, return_tensors="pt")
        return self.text_encoder(tok.input_ids.to(self.device))[0].to(torch.float32)

    def _sample(self, eps_model, generators, latent_shape: tuple[int, int, int], steps: int,
                progress: bool, hook=None) -> torch.Tensor:
        """The core's spaced DDPM (η = 1) over ``eps_model``: latents float [B, C_z, h, w]."""
        core = RestorationCore(eps_model, self.scheduler, device=self.device)
        return core.sample(generators, shape=latent_shape, hook=hook, num_inference_steps=steps, progress=progress)

    # ---------------------------------------------------------------- restore

    @torch.no_grad()
    def restore(self, x_hat: torch.Tensor, snr_db, generators, captions=None, text_features=None, steps: int = 100,
                color_fix: bool = True, *, latent_guidance: float = 0.0, return_latents: bool = False,
                progress: bool = False):
        """Restore received images x̂.

        :param x_hat: float [B, 3, H, W] in [0, 1], H and W multiples of :attr:`downsampling`.
        :param snr_db: channel SNR in dB: a number or float [B].
        :param generators: one ``torch.Generator`` per image (or one generator / None, see
            :func:`~linksim.restore.core.per_image_generators`).
        :param captions: None, one string, or one string per image (see :meth:`text_features`).
        :param text_features: precomputed float [B or 1, L, cross_attention_dim] (wins over captions).
        :param steps: grid steps of the spaced DDPM sampler (η = 1).
        :param color_fix: apply :func:`wavelet_color_fix` with x̂ as the colour reference.
        :param latent_guidance: λ in [0, 1], the optional latent MSE guidance of DiffBIR/DiffJSCC:
            at every step the predicted clean latent moves towards the condition latent,
            ``ẑ₀ ← ẑ₀ − λ (ẑ₀ − z_c)`` — a gradient step of size λ/2 on ‖ẑ₀ − z_c‖², in closed
            form since the loss is on the latent itself (no backpropagation through the UNet).
            0 = off (the default, the paper's sampler); 1 = ẑ₀ replaced by z_c at every step.
        :param return_latents: also return the final latent z.
        :param progress: show the sampler's progress bar.
        :returns: x̃ float [B, 3, H, W] in [0, 1] on :attr:`device`; ``(x̃, z)`` with
            ``return_latents`` (z float [B, C_z, H/f, W/f]).
        :raises ConfigError: ``x_hat``, ``generator``, ``captions``, ``text_features``,
            ``snr_db``, ``steps``, ``latent_guidance``.
        """
        if (isinstance(latent_guidance, bool) or not isinstance(latent_guidance, (int, float))
                or not 0.0 <= latent_guidance <= 1.0):
            raise ConfigError("latent_guidance", latent_guidance, "a number in [0, 1] (0: off)")
        x = self.check_x_hat(x_hat)
        batch, f = x.shape[0], self.downsampling
        gens = per_image_generators(generators, batch)
        text = self.text_features(batch, captions, text_features)
        condition = self.encode(x)
        snr = torch.as_tensor(snr_db, dtype=torch.float32, device=self.device)

        def eps_model(z_t: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
            return self.controlled(z_t, t, condition, snr, text)

        def guide(z0: torch.Tensor, t: int, info) -> torch.Tensor:
            return z0 - latent_guidance * (z0 - condition)

        shape = (self.latent_channels, x.shape[-2] // f, x.shape[-1] // f)
        z = self._sample(eps_model, gens, shape, steps, progress, guide if latent_guidance > 0 else None)
        out = self.decode(z)
        if color_fix:
            out = wavelet_color_fix(out, x).clamp(0.0, 1.0)
        return (out, z) if return_latents else out

    @torch.no_grad()
    def sample_base(self, shape_or_latent_size, generators, text_features=None, steps: int = 100, *,
                    progress: bool = False) -> torch.Tensor:
        """The same sampler over the bare base UNet (no control): the zero-init reference.

        :param shape_or_latent_size: latent size h (= w), (h, w), or (C_z, h, w).
        :param generators: one ``torch.Generator`` per image (the batch size is their number).
        :param text_features: float [B or 1, L, D]; None = null text features.
        :returns: latents float [B, C_z, h, w] (decode them with :meth:`decode`).
        """
        s = shape_or_latent_size
        s = (s, s) if isinstance(s, int) else tuple(int(v) for v in s)
        if len(s) == 2:
            s = (self.latent_channels, *s)
        if len(s) != 3 or s[0] != self.latent_channels or min(s) < 1:
            raise ConfigError("shape", shape_or_latent_size, f"a latent size h, (h, w) or ({self.latent_channels}, h, w)")
        gens = list(generators)
        text = self.text_features(len(gens), None, text_features)

        def eps_model(z_t: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
            return self.controlled.bare(z_t, t, text)

        return self._sample(eps_model, gens, s, steps, progress)


# -------------------------------------------------------------------------- restorer


class DiffJSCCRestorer:
    """A :class:`DiffJSCCPipeline` with the restorer interface of the runner (docs/ARCHITECTURE.md §4).

    ``restore(x_hat, snr_db, generator)``: float [B, 3, H, W] in [0, 1] in, x̃ of the same shape
    out; ``snr_db`` a number or one per image; one generator per image. The scenario entry's
    ``steps``, ``color_fix``, ``captions`` (one string for every image, or None: null text) and
    ``latent_guidance`` are fixed here. Built by the registry (type ``diffjscc``).

    :param name: the restorer's label, named by the errors of :meth:`check` and :meth:`restore`.
    """

    def __init__(self, pipeline: DiffJSCCPipeline, *, steps: int = 100, color_fix: bool = True,
                 captions: Optional[str] = None, latent_guidance: float = 0.0, progress: bool = False,
                 name: str = "DiffJSCC"):
        self.pipeline = pipeline
        self.steps, self.color_fix, self.captions, self.progress = int(steps), bool(color_fix), captions, progress
        self.latent_guidance = float(latent_guidance)
        self.label = name

    @property
    def device(self) -> torch.device:
        return self.pipeline.device

    def check(self, image_shape) -> None:
        """Refuse a per-image (C, H, W) the VAE cannot take (C ≠ 3, H or W not a multiple of its factor).

        :raises ConfigError: field ``image_size``.
        """
        shape = tuple(int(v) for v in image_shape)
        f = self.pipeline.downsampling
        if len(shape) != 3 or shape[0] != 3 or shape[1] % f or shape[2] % f or min(shape) < 1:
            raise ConfigError("image_size", "x".join(map(str, shape)),
                              f"3 x H x W with H and W multiples of {f}, the downsampling factor of the VAE of "
                              f"restorer {self.label!r} (DiffJSCC); crop or resize the images")

    @torch.no_grad()
    def restore(self, x_hat: torch.Tensor, snr_db=None, generator=None) -> torch.Tensor:
        """x̃ float [B, 3, H, W] in [0, 1] on :attr:`device` (see :meth:`DiffJSCCPipeline.restore`).

        :raises ConfigError: field ``snr_db`` (None: DiffJSCC is conditioned on the SNR), ``x_hat``
            (naming the restorer), ``generator``.
        """
        if snr_db is None:
            raise ConfigError("snr_db", None, f"the channel SNR in dB (restorer {self.label!r} is conditioned on it)")
        if isinstance(x_hat, torch.Tensor) and x_hat.dim() == 4:
            self.check(tuple(x_hat.shape[1:]))
        batch = x_hat.shape[0] if isinstance(x_hat, torch.Tensor) and x_hat.dim() == 4 else 1
        snr = torch.as_tensor(snr_db, dtype=torch.float32).reshape(-1)
        if snr.numel() not in (1, batch):
            raise ConfigError("snr_db", tuple(snr.shape), f"a number or one SNR per image ({batch})")
        captions = None if self.captions is None else [self.captions] * batch
        return self.pipeline.restore(x_hat, snr.expand(batch).clone(), generator, captions=captions, steps=self.steps,
                                     color_fix=self.color_fix, latent_guidance=self.latent_guidance,
                                     progress=self.progress)
