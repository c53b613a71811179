"""Training a small latent diffusion base model for DiffJSCC (``linksim train diffjscc-base``).

DiffJSCC steers a frozen Stable Diffusion; nothing can be downloaded here, so linksim trains
its own small base model in the same diffusers layout, in two phases:

1. **VAE** — a diffusers ``AutoencoderKL`` of factor f = 2^(len(vae_channels) − 1) on random
   ``crop``² crops, loss ``‖D(z) − x‖² + kl_weight · KL(q(z|x) ‖ N(0, I))`` with z drawn from
   the posterior (the reparameterization), x in [−1, 1]. At the end, SD's latent scaling:
   ``scaling_factor = 1 / std(mode(E(x)))`` over 8 fresh batches, stored in the VAE config,
   so the UNet sees latents of unit variance.
2. **UNet** — a diffusers ``UNet2DConditionModel`` on the frozen VAE's scaled latents
   (``mode``, as DiffJSCC's training encodes), SD's noise schedule (1000 steps, scaled-linear
   β from 0.00085 to 0.012, ε-prediction), loss ``‖ε_θ(z_t, t, c) − ε‖²`` with the null text
   features c = zeros [B, 77, text_dim] (no captioned data exists here: the cross-attention
   layers are there so that the control module and a text encoder find SD's layout, but the
   base is trained unconditionally). The exported UNet is an EMA of the trained weights.

Crops are taken at the images' own scale (images smaller than ``crop`` are upscaled to it):
the restorer works on full-size photographs, so the models must learn textures at that scale.
Every random draw (per VAE step: crops, flips, posterior noise; per UNet step: crops, flips,
ε, t) comes from one seeded CPU generator per phase; each phase's generator state, optimizer
moments and training weights are saved in ``<out>/.vae-run/`` or ``<out>/.unet-run/``
(safetensors), so rerunning the command resumes where it stopped, with the same result as an
uninterrupted run (same machine and device).

Output folder (what :meth:`DiffJSCCPipeline.from_pretrained` and ``linksim train
diffjscc-control --base`` read)::

    vae/config.json, vae/diffusion_pytorch_model.safetensors     AutoencoderKL (with scaling_factor)
    unet/config.json, unet/diffusion_pytorch_model.safetensors   UNet2DConditionModel (EMA weights)
    scheduler/scheduler_config.json                              DDPMScheduler (the training schedule)
    config.json      {"kind": "diffjscc-base", "config": {"vae": ..., "unet": ...}, "training": settings,
                      "vae": {phase record}, "unet": {phase record}, ...}
    MODEL_CARD.md    command, data, steps, losses, wall time, what it can and cannot do
"""

from __future__ import annotations

import json
import math
import os
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
import torch.nn.functional as F

from linksim import zoo
from linksim.crops import ResizedCrops
from linksim.errors import ConfigError
from linksim.train.cards import ModelCard, command_row, hardware_words, loss_curve
from linksim.train.flags import setting
from linksim.train.loop import EMA, TrainLoop, autocast, device_words, machine_words, parameter_count, training_device

__all__ = ["BASE_KIND", "BaseSettings", "SCHEDULE", "model_card", "train_base"]

BASE_KIND = "diffjscc-base"
#: Stable Diffusion's training noise schedule
SCHEDULE = {"num_train_timesteps": 1000, "beta_start": 0.00085, "beta_end": 0.012, "beta_schedule": "scaled_linear",
            "prediction_type": "epsilon", "clip_sample": False}
#: null text features: the pipeline's length (linksim.restore.diffjscc.NULL_TEXT_LENGTH)
TEXT_LENGTH = 77
#: batches drawn to measure the latent standard deviation (scaling_factor)
SCALE_BATCHES = 8


@dataclass
class BaseSettings:
    """Everything that determines a base-model training run (stored in ``config.json``)."""

    data: list[str] = setting(help="training image folders (searched recursively) or files", nargs="+")
    crop: int = setting(128, help="training crop size (square, at the images' own scale), a multiple of the VAE "
                                  "factor times the UNet's 2^(levels − 1)")
    vae_channels: tuple[int, ...] = setting((64, 128, 128), help="VAE block_out_channels (factor 2^(n − 1))")
    latent_channels: int = setting(4, help="channels of the latent z")
    vae_layers: int = setting(1, help="VAE ResNet blocks per level")
    kl_weight: float = setting(1e-6, help="weight of the KL term of the VAE loss")
    vae_steps: int = setting(4000, help="VAE optimizer steps")
    vae_batch: int = setting(16, help="VAE crops per step")
    vae_lr: float = setting(2e-4, help="VAE peak Adam learning rate (cosine)")
    unet_channels: tuple[int, ...] = setting((64, 128, 192), help="UNet block_out_channels; cross-attention at "
                                                                  "every level but the first (SD's layout)")
    unet_layers: int = setting(1, help="UNet ResNet blocks per level")
    text_dim: int = setting(64, help="the UNet's cross_attention_dim (the width of text features)")
    unet_steps: int = setting(8000, help="UNet optimizer steps")
    unet_batch: int = setting(32, help="UNet crops per step")
    unet_lr: float = setting(2e-4, help="UNet peak AdamW learning rate (cosine)")
    ema: float = setting(0.999, help="EMA decay of the exported UNet weights (0: export the trained weights)")
    seed: int = setting(0, help="seed of the weights and of every draw (the UNet phase uses seed + 1)")
    save_every: int = setting(500, help="steps between resumable saves")
    bf16: bool = setting(False, help="bfloat16 autocast for the forward passes (for CUDA)")

    def __post_init__(self):
        if not self.data or isinstance(self.data, (str, os.PathLike)):
            raise ConfigError("data", self.data, "a list of one or more image folders or files")
        self.data = [str(d) for d in self.data]
        for name in ("vae_channels", "unet_channels"):
            v = tuple(getattr(self, name))
            if len(v) < 2 or any(isinstance(c, bool) or not isinstance(c, int) or c < 8 or c % 8 for c in v):
                raise ConfigError(name, list(v), "two or more integers, each a multiple of 8 (block_out_channels)")
            setattr(self, name, v)
        for name in ("crop", "latent_channels", "vae_layers", "vae_steps", "vae_batch", "unet_layers", "text_dim",
                     "unet_steps", "unet_batch", "save_every"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ConfigError(name, v, "a positive integer")
        if isinstance(self.seed, bool) or not isinstance(self.seed, int):
            raise ConfigError("seed", self.seed, "an integer")
        need = self.factor * 2 ** (len(self.unet_channels) - 1)
        if self.crop % need:
            raise ConfigError("crop", self.crop, f"a multiple of {need} (the VAE factor {self.factor} × the UNet's "
                                                 f"{2 ** (len(self.unet_channels) - 1)})")
        for name in ("vae_lr", "unet_lr"):
            v = getattr(self, name)
            if isinstance(v, bool) or not (isinstance(v, (int, float)) and math.isfinite(v) and v > 0):
                raise ConfigError(name, v, "a positive learning rate")
            setattr(self, name, float(v))
        if isinstance(self.kl_weight, bool) or not (isinstance(self.kl_weight, (int, float)) and self.kl_weight >= 0):
            raise ConfigError("kl_weight", self.kl_weight, "a number ≥ 0")
        if isinstance(self.ema, bool) or not (isinstance(self.ema, (int, float)) and 0 <= self.ema < 1):
            raise ConfigError("ema", self.ema, "a decay in [0, 1) (0: no EMA)")
        if not isinstance(self.bf16, bool):
            raise ConfigError("bf16", self.bf16, "true or false")
        self.kl_weight, self.ema = float(self.kl_weight), float(self.ema)

    @property
    def factor(self) -> int:
        """The VAE's spatial factor f."""
        return 2 ** (len(self.vae_channels) - 1)

    def vae_config(self) -> dict:
        """``AutoencoderKL`` keyword arguments."""
        n = len(self.vae_channels)
        return {"in_channels": 3, "out_channels": 3, "latent_channels": self.latent_channels,
                "block_out_channels": list(self.vae_channels), "layers_per_block": self.vae_layers,
                "down_block_types": ["DownEncoderBlock2D"] * n, "up_block_types": ["UpDecoderBlock2D"] * n,
                "norm_num_groups": math.gcd(32, *self.vae_channels), "sample_size": self.crop}

    def unet_config(self) -> dict:
        """``UNet2DConditionModel`` keyword arguments (SD's block types, one level shorter)."""
        n = len(self.unet_channels)
        down = ["DownBlock2D"] + ["CrossAttnDownBlock2D"] * (n - 1)
        return {"sample_size": self.crop // self.factor, "in_channels": self.latent_channels,
                "out_channels": self.latent_channels, "block_out_channels": list(self.unet_channels),
                "layers_per_block": self.unet_layers, "down_block_types": down,
                "up_block_types": [d.replace("Down", "Up") for d in reversed(down)],
                "cross_attention_dim": self.text_dim, "attention_head_dim": 8,
                "norm_num_groups": math.gcd(32, *self.unet_channels)}

    def to_dict(self) -> dict:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}


# ----------------------------------------------------------------------------- files

def _write_json(path: Path, data: dict) -> None:
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(data, indent=2) + "\n")
    tmp.replace(path)


def _save_component(model, folder: Path) -> None:
    """``save_pretrained`` into a sibling temporary folder, then swapped in (never half-written)."""
    tmp = folder.with_name(f".{folder.name}.tmp")
    model.save_pretrained(tmp, safe_serialization=True)
    old = folder.with_name(f".{folder.name}.old")
    if folder.exists():
        folder.rename(old)
    tmp.rename(folder)
    if old.exists():
        shutil.rmtree(old)


def _remove_if_empty(folder: Path) -> None:
    if folder.is_dir() and not any(folder.iterdir()):
        folder.rmdir()


def _record(out: Path) -> dict:
    return json.loads((out / zoo.CONFIG).read_text()) if (out / zoo.CONFIG).is_file() else {}


# ----------------------------------------------------------------------------- phases

def _train_vae(settings: BaseSettings, out: Path, crops: ResizedCrops, device, record: dict, save_record,
               progress: bool, keep_state: bool, stop_after: int | None) -> int:
    """Phase 1; returns the steps this call ran. Writes ``vae/`` (with its scaling factor) at the end."""
    from diffusers import AutoencoderKL

    run_dir = out / ".vae-run"
    phase = record.setdefault("vae", {"step": 0, "history": [], "wall_seconds": 0.0})
    if phase.get("done"):
        return 0
    torch.manual_seed(settings.seed)  # weight initialization; every draw below uses `gen`
    vae = AutoencoderKL(**settings.vae_config()).to(device)
    gen = torch.Generator().manual_seed(settings.seed)
    params = list(vae.parameters())
    opt = torch.optim.Adam(params, lr=settings.vae_lr)
    loop = TrainLoop(state_dir=run_dir, steps=settings.vae_steps, lr=settings.vae_lr, save_every=settings.save_every,
                     opt=opt, gen=gen, params=params, weights=vae, history=phase["history"],
                     elapsed=phase["wall_seconds"])
    run_dir.mkdir(parents=True, exist_ok=True)
    phase["parameters"] = parameter_count(vae)
    side = settings.crop // settings.factor

    def train_step(step: int):
        x = crops.sample(settings.vae_batch, gen).to(device) * 2 - 1
        eps = torch.randn((settings.vae_batch, settings.latent_channels, side, side), generator=gen).to(device)
        with autocast(device, settings.bf16):
            posterior = vae.encode(x).latent_dist
            z = posterior.mean + posterior.std * eps
            recon = vae.decode(z).sample
        mse = F.mse_loss(recon.float(), x)
        kl = posterior.kl().float().mean() / x[0].numel()  # per pixel value, like the MSE
        return mse + settings.kl_weight * kl, mse  # the history records the reconstruction MSE

    def write(final: bool) -> None:
        phase.update(step=loop.step, history=loop.history, wall_seconds=round(loop.elapsed, 1))
        save_record()

    def scale_latents() -> None:
        vae.eval()
        with torch.no_grad():  # SD's scaling: unit-variance latents for the UNet (fresh draws from `gen`)
            zs = [vae.encode(crops.sample(settings.vae_batch, gen).to(device) * 2 - 1).latent_dist.mode()
                  for _ in range(SCALE_BATCHES)]
            std = torch.cat(zs).float().std().item()
            x = crops.sample(settings.vae_batch, gen).to(device)
            rec = ((vae.decode(vae.encode(x * 2 - 1).latent_dist.mode()).sample + 1) / 2).clamp(0, 1)
            psnr = (-10 * torch.log10(((rec - x) ** 2).mean(dim=(1, 2, 3)))).mean().item()
        vae.register_to_config(scaling_factor=1.0 / std)
        _save_component(vae, out / "vae")
        phase.update(done=True, latent_std=round(std, 5), scaling_factor=round(1.0 / std, 6),
                     crop_psnr_db=round(psnr, 2))

    vae.train()
    ran = loop.run(train_step, write, stop_after=stop_after, progress=progress, desc=f"train {out.name} (vae)")
    if loop.finish(write, keep_state, before=scale_latents):
        _remove_if_empty(run_dir)
    return ran


def _train_unet(settings: BaseSettings, out: Path, crops: ResizedCrops, device, record: dict, save_record,
                progress: bool, keep_state: bool, stop_after: int | None) -> None:
    """Phase 2 on the frozen VAE in ``out/vae``; writes ``unet/`` (EMA) at every save."""
    from diffusers import AutoencoderKL, DDPMScheduler, UNet2DConditionModel

    run_dir = out / ".unet-run"
    phase = record.setdefault("unet", {"step": 0, "history": [], "wall_seconds": 0.0})
    if phase.get("done"):
        return
    vae = AutoencoderKL.from_pretrained(out / "vae", low_cpu_mem_usage=False).to(device).requires_grad_(False).eval()
    scale = float(vae.config.scaling_factor)
    scheduler = DDPMScheduler(**SCHEDULE)
    torch.manual_seed(settings.seed + 1)  # weight initialization; every draw below uses `gen`
    unet = UNet2DConditionModel(**settings.unet_config()).to(device)
    ema = EMA(unet, settings.ema)
    gen = torch.Generator().manual_seed(settings.seed + 1)
    params = list(unet.parameters())
    opt = torch.optim.AdamW(params, lr=settings.unet_lr, weight_decay=0.0)
    loop = TrainLoop(state_dir=run_dir, steps=settings.unet_steps, lr=settings.unet_lr,
                     save_every=settings.save_every, opt=opt, gen=gen, params=params, weights=unet, ema=ema,
                     history=phase["history"], elapsed=phase["wall_seconds"])
    if loop.resumed:
        ema.load(out / "unet" / "diffusion_pytorch_model.safetensors")
    run_dir.mkdir(parents=True, exist_ok=True)
    scheduler.save_pretrained(out / "scheduler")
    alphas = scheduler.alphas_cumprod.to(device)
    text = torch.zeros(settings.unet_batch, TEXT_LENGTH, settings.text_dim, device=device)
    phase["parameters"] = parameter_count(unet)

    def train_step(step: int):
        x = crops.sample(settings.unet_batch, gen).to(device)
        with torch.no_grad(), autocast(device, settings.bf16):
            z0 = vae.encode(x * 2 - 1).latent_dist.mode().float() * scale
        noise = torch.randn(z0.shape, generator=gen).to(device)
        t = torch.randint(0, SCHEDULE["num_train_timesteps"], (settings.unet_batch,), generator=gen).to(device)
        a = alphas[t].view(-1, 1, 1, 1)
        z_t = a.sqrt() * z0 + (1 - a).sqrt() * noise
        with autocast(device, settings.bf16):
            pred = unet(z_t, t, text).sample
        loss = F.mse_loss(pred.float(), noise)
        return loss, loss

    def write(final: bool) -> None:
        _save_component(ema.model, out / "unet")
        phase.update(step=loop.step, history=loop.history, wall_seconds=round(loop.elapsed, 1), done=final)
        save_record()

    unet.train()
    loop.run(train_step, write, stop_after=stop_after, progress=progress, desc=f"train {out.name} (unet)")
    if loop.finish(write, keep_state):
        _remove_if_empty(run_dir)


# ----------------------------------------------------------------------------- entry point

def train_base(settings: BaseSettings, out: str | Path, *, command: str = "", progress: bool = True,
               keep_state: bool = False, stop_after: int | None = None, device: str = "cpu") -> dict:
    """Train (or resume) a base latent diffusion model into ``out``; returns its ``config.json``.

    :param stop_after: end this call after that many steps (over both phases; saved, resumable).
    :param device: where the models train ('cpu', 'cuda', 'cuda:N'); draws stay on the CPU generator.
    :raises ConfigError: field ``out`` (a folder holding a run with other settings), ``device``.
    """
    out = Path(out)
    device = training_device(device)
    record = _record(out)
    if record and record.get("training") != settings.to_dict():
        raise ConfigError("out", str(out), "an empty folder or one holding a run with the same settings "
                                           f"(this one was made with other settings; see its {zoo.CONFIG})")
    if record.get("unet", {}).get("done"):
        return record
    out.mkdir(parents=True, exist_ok=True)
    crops = ResizedCrops(settings.data, settings.crop, progress=progress, keep_scale=True)
    record.update({"kind": BASE_KIND, "config": {"vae": settings.vae_config(), "unet": settings.unet_config()},
                   "training": settings.to_dict(), "scheduler": SCHEDULE, "data_images": len(crops),
                   "threads": torch.get_num_threads(), "machine": machine_words(), "device": device_words(device),
                   "command": command})

    def save_record() -> None:
        _write_json(out / zoo.CONFIG, record)
        (out / zoo.CARD).write_text(model_card(record, out.name).text())

    ran = _train_vae(settings, out, crops, device, record, save_record, progress, keep_state, stop_after)
    left = None if stop_after is None else stop_after - ran
    if record["vae"].get("done") and (left is None or left > 0):
        _train_unet(settings, out, crops, device, record, save_record, progress, keep_state, left)
    return _record(out)


def model_card(record: dict, name: str) -> ModelCard:
    """The model card of a base model: what it is, how it was trained, what it can and cannot do."""
    s, vae, unet = record["training"], record.get("vae", {}), record.get("unet", {})
    f = 2 ** (len(s["vae_channels"]) - 1)
    intro = ["A small latent diffusion base model trained by linksim (`linksim train diffjscc-base`, "
             "`linksim/train/diffjscc_base.py`) as the frozen base of DiffJSCC's control module, because no "
             "Stable Diffusion weights can be downloaded where linksim is developed. Diffusers layout "
             "(`vae/`, `unet/`, `scheduler/`); `DiffJSCCPipeline.from_pretrained` loads it."]
    what = [f"- VAE: AutoencoderKL, factor {f}, {s['latent_channels']} latent channels, block_out_channels "
            f"{s['vae_channels']}, {vae.get('parameters', 0):,} parameters; latent scaling factor "
            f"{vae.get('scaling_factor', '—')}",
            f"- UNet: UNet2DConditionModel, block_out_channels {s['unet_channels']}, cross-attention width "
            f"{s['text_dim']}, {unet.get('parameters', 0):,} parameters; EMA {s['ema']:g}",
            f"- schedule: DDPM, {SCHEDULE['num_train_timesteps']} steps, scaled-linear β "
            f"{SCHEDULE['beta_start']}–{SCHEDULE['beta_end']} (SD's), ε-prediction",
            "- text: trained with null text features only (no captioned data); the cross-attention layers keep "
            "SD's layout but no text encoder is paired with this model"]
    training = [
        command_row(record),
        f"- data: {', '.join(s['data'])} ({record.get('data_images', '?')} images, random {s['crop']}² crops at "
        "their own scale, horizontal flips)",
        f"- hardware: {hardware_words(record)}" + (", bfloat16 autocast" if s["bf16"] else ""),
        f"- VAE: {vae.get('step', 0)} of {s['vae_steps']} steps × batch {s['vae_batch']}, Adam lr {s['vae_lr']:g} "
        f"cosine, loss MSE + {s['kl_weight']:g}·KL; {vae.get('wall_seconds', 0) / 60:.1f} min"
        + (f"; reconstruction PSNR on training crops {vae['crop_psnr_db']} dB" if "crop_psnr_db" in vae else ""),
        f"- UNet: {unet.get('step', 0)} of {s['unet_steps']} steps × batch {s['unet_batch']}, AdamW lr "
        f"{s['unet_lr']:g} cosine, ε-MSE; {unet.get('wall_seconds', 0) / 60:.1f} min",
        f"- seed {s['seed']}"]
    for label, phase in (("VAE (MSE)", vae), ("UNet (ε-MSE)", unet)):
        if phase.get("history"):
            training += ["", f"### Loss curve, {label}", "", *loss_curve(phase["history"], rows=8)]
    limits = [
        "- It is a few million parameters trained for minutes on a few hundred photographs: its unconditional "
        "samples are texture-like, not scenes. It is a *base for a control module*, which supplies the image "
        "content from the DeepJSCC output; it is not a substitute for Stable Diffusion, and numbers obtained "
        "with it say how the DiffJSCC mechanism behaves, not how the paper's model performs.",
        "- The VAE bounds what any restoration through it can reach (its reconstruction PSNR above)."]
    return ModelCard(name, intro, [("What it is", what), ("Training", training), ("What it can and cannot do", limits)])
