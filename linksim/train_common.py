"""What the linksim training commands share (``linksim train deepjscc|prior|inn|diffjscc-control``).

* :func:`cosine_lr` — the learning-rate schedule: a 2 % linear warm-up, then cosine from
  ``lr`` to ``lr/100``.
* :func:`save_train_state` / :func:`load_train_state` — the resumable part of a run in one
  safetensors file (never a pickle): the step, the seeded generator's state, the optimizer
  moments, optionally the training weights, and a JSON history in the metadata. Restoring
  all of it makes a resumed run end with the same weights as an uninterrupted one.
* :func:`descend`, :class:`RunProgress`, :func:`finish_training` — one optimizer step, the
  step/loss/time bookkeeping of the loop, and the end of a run (used by ``train inn`` and
  ``train diffjscc-control``).
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path

import torch

__all__ = ["STATE", "RunProgress", "cosine_lr", "descend", "finish_training", "load_train_state", "save_train_state"]

#: File name of the resumable state inside a run's output folder.
STATE = "train_state.safetensors"


def cosine_lr(step: int, steps: int, lr: float) -> float:
    """Learning rate at ``step`` (0-based) of ``steps``: 2 % linear warm-up, then cosine to lr/100."""
    warm = max(1, steps // 50)
    if step < warm:
        return lr * (step + 1) / warm
    t = (step - warm) / max(1, steps - warm)
    lo = lr / 100
    return lo + 0.5 * (lr - lo) * (1 + math.cos(math.pi * t))


def save_train_state(out: Path, step: int, opt: torch.optim.Optimizer, gen: torch.Generator, history: list,
                     model: torch.nn.Module | None = None) -> None:
    """Write ``out/STATE`` atomically (temporary file, then rename).

    ``model``: also store these weights (``model.*`` keys) — for runs whose exported weights
    are not the training weights (an EMA).
    """
    from safetensors.torch import save_file

    tensors = {"step": torch.tensor(step), "rng": gen.get_state()}
    if model is not None:
        for name, t in model.state_dict().items():
            tensors[f"model.{name}"] = t.detach().cpu().contiguous()
    for i, st in opt.state_dict()["state"].items():
        for name, t in st.items():
            tensors[f"opt.{i}.{name}"] = torch.as_tensor(t).detach().cpu().contiguous()
    tmp = out / (STATE + ".tmp")
    save_file(tensors, str(tmp), metadata={"history": json.dumps(history)})
    tmp.replace(out / STATE)


def load_train_state(out: Path, opt: torch.optim.Optimizer, gen: torch.Generator,
                     model: torch.nn.Module | None = None) -> tuple[int, list]:
    """Restore what :func:`save_train_state` wrote into ``opt``, ``gen`` (and ``model``);
    returns ``(step, history)``. Optimizer moments go to the device of the parameters."""
    from safetensors import safe_open

    from linksim import zoo

    with safe_open(str(out / STATE), framework="pt") as f:
        tensors = {k: f.get_tensor(k) for k in f.keys()}
        history = json.loads(f.metadata().get("history", "[]"))
    if model is not None:
        weights = {k[len("model."):]: v for k, v in tensors.items() if k.startswith("model.")}
        zoo.check_state(model, weights, str(out / STATE))
        model.load_state_dict(weights)
    device = opt.param_groups[0]["params"][0].device
    state = opt.state_dict()
    per_param: dict[int, dict] = {}
    for key, t in tensors.items():
        if key.startswith("opt."):
            _, i, name = key.split(".", 2)
            per_param.setdefault(int(i), {})[name] = t if name == "step" else t.to(device)
    state["state"] = per_param
    opt.load_state_dict(state)
    gen.set_state(tensors["rng"])
    return int(tensors["step"]), history


def descend(opt: torch.optim.Optimizer, loss: torch.Tensor, params, max_norm: float = 1.0) -> None:
    """One optimizer step on ``loss``: zero the gradients, backpropagate, clip their global norm
    to ``max_norm`` (the trained nets here are small; one bad batch must not blow them up), step."""
    opt.zero_grad(set_to_none=True)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(params, max_norm)
    opt.step()


def finish_training(out: Path, step: int, steps: int, save_final, keep_state: bool, opt: torch.optim.Optimizer,
                    gen: torch.Generator, history: list, model: torch.nn.Module | None = None) -> None:
    """End of a resumable run: when ``step`` reached ``steps``, write the final outputs
    (``save_final()``), then keep the resumable state (``keep_state``) or delete it."""
    if step != steps:
        return
    save_final()
    if keep_state:
        save_train_state(out, step, opt, gen, history, model=model)
    else:
        (out / STATE).unlink(missing_ok=True)


class RunProgress:
    """The step bookkeeping of a resumable training loop: the step counter (total and this
    call's), the mean loss since the last save, the wall time, the progress bar, the save cadence.

    Usage::

        run = RunProgress(steps, step, elapsed, save_every, stop_after, desc, progress)
        while run.running():
            loss = ...                         # one training step at run.step
            if run.record(loss.item()):        # a save is due (not the final one)
                save()                         # history.append(run.flush()) when not None
        run.close()
    """

    def __init__(self, steps: int, step: int, elapsed: float, save_every: int, stop_after: int | None,
                 desc: str, progress: bool):
        from tqdm.auto import tqdm

        self.steps, self.step, self.elapsed = steps, step, elapsed
        self.save_every, self.stop_after, self.session = save_every, stop_after, 0
        self._loss_sum, self._loss_n = 0.0, 0
        self._bar = tqdm(total=steps, initial=step, desc=desc, unit="step", disable=not progress, dynamic_ncols=True)
        self._t0 = time.perf_counter()

    def running(self) -> bool:
        """More steps to do, and this call's ``stop_after`` not reached."""
        return self.step < self.steps and (self.stop_after is None or self.session < self.stop_after)

    def record(self, loss: float) -> bool:
        """Count one finished step with its loss; True when a resumable save is due (every
        ``save_every`` steps before the last, and when this call stops after ``stop_after``)."""
        self.step, self.session = self.step + 1, self.session + 1
        self._loss_sum, self._loss_n = self._loss_sum + loss, self._loss_n + 1
        self._bar.update()
        self._bar.set_postfix(loss=f"{loss:.5f}")
        now = time.perf_counter()
        self.elapsed, self._t0 = self.elapsed + now - self._t0, now
        return self.step % self.save_every == 0 and self.step < self.steps or self.session == self.stop_after

    def flush(self) -> dict | None:
        """The history entry of the steps since the last flush (None if there were none)."""
        if not self._loss_n:
            return None
        entry = {"step": self.step, "loss": round(self._loss_sum / self._loss_n, 7), "steps": self._loss_n}
        self._loss_sum, self._loss_n = 0.0, 0
        return entry

    def close(self) -> None:
        self._bar.close()
