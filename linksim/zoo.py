"""Checkpoints: names → folders of ``model.safetensors`` + ``config.json`` + ``MODEL_CARD.md``.

A checkpoint folder holds exactly what rebuilds a model (DESIGN.md §6):

    model.safetensors   weights (never a pickle: loading one is refused)
    config.json         ``{"kind": "deepjscc", "config": {...}}`` — the architecture
    MODEL_CARD.md       how it was trained: command, data, steps, wall time, metrics

Names (``deepjscc-awgn-r1_48``, …) resolve to folders shipped inside the package
(``linksim/checkpoints/<name>/``) or under ``$LINKSIM_CHECKPOINTS``; a path to a folder
works everywhere a name does. Nothing is ever downloaded.

Diffusion priors (``linksim train prior``) are diffusers pipeline folders with the same
``config.json`` (kind ``ddpm-prior``) and ``MODEL_CARD.md`` at the root; their weights live
where diffusers puts them, ``unet/diffusion_pytorch_model.safetensors``
(:func:`weights_path`). :func:`resolve_prior` turns a prior name or any diffusers UNet
folder into a path for :func:`linksim.restore.load_prior`.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from pathlib import Path

import torch

from linksim.errors import ConfigError

__all__ = ["PRIOR_KIND", "SHIPPED_DIR", "available", "load_deepjscc", "load_inn", "load_state", "read_config", "resolve",
           "resolve_prior", "save_checkpoint", "weights_path"]

SHIPPED_DIR = Path(__file__).parent / "checkpoints"
WEIGHTS, CONFIG, CARD = "model.safetensors", "config.json", "MODEL_CARD.md"
_PICKLE_SUFFIXES = (".pt", ".pth", ".bin", ".ckpt", ".pkl", ".pickle")
#: ``config.json`` kind of a diffusion prior folder (weights in ``unet/``, diffusers layout)
PRIOR_KIND = "ddpm-prior"
PRIOR_WEIGHTS = Path("unet") / "diffusion_pytorch_model.safetensors"


def _search_dirs() -> list[Path]:
    extra = os.environ.get("LINKSIM_CHECKPOINTS")
    return ([Path(extra)] if extra else []) + [SHIPPED_DIR]


def available(kind: str | None = None) -> list[str]:
    """Names of the checkpoints that can be loaded by name (optionally of one ``kind``)."""
    names = set()
    for d in _search_dirs():
        if d.is_dir():
            for sub in d.iterdir():
                found = _kind(sub)
                if found is not None and (kind is None or found == kind):
                    names.add(sub.name)
    return sorted(names)


def _kind(folder: Path) -> str | None:
    """The ``kind`` of a linksim checkpoint folder; None for anything else (no or another
    ``config.json``: a DiffJSCC control module, a diffusers component, an unreadable file —
    loading such a folder by name still raises :func:`read_config`'s error)."""
    try:
        cfg = json.loads((folder / CONFIG).read_text())
    except (OSError, ValueError):
        return None
    return cfg["kind"] if isinstance(cfg, dict) and "kind" in cfg and "config" in cfg else None


def resolve(name_or_path: str | Path) -> Path:
    """The checkpoint folder for a name or a path; a clear error when there is none.

    :raises ConfigError: field ``checkpoint`` — unknown name, a pickle file, or a folder
        without ``model.safetensors`` / ``config.json``.
    """
    text = str(name_or_path)
    path = Path(text).expanduser()
    if path.suffix.lower() in _PICKLE_SUFFIXES:
        raise ConfigError("checkpoint", text, "a checkpoint folder with model.safetensors + config.json "
                                              "(pickled weights are never loaded: they can run arbitrary code)")
    if path.is_file() and path.name == WEIGHTS:
        path = path.parent
    if not path.is_dir():
        for d in _search_dirs():
            if (d / text).is_dir():
                path = d / text
                break
        else:
            raise ConfigError("checkpoint", text, f"a checkpoint folder or one of the names {available()}")
    if not (path / CONFIG).is_file():
        raise ConfigError("checkpoint", str(path), f"a folder containing {WEIGHTS} and {CONFIG} ({CONFIG} is missing)")
    weights = weights_path(path)
    if not weights.is_file():
        raise ConfigError("checkpoint", str(path), f"a folder containing {weights.relative_to(path)} and {CONFIG} "
                                                   f"({weights.relative_to(path)} is missing)")
    return path


def weights_path(folder: str | Path) -> Path:
    """The weights file of a checkpoint folder: ``model.safetensors``, or for a diffusion
    prior (``config.json`` kind ``ddpm-prior``) ``unet/diffusion_pytorch_model.safetensors``."""
    folder = Path(folder)
    if (folder / CONFIG).is_file():
        try:
            kind = json.loads((folder / CONFIG).read_text()).get("kind")
        except (OSError, ValueError, AttributeError):
            kind = None
        if kind == PRIOR_KIND:
            return folder / PRIOR_WEIGHTS
    return folder / WEIGHTS


def resolve_prior(name_or_path: str | Path) -> Path:
    """The folder of a diffusion prior: a path to any diffusers ``UNet2DModel`` folder (or
    pipeline folder) as given, or the name of a ``ddpm-prior`` checkpoint folder.

    Only the folder is located here; :func:`linksim.restore.priors.inspect_prior` checks its
    contents. :raises ConfigError: field ``prior`` — a pickle file, or neither a folder nor a
    prior name (the error lists the prior names).
    """
    text = str(name_or_path)
    path = Path(text).expanduser()
    if path.suffix.lower() in _PICKLE_SUFFIXES:
        raise ConfigError("prior", text, "a diffusers UNet2DModel folder or a prior name (pickled weights are never "
                                         "loaded: they can run arbitrary code)")
    if path.is_dir():
        return path
    if text.strip() and "/" not in text and "\\" not in text:
        for d in _search_dirs():
            if (d / text / CONFIG).is_file():
                try:
                    kind = read_config(d / text).get("kind")
                except ConfigError:
                    kind = None
                if kind == PRIOR_KIND:
                    return d / text
    raise ConfigError("prior", text, f"a diffusers UNet2DModel folder or one of the prior names "
                                     f"{available(PRIOR_KIND)} (linksim/checkpoints/ or $LINKSIM_CHECKPOINTS)")


def read_config(folder: str | Path) -> dict:
    """The parsed ``config.json`` of a checkpoint folder."""
    path = Path(folder) / CONFIG
    try:
        cfg = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise ConfigError("checkpoint.config", str(path), f"a readable JSON file ({e})") from None
    if not isinstance(cfg, dict) or "kind" not in cfg or "config" not in cfg:
        raise ConfigError("checkpoint.config", str(path), 'a JSON object {"kind": ..., "config": {...}}')
    return cfg


def load_state(folder: str | Path) -> dict[str, torch.Tensor]:
    """The tensors of ``model.safetensors``; anything that is not safetensors is refused."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    path = Path(folder) / WEIGHTS
    # safetensors parsing never runs code, so it is tried first: the first 8 bytes of a
    # valid file are its header length, which may well begin with 0x80 or "PK"; sniffing
    # for a pickle only names the cause once the file has failed to parse
    try:
        return load_file(str(path))
    except (SafetensorError, OSError, ValueError) as e:
        try:
            with open(path, "rb") as f:
                head = f.read(4)
        except OSError:
            head = b""
        if head[:1] == b"\x80" or head[:4] == b"PK\x03\x04":  # pickle protocol ≥ 2 / torch.save zip
            raise ConfigError("checkpoint", str(path), "a safetensors file (this one is a pickle/torch.save "
                                                       "archive, which is never loaded: it can run arbitrary code)") from None
        raise ConfigError("checkpoint", str(path), f"a valid safetensors file ({e})") from None


def files_digest(*paths: str | Path) -> str:
    """SHA-256 over the bytes of ``paths`` in order (streamed): what a run's results depend on."""
    digest = hashlib.sha256()
    for path in paths:
        with open(path, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()


def check_state(model: torch.nn.Module, state: dict[str, torch.Tensor], where: str) -> None:
    """Refuse weights that do not match the architecture their config describes."""
    expected = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    got = {k: tuple(v.shape) for k, v in state.items()}
    missing, unexpected = sorted(set(expected) - set(got)), sorted(set(got) - set(expected))
    wrong = sorted(k for k in set(expected) & set(got) if expected[k] != got[k])
    if missing or unexpected or wrong:
        detail = (f"missing {missing[:3]}" if missing else f"unexpected {unexpected[:3]}" if unexpected
                  else f"{wrong[0]} has shape {got[wrong[0]]}, the config builds {expected[wrong[0]]}")
        raise ConfigError("checkpoint", where, f"weights matching its config.json ({detail})")


def save_checkpoint(model: torch.nn.Module, folder: str | Path, kind: str, config: dict,
                    card: str | None = None, extra: dict | None = None) -> Path:
    """Write ``model.safetensors`` + ``config.json`` (+ ``MODEL_CARD.md``) atomically.

    The files are written into a temporary sibling folder and moved into place, so an
    interrupted save never leaves a half-written checkpoint.
    """
    from safetensors.torch import save_file

    folder = Path(folder)
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{folder.name}-", dir=folder.parent))
    try:
        state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
        save_file(state, str(tmp / WEIGHTS), metadata={"kind": kind})
        (tmp / CONFIG).write_text(json.dumps({"kind": kind, "config": config, **(extra or {})}, indent=2) + "\n")
        if card is not None:
            (tmp / CARD).write_text(card)
        if folder.is_dir():  # overwrite file by file, each replacement atomic
            for name in (WEIGHTS, CONFIG, CARD):
                if (tmp / name).exists():
                    os.replace(tmp / name, folder / name)
        else:
            os.replace(tmp, folder)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return folder


def load_deepjscc(name_or_path: str | Path, device: str | torch.device = "cpu"):
    """A :class:`~linksim.jscc.models.DeepJSCC` from a checkpoint name or folder, in eval mode."""
    from linksim.jscc.models import DeepJSCC, DeepJSCCConfig

    folder = resolve(name_or_path)
    cfg = read_config(folder)
    if cfg["kind"] != "deepjscc":
        raise ConfigError("checkpoint", str(folder), f"a deepjscc checkpoint (this one is {cfg['kind']!r})")
    model = DeepJSCC(DeepJSCCConfig.from_dict(cfg["config"]))
    state = load_state(folder)
    check_state(model, state, str(folder))
    model.load_state_dict(state)
    model.name = folder.name
    return model.to(device).eval()


def load_inn(name_or_path: str | Path, device: str | torch.device = "cpu"):
    """A :class:`~linksim.restore.inn.ConditionalINN` from a checkpoint name or folder (kind ``inn``),
    in eval mode, with ``.name`` and ``.meta`` (its ``config.json``: training settings, held-out errors)."""
    from linksim.restore.inn import ConditionalINN, ConditionalINNConfig

    folder = resolve(name_or_path)
    cfg = read_config(folder)
    if cfg.get("kind") != "inn":
        raise ConfigError("inn", str(folder), f"an INN checkpoint (kind 'inn'; this one is {cfg.get('kind')!r})")
    model = ConditionalINN(ConditionalINNConfig.from_dict(cfg["config"]))
    state = load_state(folder)
    check_state(model, state, str(folder))
    model.load_state_dict(state)
    model.name, model.meta = folder.name, cfg
    return model.to(device).eval().requires_grad_(False)
