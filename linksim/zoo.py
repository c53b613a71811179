"""Artifacts: names → folders of weights + ``config.json`` + ``MODEL_CARD.md``, and one loader.

An artifact folder holds exactly what rebuilds a model (docs/ARCHITECTURE.md §6):

    model.safetensors   weights (never a pickle: loading one is refused)
    config.json         ``{"kind": "deepjscc", "config": {...}}`` — the architecture
    MODEL_CARD.md       how it was trained: command, data, steps, wall time, metrics

Names (``deepjscc-awgn-r1_48``, …) resolve to folders shipped inside the package
(``linksim/checkpoints/<name>/``) or under ``$LINKSIM_CHECKPOINTS`` (searched first); a path
to a folder works everywhere a name does (:func:`locate`). Nothing is ever downloaded.

Kinds (:data:`KINDS`, :func:`kinds`): every ``config.json`` ``kind`` linksim knows, each with
how a folder of it is recognised (also a folder written before ``kind`` existed), how it
loads and one line for ``linksim models``:

====================  ==========================================================  ============================
kind                  :func:`load` returns                                        weights
====================  ==========================================================  ============================
``deepjscc``          :class:`~linksim.jscc.models.DeepJSCC` (eval mode)           ``model.safetensors``
``linear-basis``      :class:`~linksim.jscc.linear.LinearBasis`                     ``model.safetensors``
``inn``               :class:`~linksim.restore.inn.ConditionalINN` (SING-INN,      ``model.safetensors``
                      CommIN; eval, frozen, ``.meta`` = its ``config.json``)
``ddpm-prior``        :class:`~linksim.restore.priors.Prior`                        ``unet/`` (diffusers layout)
``diffjscc-base``     :class:`~linksim.restore.diffjscc.DiffJSCCPipeline` with a    ``vae/``, ``unet/``
                      fresh control module (the unsteered base model)
``diffjscc-control``  :class:`~linksim.restore.diffjscc.DiffJSCCPipeline` on the    ``model.safetensors``
                      base its training named (or ``base=``)
====================  ==========================================================  ============================

Folders without a ``kind`` still load: a DiffJSCC control module written by
``ControlModule.save`` (``config.json`` holds the bare control config; ``training.json``
names the base), a diffusers base folder (``vae/``, ``unet/``, ``scheduler/``) and a
diffusers ``UNet2DModel`` (or ``DDPMPipeline``) folder as a prior.

Diffusion priors (``linksim train prior``) are diffusers pipeline folders with the same
``config.json`` (kind ``ddpm-prior``) and ``MODEL_CARD.md`` at the root; their weights live
where diffusers puts them, ``unet/diffusion_pytorch_model.safetensors``
(:func:`weights_path`). :func:`resolve_prior` turns a prior name or any diffusers UNet
folder into a path for :func:`linksim.restore.load_prior`.

This module imports nothing from ``linksim.channel``, ``linksim.digital``, ``linksim.jscc``
or ``linksim.restore`` when it is imported: every kind's classes are imported when a folder
of that kind is loaded or described, so the restore layer may use it.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from linksim.errors import ConfigError

__all__ = ["CARD", "CONFIG", "KINDS", "Kind", "PRIOR_KIND", "SHIPPED_DIR", "WEIGHTS", "available", "describe",
           "identify", "kinds", "load", "load_deepjscc", "load_inn", "load_state", "locate", "read_config", "resolve",
           "resolve_prior", "save_checkpoint", "weights_path"]

SHIPPED_DIR = Path(__file__).parent / "checkpoints"
WEIGHTS, CONFIG, CARD = "model.safetensors", "config.json", "MODEL_CARD.md"
_PICKLE_SUFFIXES = (".pt", ".pth", ".bin", ".ckpt", ".pkl", ".pickle")
#: ``config.json`` kind of a diffusion prior folder (weights in ``unet/``, diffusers layout)
PRIOR_KIND = "ddpm-prior"
PRIOR_WEIGHTS = Path("unet") / "diffusion_pytorch_model.safetensors"
#: what a kind-less DiffJSCC control folder keeps beside its weights: the training settings (``base`` among them)
CONTROL_TRAINING = "training.json"
_DIFFUSERS_WEIGHTS = "diffusion_pytorch_model.safetensors"


# ----------------------------------------------------------------------------- discovery

def _search_dirs() -> list[Path]:
    extra = os.environ.get("LINKSIM_CHECKPOINTS")
    return ([Path(extra)] if extra else []) + [SHIPPED_DIR]


def locate(name_or_path: str | Path) -> Path | None:
    """The folder ``name_or_path`` names: an existing folder path as given, else the folder
    ``<dir>/<name>`` under ``$LINKSIM_CHECKPOINTS`` or ``linksim/checkpoints/`` (searched in
    that order); None when there is neither.

    Only the folder is located (:func:`load` and the restorer checks look inside), so a
    diffusers base folder without a root ``config.json`` is found too. A name has no path
    separator.
    """
    text = str(name_or_path)
    path = Path(text).expanduser()
    if path.is_dir():
        return path
    if text.strip() and "/" not in text and "\\" not in text and text not in (".", ".."):
        for d in _search_dirs():
            if (d / text).is_dir():
                return d / text
    return None


def available(kind: str | None = None) -> list[str]:
    """Names of the artifact folders that load by name (optionally only those of one ``kind``),
    sorted: every folder :func:`identify` recognises under the search folders."""
    names = set()
    for d in _search_dirs():
        if d.is_dir():
            for sub in d.iterdir():
                record = identify(sub) if sub.is_dir() else None
                if record is not None and (kind is None or record["kind"] == kind):
                    names.add(sub.name)
    return sorted(names)


def _json_object(path: Path) -> dict | None:
    """The JSON object in ``path``; None when the file is missing, unreadable or not an object."""
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def identify(folder: str | Path) -> dict | None:
    """The ``config.json`` record of an artifact folder, ``{"kind": ..., "config": {...}, …}``;
    for a folder without a ``kind`` (:data:`KINDS`' ``legacy`` recognisers) a record built from
    its own files. None for anything else (no or another ``config.json``, an unreadable file).
    An unknown ``kind`` is returned as it is (:func:`load` refuses it, naming the known ones)."""
    folder = Path(folder)
    config = _json_object(folder / CONFIG)
    if config is not None and "kind" in config and "config" in config:
        return config
    for kind in KINDS.values():
        if kind.legacy is not None:
            record = kind.legacy(folder)
            if record is not None:
                return record
    return None


# ----------------------------------------------------------------------------- the kinds

@dataclass(frozen=True)
class Kind:
    """One kind of artifact folder.

    :ivar name: the ``kind`` in ``config.json``.
    :ivar summary: one line: what it is and the command that writes it.
    :ivar load: ``load(folder, record, device, base) -> object``; imports its classes when called.
    :ivar describe: ``describe(record) -> str``: the details ``linksim models`` prints.
    :ivar legacy: ``legacy(folder) -> record | None``: recognises a folder of this kind whose
        ``config.json`` has no ``kind`` (None: every folder of the kind has one).
    """

    name: str
    summary: str
    load: Callable[[Path, dict, Any, Any], Any]
    describe: Callable[[dict], str]
    legacy: Callable[[Path], dict | None] | None = None


KINDS: dict[str, Kind] = {}


def _register(kind: Kind) -> None:
    KINDS[kind.name] = kind


def kinds() -> list[str]:
    """The ``config.json`` kinds linksim loads, in listing order."""
    return list(KINDS)


def load(name_or_folder: str | Path, device: str | torch.device = "cpu", *, base: str | Path | None = None):
    """The object an artifact folder holds (see the table above), whatever its kind.

    :param name_or_folder: a name (shipped or under ``$LINKSIM_CHECKPOINTS``), a folder, or
        a folder's ``model.safetensors``.
    :param device: where the weights go.
    :param base: for a ``diffjscc-control`` folder only: the ``diffjscc-base`` (name or
        folder) to steer; default the base its training named.
    :raises ConfigError: field ``checkpoint`` — a pickle path, no such folder or name, a
        folder of no known layout (pickled weights only, no ``config.json``), missing weights;
        ``checkpoint.kind`` — a ``kind`` linksim does not know (the known ones listed);
        ``checkpoint.config`` — an unreadable ``config.json``; ``base`` — given for another
        kind, or no base for a control module; and each kind's own load errors.
    """
    folder = _folder(name_or_folder)
    record = identify(folder)
    if record is None:
        if (folder / CONFIG).is_file():
            read_config(folder)  # raises its error naming what is wrong with config.json
        pickles = sorted(p.name for p in folder.iterdir() if p.suffix.lower() in _PICKLE_SUFFIXES)
        found = (f"; found only pickled weights ({', '.join(pickles)}), which are never loaded: they can run "
                 "arbitrary code" if pickles else f"; {CONFIG} is missing")
        raise ConfigError("checkpoint", str(folder), f"an artifact folder whose {CONFIG} names its kind, one of "
                                                     f"{kinds()}{found}")
    kind = KINDS.get(record["kind"])
    if kind is None:
        raise ConfigError("checkpoint.kind", record["kind"], f"one of {kinds()} (in {folder / CONFIG})")
    if base is not None and kind.name != "diffjscc-control":
        raise ConfigError("base", str(base), f"nothing: only a diffjscc-control folder steers a base "
                                             f"({folder.name} is {kind.name})")
    return kind.load(folder, record, device, base)


def describe(folder: str | Path) -> str:
    """One line on an artifact folder for ``linksim models``: its kind, then what it is
    (bandwidth ratio, resolution, training steps, …). Never raises (a listing shows every
    folder): an unknown kind or a config it cannot read is said so in the line."""
    record = identify(folder)
    if record is None:
        return "(not an artifact folder)"
    width = max(map(len, KINDS))
    kind = KINDS.get(record["kind"])
    if kind is None:
        return f"{record['kind']!s:<{width}}  (a kind this linksim does not know; known: {kinds()})"
    try:
        details = kind.describe(record)
    except (KeyError, TypeError, ValueError, IndexError, ConfigError) as error:
        details = f"(config.json not understood: {type(error).__name__} {error})"
    return f"{kind.name:<{width}}  {details}"


def _folder(name_or_folder: str | Path) -> Path:
    """The folder of a name or path for :func:`load`; ConfigError ``checkpoint`` when there is none."""
    text = str(name_or_folder)
    path = Path(text).expanduser()
    if path.suffix.lower() in _PICKLE_SUFFIXES:
        raise ConfigError("checkpoint", text, "a checkpoint folder with model.safetensors + config.json "
                                              "(pickled weights are never loaded: they can run arbitrary code)")
    if path.is_file() and path.name == WEIGHTS:
        path = path.parent
    folder = locate(path if path.is_dir() else text)
    if folder is None:
        raise ConfigError("checkpoint", text, f"a checkpoint folder or one of the names {available()}")
    return folder


# ----------------------------------------------------------------------------- files of a folder

def resolve(name_or_path: str | Path) -> Path:
    """The checkpoint folder for a name or a path, its weights and ``config.json`` checked to
    be there; a clear error when there is none.

    :raises ConfigError: field ``checkpoint`` — unknown name, a pickle file, or a folder
        without ``model.safetensors`` / ``config.json``.
    """
    path = _folder(name_or_path)
    if not (path / CONFIG).is_file():
        raise ConfigError("checkpoint", str(path), f"a folder containing {WEIGHTS} and {CONFIG} ({CONFIG} is missing)")
    weights = weights_path(path)
    if not weights.is_file():
        pickles = sorted(p.name for p in weights.parent.glob("*") if p.suffix.lower() in _PICKLE_SUFFIXES)
        never = f"; {', '.join(pickles)} is pickled and never loaded" if pickles else ""
        raise ConfigError("checkpoint", str(path), f"a folder containing {weights.relative_to(path)} and {CONFIG} "
                                                   f"({weights.relative_to(path)} is missing{never})")
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
    folder = resolve(name_or_path)
    cfg = read_config(folder)
    if cfg["kind"] != "deepjscc":
        raise ConfigError("checkpoint", str(folder), f"a deepjscc checkpoint (this one is {cfg['kind']!r})")
    return _load_deepjscc(folder, cfg, device)


def load_inn(name_or_path: str | Path, device: str | torch.device = "cpu"):
    """A :class:`~linksim.restore.inn.ConditionalINN` from a checkpoint name or folder (kind ``inn``),
    in eval mode, with ``.name`` and ``.meta`` (its ``config.json``: training settings, held-out errors)."""
    folder = resolve(name_or_path)
    cfg = read_config(folder)
    if cfg.get("kind") != "inn":
        raise ConfigError("inn", str(folder), f"an INN checkpoint (kind 'inn'; this one is {cfg.get('kind')!r})")
    return _load_inn(folder, cfg, device)


# ----------------------------------------------------------------------------- kinds: linksim's own modules

def _load_module(folder: Path, record: dict, device, make: Callable[[dict], torch.nn.Module]) -> torch.nn.Module:
    """``make(record["config"])`` with the folder's weights, checked against it; eval mode, ``.name`` set."""
    resolve(folder)  # both files there (and a pickle named as such refused) before anything is built
    model = make(record["config"])
    state = load_state(folder)
    check_state(model, state, str(folder))
    model.load_state_dict(state)
    model.name = folder.name
    return model.to(device).eval()


def _load_deepjscc(folder: Path, record: dict, device, base=None):
    from linksim.jscc.models import DeepJSCC, DeepJSCCConfig

    return _load_module(folder, record, device, lambda config: DeepJSCC(DeepJSCCConfig.from_dict(config)))


def _describe_deepjscc(record: dict) -> str:
    from fractions import Fraction

    from linksim.jscc.models import DeepJSCCConfig

    cfg = DeepJSCCConfig.from_dict(record["config"])
    lo, hi = cfg.snr_range_db
    return (f"ρ = {Fraction(cfg.bcr()).limit_denominator(100000)!s:<6} {cfg.channel:<15} SNR {lo:g}…{hi:g} dB  "
            f"{record.get('step', '?')} steps")


def _load_linear(folder: Path, record: dict, device, base=None):
    from linksim.jscc.linear import LinearBasis

    return _load_module(folder, record, device, lambda config: LinearBasis(int(config["block"])))


def _describe_linear(record: dict) -> str:
    block = record["config"]["block"]
    return f"PCA of {block}×{block}×3 blocks, {record.get('images', '?')} images (the linear analog scheme's transform)"


def _load_inn(folder: Path, record: dict, device, base=None):
    from linksim.restore.inn import ConditionalINN, ConditionalINNConfig

    model = _load_module(folder, record, device, lambda config: ConditionalINN(ConditionalINNConfig.from_dict(config)))
    model.meta = record
    return model.requires_grad_(False)  # a restorer's fixed part: never trained through


def _describe_inn(record: dict) -> str:
    config = record["config"]
    lo, hi = config["snr_range_db"]
    trained = f"trained at {lo:g} dB" if lo == hi else f"trained {lo:g}…{hi:g} dB"
    what = "SNR-conditioned INN (sing-inn)" if config["conditional"] else "unconditioned INN (commin)"
    return (f"{what}, {config['levels']} Haar levels, {trained} after {record.get('deepjscc', '?')}, "
            f"{record.get('step', '?')} steps")


_register(Kind("deepjscc", "DeepJSCC autoencoder: image → channel symbols → image (linksim train deepjscc)",
               _load_deepjscc, _describe_deepjscc))
_register(Kind("linear-basis", "block PCA basis of the linear analog scheme (linksim train linear-basis)",
               _load_linear, _describe_linear))
_register(Kind("inn", "invertible network of SING-INN and CommIN restorers (linksim train inn)",
               _load_inn, _describe_inn))


# ----------------------------------------------------------------------------- kinds: diffusers folders

def _load_prior(folder: Path, record: dict, device, base=None):
    from linksim.restore.priors import load_prior

    return load_prior(folder, device=device)


def _describe_prior(record: dict) -> str:
    config = record["config"]
    size = config.get("sample_size")
    h, w = (size, size) if not isinstance(size, (list, tuple)) else size
    channels = config.get("in_channels", 3)
    colours = "RGB" if channels == 3 else f"{channels}-channel"
    return f"{h}×{w} {colours} diffusion prior, {record.get('step', '?')} steps"


def _legacy_prior(folder: Path) -> dict | None:
    """A diffusers ``UNet2DModel`` folder (or a pipeline folder with one in ``unet/``) without linksim's record."""
    for unet in (folder / "unet", folder):
        config = _json_object(unet / CONFIG)
        if config is not None and config.get("_class_name") == "UNet2DModel" and (unet / _DIFFUSERS_WEIGHTS).is_file():
            return {"kind": PRIOR_KIND, "config": config}
    return None


def _load_diffjscc_base(folder: Path, record: dict, device, base=None):
    from linksim.restore.diffjscc import DiffJSCCPipeline

    return DiffJSCCPipeline.from_pretrained(folder, None, device=device)


def _describe_diffjscc_base(record: dict) -> str:
    vae, unet = record["config"]["vae"], record["config"]["unet"]
    factor = 2 ** (len(vae["block_out_channels"]) - 1)
    return (f"latent diffusion base: VAE f = {factor}, {vae['latent_channels']} latent channels; "
            f"UNet {unet['block_out_channels']}")


def _legacy_diffjscc_base(folder: Path) -> dict | None:
    """A diffusers folder with ``vae/``, ``unet/`` and ``scheduler/`` (e.g. a Stable Diffusion copy)."""
    if not all((folder / name).is_dir() for name in ("vae", "unet", "scheduler")):
        return None
    return {"kind": "diffjscc-base", "config": {part: _json_object(folder / part / CONFIG) or {}
                                                for part in ("vae", "unet")}}


def _control_base(folder: Path, record: dict) -> str | None:
    """The base a control module was trained on: its record's ``base``, else ``training.json``'s
    (``base``, or ``settings.base`` as the trainer was given it)."""
    training = _json_object(folder / CONTROL_TRAINING) or {}
    settings = training.get("settings") if isinstance(training.get("settings"), dict) else {}
    for value in (record.get("base"), training.get("base"), settings.get("base")):
        if isinstance(value, str) and value.strip():
            return value
    return None


def _load_diffjscc_control(folder: Path, record: dict, device, base=None):
    from linksim.restore.diffjscc import DiffJSCCPipeline

    name = base if base is not None else _control_base(folder, record)
    if name is None:
        raise ConfigError("base", None, f"the diffjscc-base {folder.name} steers (load(..., base=NAME_OR_FOLDER)): "
                                        f"neither its {CONFIG} nor {CONTROL_TRAINING} names one")
    base_folder = locate(name)
    if base_folder is None:
        raise ConfigError("base", str(name), f"a diffjscc-base folder or one of the names {available('diffjscc-base')}")
    return DiffJSCCPipeline.from_pretrained(base_folder, folder, device=device)


def _describe_diffjscc_control(record: dict) -> str:
    config = record["config"]
    variant = "spatial + SNR" if config.get("snr_embedding", True) else "spatial only"
    return f"control module ({variant}); base UNet {config.get('base_block_out_channels')}"


def _legacy_diffjscc_control(folder: Path) -> dict | None:
    """A folder written by ``ControlModule.save``: ``config.json`` is the bare control config."""
    config = _json_object(folder / CONFIG)
    if config is None or "condition_channels" not in config or "kind" in config:
        return None
    return {"kind": "diffjscc-control", "config": config}


_register(Kind(PRIOR_KIND, "pixel-space DDPM prior of sing-zero, sing-inn and commin restorers (linksim train prior)",
               _load_prior, _describe_prior, legacy=_legacy_prior))
_register(Kind("diffjscc-base", "DiffJSCC's latent diffusion base: VAE + text-conditioned UNet "
                                "(linksim train diffjscc-base)",
               _load_diffjscc_base, _describe_diffjscc_base, legacy=_legacy_diffjscc_base))
_register(Kind("diffjscc-control", "DiffJSCC control module steering a diffjscc-base (linksim train diffjscc-control)",
               _load_diffjscc_control, _describe_diffjscc_control, legacy=_legacy_diffjscc_control))
