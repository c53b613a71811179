"""The resumable part of a training run, in one safetensors file (never a pickle).

``train_state.safetensors`` holds the step, the seeded generator's state, the optimizer
moments, optionally the training weights (for runs whose exported weights are not the
training weights, e.g. an EMA), and a JSON history in the metadata. Restoring all of it
makes a resumed run end with the same weights as an uninterrupted one.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

__all__ = ["STATE", "load_train_state", "save_train_state"]

#: File name of the resumable state inside a run's output folder.
STATE = "train_state.safetensors"


def save_train_state(out: Path, step: int, opt: torch.optim.Optimizer, gen: torch.Generator, history: list,
                     model: torch.nn.Module | None = None) -> None:
    """Write ``out/STATE`` atomically (temporary file, then rename).

    ``model``: also store these weights (``model.*`` keys).
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
