"""Training and evaluating DeepJSCC models (``linksim train deepjscc``, ``linksim eval deepjscc``).

Training draws random crops (with horizontal and vertical flips) from a folder of
photographs, a uniform SNR per image in ``snr_range``, runs the whole link with the
channel in the loop, and minimizes the MSE (optionally + λ·LPIPS, the SING loss) with Adam
and a cosine learning-rate schedule. Every random draw comes from one seeded generator
whose state is checkpointed, so an interrupted run resumes where it stopped and ends with
the same weights as an uninterrupted one (same machine and thread count).

Per step the draws are: the crops (:class:`~linksim.crops.PatchSampler`), the SNRs, then
the channel noise inside the model's forward pass.

Output folder (docs/ARCHITECTURE.md §6): ``model.safetensors``, ``config.json`` (architecture +
training settings + validation numbers), ``MODEL_CARD.md``; while training also
``train_state.safetensors`` (optimizer moments, step, generator state), removed at the end
unless ``keep_state``.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from linksim import zoo
from linksim.channel import ChannelOnCPU, make_channel
from linksim.crops import PatchSampler
from linksim.data import image_files, load_images
from linksim.errors import ConfigError
from linksim.jscc.models import AF_GATES, BOURTSOULATZE, DeepJSCC, DeepJSCCConfig, latent_channels_for
from linksim.seeding import point_generator
from linksim.train.cards import ModelCard, command_row, wall_time_row
from linksim.train.distributed import DistributedRun
from linksim.train.flags import fraction, setting
from linksim.train.loop import TrainLoop, autocast, device_words, machine_words, parameter_count, training_device
from linksim.train.state import STATE

__all__ = ["DeepJSCCSettings", "evaluate", "model_card", "record_evaluation", "train_deepjscc"]

CHANNELS = ["awgn", "rayleigh-block", "ofdm-tdl-a"]  # ofdm-tdl-a: linksim.channel.OFDM_PRESETS
LOSSES = ["mse", "log-mse", "mse+lpips"]


def log_mse_loss(x_hat: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """Mean over the batch of 10·log10(MSE_i), MSE_i over C, H, W of image i: minus the mean
    per-image PSNR (dB, peak 1). x̂, x: [B, C, H, W]. Its gradient with respect to MSE_i is
    10 / (ln 10 · B · MSE_i): an image's squared error counts in proportion to the inverse of
    its own, so an image sent at 15 dB (MSE ≈ 0.002) pulls as hard as one at −5 dB (≈ 0.01),
    where the plain MSE gives the −5 dB image five times the weight."""
    mse = (x_hat.float() - x.float()).pow(2).flatten(1).mean(1)
    return 10.0 * torch.log10(mse.clamp_min(1e-10)).mean()


@dataclass
class DeepJSCCSettings:
    """Everything that determines a training run (stored in ``config.json``)."""

    bcr: float = setting(help="bandwidth ratio ρ = k/(3HW), e.g. 1/48", type=fraction)
    data: list[str] = setting(help="training image folders (searched recursively)", nargs="+")
    channel: str = setting("awgn", help="the channel in the loop", choices=CHANNELS)
    snr_range: tuple[float, float] = setting((-5.0, 15.0), help="SNR (dB) drawn uniformly per image", nargs=2,
                                             metavar=("LOW", "HIGH"))
    loss: str = setting("mse", help="training loss: the batch MSE; log-mse, the mean of 10·log10(MSE) per image "
                                    "(= −PSNR in dB: every SNR of the range weighs the same in dB, where the plain "
                                    "MSE lets the noisiest images dominate the gradient); or MSE + λ·LPIPS",
                        choices=LOSSES)
    lpips_weight: float = setting(0.1, help="λ of MSE + λ·LPIPS")
    arch: str = setting("adaptive", help="SNR-adaptive with AF modules, or Bourtsoulatze et al. 2019",
                        choices=["adaptive", "bourtsoulatze"])
    widths: tuple[int, ...] = setting((48, 64, 96, 128), help="hidden widths of the stride-2 stages (adaptive arch)")
    af_gate: str = setting("2sigmoid", help="AF modules' gate (adaptive arch): 2·sigmoid starts as the identity; "
                                            "ADJSCC's sigmoid halves the features after every layer at init and "
                                            "learns slower", choices=list(AF_GATES))
    linear_path: str | None = setting(None, metavar="BASIS", help="start as the linear analog code of this "
                                      "linear-basis checkpoint (e.g. linear-pca16-natural): a frozen PCA + "
                                      "Lee–Petersen + LMMSE path, the CNNs adding residuals that start at zero")
    steps: int = setting(4000, help="optimizer steps")
    batch: int = setting(16, help="crops per step")
    crop: int = setting(128, help="crop side in pixels (images smaller than it are left out)")
    lr: float = setting(1e-3, help="peak Adam learning rate (2 % warm-up, then cosine to lr/100)")
    seed: int = setting(0, help="seed of the weights and of every draw")
    init: str | None = setting(None, help="warm start from this checkpoint (tensors whose names and shapes match)")
    bf16: bool = setting(True, flag="--float32", help="no bfloat16 autocast (train in float32)")
    val_data: list[str] = setting(factory=list, nargs="+", help="validation image folders (PSNR per SNR)")
    val_snrs: tuple[float, ...] = setting((-5.0, 0.0, 5.0, 10.0, 15.0), help="SNRs (dB) of the validation PSNR")
    val_every: int = setting(1000, help="steps between validations")
    save_every: int = setting(250, help="steps between resumable saves")

    def __post_init__(self):
        if self.channel not in CHANNELS:
            raise ConfigError("channel", self.channel, f"one of {CHANNELS}")
        if self.loss not in LOSSES:
            raise ConfigError("loss", self.loss, f"one of {LOSSES}")
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
    (folder / zoo.CARD).write_text(model_card(meta, folder.name).text())


# ----------------------------------------------------------------------------- training

def _init_from(model: DeepJSCC, name: str) -> dict:
    """Copy every tensor of checkpoint ``name`` whose name and shape match (warm start)."""
    src = zoo.load_state(zoo.resolve(name))
    own = model.state_dict()
    copied = {k: v for k, v in src.items() if k in own and own[k].shape == v.shape}
    model.load_state_dict(copied, strict=False)
    return {"from": str(name), "copied": len(copied), "of": len(own)}


def _earlier_stages(name: str, settings: DeepJSCCSettings) -> list[dict]:
    """The ``lineage`` a run started from checkpoint ``name`` inherits: when ``name`` was trained
    for the same ρ and channel, this run continues that model, so its stages (its own lineage,
    then its run: command, steps, wall minutes, last validation) are this run's earlier stages.
    A warm start of another ρ or channel (a family member) begins a lineage of its own: [].
    """
    meta = zoo.read_config(zoo.resolve(name))
    earlier = meta.get("training", {})
    if meta.get("kind") != "deepjscc" or (earlier.get("bcr"), earlier.get("channel")) != (settings.bcr,
                                                                                          settings.channel):
        return []
    stage = {"command": meta.get("command", ""), "steps": meta.get("step", 0),
             "wall_minutes": round(meta.get("wall_seconds", 0.0) / 60, 1),
             "history": (meta.get("history") or [])[-1:]}
    return [*meta.get("lineage", []), stage]


def _lpips_loss(settings: DeepJSCCSettings, device: torch.device):
    """The LPIPS network of the ``mse+lpips`` loss (None for ``mse``)."""
    if settings.loss != "mse+lpips":
        return None
    from linksim.metrics import LPIPS, backbone_weights_path

    path, url = backbone_weights_path("alex")
    if not Path(path).is_file():
        raise ConfigError("loss", "mse+lpips", f"'mse', or the real LPIPS backbone weights at {path} (download "
                                               f"{url} there; they are not on this machine and LPIPS without "
                                               "them would be meaningless)")
    return LPIPS("alex", device=device)


def _resume_or_start(model: DeepJSCC, settings: DeepJSCCSettings, out: Path) -> dict:
    """Bring ``model`` to where the run in ``out`` stands: the saved training weights when a
    resumable state is there (same settings required), else the start (the linear path's
    weights, then the warm start). Returns ``{"wall_seconds", "init", "lineage"}`` of the run so far, or
    the saved config of a run that is already complete (it has a ``step``).

    :raises ConfigError: field ``out`` for a folder of a run with other settings or of a
        finished checkpoint.
    """
    if (out / STATE).exists():  # resume: the exported weights are the training weights
        saved = zoo.read_config(out)
        if saved.get("training") != settings.to_dict():
            raise ConfigError("out", str(out), "an empty folder or one holding a run with the same settings "
                                               "(this one was started with different settings; see its config.json)")
        state = zoo.load_state(out)
        zoo.check_state(model, state, str(out))
        model.load_state_dict(state)
        return {"wall_seconds": saved.get("wall_seconds", 0.0), "init": saved.get("init"),
                "lineage": saved.get("lineage", [])}
    if (out / zoo.WEIGHTS).exists():
        saved = zoo.read_config(out)
        if saved.get("training") == settings.to_dict() and saved.get("step") == settings.steps:
            return saved
        raise ConfigError("out", str(out), "an empty folder (it holds a finished checkpoint; choose another --out)")
    if settings.linear_path:  # start as the linear analog code (residual outputs zeroed) …
        from linksim.jscc.linear import load_linear_basis

        model.init_linear_path(load_linear_basis(settings.linear_path))
    # … then take every matching tensor of the warm start
    if not settings.init:
        return {"wall_seconds": 0.0, "init": None, "lineage": []}
    return {"wall_seconds": 0.0, "init": _init_from(model, settings.init),
            "lineage": _earlier_stages(settings.init, settings)}


def train_deepjscc(settings: DeepJSCCSettings, out: str | Path, *, command: str = "", progress: bool = True,
                   keep_state: bool = False, stop_after: int | None = None, device: str = "cpu") -> dict:
    """Train (or resume) a DeepJSCC model into ``out``; returns the config dict written.

    ``stop_after`` ends the call after that many steps of this call, like an interruption:
    a rerun resumes from the last ``save_every`` save — for tests and notebooks.

    ``device``: where the model trains (``cpu``, ``cuda``, ``cuda:N``). Not a training
    setting: crops, SNRs and channel noise all come from the one seeded CPU generator (the
    channel runs on the CPU), so a run may resume on another device, and the weights are
    initialized on the CPU, identical everywhere.
    """
    out = Path(out)
    ranks = DistributedRun.from_env()  # under torchrun: this process's rank (else a single process)
    device = ranks.device(training_device(device))
    ranks.start(device)
    threads, device_name = torch.get_num_threads(), device_words(device)
    sampler = PatchSampler(settings.data, settings.crop)
    val_items = load_images(image_files(settings.val_data)) if settings.val_data else []
    cfg = settings.model_config()
    torch.manual_seed(settings.seed)  # weight initialization only; every draw below uses `gen`
    model = DeepJSCC(cfg).to(device)
    gen = torch.Generator().manual_seed(settings.seed)
    opt = torch.optim.Adam(model.parameters(), lr=settings.lr)
    channel = ChannelOnCPU(make_channel(settings.channel), device)
    meta = {"kind": "deepjscc", "config": cfg.to_dict(), "training": settings.to_dict(),
            **({"ranks": ranks.world_size} if ranks.active else {})}

    started = _resume_or_start(model, settings, out)
    if "step" in started:
        return started  # already complete
    elapsed, init, lineage = started["wall_seconds"], started["init"], started["lineage"]
    # no gradient clipping; the history holds validation rows, not loss means; stop_after acts
    # as an interruption (the run resumes from the last save_every save)
    loop = TrainLoop(state_dir=out, steps=settings.steps, lr=settings.lr, save_every=settings.save_every, opt=opt,
                     gen=gen, params=model.parameters(), max_norm=None, elapsed=elapsed, loss_history=False,
                     save_at_stop=False, writer=ranks.writer)
    lpips_model = _lpips_loss(settings, device)
    lo, hi = settings.snr_range
    net = ranks.wrap(model, device)  # DDP averages the ranks' gradients; a single process trains `model`

    def train_step(step: int):
        # one process: the run's one generator (the draws of every checkpoint trained so far);
        # DDP: this rank's own, derived from (seed, rank, step)
        g = ranks.generator(settings.seed, step) if ranks.active else gen
        x = sampler.sample(settings.batch, g).to(device)
        snr = (lo + (hi - lo) * torch.rand(settings.batch, generator=g)).to(device)
        with autocast(device, settings.bf16):
            x_hat = net(x, snr, channel, g)
        mse = torch.nn.functional.mse_loss(x_hat.float(), x)
        if settings.loss == "log-mse":
            return log_mse_loss(x_hat, x), mse
        loss = mse
        if lpips_model is not None:
            loss = loss + settings.lpips_weight * lpips_model.model(x_hat * 2 - 1, x * 2 - 1).mean()
        return loss, loss

    def validate(loop: TrainLoop) -> None:
        if ranks.writer and (loop.step % settings.val_every == 0 or loop.step == settings.steps):
            row = evaluate(model, val_items, settings.val_snrs, settings.channel, seed=settings.seed)
            loop.history.append({"step": loop.step, **row})
            model.train()
            loop.bar.write(f"step {loop.step}: val PSNR " + ", ".join(
                f"{s:g} dB → {p:.2f}" for s, p in zip(row["snr_db"], row["psnr"])))

    def write(final: bool) -> None:
        meta.update(step=loop.step, wall_seconds=round(loop.elapsed, 1), init=init, threads=threads,
                    device=device_name, machine=machine_words(), history=loop.history,
                    data_images=len(sampler), data_skipped_smaller_than_crop=sampler.skipped, command=command,
                    **({"lineage": lineage} if lineage else {}))
        zoo.save_checkpoint(model, out, "deepjscc", meta["config"], card=model_card(meta, out.name).text(),
                            extra={k: v for k, v in meta.items() if k not in ("kind", "config")})

    model.train()
    loop.run(train_step, write, stop_after=stop_after, progress=progress and ranks.writer, desc=f"train {out.name}",
             after_step=validate if val_items else None,
             postfix=lambda loss: {"loss": f"{loss:.5f}", "psnr": f"{-10 * math.log10(max(loss, 1e-10)):.2f}"})
    loop.finish(write, keep_state)
    ranks.barrier()  # the other ranks read what rank 0 wrote
    ranks.stop()
    return zoo.read_config(out)


# ----------------------------------------------------------------------------- model card

def _arch_words(config: DeepJSCCConfig) -> str:
    if not config.adaptive:
        return "Bourtsoulatze et al. 2019"
    gate = {"2sigmoid": "2·sigmoid", "sigmoid": "sigmoid"}[config.af_gate]
    return f"SNR-adaptive, AF modules with a {gate} gate"


def _psnr_table(snr_db: list, psnr: list) -> list[str]:
    return ["| SNR (dB) | " + " | ".join(f"{s:g}" for s in snr_db) + " |", "|---|" + "---|" * len(snr_db),
            "| PSNR (dB) | " + " | ".join(f"{p:.2f}" for p in psnr) + " |"]


def _stage_row(stage: dict) -> str:
    """One earlier training stage of a checkpoint (``config.json``'s ``lineage``: the ``command``,
    ``steps``, ``wall_minutes`` and last validation of a run whose weights the next run started
    from) as a card line."""
    last = (stage.get("history") or [{}])[-1]
    psnr = " / ".join(f"{p:.2f}" for p in last.get("psnr", []))
    snrs = " / ".join(f"{s:g}" for s in last.get("snr_db", []))
    return (f"- `{stage['command']}`: {stage['steps']} steps, {stage['wall_minutes']:.1f} min"
            + (f"; validation PSNR {psnr} dB at {snrs} dB" if psnr else ""))


def model_card(meta: dict, name: str) -> ModelCard:
    """The model card of a DeepJSCC checkpoint from its ``config.json`` content (``lineage``, when
    present, lists the runs it was continued from, oldest first)."""
    cfg, tr = meta["config"], meta.get("training", {})
    model = DeepJSCC(DeepJSCCConfig.from_dict(cfg))
    n_params = parameter_count(model)
    intro = [f"DeepJSCC ({_arch_words(model.config)}) "
             f"for the **{cfg['channel']}** channel at **ρ = 1/{round(1 / model.config.bcr())}** "
             f"(c = {cfg['latent_channels']} real outputs per {model.config.downsampling}×{model.config.downsampling} "
             f"block; cpp = 1/{round(1 / (3 * model.config.bcr()))}), trained over SNR "
             f"{cfg['snr_range_db'][0]:g}…{cfg['snr_range_db'][1]:g} dB. {n_params:,} parameters "
             f"({n_params * 4 / 2**20:.1f} MiB float32)."]
    training = [
        command_row(meta),
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
        wall_time_row(meta)]
    card = ModelCard(name, intro, [("Training", training)])
    if meta.get("lineage"):
        card.sections.append(("Earlier stages (each one the warm start of the next; the last one's is above)",
                              [_stage_row(stage) for stage in meta["lineage"]]))
    hist = meta.get("history") or []
    if hist:
        last = hist[-1]
        card.sections.append((f"Validation ({', '.join(tr.get('val_data', []))}, {last['images']} images, "
                              f"step {last['step']})", _psnr_table(last["snr_db"], last["psnr"])))
    for ev in meta.get("evaluation", []):
        card.sections.append((f"Evaluation: {ev['data']} ({ev['images']} images, full size, "
                              f"{ev.get('channel', cfg['channel'])})",
                              [*_psnr_table(ev["snr_db"], ev["psnr"]), "", f"command: `{ev.get('command', '')}`"]))
    card.sections.append(("Use", ["```python", "from linksim.zoo import load_deepjscc",
                                  f"model = load_deepjscc({name!r})",
                                  "x_hat = model(x, snr_db, make_channel('awgn'), generator)", "```", "",
                                  "In a scenario: `{type: deepjscc, model: " + name + "}`."]))
    return card
