"""Training a small pixel-space diffusion prior (``linksim train prior``).

A DDPM (Ho et al. 2020) on ``size``×``size`` RGB images: a diffusers ``UNet2DModel``
predicts the noise ε of ``x_t = √ᾱ_t x₀ + √(1−ᾱ_t) ε`` (x₀ in [−1, 1]) under the standard
``DDPMScheduler`` schedule (1000 steps, linear β from 1e-4 to 0.02), loss ‖ε_θ(x_t, t) − ε‖²
with t uniform. Data: every image is resized once so that its shorter side is ``size``
(bicubic, antialiased), then each draw is a random ``size``×``size`` crop with a random
horizontal flip (no vertical flips: a prior of upright photographs or faces must not learn
upside-down ones). Adam with a cosine learning-rate schedule (2 % linear warm-up), gradient
norm clipped at 1, and an exponential moving average (EMA) of the weights, which is what is
exported (the usual DDPM practice; ``ema: 0`` exports the trained weights themselves).

Every random draw (crops, flips, noise, timesteps) comes from one seeded CPU generator whose
state is saved with the optimizer moments and the training weights in
``train_state.safetensors`` (never a pickle), so an interrupted run resumes where it stopped
and ends with the same weights as an uninterrupted one (same machine, device and thread
count). Rerunning with other settings is refused.

Output folder — a diffusers pipeline folder (``DDPMPipeline.from_pretrained`` loads it,
:func:`linksim.restore.load_prior` too) plus linksim's checkpoint files (DESIGN.md §6)::

    model_index.json                          the diffusers pipeline index (DDPMPipeline)
    unet/config.json                          the UNet2DModel architecture
    unet/diffusion_pytorch_model.safetensors  the (EMA) weights
    scheduler/scheduler_config.json           the training noise schedule
    config.json                               {"kind": "ddpm-prior", "config": <UNet config>, "training": ...}
    MODEL_CARD.md                             command, data, steps, wall time, what it can and cannot do
    samples.png                               optional: unconditional samples (``samples=N``)

Put the folder under ``linksim/checkpoints/<name>/`` or ``$LINKSIM_CHECKPOINTS/<name>/`` and
``prior: <name>`` works in a scenario (:func:`linksim.zoo.resolve_prior`).

This module imports nothing from ``channel``, ``digital`` or ``jscc`` (DESIGN.md §3).
"""

from __future__ import annotations

import copy
import json
import math
import os
import platform
import shutil
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from linksim import zoo
from linksim.data import image_files, read_image
from linksim.errors import ConfigError
from linksim.train_common import STATE, cosine_lr, load_train_state, save_train_state

__all__ = ["PriorSettings", "ResizedCrops", "train_prior", "write_prior_card"]
#: the noise schedule every prior trained here uses
SCHEDULE = {"num_train_timesteps": 1000, "beta_start": 1e-4, "beta_end": 0.02, "beta_schedule": "linear",
            "prediction_type": "epsilon", "clip_sample": True, "clip_sample_range": 1.0}


@dataclass
class PriorSettings:
    """Everything that determines a prior's training run (stored in ``config.json``).

    :ivar data: image folders (searched recursively) or files.
    :ivar size: the prior's resolution (square), a multiple of 2^(len(channels) − 1).
    :ivar channels: the UNet's ``block_out_channels``, one per resolution level.
    :ivar layers_per_block: ResNet blocks per level.
    :ivar attention_res: self-attention at the levels whose resolution is ≤ this (0: none).
    :ivar ema: EMA decay of the exported weights (0: export the trained weights).
    """

    data: list[str]
    size: int = 64
    channels: tuple[int, ...] = (32, 64, 128, 128)
    layers_per_block: int = 2
    attention_res: int = 16
    steps: int = 20000
    batch: int = 16
    lr: float = 2e-4
    ema: float = 0.999
    seed: int = 0
    save_every: int = 250
    bf16: bool = False

    def __post_init__(self):
        if not self.data:
            raise ConfigError("data", self.data, "one or more image folders or files")
        self.data = [str(d) for d in self.data]
        self.channels = tuple(self.channels)
        if not self.channels or any(isinstance(c, bool) or not isinstance(c, int) or c < 1 for c in self.channels):
            raise ConfigError("channels", list(self.channels), "one or more positive integers (block_out_channels)")
        for name in ("size", "layers_per_block", "steps", "batch", "save_every"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ConfigError(name, v, "a positive integer")
        factor = 2 ** (len(self.channels) - 1)
        if self.size % factor:
            raise ConfigError("size", self.size, f"a multiple of {factor} (the UNet halves the resolution "
                                                 f"{len(self.channels) - 1} times with {len(self.channels)} channel levels)")
        if isinstance(self.attention_res, bool) or not isinstance(self.attention_res, int) or self.attention_res < 0:
            raise ConfigError("attention_res", self.attention_res, "an integer ≥ 0 (0: no attention)")
        if not (isinstance(self.lr, (int, float)) and math.isfinite(self.lr) and self.lr > 0):
            raise ConfigError("lr", self.lr, "a positive learning rate")
        if not (isinstance(self.ema, (int, float)) and 0 <= self.ema < 1):
            raise ConfigError("ema", self.ema, "a decay in [0, 1) (0: no EMA)")
        self.lr, self.ema = float(self.lr), float(self.ema)

    def unet_config(self) -> dict:
        """The ``UNet2DModel`` keyword arguments."""
        down, resolution = [], self.size
        for level in range(len(self.channels)):
            down.append("AttnDownBlock2D" if resolution <= self.attention_res else "DownBlock2D")
            if level < len(self.channels) - 1:
                resolution //= 2
        return {"sample_size": self.size, "in_channels": 3, "out_channels": 3,
                "layers_per_block": self.layers_per_block, "block_out_channels": list(self.channels),
                "down_block_types": down, "up_block_types": [d.replace("Down", "Up") for d in reversed(down)],
                "norm_num_groups": math.gcd(32, *self.channels)}

    def to_dict(self) -> dict:
        d = asdict(self)
        return {k: list(v) if isinstance(v, tuple) else v for k, v in d.items()}


# ----------------------------------------------------------------------------- data

class ResizedCrops:
    """Images resized once (shorter side = ``size``), drawn as random ``size``² crops with
    random horizontal flips. ``keep_scale``: resize only images whose shorter side is below
    ``size`` (crops then show the photographs at their own scale).

    :output of ``sample(batch, generator)``: float32 [batch, 3, size, size] in [0, 1].
    """

    def __init__(self, paths: list[str], size: int, progress: bool = False, keep_scale: bool = False):
        from PIL import Image

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
        s = self.size
        idx = torch.randint(len(self.images), (batch,), generator=generator).tolist()
        draws = torch.rand(batch, 3, generator=generator).tolist()
        out = torch.empty(batch, 3, s, s, dtype=torch.uint8)
        for b, (i, (u_top, u_left, u_flip)) in enumerate(zip(idx, draws)):
            img = self.images[i]
            top = int(u_top * (img.shape[1] - s + 1))
            left = int(u_left * (img.shape[2] - s + 1))
            patch = img[:, top:top + s, left:left + s]
            out[b] = patch.flip(2) if u_flip < 0.5 else patch
        return out.float() / 255


# ----------------------------------------------------------------------------- state

def _save_folder(export: torch.nn.Module, scheduler, out: Path, meta: dict, card: str) -> None:
    """Write the pipeline folder + config.json + MODEL_CARD.md: into a temporary sibling
    first, then moved into place file by file (each replacement atomic)."""
    import diffusers

    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}-", dir=out.parent))
    try:
        export.save_pretrained(tmp / "unet", safe_serialization=True)
        scheduler.save_pretrained(tmp / "scheduler")
        index = {"_class_name": "DDPMPipeline", "_diffusers_version": diffusers.__version__,
                 "scheduler": ["diffusers", "DDPMScheduler"], "unet": ["diffusers", "UNet2DModel"]}
        (tmp / "model_index.json").write_text(json.dumps(index, indent=2) + "\n")
        (tmp / zoo.CONFIG).write_text(json.dumps(meta, indent=2) + "\n")
        (tmp / zoo.CARD).write_text(card)
        if not out.is_dir():
            os.replace(tmp, out)
            return
        for file in sorted(p for p in tmp.rglob("*") if p.is_file()):
            target = out / file.relative_to(tmp)
            target.parent.mkdir(parents=True, exist_ok=True)
            os.replace(file, target)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


# ----------------------------------------------------------------------------- training

def train_prior(settings: PriorSettings, out: str | Path, *, command: str = "", progress: bool = True,
                keep_state: bool = False, stop_after: int | None = None, device: str | torch.device = "cpu",
                samples: int = 0) -> dict:
    """Train (or resume) a diffusion prior into ``out``; returns the ``config.json`` written.

    :param stop_after: end this call after that many steps (saved, resumable) — for tests
        and notebooks.
    :param device: where the UNet trains (draws stay on the CPU generator).
    :param samples: at the end, draw this many unconditional samples (100 DDPM steps) into
        ``samples.png`` (0: none).
    :raises ConfigError: field ``out`` — a folder holding a run with other settings or a
        finished prior of other settings; field ``data`` — no images.
    """
    from diffusers import DDPMScheduler, UNet2DModel

    out = Path(out)
    try:
        device = torch.device(device)
    except (RuntimeError, TypeError):
        raise ConfigError("device", device, "'cpu', 'cuda' or 'cuda:N'") from None
    if device.type not in ("cpu", "cuda") or (device.type == "cuda" and not torch.cuda.is_available()):
        raise ConfigError("device", str(device), "'cpu'" + (", 'cuda' or 'cuda:N'" if torch.cuda.is_available() else
                                                            " (no CUDA device is available here)"))
    if isinstance(samples, bool) or not isinstance(samples, int) or samples < 0:
        raise ConfigError("samples", samples, "an integer ≥ 0")
    threads = torch.get_num_threads()
    meta = {"kind": zoo.PRIOR_KIND, "config": settings.unet_config(), "scheduler": SCHEDULE,
            "training": settings.to_dict()}
    if (out / zoo.CONFIG).is_file() and not (out / STATE).exists():
        saved = zoo.read_config(out)
        if saved.get("training") == settings.to_dict() and saved.get("step") == settings.steps:
            return saved  # already complete
        raise ConfigError("out", str(out), "an empty folder or one holding an unfinished run with the same settings "
                                           "(it holds a finished checkpoint; choose another --out)")
    if (out / STATE).exists() and zoo.read_config(out).get("training") != settings.to_dict():
        raise ConfigError("out", str(out), "an empty folder or one holding a run with the same settings "
                                           "(this one was started with different settings; see its config.json)")

    crops = ResizedCrops(settings.data, settings.size, progress=progress)
    scheduler = DDPMScheduler(**SCHEDULE)
    torch.manual_seed(settings.seed)  # weight initialization only; every draw below uses `gen`
    unet = UNet2DModel(**settings.unet_config()).to(device)
    ema = copy.deepcopy(unet).requires_grad_(False) if settings.ema > 0 else unet
    gen = torch.Generator().manual_seed(settings.seed)
    opt = torch.optim.Adam(unet.parameters(), lr=settings.lr)
    alphas = scheduler.alphas_cumprod.to(device)

    step, history, elapsed = 0, [], 0.0
    if (out / STATE).exists():
        saved = zoo.read_config(out)
        step, history = load_train_state(out, opt, gen, model=unet)
        if ema is not unet:
            from safetensors.torch import load_file

            weights = load_file(str(out / zoo.PRIOR_WEIGHTS))
            zoo.check_state(ema, weights, str(out / zoo.PRIOR_WEIGHTS))
            ema.load_state_dict(weights)
        elapsed = saved.get("wall_seconds", 0.0)

    n_params = sum(p.numel() for p in unet.parameters())
    loss_sum, loss_n = 0.0, 0

    def save(final: bool) -> None:
        nonlocal loss_sum, loss_n
        if loss_n:
            history.append({"step": step, "loss": round(loss_sum / loss_n, 6), "steps": loss_n})
            loss_sum, loss_n = 0.0, 0
        meta.update(step=step, wall_seconds=round(elapsed, 1), threads=threads, device=str(device),
                    machine=platform.processor() or platform.machine(), parameters=n_params, history=history,
                    data_images=len(crops), command=command)
        _save_folder(ema, scheduler, out, meta, write_prior_card(meta, out.name))
        if not final:
            save_train_state(out, step, opt, gen, history, model=unet)

    bar = tqdm(total=settings.steps, initial=step, desc=f"train {out.name}", unit="step",
               disable=not progress, dynamic_ncols=True)
    session_steps, t0 = 0, time.perf_counter()
    unet.train()
    while step < settings.steps and (stop_after is None or session_steps < stop_after):
        x0 = crops.sample(settings.batch, gen) * 2 - 1
        noise = torch.randn(x0.shape, generator=gen)
        t = torch.randint(0, SCHEDULE["num_train_timesteps"], (settings.batch,), generator=gen)
        x0, noise, t = x0.to(device), noise.to(device), t.to(device)
        a = alphas[t].view(-1, 1, 1, 1)
        x_t = a.sqrt() * x0 + (1 - a).sqrt() * noise
        for group in opt.param_groups:
            group["lr"] = cosine_lr(step, settings.steps, settings.lr)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=settings.bf16):
            pred = unet(x_t, t).sample
        loss = torch.nn.functional.mse_loss(pred.float(), noise)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(unet.parameters(), 1.0)
        opt.step()
        if ema is not unet:
            decay = min(settings.ema, (1 + step) / (10 + step))
            with torch.no_grad():
                for p_ema, p in zip(ema.parameters(), unet.parameters()):
                    p_ema.lerp_(p.detach(), 1.0 - decay)
                for b_ema, b in zip(ema.buffers(), unet.buffers()):
                    b_ema.copy_(b)
        step += 1
        session_steps += 1
        loss_sum, loss_n = loss_sum + loss.item(), loss_n + 1
        bar.update()
        bar.set_postfix(loss=f"{loss.item():.4f}")
        elapsed += time.perf_counter() - t0
        t0 = time.perf_counter()
        if step % settings.save_every == 0 or step == settings.steps or session_steps == stop_after:
            save(final=False)
    bar.close()
    if step == settings.steps:
        if samples:
            _write_samples(ema, scheduler, out / "samples.png", samples, settings.seed, progress)
            meta["samples"] = {"file": "samples.png", "count": samples, "sampler": "DDPM, 100 respaced steps",
                               "seed": settings.seed}
        save(final=True)
        if not keep_state:
            (out / STATE).unlink(missing_ok=True)
    return zoo.read_config(out)


def _write_samples(unet, scheduler, path: Path, count: int, seed: int, progress: bool) -> None:
    """``count`` unconditional samples (100 respaced DDPM steps) tiled into one PNG."""
    from PIL import Image

    from linksim.restore.core import RestorationCore
    from linksim.seeding import point_generator

    unet.eval()
    core = RestorationCore(unet, scheduler)
    gens = [point_generator(seed, "prior-samples", i) for i in range(count)]
    with torch.no_grad():
        x = core.sample(gens, num_inference_steps=100, progress=progress)
    tiles = ((x.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).cpu().permute(0, 2, 3, 1).numpy()
    cols = min(count, 8)
    rows = -(-count // cols)
    h, w = tiles.shape[1:3]
    sheet = np.full((rows * h, cols * w, 3), 255, np.uint8)
    for i, tile in enumerate(tiles):
        r, c = divmod(i, cols)
        sheet[r * h:(r + 1) * h, c * w:(c + 1) * w] = tile
    Image.fromarray(sheet).save(path)


# ----------------------------------------------------------------------------- model card

def write_prior_card(meta: dict, name: str) -> str:
    """Markdown model card of a prior from its ``config.json`` content."""
    cfg, tr = meta["config"], meta.get("training", {})
    size, n_params = cfg["sample_size"], meta.get("parameters", 0)
    hist = meta.get("history") or []
    attention = [b for b in cfg["down_block_types"] if b.startswith("Attn")]
    lines = [f"# {name}", "",
             f"An unconditional pixel-space diffusion prior (DDPM, ε-prediction) on **{size}×{size} RGB** images: a "
             f"diffusers `UNet2DModel` (block_out_channels {list(cfg['block_out_channels'])}, "
             f"{cfg['layers_per_block']} ResNet block(s) per level, self-attention at "
             f"{len(attention)} of {len(cfg['down_block_types'])} levels), {n_params:,} parameters "
             f"({n_params * 4 / 2**20:.1f} MiB float32), and the `DDPMScheduler` schedule it was trained with "
             f"(1000 steps, linear β 1e-4…0.02).", "",
             "## Training", "",
             f"- command: `{meta.get('command') or '(python API)'}`",
             f"- data: {', '.join(tr.get('data', []))} — {meta.get('data_images', '?')} image(s), each resized to a "
             f"shorter side of {size} px, random {size}×{size} crops with horizontal flips",
             f"- {meta.get('step', 0)} of {tr.get('steps')} steps, batch {tr.get('batch')}, Adam lr {tr.get('lr')} "
             f"(cosine, 2 % warm-up), gradient norm clipped at 1, "
             + (f"EMA {tr.get('ema')} (the exported weights)" if tr.get("ema") else "no EMA")
             + f", {'bfloat16 autocast' if tr.get('bf16') else 'float32'}, seed {tr.get('seed')}",
             f"- wall time {meta.get('wall_seconds', 0) / 60:.1f} min on {meta.get('device', 'cpu')} "
             f"({meta.get('threads', '?')} CPU thread(s), {meta.get('machine', '')})"]
    if hist:
        lines.append(f"- training loss (ε-MSE, mean over the last {hist[-1]['steps']} step(s)): {hist[-1]['loss']:.4f}"
                     + (f"; first recorded {hist[0]['loss']:.4f} at step {hist[0]['step']}" if len(hist) > 1 else ""))
    if meta.get("samples"):
        s = meta["samples"]
        lines.append(f"- `{s['file']}`: {s['count']} unconditional samples ({s['sampler']}, seed {s['seed']})")
    lines += ["", "## What it can and cannot do", "",
              f"- It generates and restores only {size}×{size} RGB images: a scenario whose images have another "
              "size is refused (crop or resize them, or train a prior at that size).",
              f"- It knows only what {meta.get('data_images', '?')} training image(s) and {meta.get('step', 0)} "
              "steps taught it. The detail it adds in DDNM's null space is drawn from that model, not recovered "
              "from the transmitted image; a prior trained briefly on a CPU can be a weak model of its data, so "
              "judge it by its unconditional samples (`samples.png`, `--samples N`) and by the restored images "
              "of a scenario, not by published priors trained on far more data and compute.",
              "- It is unconditional: no class, text or SNR input. SING-Zero supplies the measurement through the "
              "linear operator A at every sampling step.",
              "- With σ_y = 0, SING-Zero's output satisfies A x̃ = A x̂ whatever the prior; the prior decides only "
              "the null space of A (the detail A averages away).", "",
              "## Use", "",
              "In a scenario:", "", "```yaml",
              "restorers:", f"  - {{type: sing-zero, prior: {name}, operator: avgpool4, steps: 100}}", "```", "",
              "```python", "from linksim.restore import DDNMRestorer, load_prior", "from linksim.zoo import resolve_prior",
              f"prior = load_prior(resolve_prior({name!r}))  # or the folder's path; diffusers: "
              "DDPMPipeline.from_pretrained(path)",
              "restorer = DDNMRestorer(prior.unet, prior.scheduler, 'avgpool4', steps=100)",
              "x_tilde = restorer.restore(x_hat, snr_db, generators)", "```", ""]
    return "\n".join(lines)
