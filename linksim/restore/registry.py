"""Restorers by type: a scenario's ``restorers:`` entry (a dict) → a restorer object.

The schema of each type (keys, defaults, checks, the weight files it depends on) is
:mod:`linksim.restore.specs`; here each type's builder (:data:`BUILDERS`) turns a validated
entry into its restorer (:func:`make_restorer`), loading the weights it names. A restorer
(docs/ARCHITECTURE.md §4) has ``restore(x_hat, snr_db, generator)``, ``check(image_shape)``
and ``device``; see :mod:`linksim.restore.specs`.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Any

from linksim import zoo
from linksim.errors import ConfigError
from linksim.restore.specs import diffjscc_base_folder, diffjscc_control_files, relabel, validate_spec

__all__ = ["BUILDERS", "make_restorer"]


def make_restorer(spec: dict, *, progress: bool = True, where: str = "restorer"):
    """Build the restorer of an entry (validated here again; loads the prior).

    The object gets two attributes besides its own: ``label`` (the entry's ``name``) and
    ``batch`` (images per ``restore`` call).

    :raises ConfigError: as :func:`validate_spec`, and ``{where}.prior`` for weights that do
        not load, ``{where}.device`` for a device that does not work here.
    """
    spec = validate_spec(spec, where)
    try:
        restorer = BUILDERS[spec["type"]](spec, progress)
    except ConfigError as error:
        raise (error if error.field.startswith(where) else relabel(error, where)) from None
    restorer.label = spec["name"]
    restorer.batch = spec.get("batch", 1)
    return restorer


# ----------------------------------------------------------------------------- sing-zero, sing-inn, commin

def _build_sing_zero(spec: dict, progress: bool):
    from linksim.restore.ddnm import DDNMRestorer, SigmaYTable, sigma_y_from_snr

    sigma_y = spec["sigma_y"]
    measured = isinstance(sigma_y, dict)
    options = {"sigma_y": 0.0 if sigma_y is None else None if sigma_y == "snr" or measured else sigma_y}
    if sigma_y == "snr":
        options["sigma_y_rule"] = partial(sigma_y_from_snr, scale=spec["sigma_y_scale"])
    elif measured:
        options["sigma_y_rule"] = SigmaYTable(sigma_y)
    return DDNMRestorer.from_prior(zoo.resolve_prior(spec["prior"]), spec["operator"], device=spec.get("device"),
                                   steps=spec["steps"], sampler=spec["sampler"], eta=spec["eta"],
                                   jump_length=spec["jump_length"], jump_n_sample=spec["jump_n_sample"],
                                   progress=progress, **options)


def _build_guided(spec: dict, progress: bool):
    from linksim.restore.ddnm import SNRTable
    from linksim.restore.sing_inn import SINGINNRestorer

    ddnm = _build_sing_zero(spec, progress)  # the prior, operator and σ_y rule of the DDNM update
    zeta = SNRTable(spec["zeta"], field="zeta") if isinstance(spec["zeta"], dict) else spec["zeta"]
    inn = zoo.load_inn(spec["inn"], device=ddnm.device)
    return SINGINNRestorer(ddnm.core.model, ddnm.core.scheduler, inn, ddnm.operator, zeta=zeta, ddnm=spec["ddnm"],
                           steps=ddnm.steps, sampler=ddnm.sampler, eta=spec["eta"], sigma_y=ddnm.sigma_y,
                           sigma_y_rule=ddnm.sigma_y_rule, jump_length=ddnm.jump_length,
                           jump_n_sample=ddnm.jump_n_sample, device=ddnm.device, progress=progress)


# ----------------------------------------------------------------------------- diffjscc

#: the pipeline's error fields that concern the base folder (the others concern the control module)
_BASE_FIELDS = {"base_folder", "vae", "unet", "scheduler", "text_encoder", "tokenizer"}


def _build_diffjscc(spec: dict, progress: bool):
    from linksim.restore.diffjscc import DiffJSCCPipeline, DiffJSCCRestorer

    # the folders validation found (a path as given, or a shipped name resolved) — the ones hashed
    try:
        base = diffjscc_base_folder(spec["base"], "restorer")
        control = diffjscc_control_files(spec["control"], "restorer")
    except ConfigError as error:  # "restorer.base" → "base" (make_restorer prefixes its `where`)
        raise ConfigError(error.field.rsplit(".", 1)[-1], error.value, error.allowed) from None
    try:
        pipeline = DiffJSCCPipeline.from_pretrained(base, control[0].parent if control else None,
                                                    device=spec.get("device"))
    except ConfigError as error:
        key = "base" if error.field in _BASE_FIELDS else "control"
        raise ConfigError(key, spec[key], f"{error.allowed} ({error.field}: {error.value})") from None
    return DiffJSCCRestorer(pipeline, steps=spec["steps"], color_fix=spec["color_fix"], captions=spec["captions"],
                            latent_guidance=spec.get("latent_guidance", 0.0), progress=progress, name=spec["name"])


#: type → ``build(validated entry, progress) -> restorer``; one per type of :data:`linksim.restore.specs.TYPES`
BUILDERS: dict[str, Callable[[dict, bool], Any]] = {
    "sing-zero": _build_sing_zero, "sing-inn": _build_guided, "commin": _build_guided, "diffjscc": _build_diffjscc}
