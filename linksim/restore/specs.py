"""Restorer entries by type: the schema of a scenario's ``restorers:`` entries and their checks.

A *restorer* (docs/ARCHITECTURE.md §4) is any object with

- ``restore(x_hat, snr_db, generator) -> x_tilde``: float [B, 3, H, W] in [0, 1] in, the
  same shape out; ``snr_db`` a float or one per image (where the receiver knows it);
  ``generator`` one ``torch.Generator`` per image;
- ``check(image_shape)``: refuse a per-image (C, H, W) it cannot take (``ConfigError``
  field ``image_size``), before anything runs;
- ``device``.

:func:`validate_spec` checks an entry without loading any weights (what
:func:`linksim.scenario.load_scenario` does) and returns it normalized, defaults filled in;
:func:`linksim.restore.registry.make_restorer` builds the restorer (loading the prior);
:func:`weights_digest` hashes the weight files an entry's results depend on. Errors name the
entry's field,
e.g. ``restorers[0].operator: got 'avgpool3' — expected …``.

Types
-----
``sing-zero`` — SING's first stage: DDNM null-space diffusion with a linear approximation A
of the degradation (:class:`~linksim.restore.ddnm.DDNMRestorer`). Keys:

================  =========================  ==================================================
key               default                    meaning
================  =========================  ==================================================
``name``          ``SING-Zero``              the label in ``results.csv`` (column ``restorer``)
``prior``         (required)                 a diffusers UNet2DModel folder or a prior name
                                             (``linksim train prior``; see :func:`linksim.zoo.resolve_prior`)
``operator``      ``avgpool4``               A: ``identity``, ``gray``, ``avgpool2|4|8``, ``+``-chains
``steps``         100                        sampling steps, respaced from the prior's schedule
``sampler``       ``ddpm``                   ``ddpm`` (η = 1) or ``ddim``
``eta``           None                       DDIM's η in [0, 1] (default 0); only 1 with ddpm
``sigma_y``       None                       None = 0: plain DDNM (A x̃ = A x̂ exactly); a number
                                             ≥ 0: fixed σ_y of A x̂ in image units ([0, 1]);
                                             ``snr``: DDNM+ with σ_y from the channel SNR;
                                             ``{SNR_dB: σ_y, …}``: DDNM+ with a measured table
                                             (interpolated; ``linksim calibrate sigma-y``)
``sigma_y_scale`` 0.05 (with ``snr`` only)   σ_y = scale · 10^(−SNR/20) (:func:`~linksim.restore.ddnm.sigma_y_from_snr`)
``jump_length``   0                          RePaint time travel: jump length in grid steps
``jump_n_sample`` 1                          RePaint time travel: repeats per jump point
``batch``         8                          images per sampling call (the numbers do not depend on it)
``device``        CUDA when present          ``cpu``, ``cuda`` or ``cuda:N`` (float16 on CUDA)
================  =========================  ==================================================

``sing-inn`` — SING's second stage (:class:`~linksim.restore.sing_inn.SINGINNRestorer`): every
``sing-zero`` key (the DDNM update's operator and σ_y) plus

================  =========================  ==================================================
``inn``           (required)                 an SNR-conditioned INN checkpoint (``linksim train inn``),
                                             e.g. ``inn-awgn-r1_192-faces``
``zeta``          0.5                        guidance step ζ in [0, 1] (½: x̂₀ replaced by the INN's
                                             consistent image), or a table ``{SNR_dB: ζ, …}``
``ddnm``          true                       the DDNM update before the INN step (SING Alg. 2)
================  =========================  ==================================================

``commin`` — the same with an unconditioned INN trained at one SNR (``linksim train inn --commin``).

``diffjscc`` — DiffJSCC (:class:`~linksim.restore.diffjscc.DiffJSCCRestorer`): a frozen latent
diffusion model (diffusers VAE + UNet2DConditionModel) steered by a control module conditioned
on x̂, the channel SNR and text. Keys:

================  =========================  ==================================================
``name``          ``DiffJSCC``               the label in ``results.csv`` (column ``restorer``)
``base``          (required)                 a local diffusers folder with ``vae/``, ``unet/``
                                             (config.json + safetensors) and ``scheduler/``
                                             (scheduler_config.json); optional ``text_encoder/``
                                             + ``tokenizer/``; or the name of such a folder under
                                             ``$LINKSIM_CHECKPOINTS`` or ``linksim/checkpoints/``
                                             (:func:`linksim.zoo.locate`). Images: H, W
                                             multiples of the VAE's factor
``control``       None                       a folder written by ``linksim train diffjscc-control``
                                             (``ControlModule.save`` or ``.save_pretrained``:
                                             config.json + model.safetensors), or its shipped
                                             name (as ``base``);
                                             None = a fresh zero-initialized control module, i.e. the
                                             unsteered base model (x̂ is then used only by ``color_fix``)
``steps``         100                        spaced DDPM (η = 1) sampling steps, 1 … the scheduler's
                                             ``num_train_timesteps`` (1000)
``color_fix``     true                       DiffBIR's wavelet colour fix with x̂ as the reference
``captions``      None                       one caption for every image; None (or "") = null text
                                             features; a non-empty one needs text_encoder/ + tokenizer/
``latent_guidance`` 0                        λ in [0, 1]: latent MSE guidance, ẑ₀ ← ẑ₀ − λ (ẑ₀ − z_c) at
                                             every step (z_c = the VAE latent of x̂); 0 = off (the paper's)
``batch``         8                          images per sampling call (the numbers agree to ~1e-5)
``device``        CUDA when present          ``cpu``, ``cuda`` or ``cuda:N`` (float32)
================  =========================  ==================================================

A new type registers its schema here with :func:`register` and its builder in
:mod:`linksim.restore.registry`. Artifact folders (priors, INNs, DiffJSCC bases and control
modules) are found through :mod:`linksim.zoo` only (:func:`~linksim.zoo.locate`,
:func:`~linksim.zoo.available`).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path

from linksim import zoo
from linksim.devices import parse_device
from linksim.errors import ConfigError

__all__ = ["TYPES", "RestorerType", "diffjscc_base_folder", "diffjscc_control_files", "register", "relabel",
           "validate_spec", "weights_digest"]


@dataclass(frozen=True)
class RestorerType:
    """The schema of one restorer type (its builder is :data:`linksim.restore.registry.BUILDERS`').

    :ivar type: the ``type:`` value in a scenario.
    :ivar label: the default ``name`` (the ``restorer`` column of ``results.csv``).
    :ivar keys: the keys an entry may have besides ``type`` and ``name``.
    :ivar validate: ``validate(entry, where) -> normalized entry`` (no weights loaded).
    :ivar weights: ``weights(normalized entry) -> [files]`` whose contents determine the
        results (hashed into a run's fingerprint).
    """

    type: str
    label: str
    keys: frozenset[str]
    validate: Callable[[dict, str], dict]
    weights: Callable[[dict], list[Path]]


#: the restorer types a scenario may name: type → schema
TYPES: dict[str, RestorerType] = {}


def register(rtype: RestorerType) -> RestorerType:
    """Add (or replace) a restorer type's schema."""
    TYPES[rtype.type] = rtype
    return rtype


def _type_of(spec, where: str) -> RestorerType:
    if not isinstance(spec, dict):
        raise ConfigError(where, spec, "a mapping with at least 'type' and 'prior', e.g. "
                                       "{type: sing-zero, prior: PATH_OR_NAME, operator: avgpool4}")
    kind = spec.get("type")
    if kind in TYPES:
        return TYPES[kind]
    raise ConfigError(f"{where}.type", kind, f"one of {sorted(TYPES)}")


def validate_spec(spec: dict, where: str = "restorer") -> dict:
    """Check a restorer entry (no weights loaded) and return it normalized, defaults filled in.

    :param where: the field prefix of error messages, e.g. ``restorers[0]``.
    :raises ConfigError: naming ``{where}.{key}``: an unknown type or key, a missing prior,
        a bad operator name, a value out of range.
    """
    rtype = _type_of(spec, where)
    unknown = sorted(set(spec) - rtype.keys - {"type", "name"})
    if unknown:
        raise ConfigError(where, unknown[0], f"keys among {sorted(rtype.keys | {'type', 'name'})} "
                                             f"for a {rtype.type} restorer")
    name = spec.get("name", rtype.label)
    if not isinstance(name, str) or not name.strip():
        raise ConfigError(f"{where}.name", name, "a non-empty string (the restorer column of results.csv)")
    normalized = rtype.validate(spec, where)
    return {"name": name.strip(), "type": rtype.type, **normalized}


def weights_digest(spec: dict, where: str = "restorer") -> str:
    """SHA-256 over the weight files of a (validated) entry: a run's results depend on them."""
    spec = validate_spec(spec, where)
    return zoo.files_digest(*TYPES[spec["type"]].weights(spec))


# ----------------------------------------------------------------------------- helpers

def relabel(error: ConfigError, where: str) -> ConfigError:
    """``error`` with its field under the entry's prefix: ``prior`` → ``restorers[0].prior``."""
    return ConfigError(f"{where}.{error.field}", error.value, error.allowed)


def _integer(spec: dict, key: str, default: int, where: str, low: int, high: int | None = None) -> int:
    value = spec.get(key, default)
    if value is None:
        value = default
    if isinstance(value, bool) or not isinstance(value, int) or value < low or (high is not None and value > high):
        raise ConfigError(f"{where}.{key}", value, f"an integer ≥ {low}" + (f" and ≤ {high}" if high is not None else ""))
    return value


def _real(value, field: str, allowed: str, low: float = 0.0, high: float = math.inf) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or not low <= value <= high:
        raise ConfigError(field, value, allowed)
    return float(value)


def _prior_files(prior, where: str):
    from linksim.restore.priors import inspect_prior

    if not isinstance(prior, str) or not prior.strip():
        raise ConfigError(f"{where}.prior", prior, "a diffusers UNet2DModel folder or a prior name "
                                                   f"(prior names: {zoo.available(zoo.PRIOR_KIND)})")
    try:
        return inspect_prior(zoo.resolve_prior(prior))
    except ConfigError as error:
        raise relabel(error, where) from None


# ----------------------------------------------------------------------------- sing-zero

def _validate_sing_zero(spec: dict, where: str) -> dict:
    from linksim.restore.core import travel_schedule
    from linksim.restore.ddnm import SIGMA_Y_SCALE, SigmaYTable
    from linksim.restore.operators import make_operator

    files = _prior_files(spec.get("prior"), where)
    try:
        operator = make_operator(spec.get("operator", "avgpool4")).name
    except ConfigError as error:
        raise relabel(error, where) from None
    steps = _integer(spec, "steps", 100, where, 1, files.num_train_timesteps)
    sampler = spec.get("sampler", "ddpm")
    if sampler not in ("ddpm", "ddim"):
        raise ConfigError(f"{where}.sampler", sampler, "'ddpm' (η = 1) or 'ddim' (η = eta, default 0)")
    eta = spec.get("eta")
    if eta is not None:
        eta = _real(eta, f"{where}.eta", "a number in [0, 1]", 0.0, 1.0)
        if sampler == "ddpm" and eta != 1.0:
            raise ConfigError(f"{where}.eta", spec["eta"], "1 or nothing with sampler ddpm (use sampler: ddim for other η)")
    sigma_y = spec.get("sigma_y")
    if isinstance(sigma_y, dict):
        try:
            sigma_y = SigmaYTable(sigma_y).as_dict()
        except ConfigError as error:
            raise relabel(error, where) from None
    elif sigma_y is not None and sigma_y != "snr":
        sigma_y = _real(sigma_y, f"{where}.sigma_y", "nothing (0: plain DDNM), a number ≥ 0 in image units "
                                                     "([0, 1] scale), 'snr' (DDNM+ with σ_y from the channel SNR) or "
                                                     "a measured table {SNR_dB: σ_y, …} (linksim calibrate)")
    jump_length = _integer(spec, "jump_length", 0, where, 0)
    jump_n_sample = _integer(spec, "jump_n_sample", 1, where, 1)
    try:
        travel_schedule(steps, jump_length, jump_n_sample)
    except ConfigError as error:
        raise relabel(error, where) from None
    out = {"prior": spec["prior"], "operator": operator, "steps": steps, "sampler": sampler, "eta": eta,
           "sigma_y": sigma_y}
    if sigma_y == "snr":
        out["sigma_y_scale"] = _real(spec.get("sigma_y_scale", SIGMA_Y_SCALE), f"{where}.sigma_y_scale",
                                     "a number > 0 (σ_y at 0 dB, image units)", 1e-12)
    elif "sigma_y_scale" in spec:
        raise ConfigError(f"{where}.sigma_y_scale", spec["sigma_y_scale"], "nothing unless sigma_y is 'snr'")
    out.update(jump_length=jump_length, jump_n_sample=jump_n_sample, batch=_integer(spec, "batch", 8, where, 1))
    if spec.get("device") is not None:
        out["device"] = parse_device(spec["device"], f"{where}.device")
    return out


def _sing_zero_weights(spec: dict) -> list[Path]:
    return [_prior_files(spec["prior"], "restorer").weights]


register(RestorerType(
    type="sing-zero", label="SING-Zero",
    keys=frozenset({"prior", "operator", "steps", "sampler", "eta", "sigma_y", "sigma_y_scale", "jump_length",
                    "jump_n_sample", "batch", "device"}),
    validate=_validate_sing_zero, weights=_sing_zero_weights))


# ----------------------------------------------------------------------------- sing-inn, commin

def _inn_folder(inn, where: str, conditional: bool):
    kind = "an SNR-conditioned" if conditional else "an unconditioned (CommIN)"
    names = [n for n in zoo.available("inn") if zoo.read_config(zoo.resolve(n))["config"]["conditional"] == conditional]
    if not isinstance(inn, str) or not inn.strip():
        raise ConfigError(f"{where}.inn", inn, f"{kind} INN checkpoint name or folder (names: {names})")
    try:
        folder = zoo.resolve(inn)
    except ConfigError as error:
        raise ConfigError(f"{where}.inn", inn, f"{kind} INN checkpoint name or folder (names: {names})") from error
    config = zoo.read_config(folder)
    if config.get("kind") != "inn" or config.get("config", {}).get("conditional") != conditional:
        raise ConfigError(f"{where}.inn", inn, f"{kind} INN checkpoint (linksim train inn"
                                               f"{'' if conditional else ' --commin'}; names: {names})")
    return folder


def _validate_guided(spec: dict, where: str, conditional: bool) -> dict:
    from linksim.restore.ddnm import SNRTable

    base = _validate_sing_zero({k: v for k, v in spec.items() if k not in ("inn", "zeta", "ddnm")}, where)
    _inn_folder(spec.get("inn"), where, conditional)
    zeta = spec.get("zeta", 0.5)
    if isinstance(zeta, dict):
        zeta = SNRTable(zeta, field=f"{where}.zeta", what="ζ").as_dict()
        if any(v > 1 for v in zeta.values()):
            raise ConfigError(f"{where}.zeta", spec["zeta"], "step sizes in [0, 1] (½ = full replacement)")
    else:
        zeta = _real(zeta, f"{where}.zeta", "a step size in [0, 1] (½ = full replacement by the INN's "
                                             "consistent image) or a table {SNR_dB: ζ, …}", 0.0, 1.0)
    ddnm = spec.get("ddnm", True)
    if not isinstance(ddnm, bool):
        raise ConfigError(f"{where}.ddnm", ddnm, "true (SING-Zero's DDNM update before the INN step) or false")
    return {**base, "inn": spec["inn"], "zeta": zeta, "ddnm": ddnm}


def _guided_weights(spec: dict) -> list[Path]:
    return _sing_zero_weights(spec) + [zoo.weights_path(zoo.resolve(spec["inn"]))]


_GUIDED_KEYS = TYPES["sing-zero"].keys | {"inn", "zeta", "ddnm"}
register(RestorerType(type="sing-inn", label="SING-INN", keys=_GUIDED_KEYS,
                      validate=partial(_validate_guided, conditional=True), weights=_guided_weights))
register(RestorerType(type="commin", label="CommIN", keys=_GUIDED_KEYS,
                      validate=partial(_validate_guided, conditional=False), weights=_guided_weights))


# ----------------------------------------------------------------------------- diffjscc

_DIFFUSERS_WEIGHTS = "diffusion_pytorch_model.safetensors"


def _read_json(path: Path, field: str, what: str) -> dict:
    import json

    try:
        with open(path) as handle:
            data = json.load(handle)
    except (OSError, ValueError) as exc:
        raise ConfigError(field, str(path), f"{what} with a readable {path.name} ({type(exc).__name__})") from None
    if not isinstance(data, dict):
        raise ConfigError(field, str(path), f"{what} whose {path.name} is a JSON object")
    return data


def _model_weights(folder: Path, field: str, what: str) -> list[Path]:
    """The safetensors weight files of a diffusers model folder (config.json read, not the weights)."""
    _read_json(folder / "config.json", field, what)
    single = folder / _DIFFUSERS_WEIGHTS
    if single.is_file():
        return [single]
    index = folder / (_DIFFUSERS_WEIGHTS + ".index.json")
    if index.is_file():
        shards = sorted(set(_read_json(index, field, what).get("weight_map", {}).values()))
        missing = [s for s in shards if not (folder / s).is_file()]
        if not shards or missing:
            raise ConfigError(field, str(index), f"{what} whose shards are all there ({missing or 'none listed'})")
        return [index] + [folder / s for s in shards]
    raise ConfigError(field, str(folder), f"{what} with {_DIFFUSERS_WEIGHTS} (missing; pickled weights are never loaded)")


def diffjscc_base_folder(base, where: str) -> Path:
    """The folder of ``base`` (a path or a shipped name); ConfigError ``<where>.base`` when there is none."""
    field = f"{where}.base"
    layout = ("a local diffusers folder with vae/, unet/ and scheduler/ (hub ids are not fetched) or the name of one "
              "under $LINKSIM_CHECKPOINTS or linksim/checkpoints/")
    if not isinstance(base, str) or not base.strip():
        raise ConfigError(field, base, layout)
    root = zoo.locate(base)
    if root is None:
        raise ConfigError(field, base, f"{layout} (names: {zoo.available('diffjscc-base')}); no such folder or name")
    return root


def _diffjscc_base(base, where: str) -> dict:
    """Cheap checks of a base folder (a path or a shipped name):
    {"folder": Path, "weights": [files], "num_train_timesteps": int, "text": bool}."""
    field = f"{where}.base"
    layout = "a local diffusers folder with vae/, unet/ and scheduler/"
    root = diffjscc_base_folder(base, where)
    for name in ("vae", "unet", "scheduler"):
        if not (root / name).is_dir():
            raise ConfigError(field, base, f"{layout}; {name}/ is missing")
    weights = (_model_weights(root / "vae", field, f"{layout}, vae/ an AutoencoderKL")
               + _model_weights(root / "unet", field, f"{layout}, unet/ a UNet2DConditionModel"))
    scheduler = root / "scheduler" / "scheduler_config.json"
    config = _read_json(scheduler, field, f"{layout}, scheduler/")
    steps = config.get("num_train_timesteps", 1000)
    text = (root / "text_encoder").is_dir() and (root / "tokenizer").is_dir()
    return {"folder": root, "weights": weights + [scheduler],
            "num_train_timesteps": steps if isinstance(steps, int) else 1000, "text": text}


def diffjscc_control_files(control, where: str) -> list[Path]:
    """Cheap checks of a control folder (a path or a shipped name): [model.safetensors, config.json]
    (the folder is their parent); [] for None."""
    field = f"{where}.control"
    what = ("nothing (a fresh zero-initialized control module: the unsteered base model) or a folder written by "
            "linksim train diffjscc-control (config.json + model.safetensors), or the name of one under "
            "$LINKSIM_CHECKPOINTS or linksim/checkpoints/")
    if control is None:
        return []
    if not isinstance(control, str) or not control.strip():
        raise ConfigError(field, control, what)
    folder = zoo.locate(control)
    if folder is None:
        raise ConfigError(field, control, f"{what} (names: {zoo.available('diffjscc-control')}); no such folder or name")
    for name in ("config.json", "model.safetensors"):
        if not (folder / name).is_file():
            raise ConfigError(field, control, f"{what}; {name} is missing")
    _read_json(folder / "config.json", field, what)
    return [folder / "model.safetensors", folder / "config.json"]


def _validate_diffjscc(spec: dict, where: str) -> dict:
    import importlib.util

    base = _diffjscc_base(spec.get("base"), where)
    diffjscc_control_files(spec.get("control"), where)
    steps = _integer(spec, "steps", 100, where, 1, min(1000, base["num_train_timesteps"]))
    color_fix = spec.get("color_fix", True)
    if not isinstance(color_fix, bool):
        raise ConfigError(f"{where}.color_fix", color_fix, "true (DiffBIR's wavelet colour fix with x̂'s colours) or false")
    captions = spec.get("captions")
    if captions is not None and not isinstance(captions, str):
        raise ConfigError(f"{where}.captions", captions, "nothing (null text features) or one caption (a string) "
                                                         "for every image")
    captions = captions if isinstance(captions, str) and captions.strip() else None
    if captions is not None and not (base["text"] and importlib.util.find_spec("transformers") is not None):
        raise ConfigError(f"{where}.captions", captions, "nothing: a caption needs text_encoder/ and tokenizer/ in the "
                                                         "base folder and the optional package transformers")
    guidance = spec.get("latent_guidance", 0.0)
    if isinstance(guidance, bool) or not isinstance(guidance, (int, float)) or not 0.0 <= guidance <= 1.0:
        raise ConfigError(f"{where}.latent_guidance", guidance, "a number in [0, 1]: ẑ₀ ← ẑ₀ − λ (ẑ₀ − z_c) at every "
                                                                "step (0: off)")
    out = {"base": spec["base"], "control": spec.get("control"), "steps": steps, "color_fix": color_fix,
           "captions": captions, "batch": _integer(spec, "batch", 8, where, 1)}
    if guidance:  # only when set, so that the fingerprints of existing runs stay what they were
        out["latent_guidance"] = float(guidance)
    if spec.get("device") is not None:
        out["device"] = parse_device(spec["device"], f"{where}.device")
    return out


def _diffjscc_weights(spec: dict) -> list[Path]:
    return _diffjscc_base(spec["base"], "restorer")["weights"] + diffjscc_control_files(spec["control"], "restorer")


register(RestorerType(
    type="diffjscc", label="DiffJSCC",
    keys=frozenset({"base", "control", "steps", "color_fix", "captions", "latent_guidance", "batch", "device"}),
    validate=_validate_diffjscc, weights=_diffjscc_weights))
