"""Training DiffJSCC's control module, the base latent diffusion model frozen (``linksim train diffjscc-control``).

The control module (:class:`linksim.restore.diffjscc_control.ControlModule`) learns to steer a
frozen base model (a local diffusers folder: ``vae/``, ``unet/``, ``scheduler/``) towards the
image a DeepJSCC link received. Pairs (x, x̂) are made on the fly by running a DeepJSCC
checkpoint with the channel in the loop at an SNR drawn uniformly in ``snr_range``; then

    z0 = VAE.mode(2x − 1) · scaling_factor       c = the condition latent of x̂ (the pipeline's encode)
    t ~ U{0 … T−1},  ε ~ N(0, I),  z_t = scheduler.add_noise(z0, ε, t)
    L = ‖ControlledUNet(z_t, t, c, snr, null text) − ε‖²   (mean)

(the ε-prediction loss of DiffBIR / DiffJSCC; only ``prediction_type = "epsilon"`` schedulers
are accepted). AdamW (lr 1e-4 by default, the paper's) updates the control module only —
the optimizer never sees the base VAE/UNet, whose weights stay bit-identical.

Every draw (per step: crops and flips, SNRs, channel noise, t, ε) comes from one seeded CPU
generator saved with the optimizer state and the control weights in
``train_state.safetensors``; rerunning the command resumes and ends with the same weights as
an uninterrupted run.

Output folder: ``model.safetensors`` + ``config.json`` written by :meth:`ControlModule.save`
(so ``DiffJSCCPipeline.from_pretrained(base, out)`` loads it), ``training.json`` (settings,
step, wall time, loss history, final loss) and ``MODEL_CARD.md``.

This module composes ``jscc`` (pair generation) with ``restore`` (the pipeline): it lives in
the training package, one floor above both.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
import torch.nn.functional as F

from linksim import zoo
from linksim.channel import make_channel
from linksim.crops import ResizedCrops
from linksim.errors import ConfigError
from linksim.results import write_json
from linksim.train.cards import ModelCard, command_row, loss_curve, wall_time_row
from linksim.train.flags import setting
from linksim.train.loop import TrainLoop, device_words, machine_words, parameter_count, training_device
from linksim.train.state import STATE

__all__ = ["ControlSettings", "TRAINING_JSON", "model_card", "train_control"]

#: the run record next to the control module's config.json / model.safetensors
TRAINING_JSON = "training.json"

#: SNR range (dB) when the DeepJSCC checkpoint records none
DEFAULT_SNR_RANGE = (1.0, 13.0)


def _vae_factor(base: Path) -> int:
    """The VAE's spatial factor 2^(len(block_out_channels) − 1), read from ``base/vae/config.json``."""
    path = base / "vae" / "config.json"
    try:
        cfg = json.loads(path.read_text())
        return 2 ** (len(cfg["block_out_channels"]) - 1)
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise ConfigError("base", str(base), f"a diffusers folder with vae/config.json (unreadable: {e})") from None


@dataclass
class ControlSettings:
    """Everything that determines a control-module training run (stored in ``training.json``).

    ``base`` is kept as given (the record shows the name); the folder it resolved to is
    :attr:`base_folder`. ``snr_range`` and ``channel`` left None are resolved from the
    DeepJSCC checkpoint when the settings are made.
    """

    deepjscc: str = setting(help="the DeepJSCC checkpoint (name or folder) whose outputs x̂ condition the model")
    base: str = setting(help="local diffusers folder of the frozen base model (vae/, unet/, scheduler/), or its "
                             "name under $LINKSIM_CHECKPOINTS or linksim/checkpoints/")
    data: list[str] = setting(help="training image folders (searched recursively); random size² crops at the "
                                   "images' own scale with horizontal flips", nargs="+")
    snr_range: tuple[float, float] | None = setting(None, nargs=2, type=float, metavar=("LOW", "HIGH"),
                                                    help="SNR (dB) drawn uniformly (default: the checkpoint's "
                                                         "training range, else 1 13)")
    channel: str | None = setting(None, choices=["awgn", "rayleigh-block"],
                                  help="the channel of the pairs (default: the checkpoint's)")
    size: int = setting(64, help="crop size, a multiple of the VAE factor and of the DeepJSCC downsampling")
    steps: int = setting(5000, help="optimizer steps")
    batch: int = setting(8, help="crops per step")
    lr: float = setting(1e-4, help="AdamW learning rate (DiffJSCC's 1e-4; cosine)")
    seed: int = setting(0, help="seed of the SNR embedding's weights and of every draw")
    save_every: int = setting(250, help="steps between resumable saves")
    snr_embedding: bool = setting(True, flag="--no-snr", help="spatial-only ablation (the DiffJSCC paper's): no "
                                                              "SNR embedding")

    def __post_init__(self):
        from linksim import zoo

        if not isinstance(self.deepjscc, str) or not self.deepjscc:
            raise ConfigError("deepjscc", self.deepjscc, "a DeepJSCC checkpoint name or folder")
        if not self.data or isinstance(self.data, (str, os.PathLike)):
            raise ConfigError("data", self.data, "a list of one or more image folders or files")
        self.data = [str(d) for d in self.data]
        layout = ("a local diffusers folder with vae/, unet/ and scheduler/, or the name of one under "
                  "$LINKSIM_CHECKPOINTS or linksim/checkpoints/")
        if not isinstance(self.base, (str, os.PathLike)) or not str(self.base):
            raise ConfigError("base", self.base, layout)
        self.base = str(self.base)
        base = zoo.locate(self.base)
        if base is None:
            raise ConfigError("base", self.base, f"{layout} (no such folder or name)")
        self._base_folder = base
        for name in ("size", "steps", "batch", "save_every"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ConfigError(name, v, "a positive integer")
        if isinstance(self.seed, bool) or not isinstance(self.seed, int):
            raise ConfigError("seed", self.seed, "an integer")
        if not isinstance(self.snr_embedding, bool):
            raise ConfigError("snr_embedding", self.snr_embedding,
                              "True (spatial + SNR, DiffJSCC) or False (the spatial-only ablation)")
        if isinstance(self.lr, bool) or not (isinstance(self.lr, (int, float)) and math.isfinite(self.lr)
                                             and self.lr > 0):
            raise ConfigError("lr", self.lr, "a positive learning rate")
        self.lr = float(self.lr)
        # the DeepJSCC checkpoint: its defaults (SNR range, channel) and its downsampling
        meta = zoo.read_config(zoo.resolve(self.deepjscc))
        if meta.get("kind") != "deepjscc":
            raise ConfigError("deepjscc", self.deepjscc, f"a deepjscc checkpoint (this one is {meta.get('kind')!r})")
        if self.snr_range is None:
            recorded = (meta.get("training") or {}).get("snr_range") or meta["config"].get("snr_range_db")
            self.snr_range = tuple(recorded) if recorded else DEFAULT_SNR_RANGE
        r = tuple(self.snr_range)
        if (len(r) != 2 or not all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
                                   for v in r) or r[0] > r[1]):
            raise ConfigError("snr_range", list(r), "[LOW, HIGH] in dB with LOW ≤ HIGH")
        self.snr_range = (float(r[0]), float(r[1]))
        if self.channel is None:
            self.channel = meta["config"].get("channel", "awgn")
        make_channel(self.channel)  # validates the name
        f_vae = _vae_factor(base)
        f_jscc = 2 ** len(meta["config"].get("widths", ()))
        if self.size % f_vae:
            raise ConfigError("size", self.size, f"a multiple of the VAE factor {f_vae}")
        if self.size % f_jscc:
            raise ConfigError("size", self.size, f"a multiple of the DeepJSCC downsampling {f_jscc}")

    @property
    def base_folder(self) -> Path:
        """The base model's folder: ``base`` as a path, or the checkpoint folder of that name."""
        return self._base_folder

    def to_dict(self) -> dict:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}


def _build_pipeline(settings: ControlSettings, device):
    """The pipeline over the base folder with a fresh control module (a hook for tests)."""
    from linksim.restore.diffjscc import DiffJSCCPipeline

    return DiffJSCCPipeline.from_pretrained(settings.base_folder, None, device=device,
                                            snr_embedding=settings.snr_embedding)


def _previous_run(settings: ControlSettings, out: Path) -> dict:
    """What ``out`` holds of this run: ``{}`` for a fresh start, ``{"wall_seconds"}`` to resume,
    ``{"complete": True, "record"}`` for a finished run of the same settings.

    :raises ConfigError: field ``out`` for a folder holding a run with other settings.
    """
    record_path = out / TRAINING_JSON
    if not record_path.is_file():
        return {}
    saved = json.loads(record_path.read_text())
    before = saved.get("settings")
    if isinstance(before, dict):  # a record written before snr_embedding existed: it had one
        before = {"snr_embedding": True, **before}
    if before != settings.to_dict():
        raise ConfigError("out", str(out), "an empty folder or one holding a run with the same settings "
                                           f"(this one was made with other settings; see its {TRAINING_JSON})")
    if saved.get("step") == settings.steps and not (out / STATE).exists():
        return {"complete": True, "record": saved}
    return {"wall_seconds": saved.get("wall_seconds", 0.0)} if (out / STATE).exists() else {}


def train_control(settings: ControlSettings, out: str | Path, *, command: str = "", progress: bool = True,
                  keep_state: bool = False, stop_after: int | None = None, device: str = "cpu") -> dict:
    """Train (or resume) a DiffJSCC control module into ``out``; returns the ``training.json`` written.

    :param stop_after: end this call after that many steps (saved, resumable).
    :param device: where the models run (draws always come from the seeded CPU generator).
    :raises ConfigError: field ``out`` for a folder holding a run with other settings;
        ``scheduler`` for a prediction type other than epsilon; ``device``; the pipeline's
        loading errors.
    """
    out = Path(out)
    record_path = out / TRAINING_JSON
    saved = _previous_run(settings, out)
    if saved.get("complete"):
        return saved["record"]
    elapsed = saved.get("wall_seconds", 0.0)
    device = training_device(device)
    # the DeepJSCC link runs on the CPU: its channel noise comes from the CPU generator `gen`
    # (so a CUDA run draws the same pairs), and it is small next to the diffusion models
    model = zoo.load_deepjscc(settings.deepjscc, device="cpu")
    model.requires_grad_(False)
    channel = make_channel(settings.channel)
    crops = ResizedCrops(settings.data, settings.size, progress=progress, keep_scale=True)

    torch.manual_seed(settings.seed)  # weight initialization only (the SNR MLP); every draw below uses `gen`
    pipe = _build_pipeline(settings, device)
    prediction = pipe.scheduler.config.prediction_type
    if prediction != "epsilon":
        raise ConfigError("scheduler", f"prediction_type={prediction!r}",
                          "'epsilon' (the control module is trained with the ε-prediction loss)")
    controlled, control = pipe.controlled, pipe.controlled.control
    pipe.vae.requires_grad_(False).eval()
    controlled.unet.requires_grad_(False)
    T = int(pipe.scheduler.config.num_train_timesteps)
    gen = torch.Generator().manual_seed(settings.seed)
    params = list(controlled.trainable_parameters())
    opt = torch.optim.AdamW(params, lr=settings.lr)
    out.mkdir(parents=True, exist_ok=True)
    loop = TrainLoop(state_dir=out, steps=settings.steps, lr=settings.lr, save_every=settings.save_every, opt=opt,
                     gen=gen, params=params, weights=control, elapsed=elapsed)
    text = pipe.text_features(settings.batch)  # null text features (or the encoder's empty prompt)
    deepjscc_name = getattr(model, "name", settings.deepjscc)
    lo, hi = settings.snr_range

    def train_step(step: int):
        x = crops.sample(settings.batch, gen)
        snr = lo + (hi - lo) * torch.rand(settings.batch, generator=gen)
        with torch.no_grad():
            x_hat = model(x, snr, channel, gen).clamp(0, 1)
            z0 = pipe.encode(x)          # (mode(VAE(2x − 1)) − shift) · scaling_factor
            cond = pipe.encode(x_hat)
        t = torch.randint(0, T, (settings.batch,), generator=gen)
        noise = torch.randn(z0.shape, generator=gen).to(device)
        z_t = pipe.scheduler.add_noise(z0, noise, t.to(device))
        pred = controlled(z_t, t.to(device), cond, snr.to(device), text)
        loss = F.mse_loss(pred.float(), noise)
        return loss, loss

    def write(final: bool) -> None:
        history = loop.history
        record = {"kind": "diffjscc-control", "settings": settings.to_dict(), "step": loop.step,
                  "wall_seconds": round(loop.elapsed, 1), "final_loss": history[-1]["loss"] if history else None,
                  "history": history, "deepjscc": deepjscc_name, "base": settings.base,
                  # a shipped name is its own record; a folder the user gave is kept as its resolved path
                  "base_folder": str(settings.base_folder) if Path(settings.base).expanduser().is_dir() else None,
                  "parameters": parameter_count(control), "data_images": len(crops),
                  "threads": torch.get_num_threads(), "machine": machine_words(),
                  "device": device_words(device), "command": command}
        control.save(out)
        (out / zoo.CARD).write_text(model_card(record, out.name).text())
        write_json(record_path, record)

    controlled.train()
    loop.run(train_step, write, stop_after=stop_after, progress=progress, desc=f"train {out.name}")
    loop.finish(write, keep_state)
    return json.loads(record_path.read_text())


def model_card(record: dict, name: str) -> ModelCard:
    """The model card of a trained control module: what it is, how it was trained, its loss curve."""
    s = record["settings"]
    with_snr = s.get("snr_embedding", True)
    variant = ("spatial + SNR (DiffJSCC): zero convs and an SNR embedding added to the time embedding" if with_snr
               else "spatial only (the DiffJSCC paper's ablation, `--no-snr`): zero convs, no SNR embedding — "
                    "the channel SNR does not reach the model")
    base = s["base"]
    if record.get("base_folder") and record["base_folder"] != base:
        base = f"{base}` → `{record['base_folder']}"
    intro = ["DiffJSCC control module of linksim (`linksim/restore/diffjscc_control.py`): a ControlNet-style copy "
             f"of the base UNet's encoder; {record['parameters']:,} trainable parameters. The base model stays "
             "frozen (not stored here).", "",
             f"- variant: **{'spatial + SNR' if with_snr else 'spatial only'}** — {variant}",
             f"- base model: `{base}` (load with `DiffJSCCPipeline.from_pretrained(base, this_folder)`)",
             f"- DeepJSCC checkpoint: **{record['deepjscc']}** ({s['channel']}), SNR uniform in "
             f"[{s['snr_range'][0]:g}, {s['snr_range'][1]:g}] dB"]
    training = [command_row(record),
                f"- data: {', '.join(s['data'])} ({record['data_images']} images, {s['size']}² crops, flips)",
                "- loss: ε-prediction MSE, t uniform over the scheduler's steps, null text features",
                f"- steps: {record['step']} of {s['steps']} × batch {s['batch']}, AdamW lr {s['lr']:g} cosine, "
                f"seed {s['seed']}",
                wall_time_row(record)]
    card = ModelCard(name, intro, [("Training", training)])
    h = record["history"]
    if h:
        training.append(f"- final training loss (mean of the last {h[-1]['steps']} steps): {h[-1]['loss']:.4g}")
        card.sections.append(("Loss curve", loss_curve(h, rows=12, steps_column=True)))
    return card
