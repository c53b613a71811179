"""The one training loop of ``linksim train …``: cosine learning rate, one optimizer step,
EMA, progress bar, save cadence, stop-after, resume and final save.

A trainer builds its models, optimizer and seeded CPU generator, then hands the loop two
callbacks:

* ``train_step(step) -> (loss, shown)`` — draws one batch from the generator and runs the
  forward pass (under :func:`autocast` where the trainer uses bfloat16); ``loss`` is what
  the optimizer descends, ``shown`` the number recorded and displayed (often the same).
* ``write(final)`` — writes the run's outputs (weights, config, model card) from
  :attr:`TrainLoop.step`, :attr:`TrainLoop.elapsed` and :attr:`TrainLoop.history`.

Per step the loop does, in this order: set the learning rate (:func:`cosine_lr`), call
``train_step``, :func:`descend`, update the :class:`EMA`, count the step, run the
``after_step`` hook (e.g. validation), and save when due. Only ``train_step`` draws from the
generator, so the order of the draws is the trainer's alone; the loop draws nothing. The
resumable state (:mod:`linksim.train.state`) is restored when the loop is made and written
after every save but the final one, which is why a resumed run ends bit-exactly where an
uninterrupted one does (same machine, device and thread count).

Usage::

    loop = TrainLoop(state_dir=out, steps=..., lr=..., save_every=..., opt=opt, gen=gen, params=params,
                     weights=model)          # resumes if out/train_state.safetensors exists
    loop.run(train_step, write, stop_after=None, progress=True, desc="train x")
    loop.finish(write, keep_state=False)      # final outputs once step == steps
"""

from __future__ import annotations

import copy
import math
import platform
import time
from pathlib import Path
from typing import Callable

import torch

from linksim.train.state import STATE, load_train_state, save_train_state

__all__ = ["EMA", "TrainLoop", "autocast", "cosine_lr", "descend", "device_words", "machine_words",
           "parameter_count", "training_device"]


def cosine_lr(step: int, steps: int, lr: float) -> float:
    """Learning rate at ``step`` (0-based) of ``steps``: 2 % linear warm-up, then cosine to lr/100."""
    warm = max(1, steps // 50)
    if step < warm:
        return lr * (step + 1) / warm
    t = (step - warm) / max(1, steps - warm)
    lo = lr / 100
    return lo + 0.5 * (lr - lo) * (1 + math.cos(math.pi * t))


def descend(opt: torch.optim.Optimizer, loss: torch.Tensor, params, max_norm: float | None = 1.0) -> None:
    """One optimizer step on ``loss``: zero the gradients, backpropagate, clip their global norm
    to ``max_norm`` (the trained nets here are small; one bad batch must not blow them up;
    None: no clipping), step."""
    opt.zero_grad(set_to_none=True)
    loss.backward()
    if max_norm is not None:
        torch.nn.utils.clip_grad_norm_(params, max_norm)
    opt.step()


def autocast(device: torch.device, enabled: bool):
    """bfloat16 autocast on ``device`` when ``enabled`` (the forward passes of a trainer's step)."""
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=enabled)


def training_device(value) -> torch.device:
    """``value`` (``cpu``, ``cuda``, ``cuda:N``) as a device; :class:`~linksim.errors.ConfigError`
    naming ``device`` otherwise."""
    from linksim.devices import parse_device

    return torch.device(parse_device(value, "device"))


def device_words(device: torch.device) -> str:
    """``cpu`` or the GPU's name, for config.json and the model card."""
    if device.type == "cuda":
        return f"{device} ({torch.cuda.get_device_name(device)})"
    return str(device)


def machine_words() -> str:
    """The CPU, as config.json records it."""
    return platform.processor() or platform.machine()


def parameter_count(module: torch.nn.Module) -> int:
    """Number of parameters of ``module`` (trainable or not)."""
    return sum(p.numel() for p in module.parameters())


class EMA:
    """Exponential moving average of a model's weights (the exported weights of the diffusion
    trainers). ``decay`` 0: no average — :attr:`model` is the trained model itself.

    The decay warms up as ``min(decay, (1 + step) / (10 + step))`` so the first steps do not
    keep the random initialization; buffers are copied, not averaged.
    """

    def __init__(self, source: torch.nn.Module, decay: float):
        self.source, self.decay = source, decay
        self.model = copy.deepcopy(source).requires_grad_(False) if decay > 0 else source

    @property
    def active(self) -> bool:
        return self.model is not self.source

    @torch.no_grad()
    def update(self, step: int) -> None:
        """Move the average towards the source after optimizer step ``step`` (0-based)."""
        if not self.active:
            return
        decay = min(self.decay, (1 + step) / (10 + step))
        for p_ema, p in zip(self.model.parameters(), self.source.parameters()):
            p_ema.lerp_(p.detach(), 1.0 - decay)
        for b_ema, b in zip(self.model.buffers(), self.source.buffers()):
            b_ema.copy_(b)

    def load(self, path: Path) -> None:
        """Resume: the average from the exported weights file at ``path`` (safetensors)."""
        if not self.active:
            return
        from safetensors.torch import load_file

        from linksim import zoo

        weights = load_file(str(path))
        zoo.check_state(self.model, weights, str(path))
        self.model.load_state_dict(weights)


class TrainLoop:
    """One resumable training run over ``steps`` optimizer steps.

    :param state_dir: folder of ``train_state.safetensors``; when the file exists the loop
        resumes from it at construction (:attr:`resumed`).
    :param steps, lr, save_every: the run's length, peak learning rate, resumable-save cadence.
    :param opt, gen, params: the optimizer, the seeded CPU generator, the parameters clipped.
    :param max_norm: gradient-norm clip (None: none).
    :param weights: the training weights to keep in the state file (None: the trainer's
        exported weights are the training weights and resume from its own files).
    :param ema: an :class:`EMA` updated after every step (None: none).
    :param history, elapsed: what a resumed run's outputs recorded (the state file's history
        replaces ``history`` when resuming).
    :param loss_history: append the mean loss since the last save to :attr:`history` at
        every save (False: the trainer appends its own entries, e.g. validation).
    :param loss_digits: decimals of those means.
    :param save_at_stop: also save when a call ends early by ``stop_after`` (False: only at the
        ``save_every`` cadence, so stopping behaves like an interruption between saves).
    :param writer: whether this process writes outputs and state (False: a DDP rank other
        than 0, :mod:`linksim.train.distributed`).
    """

    def __init__(self, *, state_dir: Path, steps: int, lr: float, save_every: int, opt: torch.optim.Optimizer,
                 gen: torch.Generator, params, max_norm: float | None = 1.0, weights: torch.nn.Module | None = None,
                 ema: EMA | None = None, history: list | None = None, elapsed: float = 0.0,
                 loss_history: bool = True, loss_digits: int = 7, save_at_stop: bool = True, writer: bool = True):
        self.state_dir, self.steps, self.lr, self.save_every = Path(state_dir), steps, lr, save_every
        self.writer = writer  # False: a DDP rank other than 0, which writes nothing
        self.opt, self.gen, self.params, self.max_norm = opt, gen, list(params), max_norm
        self.weights, self.ema = weights, ema
        self.history = [] if history is None else history
        self.elapsed, self.loss_history, self.loss_digits = elapsed, loss_history, loss_digits
        self.save_at_stop = save_at_stop
        self.step = 0
        self._loss_sum, self._loss_n = 0.0, 0
        self.resumed = (self.state_dir / STATE).exists()
        if self.resumed:
            self.step, self.history = load_train_state(self.state_dir, opt, gen, model=weights)

    @property
    def complete(self) -> bool:
        return self.step == self.steps

    def run(self, train_step: Callable[[int], tuple], write: Callable[[bool], None], *, stop_after: int | None,
            progress: bool, desc: str, after_step: Callable[["TrainLoop"], None] | None = None,
            postfix: Callable[[float], dict] | None = None) -> int:
        """Train until ``steps`` or until this call has run ``stop_after`` steps; returns the
        steps this call ran. A resumable save is due every ``save_every`` steps before the
        last, and when this call stops early (``save_at_stop``). The time ``after_step``
        takes is not counted in :attr:`elapsed` (the wall time of training proper).

        The progress bar is :attr:`bar` while the call runs (``after_step`` may write to it)."""
        from tqdm.auto import tqdm

        bar = tqdm(total=self.steps, initial=self.step, desc=desc, unit="step", disable=not progress,
                   dynamic_ncols=True)
        self.bar, this_call, t0 = bar, 0, time.perf_counter()
        while self.step < self.steps and (stop_after is None or this_call < stop_after):
            for group in self.opt.param_groups:
                group["lr"] = cosine_lr(self.step, self.steps, self.lr)
            loss, shown = train_step(self.step)
            descend(self.opt, loss, self.params, self.max_norm)
            if self.ema is not None:
                self.ema.update(self.step)
            shown = shown.item() if isinstance(shown, torch.Tensor) else float(shown)
            self.step, this_call = self.step + 1, this_call + 1
            self._loss_sum, self._loss_n = self._loss_sum + shown, self._loss_n + 1
            bar.update()
            bar.set_postfix(**(postfix(shown) if postfix else {"loss": f"{shown:.5f}"}))
            now = time.perf_counter()
            self.elapsed, t0 = self.elapsed + now - t0, now
            if after_step is not None:
                after_step(self)
                t0 = time.perf_counter()
            stopping = this_call == stop_after
            if self.step % self.save_every == 0 and self.step < self.steps or stopping and self.save_at_stop:
                self.save(write, final=False)
        bar.close()
        return this_call

    def _flush(self) -> None:
        """Append the mean loss since the last save to the history (when the loop keeps it)."""
        if self.loss_history and self._loss_n:
            self.history.append({"step": self.step, "loss": round(self._loss_sum / self._loss_n, self.loss_digits),
                                 "steps": self._loss_n})
        self._loss_sum, self._loss_n = 0.0, 0

    def save(self, write: Callable[[bool], None], final: bool) -> None:
        """Write the outputs (``write(final)``), then, unless ``final``, the resumable state."""
        self._flush()
        if not self.writer:
            return
        write(final)
        if not final:
            self.state_dir.mkdir(parents=True, exist_ok=True)
            save_train_state(self.state_dir, self.step, self.opt, self.gen, self.history, model=self.weights)

    def finish(self, write: Callable[[bool], None], keep_state: bool,
               before: Callable[[], None] | None = None) -> bool:
        """End of the run once ``step == steps``: ``before()`` (final work such as samples),
        the final outputs, then keep the resumable state (``keep_state``) or delete it.
        Returns whether the run is complete."""
        if not self.complete:
            return False
        if before is not None:
            before()
        self.save(write, final=True)
        if not self.writer:
            return True
        if keep_state:
            save_train_state(self.state_dir, self.step, self.opt, self.gen, self.history, model=self.weights)
        else:
            (self.state_dir / STATE).unlink(missing_ok=True)
        return True
