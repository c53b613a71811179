"""Training the conditional INN of SING-INN / CommIN (``linksim train inn``).

The INN (:class:`linksim.restore.inn.ConditionalINN`) learns what a DeepJSCC link does to
an image *in its coarse part*: pairs (x, x̂) are made on the fly by running a DeepJSCC
checkpoint with the channel in the loop at a random SNR, and the loss is SING eq. 16 at
the coarse part's resolution,

    L = ‖coarse(x, snr) − avgpool_s(x̂)‖²  (+ λ · mean ‖details‖², optional)      s = 2**levels

A fresh INN is exactly the Haar split, whose coarse part is ``avgpool_s(x)`` — SING-Zero's
linear A. So the untrained loss *is* the linear-A error, and training can only be judged
against it: :func:`evaluate_inn` reports both on held-out images per SNR (the model card
records them).

SNR-conditioned (SING-INN): SNR uniform in ``snr_range``. CommIN: one SNR
(``snr_range = (s, s)``) and ``conditional = False``.

Every draw (per step: crops and flips, SNRs, channel noise) comes from one seeded CPU
generator saved with the optimizer state in ``train_state.safetensors``; rerunning the
command resumes and ends with the same weights as an uninterrupted run. The output folder
is a linksim checkpoint (``model.safetensors``, ``config.json`` of kind ``inn``,
``MODEL_CARD.md``) that loads by name with :func:`linksim.zoo.load_inn`.

This module composes ``jscc`` (pair generation) with ``restore`` (the INN): it lives in the
training package, one floor above both (docs/ARCHITECTURE.md §3).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Sequence

import torch
import torch.nn.functional as F

from linksim import zoo
from linksim.channel import make_channel
from linksim.crops import ResizedCrops
from linksim.errors import ConfigError
from linksim.restore.inn import ConditionalINN, ConditionalINNConfig
from linksim.seeding import point_generator
from linksim.train.cards import ModelCard, command_row, wall_time_row
from linksim.train.flags import setting
from linksim.train.loop import TrainLoop, machine_words, parameter_count
from linksim.train.state import STATE

__all__ = ["INN_KIND", "INNSettings", "evaluate_inn", "model_card", "train_inn"]

#: ``config.json`` kind of an INN checkpoint
INN_KIND = "inn"


@dataclass
class INNSettings:
    """Everything that determines an INN training run (stored in ``config.json``)."""

    deepjscc: str = setting(help="the DeepJSCC checkpoint (name or folder) whose outputs x̂ it learns")
    data: list[str] = setting(help="training image folders (searched recursively); shorter side resized to "
                                   "size, random size² crops, horizontal flips", nargs="+")
    val_data: list[str] = setting(factory=list, nargs="+", help="held-out images (centre square resized to size): "
                                                                "INN vs. linear-A error per SNR in the card")
    snr_range: tuple[float, float] = setting((-5.0, 5.0), nargs=2, metavar=("LOW", "HIGH"),
                                             help="SNR (dB) drawn uniformly; LOW = HIGH for --commin")
    conditional: bool = setting(True, flag="--commin", help="no SNR conditioning (CommIN: one model per SNR)")
    channel: str | None = setting(None, choices=["awgn", "rayleigh-block"],
                                  help="the channel of the pairs (default: the checkpoint's)")
    size: int = setting(64, help="crop size (the prior's resolution)")
    levels: int = setting(2, help="Haar levels: the coarse part is 2**levels smaller per side")
    pairs: int = setting(4, help="lifting (P, U) pairs per level")
    width: int = setting(32, help="channels of the lifting nets")
    blocks: int = setting(2, help="CondBlocks per lifting net (J)")
    emb_dim: int = setting(64, help="width of the SNR embedding")
    detail_weight: float = setting(0.0, help="λ of the detail regularizer λ·mean(d²) (0: none)")
    steps: int = setting(3000, help="optimizer steps")
    batch: int = setting(16, help="crops per step")
    lr: float = setting(1e-3, help="peak Adam learning rate (2 % warm-up, then cosine to lr/100)")
    seed: int = setting(0, help="seed of the weights and of every draw")
    save_every: int = setting(250, help="steps between resumable saves")
    val_snr: tuple[float, ...] = setting((-5.0, -3.0, -1.0, 1.0, 3.0, 5.0),
                                         help="SNRs (dB) of the held-out evaluation (conditional INN)")

    def __post_init__(self):
        if not isinstance(self.deepjscc, str) or not self.deepjscc:
            raise ConfigError("deepjscc", self.deepjscc, "a DeepJSCC checkpoint name or folder")
        if not self.data:
            raise ConfigError("data", self.data, "one or more image folders or files")
        self.data, self.val_data = [str(d) for d in self.data], [str(d) for d in self.val_data]
        r = tuple(self.snr_range)
        if len(r) != 2 or not all(isinstance(v, (int, float)) and math.isfinite(v) for v in r) or r[0] > r[1]:
            raise ConfigError("snr_range", list(r), "[LOW, HIGH] in dB with LOW ≤ HIGH")
        self.snr_range = (float(r[0]), float(r[1]))
        if not self.conditional and self.snr_range[0] != self.snr_range[1]:
            raise ConfigError("snr_range", list(self.snr_range), "one SNR (LOW = HIGH) for an unconditional "
                                                                 "(CommIN) INN: it is trained per SNR")
        for name in ("size", "steps", "batch", "save_every"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ConfigError(name, v, "a positive integer")
        self.inn_config()  # validates the architecture fields now
        if self.size % 2 ** self.levels:
            raise ConfigError("size", self.size, f"a multiple of 2**levels = {2 ** self.levels}")
        if not (isinstance(self.lr, (int, float)) and math.isfinite(self.lr) and self.lr > 0):
            raise ConfigError("lr", self.lr, "a positive learning rate")
        if not (isinstance(self.detail_weight, (int, float)) and math.isfinite(self.detail_weight)
                and self.detail_weight >= 0):
            raise ConfigError("detail_weight", self.detail_weight, "a number ≥ 0")
        self.val_snr = tuple(float(s) for s in self.val_snr)

    def inn_config(self) -> ConditionalINNConfig:
        return ConditionalINNConfig(levels=self.levels, pairs=self.pairs, width=self.width, blocks=self.blocks,
                                    conditional=self.conditional, emb_dim=self.emb_dim, snr_range_db=self.snr_range)

    def to_dict(self) -> dict:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}


def _val_images(paths: Sequence[str], size: int) -> torch.Tensor | None:
    from linksim.data import image_files, load_images, square_resize, to_tensor

    if not paths:
        return None
    return to_tensor([square_resize(item, size) for item in load_images(image_files(paths))])


@torch.no_grad()
def evaluate_inn(inn: ConditionalINN, model, images: torch.Tensor, snr_db: Sequence[float], *, channel="awgn",
                 trials: int = 1, seed: int = 0) -> list[dict]:
    """Coarse-part MSE of the INN vs. SING-Zero's linear A on (x, x̂) pairs, per SNR.

    :param inn: the INN (its scale s = 2**levels).
    :param model: the DeepJSCC model that makes x̂ = model(x, snr) (clipped to [0, 1]).
    :param images: float [N, 3, H, W] in [0, 1].
    :returns: one row per SNR: ``{"snr_db", "inn_mse", "linear_mse", "ratio"}`` with
        ``inn_mse = mean (coarse(x, snr) − avgpool_s(x̂))²``, ``linear_mse = mean
        (avgpool_s(x) − avgpool_s(x̂))²`` (image units², [0, 1] scale), ratio = inn / linear.
    """
    channel = make_channel(channel)
    s = inn.config.scale
    rows = []
    for snr in snr_db:
        inn_se = lin_se = 0.0
        count = 0
        for trial in range(trials):
            gen = point_generator(seed, "inn-eval", float(snr), trial)
            x_hat = model(images, float(snr), channel, gen).clamp(0, 1)
            target = F.avg_pool2d(x_hat, s)
            inn_se += float((inn.coarse(images, float(snr)) - target).pow(2).sum())
            lin_se += float((F.avg_pool2d(images, s) - target).pow(2).sum())
            count += target.numel()
        rows.append({"snr_db": float(snr), "inn_mse": inn_se / count, "linear_mse": lin_se / count,
                     "ratio": inn_se / lin_se if lin_se else float("nan")})
    return rows


def train_inn(settings: INNSettings, out: str | Path, *, command: str = "", progress: bool = True,
              keep_state: bool = False, stop_after: int | None = None) -> dict:
    """Train (or resume) an INN into ``out``; returns the ``config.json`` written.

    :param stop_after: end this call after that many steps (saved, resumable).
    :raises ConfigError: field ``out`` for a folder holding a run with other settings.
    """
    out = Path(out)
    elapsed = 0.0
    if (out / zoo.CONFIG).is_file():
        saved = zoo.read_config(out)
        if saved.get("training") != settings.to_dict():
            raise ConfigError("out", str(out), "an empty folder or one holding a run with the same settings "
                                               "(this one was made with other settings; see its config.json)")
        if saved.get("step") == settings.steps and not (out / STATE).exists():
            return saved  # already complete
        elapsed = saved.get("wall_seconds", 0.0) if (out / STATE).exists() else 0.0
    model = zoo.load_deepjscc(settings.deepjscc)
    model.requires_grad_(False)
    channel_name = settings.channel or model.config.channel
    channel = make_channel(channel_name)
    crops = ResizedCrops(settings.data, settings.size, progress=progress)
    val = _val_images(settings.val_data, settings.size)

    torch.manual_seed(settings.seed)  # weight initialization only; every draw below uses `gen`
    inn = ConditionalINN(settings.inn_config())
    gen = torch.Generator().manual_seed(settings.seed)
    opt = torch.optim.Adam(inn.parameters(), lr=settings.lr)
    loop = TrainLoop(state_dir=out, steps=settings.steps, lr=settings.lr, save_every=settings.save_every, opt=opt,
                     gen=gen, params=inn.parameters(), weights=inn, elapsed=elapsed)
    meta = {"kind": INN_KIND, "config": settings.inn_config().to_dict(), "training": settings.to_dict(),
            "deepjscc": model.name, "channel": channel_name}
    lo, hi = settings.snr_range
    s = 2 ** settings.levels

    def train_step(step: int):
        x = crops.sample(settings.batch, gen)
        snr = lo + (hi - lo) * torch.rand(settings.batch, generator=gen)
        with torch.no_grad():
            target = F.avg_pool2d(model(x, snr, channel, gen).clamp(0, 1), s)
        coarse, details = inn(x, snr if settings.conditional else None)
        loss = F.mse_loss(coarse, target)
        if settings.detail_weight:
            loss = loss + settings.detail_weight * sum(d.pow(2).mean() for d in details) / len(details)
        return loss, loss

    def write(final: bool) -> None:
        meta.update(step=loop.step, wall_seconds=round(loop.elapsed, 1), threads=torch.get_num_threads(),
                    machine=machine_words(), parameters=parameter_count(inn), data_images=len(crops),
                    history=loop.history, command=command)
        zoo.save_checkpoint(inn, out, INN_KIND, meta["config"], card=model_card(meta, out.name).text(),
                            extra={k: v for k, v in meta.items() if k not in ("kind", "config")})

    def evaluate_held_out() -> None:
        if val is not None:
            inn.eval()
            meta["evaluation"] = {"images": len(val), "trials": 2, "rows": evaluate_inn(
                inn, model, val, settings.val_snr if settings.conditional else (lo,), channel=channel_name, trials=2,
                seed=settings.seed)}

    inn.train()
    loop.run(train_step, write, stop_after=stop_after, progress=progress, desc=f"train {out.name}")
    loop.finish(write, keep_state, before=evaluate_held_out)
    return zoo.read_config(out)


def model_card(meta: dict, name: str) -> ModelCard:
    """The model card of an INN checkpoint: what it is, how it was trained, how it scores."""
    t, c = meta["training"], meta["config"]
    kind = "SNR-conditioned (SING-INN)" if c["conditional"] else f"unconditional, one SNR (CommIN, {t['snr_range'][0]:g} dB)"
    intro = [f"Conditional INN of linksim (`linksim/restore/inn.py`), {kind}: Haar split in {c['levels']} levels "
             f"(coarse part = 1/{2 ** c['levels']} per side), {c['pairs']} lifting pairs per level, width {c['width']}, "
             f"{c['blocks']} CondBlocks per net; {meta['parameters']:,} parameters.", "",
             f"Trained to predict `avgpool{2 ** c['levels']}(x̂)` of **{meta['deepjscc']}** ({meta['channel']}) from x "
             f"(SING eq. 16), SNR uniform in [{t['snr_range'][0]:g}, {t['snr_range'][1]:g}] dB."]
    training = [command_row(meta),
                f"- data: {', '.join(t['data'])} ({meta['data_images']} images, {t['size']}² crops, flips)",
                f"- steps: {meta['step']} of {t['steps']} × batch {t['batch']}, Adam lr {t['lr']:g} cosine, "
                f"detail weight {t['detail_weight']:g}",
                wall_time_row(meta)]
    if meta["history"]:
        training.append(f"- final training loss (mean of the last {meta['history'][-1]['steps']} steps): "
                        f"{meta['history'][-1]['loss']:.3g}")
    card = ModelCard(name, intro, [("Training", training)])
    ev = meta.get("evaluation")
    if ev:
        card.sections.append(("Held-out coarse-part error", [
            f"{ev['images']} images of {', '.join(t['val_data'])} (centre square → {t['size']}²), "
            f"{ev['trials']} channel draws per SNR; MSE in [0, 1] units² of the {2 ** c['levels']}×-pooled image. "
            "*linear A* is SING-Zero's avgpool(x) (= this INN untrained).", "",
            "| SNR (dB) | INN coarse MSE | linear A MSE | ratio |", "|---|---|---|---|",
            *[f"| {r['snr_db']:g} | {r['inn_mse']:.5f} | {r['linear_mse']:.5f} | {r['ratio']:.3f} |"
              for r in ev["rows"]]]))
    card.sections.append(("Use", [f"`type: {'sing-inn' if c['conditional'] else 'commin'}` restorer entry with "
                                  f"`inn: {name}` (see `linksim/restore/specs.py`). Outside the trained SNR range "
                                  "the INN warns."]))
    return card
