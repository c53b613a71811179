"""Training a small pixel-space diffusion prior (``linksim train prior``).

A DDPM (Ho et al. 2020) on ``size``×``size`` RGB images: a diffusers ``UNet2DModel``
predicts the noise ε of ``x_t = √ᾱ_t x₀ + √(1−ᾱ_t) ε`` (x₀ in [−1, 1]) under the standard
``DDPMScheduler`` schedule (1000 steps, linear β from 1e-4 to 0.02), loss ‖ε_θ(x_t, t) − ε‖²
with t uniform. Data: every image is resized once so that its shorter side is ``size``
(bicubic, antialiased), then each draw is a random ``size``×``size`` crop with a random
horizontal flip (:class:`~linksim.crops.ResizedCrops`). Adam with a cosine learning-rate
schedule (2 % linear warm-up), gradient norm clipped at 1, and an exponential moving
average (EMA) of the weights, which is what is exported (the usual DDPM practice; ``ema: 0``
exports the trained weights themselves).

Every random draw (per step: crops and flips, noise, timesteps) comes from one seeded CPU
generator whose state is saved with the optimizer moments and the training weights in
``train_state.safetensors`` (never a pickle), so an interrupted run resumes where it stopped
and ends with the same weights as an uninterrupted one (same machine, device and thread
count). Rerunning with other settings is refused.

Output folder — a diffusers pipeline folder (``DDPMPipeline.from_pretrained`` loads it,
:func:`linksim.restore.load_prior` too) plus linksim's checkpoint files (docs/ARCHITECTURE.md §6)::

    model_index.json                          the diffusers pipeline index (DDPMPipeline)
    unet/config.json                          the UNet2DModel architecture
    unet/diffusion_pytorch_model.safetensors  the (EMA) weights
    scheduler/scheduler_config.json           the training noise schedule
    config.json                               {"kind": "ddpm-prior", "config": <UNet config>, "training": ...}
    MODEL_CARD.md                             command, data, steps, wall time, what it can and cannot do
    samples.png                               optional: unconditional samples (``samples=N``)

Put the folder under ``linksim/checkpoints/<name>/`` or ``$LINKSIM_CHECKPOINTS/<name>/`` and
``prior: <name>`` works in a scenario (:func:`linksim.zoo.resolve_prior`).
"""

from __future__ import annotations

import json
import math
import os
import shutil
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

from linksim import zoo
from linksim.crops import ResizedCrops
from linksim.errors import ConfigError
from linksim.train.cards import ModelCard, command_row, wall_time_row
from linksim.train.flags import setting
from linksim.train.loop import EMA, TrainLoop, autocast, device_words, machine_words, parameter_count, training_device
from linksim.train.state import STATE

__all__ = ["PriorSettings", "SCHEDULE", "model_card", "train_prior"]

#: the noise schedule every prior trained here uses
SCHEDULE = {"num_train_timesteps": 1000, "beta_start": 1e-4, "beta_end": 0.02, "beta_schedule": "linear",
            "prediction_type": "epsilon", "clip_sample": True, "clip_sample_range": 1.0}


@dataclass
class PriorSettings:
    """Everything that determines a prior's training run (stored in ``config.json``)."""

    data: list[str] = setting(help="training image folders (searched recursively) or files", nargs="+")
    size: int = setting(64, help="the prior's resolution (square): shorter side resized to it, then square crops; "
                                 "a multiple of 2^(levels − 1)")
    channels: tuple[int, ...] = setting((32, 64, 128, 128),
                                        help="UNet block_out_channels, one per resolution level")
    layers_per_block: int = setting(2, help="ResNet blocks per level")
    attention_res: int = setting(16, help="self-attention at the levels whose resolution is ≤ this (0: none)")
    steps: int = setting(20000, help="optimizer steps")
    batch: int = setting(16, help="crops per step")
    lr: float = setting(2e-4, help="peak Adam learning rate (2 % warm-up, then cosine to lr/100)")
    ema: float = setting(0.999, help="EMA decay of the exported weights (0: export the trained weights)")
    seed: int = setting(0, help="seed of the weights and of every draw")
    save_every: int = setting(250, help="steps between resumable saves")
    bf16: bool = setting(False, help="bfloat16 autocast")

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
        finished prior of other settings; field ``data`` — no images; ``device``, ``samples``.
    """
    from diffusers import DDPMScheduler, UNet2DModel

    out = Path(out)
    device = training_device(device)
    if isinstance(samples, bool) or not isinstance(samples, int) or samples < 0:
        raise ConfigError("samples", samples, "an integer ≥ 0")
    meta = {"kind": zoo.PRIOR_KIND, "config": settings.unet_config(), "scheduler": SCHEDULE,
            "training": settings.to_dict()}
    if (out / zoo.CONFIG).is_file() and not (out / STATE).exists():
        saved = zoo.read_config(out)
        if saved.get("training") == settings.to_dict() and saved.get("step") == settings.steps:
            return saved  # already complete
        raise ConfigError("out", str(out), "an empty folder or one holding an unfinished run with the same settings "
                                           "(it holds a finished checkpoint; choose another --out)")
    elapsed = 0.0
    if (out / STATE).exists():
        saved = zoo.read_config(out)
        if saved.get("training") != settings.to_dict():
            raise ConfigError("out", str(out), "an empty folder or one holding a run with the same settings "
                                               "(this one was started with different settings; see its config.json)")
        elapsed = saved.get("wall_seconds", 0.0)

    crops = ResizedCrops(settings.data, settings.size, progress=progress)
    scheduler = DDPMScheduler(**SCHEDULE)
    torch.manual_seed(settings.seed)  # weight initialization only; every draw below uses `gen`
    unet = UNet2DModel(**settings.unet_config()).to(device)
    ema = EMA(unet, settings.ema)
    gen = torch.Generator().manual_seed(settings.seed)
    opt = torch.optim.Adam(unet.parameters(), lr=settings.lr)
    alphas = scheduler.alphas_cumprod.to(device)
    loop = TrainLoop(state_dir=out, steps=settings.steps, lr=settings.lr, save_every=settings.save_every, opt=opt,
                     gen=gen, params=unet.parameters(), weights=unet, ema=ema, elapsed=elapsed, loss_digits=6)
    if loop.resumed:
        ema.load(out / zoo.PRIOR_WEIGHTS)

    def train_step(step: int):
        x0 = crops.sample(settings.batch, gen) * 2 - 1
        noise = torch.randn(x0.shape, generator=gen)
        t = torch.randint(0, SCHEDULE["num_train_timesteps"], (settings.batch,), generator=gen)
        x0, noise, t = x0.to(device), noise.to(device), t.to(device)
        a = alphas[t].view(-1, 1, 1, 1)
        x_t = a.sqrt() * x0 + (1 - a).sqrt() * noise
        with autocast(device, settings.bf16):
            pred = unet(x_t, t).sample
        loss = torch.nn.functional.mse_loss(pred.float(), noise)
        return loss, loss

    def write(final: bool) -> None:
        meta.update(step=loop.step, wall_seconds=round(loop.elapsed, 1), threads=torch.get_num_threads(),
                    device=device_words(device), machine=machine_words(), parameters=parameter_count(unet),
                    history=loop.history, data_images=len(crops), command=command)
        _save_folder(ema.model, scheduler, out, meta, model_card(meta, out.name).text())

    def draw_samples() -> None:
        if samples:
            _write_samples(ema.model, scheduler, out / "samples.png", samples, settings.seed, progress)
            meta["samples"] = {"file": "samples.png", "count": samples, "sampler": "DDPM, 100 respaced steps",
                               "seed": settings.seed}

    unet.train()
    loop.run(train_step, write, stop_after=stop_after, progress=progress, desc=f"train {out.name}")
    loop.finish(write, keep_state, before=draw_samples)
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


def model_card(meta: dict, name: str) -> ModelCard:
    """The model card of a prior from its ``config.json`` content."""
    cfg, tr = meta["config"], meta.get("training", {})
    size, n_params = cfg["sample_size"], meta.get("parameters", 0)
    hist = meta.get("history") or []
    attention = [b for b in cfg["down_block_types"] if b.startswith("Attn")]
    intro = [f"An unconditional pixel-space diffusion prior (DDPM, ε-prediction) on **{size}×{size} RGB** images: a "
             f"diffusers `UNet2DModel` (block_out_channels {list(cfg['block_out_channels'])}, "
             f"{cfg['layers_per_block']} ResNet block(s) per level, self-attention at "
             f"{len(attention)} of {len(cfg['down_block_types'])} levels), {n_params:,} parameters "
             f"({n_params * 4 / 2**20:.1f} MiB float32), and the `DDPMScheduler` schedule it was trained with "
             f"(1000 steps, linear β 1e-4…0.02)."]
    training = [
        command_row(meta),
        f"- data: {', '.join(tr.get('data', []))} — {meta.get('data_images', '?')} image(s), each resized to a "
        f"shorter side of {size} px, random {size}×{size} crops with horizontal flips",
        f"- {meta.get('step', 0)} of {tr.get('steps')} steps, batch {tr.get('batch')}, Adam lr {tr.get('lr')} "
        f"(cosine, 2 % warm-up), gradient norm clipped at 1, "
        + (f"EMA {tr.get('ema')} (the exported weights)" if tr.get("ema") else "no EMA")
        + f", {'bfloat16 autocast' if tr.get('bf16') else 'float32'}, seed {tr.get('seed')}",
        wall_time_row(meta)]
    if hist:
        training.append(f"- training loss (ε-MSE, mean over the last {hist[-1]['steps']} step(s)): {hist[-1]['loss']:.4f}"
                        + (f"; first recorded {hist[0]['loss']:.4f} at step {hist[0]['step']}" if len(hist) > 1 else ""))
    if meta.get("samples"):
        s = meta["samples"]
        training.append(f"- `{s['file']}`: {s['count']} unconditional samples ({s['sampler']}, seed {s['seed']})")
    limits = [
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
        "the null space of A (the detail A averages away)."]
    use = ["In a scenario:", "", "```yaml",
           "restorers:", f"  - {{type: sing-zero, prior: {name}, operator: avgpool4, steps: 100}}", "```", "",
           "```python", "from linksim.restore import DDNMRestorer, load_prior", "from linksim.zoo import resolve_prior",
           f"prior = load_prior(resolve_prior({name!r}))  # or the folder's path; diffusers: "
           "DDPMPipeline.from_pretrained(path)",
           "restorer = DDNMRestorer(prior.unet, prior.scheduler, 'avgpool4', steps=100)",
           "x_tilde = restorer.restore(x_hat, snr_db, generators)", "```"]
    return ModelCard(name, intro, [("Training", training), ("What it can and cannot do", limits), ("Use", use)])
