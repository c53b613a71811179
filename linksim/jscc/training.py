"""Training and evaluating DeepJSCC models (``linksim train deepjscc``, ``linksim eval deepjscc``).

Training draws random crops (with horizontal and vertical flips) from a folder of
photographs, a uniform SNR per image in ``snr_range``, runs the whole link with the
channel in the loop, and minimizes the MSE (optionally + λ·LPIPS, the SING loss) with Adam
and a cosine learning-rate schedule. Every random draw comes from one seeded generator
whose state is checkpointed, so an interrupted run resumes where it stopped and ends with
the same weights as an uninterrupted one (same machine and thread count).

Output folder (DESIGN.md §6): ``model.safetensors``, ``config.json`` (architecture +
training settings + validation numbers), ``MODEL_CARD.md``; while training also
``train_state.safetensors`` (optimizer moments, step, generator state), removed at the end
unless ``keep_state``.
"""

from __future__ import annotations

import json
import math
import platform
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from linksim.channel import ChannelOnCPU, make_channel
from linksim.data import image_files, load_images
from linksim.devices import parse_device
from linksim.errors import ConfigError
from linksim.jscc.models import AF_GATES, BOURTSOULATZE, DeepJSCC, DeepJSCCConfig, latent_channels_for
from linksim.seeding import point_generator
from linksim import zoo
from linksim.train_common import STATE, cosine_lr, load_train_state, save_train_state

__all__ = ["TrainSettings", "train_deepjscc", "evaluate", "PatchSampler", "write_model_card"]


@dataclass
class TrainSettings:
    """Everything that determines a training run (stored in ``config.json``)."""

    bcr: float
    data: list[str]
    channel: str = "awgn"
    snr_range: tuple[float, float] = (-5.0, 15.0)
    loss: str = "mse"
    lpips_weight: float = 0.1
    arch: str = "adaptive"
    widths: tuple[int, ...] = (48, 64, 96, 128)
    af_gate: str = "2sigmoid"
    linear_path: str | None = None
    steps: int = 4000
    batch: int = 16
    crop: int = 128
    lr: float = 1e-3
    seed: int = 0
    init: str | None = None
    bf16: bool = True
    val_data: list[str] = field(default_factory=list)
    val_snrs: tuple[float, ...] = (-5.0, 0.0, 5.0, 10.0, 15.0)
    val_every: int = 1000
    save_every: int = 250

    def __post_init__(self):
        if self.channel not in ("awgn", "rayleigh-block"):
            raise ConfigError("channel", self.channel, "'awgn' or 'rayleigh-block'")
        if self.loss not in ("mse", "mse+lpips"):
            raise ConfigError("loss", self.loss, "'mse' or 'mse+lpips'")
        if self.arch not in ("adaptive", "bourtsoulatze"):
            raise ConfigError("arch", self.arch, "'adaptive' (SNR-adaptive, AF modules) or 'bourtsoulatze'")
        if self.af_gate not in AF_GATES:
            raise ConfigError("af_gate", self.af_gate, f"one of {list(AF_GATES)}")
        if self.linear_path is not None and self.arch != "adaptive":
            raise ConfigError("linear_path", self.linear_path, "no linear path for the bourtsoulatze arch (its "
                                                               "gains need the SNR input of the adaptive arch)")
        lo, hi = self.snr_range
        if not (math.isfinite(lo) and math.isfinite(hi) and lo <= hi):
            raise ConfigError("snr_range", list(self.snr_range), "LOW HIGH in dB with LOW ≤ HIGH")
        for name in ("steps", "batch", "crop", "val_every", "save_every"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ConfigError(name, v, "a positive integer")
        if not (self.lr > 0):
            raise ConfigError("lr", self.lr, "a positive learning rate")
        if not self.data:
            raise ConfigError("data", self.data, "one or more image folders or files")
        self.snr_range = (float(lo), float(hi))
        self.widths = tuple(self.widths) if self.arch == "adaptive" else BOURTSOULATZE["widths"]
        self.val_snrs = tuple(float(s) for s in self.val_snrs)
        self.data = [str(d) for d in self.data]
        self.val_data = [str(d) for d in self.val_data]

    def model_config(self) -> DeepJSCCConfig:
        extra = ({"af_gate": self.af_gate, "linear_path": self.linear_path is not None} if self.arch == "adaptive"
                 else {k: v for k, v in BOURTSOULATZE.items() if k != "widths"})
        return DeepJSCCConfig(latent_channels=latent_channels_for(self.bcr, self.widths), widths=self.widths,
                              channel=self.channel, snr_range_db=self.snr_range, **extra)

    def to_dict(self) -> dict:
        d = asdict(self)
        if d["linear_path"] is None:  # runs started before the field existed still resume
            del d["linear_path"]
        return {k: list(v) if isinstance(v, tuple) else v for k, v in d.items()}


# ----------------------------------------------------------------------------- data

class PatchSampler:
    """Random ``crop``×``crop`` patches with random flips from images kept in memory.

    Images smaller than the crop are left out (``skipped`` counts them).

    :output of ``sample(batch, generator)``: float32 [batch, 3, crop, crop] in [0, 1].
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
        c = self.crop
        idx = torch.randint(len(self.images), (batch,), generator=generator).tolist()
        draws = torch.rand(batch, 4, generator=generator).tolist()
        out = torch.empty(batch, 3, c, c, dtype=torch.uint8)
        for b, (i, (u_top, u_left, u_h, u_v)) in enumerate(zip(idx, draws)):
            img = self.images[i]
            top = int(u_top * (img.shape[1] - c + 1))
            left = int(u_left * (img.shape[2] - c + 1))
            patch = img[:, top:top + c, left:left + c]
            if u_h < 0.5:
                patch = patch.flip(2)
            if u_v < 0.5:
                patch = patch.flip(1)
            out[b] = patch
        return out.float() / 255


# ----------------------------------------------------------------------------- evaluation

@torch.no_grad()
def evaluate(model: DeepJSCC, images, snrs, channel="awgn", seed: int = 0, progress: bool = False) -> dict:
    """Mean PSNR (dB) per SNR over full-size images, each image and SNR with its own generator.

    Runs on the model's device; the channel draws on the CPU from CPU generators
    (:class:`~linksim.channel.ChannelOnCPU`), so every device gives the same draws.

    :param images: list of :class:`~linksim.data.ImageItem` (any sizes).
    :output: ``{"snr_db": [...], "psnr": [...], "images": N}``.
    """
    from linksim.metrics import psnr

    model.eval()
    device = next(model.parameters()).device
    channel = ChannelOnCPU(make_channel(channel), device)
    rows = []
    bar = tqdm(total=len(images) * len(snrs), desc="evaluate", unit="img", disable=not progress, leave=False)
    for snr in snrs:
        vals = []
        for item in images:
            x = torch.from_numpy(item.pixels).permute(2, 0, 1)[None].float().div(255).to(device)
            g = point_generator(seed, "evaluate", item.id, float(snr))
            vals.append(float(psnr(model(x, float(snr), channel, g), x)[0]))
            bar.update()
        rows.append(float(np.mean(vals)))
    bar.close()
    return {"snr_db": [float(s) for s in snrs], "psnr": rows, "images": len(images)}


# ----------------------------------------------------------------------------- training

def _init_from(model: DeepJSCC, name: str) -> dict:
    """Copy every tensor of checkpoint ``name`` whose name and shape match (warm start)."""
    src = zoo.load_state(zoo.resolve(name))
    own = model.state_dict()
    copied = {k: v for k, v in src.items() if k in own and own[k].shape == v.shape}
    model.load_state_dict(copied, strict=False)
    return {"from": str(name), "copied": len(copied), "of": len(own)}


def train_deepjscc(settings: TrainSettings, out: str | Path, *, command: str = "", progress: bool = True,
                   keep_state: bool = False, stop_after: int | None = None, device: str = "cpu") -> dict:
    """Train (or resume) a DeepJSCC model into ``out``; returns the config dict written.

    ``stop_after`` ends the call after that many steps of this session (the run stays
    resumable) — for tests and notebooks.

    ``device``: where the model trains (``cpu``, ``cuda``, ``cuda:N``). Not a training
    setting: crops, SNRs and channel noise all come from the one seeded CPU generator (the
    channel runs on the CPU), so a run may resume on another device, and the weights are
    initialized on the CPU, identical everywhere.
    """
    out = Path(out)
    device = torch.device(parse_device(device, "device"))
    threads, device_words = torch.get_num_threads(), _device_words(device)
    sampler = PatchSampler(settings.data, settings.crop)
    val_items = load_images(image_files(settings.val_data)) if settings.val_data else []
    cfg = settings.model_config()
    torch.manual_seed(settings.seed)  # weight initialization only; every draw below uses `gen`
    model = DeepJSCC(cfg).to(device)
    gen = torch.Generator().manual_seed(settings.seed)
    opt = torch.optim.Adam(model.parameters(), lr=settings.lr)
    channel = ChannelOnCPU(make_channel(settings.channel), device)
    meta = {"kind": "deepjscc", "config": cfg.to_dict(), "training": settings.to_dict()}

    step, history, elapsed, init = 0, [], 0.0, None
    if (out / STATE).exists():
        saved = zoo.read_config(out)
        if saved.get("training") != settings.to_dict():
            raise ConfigError("out", str(out), "an empty folder or one holding a run with the same settings "
                                               "(this one was started with different settings; see its config.json)")
        state = zoo.load_state(out)
        zoo.check_state(model, state, str(out))
        model.load_state_dict(state)
        step, history = load_train_state(out, opt, gen)
        elapsed, init = saved.get("wall_seconds", 0.0), saved.get("init")
    elif (out / zoo.WEIGHTS).exists():
        saved = zoo.read_config(out)
        if saved.get("training") == settings.to_dict() and saved.get("step") == settings.steps:
            return saved  # already complete
        raise ConfigError("out", str(out), "an empty folder (it holds a finished checkpoint; choose another --out)")
    else:
        if settings.linear_path:  # start as the linear analog code (residual outputs zeroed) …
            from linksim.jscc.linear import load_linear_basis

            model.init_linear_path(load_linear_basis(settings.linear_path))
        if settings.init:  # … then take every matching tensor of the warm start
            init = _init_from(model, settings.init)

    lpips_model = None
    if settings.loss == "mse+lpips":
        from linksim.metrics import LPIPS, backbone_weights_path

        path, url = backbone_weights_path("alex")
        if not Path(path).is_file():
            raise ConfigError("loss", "mse+lpips", f"'mse', or the real LPIPS backbone weights at {path} (download "
                                                   f"{url} there; they are not on this machine and LPIPS without "
                                                   "them would be meaningless)")
        lpips_model = LPIPS("alex", device=device)

    def save(final: bool) -> None:
        meta.update(step=step, wall_seconds=round(elapsed, 1), init=init, threads=threads, device=device_words,
                    machine=platform.processor() or platform.machine(), history=history,
                    data_images=len(sampler), data_skipped_smaller_than_crop=sampler.skipped, command=command)
        zoo.save_checkpoint(model, out, "deepjscc", meta["config"], card=write_model_card(meta, out.name),
                            extra={k: v for k, v in meta.items() if k not in ("kind", "config")})
        if not final:
            save_train_state(out, step, opt, gen, history)

    lo, hi = settings.snr_range
    bar = tqdm(total=settings.steps, initial=step, desc=f"train {out.name}", unit="step",
               disable=not progress, dynamic_ncols=True)
    session_steps, t0 = 0, time.perf_counter()
    model.train()
    while step < settings.steps and (stop_after is None or session_steps < stop_after):
        x = sampler.sample(settings.batch, gen).to(device)
        snr = (lo + (hi - lo) * torch.rand(settings.batch, generator=gen)).to(device)
        for group in opt.param_groups:
            group["lr"] = cosine_lr(step, settings.steps, settings.lr)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=settings.bf16):
            x_hat = model(x, snr, channel, gen)
        loss = torch.nn.functional.mse_loss(x_hat.float(), x)
        if lpips_model is not None:
            loss = loss + settings.lpips_weight * lpips_model.model(x_hat * 2 - 1, x * 2 - 1).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        step += 1
        session_steps += 1
        bar.update()
        bar.set_postfix(loss=f"{loss.item():.5f}", psnr=f"{-10 * math.log10(max(loss.item(), 1e-10)):.2f}")
        elapsed += time.perf_counter() - t0
        t0 = time.perf_counter()
        if val_items and (step % settings.val_every == 0 or step == settings.steps):
            history.append({"step": step, **evaluate(model, val_items, settings.val_snrs, settings.channel,
                                                     seed=settings.seed)})
            model.train()
            bar.write(f"step {step}: val PSNR " + ", ".join(
                f"{s:g} dB → {p:.2f}" for s, p in zip(history[-1]["snr_db"], history[-1]["psnr"])))
            t0 = time.perf_counter()
        if step % settings.save_every == 0 or step == settings.steps:
            save(final=False)
    bar.close()
    if step == settings.steps:
        save(final=True)
        if not keep_state:
            (out / STATE).unlink(missing_ok=True)
    return zoo.read_config(out)


def _device_words(device: torch.device) -> str:
    """``cpu`` or the GPU's name, for config.json and the model card."""
    if device.type == "cuda":
        return f"{device} ({torch.cuda.get_device_name(device)})"
    return str(device)


# ----------------------------------------------------------------------------- model card

def _arch_words(config: DeepJSCCConfig) -> str:
    if not config.adaptive:
        return "Bourtsoulatze et al. 2019"
    gate = {"2sigmoid": "2·sigmoid", "sigmoid": "sigmoid"}[config.af_gate]
    return f"SNR-adaptive, AF modules with a {gate} gate"


def _hardware_words(meta: dict) -> str:
    cpu = f"{meta.get('threads', '?')} CPU thread(s) ({meta.get('machine', '')})"
    device = meta.get("device", "cpu")  # checkpoints written before the field trained on the CPU
    return cpu if device == "cpu" else f"{device}, {cpu} feeding it"


def write_model_card(meta: dict, name: str) -> str:
    """Markdown model card from a checkpoint's ``config.json`` content."""
    cfg, tr = meta["config"], meta.get("training", {})
    model = DeepJSCC(DeepJSCCConfig.from_dict(cfg))
    n_params = sum(p.numel() for p in model.parameters())
    lines = [f"# {name}", "",
             f"DeepJSCC ({_arch_words(model.config)}) "
             f"for the **{cfg['channel']}** channel at **ρ = 1/{round(1 / model.config.bcr())}** "
             f"(c = {cfg['latent_channels']} real outputs per {model.config.downsampling}×{model.config.downsampling} "
             f"block; cpp = 1/{round(1 / (3 * model.config.bcr()))}), trained over SNR "
             f"{cfg['snr_range_db'][0]:g}…{cfg['snr_range_db'][1]:g} dB. {n_params:,} parameters "
             f"({n_params * 4 / 2**20:.1f} MiB float32).", "",
             "## Training", "",
             f"- command: `{meta.get('command') or '(python API)'}`",
             f"- data: {', '.join(tr.get('data', []))} — {meta.get('data_images', '?')} images used "
             f"({meta.get('data_skipped_smaller_than_crop', 0)} smaller than the crop left out)"
             + ("" if any("kodak" in d.lower() for d in tr.get("data", [])) else "; Kodak held out"),
             f"- {meta.get('step', 0)} of {tr.get('steps')} steps, batch {tr.get('batch')}, crops "
             f"{tr.get('crop')}×{tr.get('crop')} with flips, Adam lr {tr.get('lr')} (cosine), loss {tr.get('loss')}, "
             f"{'bfloat16 autocast' if tr.get('bf16') else 'float32'}, seed {tr.get('seed')}",
             f"- warm start: {meta['init']['from']} ({meta['init']['copied']} of {meta['init']['of']} tensors)"
             if meta.get("init") else "- initialization: random (seeded)",
             *([f"- linear path: the {cfg['latent_channels']} leading components of `{tr['linear_path']}` with "
                "Lee–Petersen gains and the LMMSE receiver, frozen; the CNNs add residuals that start at zero"]
               if tr.get("linear_path") else []),
             f"- wall time {meta.get('wall_seconds', 0) / 60:.1f} min on {_hardware_words(meta)}", ""]
    hist = meta.get("history") or []
    if hist:
        last = hist[-1]
        lines += [f"## Validation ({', '.join(tr.get('val_data', []))}, {last['images']} images, step {last['step']})",
                  "", "| SNR (dB) | " + " | ".join(f"{s:g}" for s in last["snr_db"]) + " |",
                  "|---|" + "---|" * len(last["snr_db"]),
                  "| PSNR (dB) | " + " | ".join(f"{p:.2f}" for p in last["psnr"]) + " |", ""]
    for ev in meta.get("evaluation", []):
        lines += [f"## Evaluation: {ev['data']} ({ev['images']} images, full size, {ev.get('channel', cfg['channel'])})",
                  "", "| SNR (dB) | " + " | ".join(f"{s:g}" for s in ev["snr_db"]) + " |",
                  "|---|" + "---|" * len(ev["snr_db"]),
                  "| PSNR (dB) | " + " | ".join(f"{p:.2f}" for p in ev["psnr"]) + " |", "",
                  f"command: `{ev.get('command', '')}`", ""]
    lines += ["## Use", "", "```python", "from linksim.zoo import load_deepjscc",
              f"model = load_deepjscc({name!r})", "x_hat = model(x, snr_db, make_channel('awgn'), generator)", "```",
              "", "In a scenario: `{type: deepjscc, model: " + name + "}`.", ""]
    return "\n".join(lines)


def record_evaluation(folder: str | Path, result: dict, data: str, channel: str, command: str) -> None:
    """Add (or replace) an evaluation table in a checkpoint's config.json and model card."""
    folder = zoo.resolve(folder)
    meta = zoo.read_config(folder)
    entry = {"data": data, "channel": channel, "command": command, **result}
    meta["evaluation"] = [e for e in meta.get("evaluation", []) if (e["data"], e.get("channel")) != (data, channel)]
    meta["evaluation"].append(entry)
    tmp = folder / (zoo.CONFIG + ".tmp")
    tmp.write_text(json.dumps(meta, indent=2) + "\n")
    tmp.replace(folder / zoo.CONFIG)
    (folder / zoo.CARD).write_text(write_model_card(meta, folder.name))
