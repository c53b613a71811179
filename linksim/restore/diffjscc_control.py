"""DiffJSCC's control module: a ControlNet-style copy of a frozen latent-diffusion UNet's encoder.

DiffJSCC (Yang, Liu, Wang, Kim 2024) restores a DeepJSCC receiver output x̂ with a frozen
Stable-Diffusion-like latent diffusion UNet (diffusers ``UNet2DConditionModel``) that is
*steered* by a trainable control module fed with the VAE latent of x̂ and the channel SNR
(the LAControlNet design of DiffBIR, which DiffJSCC follows):

    z_c = VAE(x̂)                                       condition latent  [B, C_c, h, w]
    t_emb = TimeMLP(sinusoid(t)) + SNRTimeEmbedding(snr_db)             [B, D]
    f = ControlEncoder(concat(z_t, z_c), t_emb, text)  copied conv_in + down blocks + mid block
    r_k = ZeroConv_k(f_k)                              one 1×1 conv per skip tensor, one for the mid
    ε = UNet(z_t, t, text; skips_k += r_k, mid += r_mid)  the frozen base UNet, residuals added

:class:`ControlModule` is built from the base UNet with :meth:`ControlModule.from_unet`: deep
copies of its ``time_proj``, ``time_embedding``, ``down_blocks`` and ``mid_block`` (the
weights copied, as diffusers' ``ControlNetModel.from_unet`` does), and its ``conv_in``
widened to take ``[B, in_ch + cond_ch, h, w]`` (the original weights in the first ``in_ch``
input channels, zeros in the new ones). Its residuals have exactly the form
``UNet2DConditionModel.forward(..., down_block_additional_residuals=...,
mid_block_additional_residual=...)`` accepts, one per skip tensor of the UNet's down path
(the structure of ``ControlNetModel.controlnet_down_blocks``) plus one for the mid block.

Ablation "spatial only" (the DiffJSCC paper's): with ``snr_embedding=False``
(:class:`ControlModuleConfig`, :meth:`ControlModule.from_unet`) the module has no SNR
embedding at all (``snr_embedding`` is None, fewer parameters) and ``t_emb`` is the time MLP
alone: ``forward`` still takes ``snr_db`` but ignores it, so the SNR cannot reach the output.

Why zero initialization: every zero conv and the last layer of the SNR embedding start at
exactly zero, so a fresh control module contributes exactly 0 and
:class:`ControlledUNet` reproduces the base model bit for bit (``x + 0 == x``) until
training moves the zero convs; the copied encoder starts from the base model's features
instead of noise, and the gradient reaches the zero convs at once (their input is not zero).

Shapes (diffusers' conventions): ``sample`` float [B, C, h, w] (the noisy latent z_t),
``timestep`` a number, a 0-d tensor or [B] (diffusion steps), ``condition`` float
[B, C_c, h, w] (the condition latent, same h, w), ``snr_db`` a number, a 0-d tensor or float
[B] (dB), ``encoder_hidden_states`` float [B, L, cross_attention_dim] (text features).

Weights are saved as ``model.safetensors`` plus ``config.json`` (docs/ARCHITECTURE.md §6).

Nothing here imports ``linksim.channel``, ``linksim.digital`` or ``linksim.jscc``: the
(x, x̂) pairs and latents a control module is trained on are composed one floor higher.
diffusers is imported when this module is (the package ``__init__`` does not import it).
"""

from __future__ import annotations

import copy
import json
import os
from dataclasses import asdict, dataclass, field
from typing import Optional, Union

import torch
from diffusers import UNet2DConditionModel
from diffusers.models.embeddings import TimestepEmbedding, Timesteps
from torch import nn

from linksim.errors import ConfigError, checked_fields

__all__ = ["SNRTimeEmbedding", "ControlModuleConfig", "ControlModule", "ControlledUNet"]

SNR = Union[float, int, torch.Tensor]

#: file names of a saved control module
WEIGHTS_NAME = "model.safetensors"
CONFIG_NAME = "config.json"


def _batch_vector(value, batch: int, device: torch.device, dtype: torch.dtype, name: str) -> torch.Tensor:
    """A number, a 0-d tensor or a [B] tensor → a [batch] tensor (a scalar is broadcast)."""
    t = torch.as_tensor(value, device=device)
    if t.dim() == 0:
        t = t.reshape(1)
    if t.dim() != 1 or t.shape[0] not in (1, batch):
        raise ConfigError(name, tuple(t.shape), f"a number or a tensor [B] with B = {batch}")
    return t.to(dtype).expand(batch)


# ---------------------------------------------------------------------------------- SNR


class SNRTimeEmbedding(nn.Module):
    """SNR (dB) → a vector added to the UNet's time embedding (diffusers' own blocks).

    The SNR is read as a pseudo-timestep ``τ = (snr_db + offset_db) · scale``, then projected by
    diffusers' sinusoidal :class:`~diffusers.models.embeddings.Timesteps` (``proj_dim``
    channels) and a :class:`~diffusers.models.embeddings.TimestepEmbedding` MLP
    (Linear → SiLU → Linear) to ``embed_dim``. The defaults ``offset_db = 20``, ``scale = 10``
    map the usual −20 … 30 dB span to τ ∈ [0, 500]: inside the 0 … 1000 range the sinusoid is
    made for (its longest period is 10 000 · 2π, so it never wraps), non-negative like a
    timestep, and 1 dB = 10 "steps", so nearby SNRs get distinguishable codes.

    The MLP's last linear layer (``mlp.linear_2``, weight and bias) starts at zero: a fresh
    module outputs exactly 0 for every SNR.

    :param embed_dim: output width (the UNet's time-embedding width, ``time_embedding.linear_2.out_features``).
    :param proj_dim: sinusoid channels (even); the UNet's ``block_out_channels[0]`` by default in :class:`ControlModule`.
    :param offset_db: dB added before scaling.
    :param scale: pseudo-timesteps per dB.
    :param flip_sin_to_cos, freq_shift: as the UNet's ``time_proj`` (cos first, shift 0 in SD).

    ``forward(snr_db, batch=None)``: a number, a 0-d tensor or float [B] (dB) → float [B, embed_dim]
    (a scalar is broadcast to ``batch`` rows, 1 when not given).

    >>> emb = SNRTimeEmbedding(64, 16)
    >>> emb(torch.tensor([0.0, 10.0])).abs().max().item()
    0.0
    """

    def __init__(self, embed_dim: int, proj_dim: int = 32, offset_db: float = 20.0, scale: float = 10.0,
                 flip_sin_to_cos: bool = True, freq_shift: float = 0.0):
        super().__init__()
        for name, v in (("embed_dim", embed_dim), ("proj_dim", proj_dim)):
            if isinstance(v, bool) or not isinstance(v, int) or v < 2:
                raise ConfigError(name, v, "an integer ≥ 2")
        if proj_dim % 2:
            raise ConfigError("proj_dim", proj_dim, "an even integer (sin and cos halves)")
        if not isinstance(scale, (int, float)) or isinstance(scale, bool) or not scale > 0:
            raise ConfigError("snr_scale", scale, "a positive number (pseudo-timesteps per dB)")
        if not isinstance(offset_db, (int, float)) or isinstance(offset_db, bool):
            raise ConfigError("snr_offset_db", offset_db, "a number (dB)")
        self.offset_db, self.scale = float(offset_db), float(scale)
        self.proj = Timesteps(proj_dim, flip_sin_to_cos, freq_shift)
        self.mlp = TimestepEmbedding(proj_dim, embed_dim)
        nn.init.zeros_(self.mlp.linear_2.weight)
        nn.init.zeros_(self.mlp.linear_2.bias)

    def forward(self, snr_db: SNR, batch: Optional[int] = None) -> torch.Tensor:
        w = self.mlp.linear_1.weight
        snr = torch.as_tensor(snr_db, device=w.device)
        n = batch if batch is not None else (snr.numel() if snr.dim() else 1)
        snr = _batch_vector(snr, n, w.device, torch.float32, "snr_db")
        tau = (snr + self.offset_db) * self.scale
        return self.mlp(self.proj(tau).to(w.dtype))


# ------------------------------------------------------------------------------- config


@dataclass
class ControlModuleConfig:
    """What rebuilds a :class:`ControlModule` from its base UNet (serialized to ``config.json``).

    The ``base_*`` fields record the base UNet's architecture; :meth:`ControlModule.load`
    refuses a UNet that differs in any of them. ``snr_embedding`` False = the spatial-only
    ablation (no :class:`SNRTimeEmbedding`); a ``config.json`` written before the field existed
    loads as True (it had one).
    """

    condition_channels: int
    base_in_channels: int
    base_block_out_channels: list = field(default_factory=list)
    base_layers_per_block: Union[int, list] = 2
    base_down_block_types: list = field(default_factory=list)
    base_mid_block_type: Optional[str] = "UNetMidBlock2DCrossAttn"
    base_cross_attention_dim: Union[int, list, None] = None
    base_time_embed_dim: int = 0
    snr_offset_db: float = 20.0
    snr_scale: float = 10.0
    snr_embedding: bool = True

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "ControlModuleConfig":
        d = checked_fields(d, cls)
        if "condition_channels" not in d or "base_in_channels" not in d:
            missing = "condition_channels" if "condition_channels" not in d else "base_in_channels"
            raise ConfigError("config", missing, "a config.json that sets condition_channels and base_in_channels")
        if not isinstance(d.get("snr_embedding", True), bool):
            raise ConfigError("snr_embedding", d["snr_embedding"], "true (spatial + SNR) or false (spatial only)")
        return cls(**d)

    @staticmethod
    def base_fields(unet: UNet2DConditionModel) -> dict:
        """The ``base_*`` fields of ``unet`` (JSON-normalized: tuples → lists)."""
        c = unet.config

        def norm(v):
            return list(v) if isinstance(v, (tuple, list)) else v

        return {"base_in_channels": c.in_channels, "base_block_out_channels": norm(c.block_out_channels),
                "base_layers_per_block": norm(c.layers_per_block), "base_down_block_types": norm(c.down_block_types),
                "base_mid_block_type": c.mid_block_type, "base_cross_attention_dim": norm(c.cross_attention_dim),
                "base_time_embed_dim": unet.time_embedding.linear_2.out_features}


def _check_supported(unet) -> None:
    if not isinstance(unet, UNet2DConditionModel):
        raise ConfigError("unet", type(unet).__name__, "a diffusers UNet2DConditionModel")
    c = unet.config
    for name in ("class_embed_type", "num_class_embeds", "addition_embed_type", "encoder_hid_dim"):
        if getattr(c, name, None) is not None:
            raise ConfigError(f"unet.config.{name}", getattr(c, name),
                              "None (class, addition and encoder-projection embeddings are not supported)")
    if c.mid_block_type is None:
        raise ConfigError("unet.config.mid_block_type", None, "a mid block (the control module adds a mid residual)")
    if getattr(c, "center_input_sample", False):
        raise ConfigError("unet.config.center_input_sample", True, "False")


# ------------------------------------------------------------------------------ control


class ControlModule(nn.Module):
    """The trainable encoder copy + SNR embedding + zero convs (build it with :meth:`from_unet`).

    Submodules: ``conv_in`` (Conv2d, in_ch + cond_ch → block_out_channels[0]), ``time_proj``,
    ``time_embedding``, ``time_embed_act`` (when the base has one), ``down_blocks``,
    ``mid_block`` (copies of the base UNet's), ``snr_embedding`` (:class:`SNRTimeEmbedding`,
    added to the time embedding; None when ``config.snr_embedding`` is False),
    ``zero_convs_down`` (ModuleList of 1×1 Conv2d, one per skip tensor of the down path:
    conv_in's output, each resnet's output, each downsampler's output) and ``zero_conv_mid``
    (1×1 Conv2d on the mid block's output).

    ``forward(sample, timestep, condition, snr_db, encoder_hidden_states)`` →
    ``(down_residuals, mid_residual)``: a tuple of float [B, c_k, h_k, w_k] (the shapes of the
    base UNet's skip tensors, finest first) and float [B, c_mid, h_mid, w_mid] — pass them as
    ``down_block_additional_residuals`` and ``mid_block_additional_residual``. Without an SNR
    embedding ``snr_db`` is accepted and ignored (not even validated).
    """

    def __init__(self, config: ControlModuleConfig, conv_in: nn.Conv2d, time_proj: nn.Module,
                 time_embedding: nn.Module, time_embed_act: Optional[nn.Module], down_blocks: nn.ModuleList,
                 mid_block: Optional[nn.Module]):
        super().__init__()
        self.config = config
        self.conv_in, self.time_proj, self.time_embedding = conv_in, time_proj, time_embedding
        self.time_embed_act = time_embed_act
        self.down_blocks, self.mid_block = down_blocks, mid_block
        embed_dim = time_embedding.linear_2.out_features
        self.snr_embedding = (SNRTimeEmbedding(embed_dim, time_proj.num_channels, config.snr_offset_db,
                                               config.snr_scale, time_proj.flip_sin_to_cos,
                                               time_proj.downscale_freq_shift)
                              if config.snr_embedding else None)

        def zero_conv(ch: int) -> nn.Conv2d:
            conv = nn.Conv2d(ch, ch, kernel_size=1)
            nn.init.zeros_(conv.weight)
            nn.init.zeros_(conv.bias)
            return conv

        convs = [zero_conv(conv_in.out_channels)]          # the same order as the UNet's skip tensors
        for block in down_blocks:
            for resnet in block.resnets:
                convs.append(zero_conv(resnet.out_channels))
            for ds in (block.downsamplers or []):
                convs.append(zero_conv(ds.out_channels))
        self.zero_convs_down = nn.ModuleList(convs)
        mid_ch = down_blocks[-1].resnets[-1].out_channels
        self.zero_conv_mid = zero_conv(mid_ch) if mid_block is not None else None

    # ---------------------------------------------------------------- construction

    @classmethod
    def from_unet(cls, unet: UNet2DConditionModel, condition_channels: Optional[int] = None,
                  snr_offset_db: float = 20.0, snr_scale: float = 10.0,
                  snr_embedding: bool = True) -> "ControlModule":
        """A control module for ``unet``: its encoder copied (weights included), zero convs at zero.

        :param unet: the base UNet (not modified).
        :param condition_channels: channels of the condition latent; the UNet's ``in_channels`` by default.
        :param snr_offset_db, snr_scale: the SNR pseudo-timestep map of :class:`SNRTimeEmbedding`.
        :param snr_embedding: False = the spatial-only ablation: no SNR embedding, the SNR is ignored.
        :raises ConfigError: a UNet with class/addition embeddings, a bad ``condition_channels``
            or a non-bool ``snr_embedding``.
        """
        _check_supported(unet)
        in_ch = unet.config.in_channels
        cond = in_ch if condition_channels is None else condition_channels
        if isinstance(cond, bool) or not isinstance(cond, int) or cond < 1:
            raise ConfigError("condition_channels", condition_channels, "an integer ≥ 1 (or None: the UNet's in_channels)")
        if not isinstance(snr_embedding, bool):
            raise ConfigError("snr_embedding", snr_embedding, "True (spatial + SNR) or False (spatial only)")
        config = ControlModuleConfig(condition_channels=cond, snr_offset_db=float(snr_offset_db),
                                     snr_scale=float(snr_scale), snr_embedding=snr_embedding,
                                     **ControlModuleConfig.base_fields(unet))
        return cls._build(unet, config)

    @classmethod
    def _build(cls, unet: UNet2DConditionModel, config: ControlModuleConfig) -> "ControlModule":
        src = unet.conv_in
        w = src.weight
        conv_in = nn.Conv2d(src.in_channels + config.condition_channels, src.out_channels, src.kernel_size,
                            stride=src.stride, padding=src.padding, dilation=src.dilation,
                            bias=src.bias is not None, padding_mode=src.padding_mode, device=w.device, dtype=w.dtype)
        with torch.no_grad():
            conv_in.weight.zero_()
            conv_in.weight[:, : src.in_channels].copy_(w)
            if src.bias is not None:
                conv_in.bias.copy_(src.bias)
        act = copy.deepcopy(unet.time_embed_act) if unet.time_embed_act is not None else None
        module = cls(config, conv_in, copy.deepcopy(unet.time_proj), copy.deepcopy(unet.time_embedding), act,
                     copy.deepcopy(unet.down_blocks),
                     copy.deepcopy(unet.mid_block) if unet.mid_block is not None else None)
        module = module.to(device=w.device, dtype=w.dtype)
        return module.requires_grad_(True).train(unet.training)

    # ---------------------------------------------------------------- save / load

    def save(self, folder: Union[str, os.PathLike]) -> None:
        """Write ``model.safetensors`` (every parameter and buffer) and ``config.json`` to ``folder``."""
        from safetensors.torch import save_file

        os.makedirs(folder, exist_ok=True)
        tensors = {k: v.detach().cpu().contiguous() for k, v in self.state_dict().items()}
        save_file(tensors, os.path.join(folder, WEIGHTS_NAME), metadata={"format": "pt"})
        with open(os.path.join(folder, CONFIG_NAME), "w") as fh:
            json.dump(self.config.to_dict(), fh, indent=2)

    def save_pretrained(self, folder: Union[str, os.PathLike], card: Optional[str] = None,
                        base: Optional[str] = None):
        """Write ``model.safetensors`` + ``config.json`` ``{"kind": "diffjscc-control", "config":
        {...}}`` into ``folder`` (atomically; an existing ``MODEL_CARD.md`` stays unless ``card``
        replaces it). :meth:`load` and :func:`linksim.zoo.load` read it, as they read :meth:`save`'s.

        :param base: the name or folder of the ``diffjscc-base`` it steers (recorded as ``base``,
            what :func:`linksim.zoo.load` builds the pipeline on).
        :returns: the folder (a ``pathlib.Path``).
        """
        from linksim import zoo

        return zoo.save_checkpoint(self, folder, "diffjscc-control", self.config.to_dict(), card=card,
                                   extra={"base": str(base)} if base is not None else None)

    @classmethod
    def load(cls, folder: Union[str, os.PathLike], unet: UNet2DConditionModel) -> "ControlModule":
        """Rebuild a saved control module on top of its base ``unet`` and load its weights.

        :raises ConfigError: ``folder`` (no such folder, or ``model.safetensors`` / ``config.json``
            missing), ``config`` (unreadable or unknown keys), a ``base_*`` field that differs from
            ``unet``, or a weight tensor whose name or shape does not match the config (named by key).
        """
        from safetensors.torch import load_file

        folder = os.fspath(folder)
        for name in (CONFIG_NAME, WEIGHTS_NAME):
            if not os.path.isfile(os.path.join(folder, name)):
                raise ConfigError("folder", folder, f"a folder holding {CONFIG_NAME} and {WEIGHTS_NAME} "
                                                    f"({name} is missing)")
        try:
            with open(os.path.join(folder, CONFIG_NAME)) as fh:
                raw = json.load(fh)
        except (OSError, ValueError) as e:
            raise ConfigError("config", os.path.join(folder, CONFIG_NAME), f"a readable JSON object ({e})") from None
        if isinstance(raw, dict) and raw.get("kind") == "diffjscc-control" and "config" in raw:
            raw = raw["config"]  # save_pretrained's folder: the control config under linksim's artifact record
        config = ControlModuleConfig.from_dict(raw)
        _check_supported(unet)
        for key, value in ControlModuleConfig.base_fields(unet).items():
            if getattr(config, key) != value:
                raise ConfigError(key, getattr(config, key), f"{value!r}, the base UNet's (config.json was saved "
                                                             "for another UNet)")
        module = cls._build(unet, config)
        try:
            state = load_file(os.path.join(folder, WEIGHTS_NAME))
        except Exception as e:  # safetensors raises its own error types
            raise ConfigError("folder", os.path.join(folder, WEIGHTS_NAME), f"a readable safetensors file ({e})") from None
        expected = module.state_dict()
        for key in sorted(set(expected) | set(state)):
            if key not in state:
                raise ConfigError(key, "missing from model.safetensors", "every tensor the config implies")
            if key not in expected:
                raise ConfigError(key, "in model.safetensors", f"only tensors the config implies ({len(expected)} of them)")
            if tuple(state[key].shape) != tuple(expected[key].shape):
                raise ConfigError(key, tuple(state[key].shape), f"shape {tuple(expected[key].shape)} (from config.json)")
        module.load_state_dict(state, strict=True)
        return module

    # ---------------------------------------------------------------- forward

    def forward(self, sample: torch.Tensor, timestep, condition: torch.Tensor, snr_db: SNR,
                encoder_hidden_states: torch.Tensor) -> tuple[tuple[torch.Tensor, ...], torch.Tensor]:
        B = sample.shape[0]
        if (not isinstance(condition, torch.Tensor) or condition.dim() != 4
                or condition.shape[0] != B or condition.shape[1] != self.config.condition_channels
                or condition.shape[-2:] != sample.shape[-2:]):
            got = tuple(condition.shape) if isinstance(condition, torch.Tensor) else type(condition).__name__
            raise ConfigError("condition", got, f"a tensor [{B}, {self.config.condition_channels}, "
                                                f"{sample.shape[-2]}, {sample.shape[-1]}] (the sample's batch and size)")
        # 1. time (as UNet2DConditionModel.get_time_embed), plus the SNR embedding (if any)
        t = timestep
        if not torch.is_tensor(t):
            fdtype = torch.float32 if sample.device.type == "mps" else torch.float64
            t = torch.tensor([t], dtype=fdtype if isinstance(t, float) else torch.int64, device=sample.device)
        elif t.dim() == 0:
            t = t[None].to(sample.device)
        t_emb = self.time_proj(t.expand(B)).to(dtype=sample.dtype)
        emb = self.time_embedding(t_emb)
        if self.snr_embedding is not None:
            emb = emb + self.snr_embedding(snr_db, batch=B).to(sample.dtype)
        if self.time_embed_act is not None:
            emb = self.time_embed_act(emb)
        # 2. pre-process: the noisy latent and the condition latent side by side
        h = self.conv_in(torch.cat([sample, condition.to(sample.dtype)], dim=1))
        # 3. down (as ControlNetModel.forward)
        skips = (h,)
        for block in self.down_blocks:
            if hasattr(block, "has_cross_attention") and block.has_cross_attention:
                h, res = block(hidden_states=h, temb=emb, encoder_hidden_states=encoder_hidden_states)
            else:
                h, res = block(hidden_states=h, temb=emb)
            skips += res
        # 4. mid
        if self.mid_block is not None:
            if hasattr(self.mid_block, "has_cross_attention") and self.mid_block.has_cross_attention:
                h = self.mid_block(h, emb, encoder_hidden_states=encoder_hidden_states)
            else:
                h = self.mid_block(h, emb)
        # 5. zero convs
        down = tuple(conv(s) for s, conv in zip(skips, self.zero_convs_down))
        mid = self.zero_conv_mid(h) if self.zero_conv_mid is not None else None
        return down, mid


# ----------------------------------------------------------------------- controlled UNet


class ControlledUNet(nn.Module):
    """A frozen base UNet steered by a :class:`ControlModule`.

    :param unet: the base ``UNet2DConditionModel``; frozen here (``requires_grad_(False)``, eval).
    :param control: its control module; :meth:`ControlModule.from_unet` of ``unet`` when None.

    ``forward(sample, timestep, condition, snr_db, encoder_hidden_states)`` → float [B, C, h, w],
    the base UNet's noise prediction with the control residuals added to its skips and mid
    block. ``bare(sample, timestep, encoder_hidden_states)`` → the base UNet alone (same shape).
    With the zero convs at zero the two are bit-identical.
    """

    def __init__(self, unet: UNet2DConditionModel, control: Optional[ControlModule] = None):
        super().__init__()
        self.unet = unet.requires_grad_(False).eval()
        self.control = control if control is not None else ControlModule.from_unet(unet)

    def train(self, mode: bool = True) -> "ControlledUNet":
        """Set the control module's mode; the base UNet stays in eval mode."""
        super().train(mode)
        self.unet.eval()
        return self

    def trainable_parameters(self):
        """The control module's parameters (the only ones to give an optimizer)."""
        return self.control.parameters()

    def forward(self, sample: torch.Tensor, timestep, condition: torch.Tensor, snr_db: SNR,
                encoder_hidden_states: torch.Tensor) -> torch.Tensor:
        down, mid = self.control(sample, timestep, condition, snr_db, encoder_hidden_states)
        return self.unet(sample, timestep, encoder_hidden_states=encoder_hidden_states,
                         down_block_additional_residuals=down, mid_block_additional_residual=mid).sample

    def bare(self, sample: torch.Tensor, timestep, encoder_hidden_states: torch.Tensor) -> torch.Tensor:
        return self.unet(sample, timestep, encoder_hidden_states=encoder_hidden_states).sample
