"""Scenarios: one experiment as a validated YAML file.

A scenario file (see ``scenarios/cliff.yaml``, ``scenarios/cliff_vs_smooth.yaml``) names the
images (optionally ``resize: N``, a centre square resized to N×N, e.g. a diffusion prior's
resolution, and ``crop_multiple``, a centre crop to multiples of N per side), the channel,
the SNR grid, the trials, the bandwidth (cpp or BCR; one mapping, or a list of them for a rate
sweep, ``scenarios/rate_sweep_1db.yaml``), the schemes (``separate``, ``capacity``, ``deepjscc``,
``linear``), optionally the restorers applied to their receiver outputs (``sing-zero``; see
:mod:`linksim.restore.registry`), the metrics, the seed and the output folder.
:func:`load_scenario` validates all of it up front — every error names the field, the value and
what is allowed; a deepjscc checkpoint is resolved and its ρ checked against the bandwidth (a
list of checkpoints: one per bandwidth of the list) — so a bad file fails before anything is
computed or written. :mod:`linksim.runner` sweeps a validated scenario.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any

import yaml

from linksim.devices import parse_device
from linksim.errors import ConfigError
from linksim.metrics.suite import ALL_METRICS, check_metric_names

SCHEME_TYPES = ("separate", "capacity", "deepjscc", "linear")
METRICS = ALL_METRICS  # every metric name (linksim.metrics.suite; `linksim metrics` lists them)
TOP_LEVEL_KEYS = {"name", "description", "seed", "images", "limit", "crop_multiple", "resize", "channel", "snr_db", "trials",
                  "bandwidth", "schemes", "restorers", "metrics", "grid", "output", "cache_dir", "execution"}


@dataclass
class Scenario:
    """A validated scenario. ``schemes`` are plain dicts, checked; objects are built by the runner."""

    name: str
    seed: int
    images: Any
    limit: int | None
    channel: dict
    snr_db: list[float]
    trials: int
    bandwidths: list[dict]
    schemes: list[dict]
    metrics: list[str]
    grid: dict
    output: Path
    cache_dir: Path | None
    description: str = ""
    source: Path | None = None
    raw: dict = field(default_factory=dict)
    crop_multiple: int | None = None
    resize: int | None = None
    checkpoints: dict = field(default_factory=dict)
    restorers: list[dict] = field(default_factory=list)
    priors: dict = field(default_factory=dict)
    #: where the points run (:func:`linksim.execution.validate_execution`); not in the
    #: fingerprint: the executor and the workers change no number, and ``threads``, which
    #: does (in the last digits), is kept and checked by the run folder (``scenario.json``)
    execution: dict = field(default_factory=lambda: {"executor": "local", "workers": 1, "address": None, "threads": 1})

    @property
    def bandwidth(self) -> dict:
        """The bandwidth mapping of a single-bandwidth scenario (the first of a rate sweep's)."""
        return self.bandwidths[0]

    @property
    def several_bandwidths(self) -> bool:
        """A rate sweep: results carry a ``bandwidth`` column and the summary ``cpp``/``bcr`` columns."""
        return len(self.bandwidths) > 1

    def fingerprint(self) -> dict:
        """What determines the numbers of a row: a resumed run must match it.

        ``bandwidth`` is the mapping of a single-bandwidth scenario (as before rate sweeps existed,
        so those runs still resume) and the list of a rate sweep. ``crop_multiple``, ``resize``,
        ``checkpoints`` (SHA-256 of each deepjscc scheme's weights, a list of them for a list of
        checkpoints, so retrained weights are not mixed into an old run), ``restorers`` (the normalized
        entries) and ``priors`` (SHA-256 of each restorer's weights) appear only when set, so
        runs made before those fields existed still resume.
        """
        bandwidth = self.bandwidths if self.several_bandwidths else self.bandwidth
        fingerprint = {"seed": self.seed, "channel": self.channel, "bandwidth": bandwidth,
                       "schemes": self.schemes, "metrics": self.metrics}
        if self.crop_multiple is not None:
            fingerprint["crop_multiple"] = self.crop_multiple
        if self.resize is not None:
            fingerprint["resize"] = self.resize
        if self.checkpoints:
            fingerprint["checkpoints"] = self.checkpoints
        if self.restorers:
            fingerprint["restorers"] = self.restorers
        if self.priors:
            fingerprint["priors"] = self.priors
        return fingerprint


# ----------------------------------------------------------------------------- validation

def _number(value, field: str, *, low=None, high=None, low_open=False, integer=False) -> float:
    """A finite number (fractions like "1/16" allowed) within bounds, else ConfigError."""
    allowed = "an integer" if integer else "a number"
    if low is not None or high is not None:
        lo = "" if low is None else (f"> {low}" if low_open else f"≥ {low}")
        hi = "" if high is None else f"≤ {high}"
        allowed += " " + " and ".join(x for x in (lo, hi) if x)
    if isinstance(value, bool):
        raise ConfigError(field, value, allowed)
    try:
        number = float(Fraction(value)) if isinstance(value, str) else float(value)
    except (TypeError, ValueError, ZeroDivisionError):
        raise ConfigError(field, value, allowed) from None
    if not math.isfinite(number) or (integer and number != int(number)):
        raise ConfigError(field, value, allowed)
    if low is not None and (number <= low if low_open else number < low):
        raise ConfigError(field, value, allowed)
    if high is not None and number > high:
        raise ConfigError(field, value, allowed)
    return int(number) if integer else number


def _snr_grid(value) -> list[float]:
    allowed = "a non-empty list of numbers in dB, or {start, stop, step} with step > 0"
    if isinstance(value, dict):
        unknown = set(value) - {"start", "stop", "step"}
        if unknown or not {"start", "stop"} <= set(value):
            raise ConfigError("snr_db", value, allowed)
        start = _number(value["start"], "snr_db.start")
        stop = _number(value["stop"], "snr_db.stop")
        step = _number(value.get("step", 1), "snr_db.step", low=0, low_open=True)
        if stop < start:
            raise ConfigError("snr_db.stop", stop, f"≥ snr_db.start ({start})")
        count = int(math.floor((stop - start) / step + 1e-9)) + 1
        return [round(start + i * step, 9) for i in range(count)]
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        value = [value]
    if not isinstance(value, list) or not value:
        raise ConfigError("snr_db", value, allowed)
    grid = [_number(v, f"snr_db[{i}]", low=-50, high=60) for i, v in enumerate(value)]
    if len(set(grid)) != len(grid):
        raise ConfigError("snr_db", value, "distinct values")
    return grid


def validate_bandwidth(value, where: str = "bandwidth") -> dict:
    """One bandwidth mapping, checked: ``{"cpp": x}`` or ``{"bcr": x}`` with x a number or fraction."""
    allowed = "{cpp: value in (0, 3]} or {bcr: value in (0, 1]} (fractions like 1/16 allowed)"
    if not isinstance(value, dict) or len(value) != 1 or next(iter(value)) not in ("cpp", "bcr"):
        raise ConfigError(where, value, allowed)
    key, raw = next(iter(value.items()))
    high = 3 if key == "cpp" else 1
    return {key: _number(raw, f"{where}.{key}", low=0, low_open=True, high=high)}


def validate_bandwidths(value) -> list[dict]:
    """A scenario's ``bandwidth``: one mapping (as :func:`validate_bandwidth`) or a non-empty
    list of them (a rate sweep), no two of the same cpp (``{cpp: 1/48}`` and ``{bcr: 1/144}``
    are one bandwidth). Errors name the entry (``bandwidth[2].cpp``)."""
    if not isinstance(value, list):
        return [validate_bandwidth(value)]
    if not value:
        raise ConfigError("bandwidth", value, "a mapping {cpp: x} or {bcr: x}, or a non-empty list of them")
    parsed = []
    for i, entry in enumerate(value):
        bandwidth = validate_bandwidth(entry, f"bandwidth[{i}]")
        for j, earlier in enumerate(parsed):
            if math.isclose(nominal_cpp(bandwidth), nominal_cpp(earlier), rel_tol=1e-9):
                raise ConfigError(f"bandwidth[{i}]", entry, f"a bandwidth other than bandwidth[{j}] "
                                                            f"(cpp {bandwidth_label(earlier)}): each bandwidth once")
        parsed.append(bandwidth)
    return parsed


def nominal_cpp(bandwidth: dict) -> float:
    """The cpp of a validated bandwidth mapping (``{bcr: ρ}`` is cpp 3ρ; docs/ARCHITECTURE.md §2)."""
    return bandwidth["cpp"] if "cpp" in bandwidth else 3 * bandwidth["bcr"]


def bandwidth_label(bandwidth: dict) -> str:
    """The cpp of a bandwidth as written in ``results.csv``'s ``bandwidth`` column and in file
    names: a fraction (``"1/128"``) when one with a denominator ≤ 10⁶ is exact, else 12 digits."""
    cpp = nominal_cpp(bandwidth)
    fraction = Fraction(cpp).limit_denominator(10**6)
    return str(fraction) if abs(float(fraction) - cpp) <= 1e-12 * cpp else f"{cpp:.12g}"


def _channel(value) -> dict:
    from linksim.channel import make_channel

    spec = {"type": value} if isinstance(value, str) else value
    if not isinstance(spec, dict) or "type" not in spec:
        raise ConfigError("channel", value, "'awgn', 'rayleigh-block', 'rayleigh-fast', {type: ..., block_length: N} "
                                            "or {type: ofdm, model: tdl-a, csi: ls, ...}")
    channel = make_channel(spec)  # raises ConfigError naming the field on a bad type or option
    # OFDM: every default written out, so the run's fingerprint (and a resumed run's check)
    # records the whole link, not only the fields the file happened to set
    return channel.to_spec() if spec["type"] == "ofdm" else dict(spec)


def _deepjscc_scheme(value: dict, where: str, name: str, bandwidths: list[dict]) -> dict:
    """A ``{type: deepjscc, model: NAME}`` entry: the checkpoint must exist and match the bandwidth's ρ.

    ``model`` may also be a list of names/folders, one checkpoint per bandwidth of a rate sweep:
    each bandwidth must be matched by exactly one of them and each of them used. A single name
    must match every bandwidth (so, with several bandwidths, it cannot).
    """
    from linksim.jscc.scheme import bcr_matches, check_bcr
    from linksim.link import Bandwidth

    allowed_keys = {"name", "type", "model", "device"}
    unknown = sorted(set(value) - allowed_keys)
    if unknown:
        raise ConfigError(f"{where}", unknown[0], f"keys among {sorted(allowed_keys)} for a deepjscc scheme "
                                                  "(no codec, downscale or failure_fill: it sends no bits and never fails)")
    model = value.get("model")
    if isinstance(model, list):
        if not model:
            raise ConfigError(f"{where}.model", model, "a checkpoint name or folder, or a non-empty list of them "
                                                       "(one per bandwidth)")
        configs = [_deepjscc_config(m, f"{where}.model[{i}]") for i, m in enumerate(model)]
        given = ", ".join(f"{m} (ρ = {_rho_label(c.bcr())})" for m, c in zip(model, configs))
        for bandwidth in bandwidths:
            matching = [m for m, c in zip(model, configs) if bcr_matches(c, Bandwidth(**bandwidth))]
            if len(matching) != 1:
                rho = _rho_label(nominal_cpp(bandwidth) / 3)
                what = "none covers" if not matching else f"{len(matching)} cover"
                raise ConfigError(f"{where}.model", model, f"exactly one checkpoint per bandwidth; {what} "
                                                           f"cpp {bandwidth_label(bandwidth)} (ρ = {rho}); given: {given}")
        for i, (m, c) in enumerate(zip(model, configs)):
            if not any(bcr_matches(c, Bandwidth(**bandwidth)) for bandwidth in bandwidths):
                raise ConfigError(f"{where}.model[{i}]", m, f"a checkpoint at the ρ of one of the bandwidths "
                                                            f"{[bandwidth_label(b) for b in bandwidths]} (cpp); "
                                                            f"this one has ρ = {_rho_label(c.bcr())}")
        model = list(model)
    else:
        config = _deepjscc_config(model, f"{where}.model")
        for bandwidth in bandwidths:
            check_bcr(config, Bandwidth(**bandwidth), model, field=f"{where}.model")
    scheme = {"name": name.strip(), "type": "deepjscc", "model": model}
    if value.get("device") is not None:
        scheme["device"] = parse_device(value["device"], f"{where}.device")
    return scheme


def _deepjscc_config(model, where: str):
    """The configuration of a deepjscc checkpoint name or folder; a ConfigError naming ``where``."""
    from linksim import zoo
    from linksim.jscc.scheme import checkpoint_config

    names = zoo.available("deepjscc")
    if not isinstance(model, str) or not model.strip():
        raise ConfigError(where, model, f"a deepjscc checkpoint name among {names} or a checkpoint folder")
    try:
        return checkpoint_config(model)
    except ConfigError as error:  # re-labelled with the scenario field; the detail when a path was given
        allowed = f"a deepjscc checkpoint name among {names} or a checkpoint folder (model.safetensors + config.json)"
        if Path(model).expanduser().exists():
            allowed += f"; {error.allowed}"
        raise ConfigError(where, model, allowed) from None


def _rho_label(rho: float) -> str:
    return bandwidth_label({"cpp": rho})


def _linear_scheme(value: dict, where: str, name: str) -> dict:
    """A ``{type: linear, basis: NAME, variances: image|prior}`` entry: the basis must exist."""
    from linksim import zoo
    from linksim.jscc.linear import DEFAULT_BASIS, LINEAR_KIND, VARIANCE_MODES, load_linear_basis

    allowed_keys = {"name", "type", "basis", "variances"}
    unknown = sorted(set(value) - allowed_keys)
    if unknown:
        raise ConfigError(f"{where}", unknown[0], f"keys among {sorted(allowed_keys)} for a linear scheme")
    basis = value.get("basis", DEFAULT_BASIS)
    names = zoo.available(LINEAR_KIND)
    if not isinstance(basis, str) or not basis.strip():
        raise ConfigError(f"{where}.basis", basis, f"a {LINEAR_KIND} checkpoint name among {names} or its folder")
    try:
        load_linear_basis(basis)
    except ConfigError as error:
        raise ConfigError(f"{where}.basis", basis, f"a {LINEAR_KIND} checkpoint name among {names} or its folder "
                                                   f"({error.allowed})") from None
    variances = value.get("variances", "image")
    if variances not in VARIANCE_MODES:
        raise ConfigError(f"{where}.variances", variances, f"one of {list(VARIANCE_MODES)} (the receiver knows each "
                                                           "image's coefficient variances, or only the basis' own)")
    return {"name": name.strip(), "type": "linear", "basis": basis, "variances": variances}


def _checkpoint_digests(model: str | list[str]) -> str | list[str]:
    """SHA-256 of a checkpoint's weights file (the results of a run depend on it); a list of
    them for a list of checkpoints (a deepjscc scheme of a rate sweep)."""
    from linksim import zoo

    if isinstance(model, list):
        return [_checkpoint_digests(m) for m in model]
    return zoo.files_digest(zoo.resolve(model) / zoo.WEIGHTS)


def validate_scheme(value, bandwidth: dict | list[dict], where: str = "scheme") -> dict:
    """One ``schemes:`` entry checked and completed with its defaults (errors name ``where``).

    ``bandwidth`` is the scenario's validated bandwidth mapping or list of them (a deepjscc
    checkpoint is checked against each one's ρ; the other schemes work at any bandwidth)."""
    from linksim.digital.codecs import make_codec
    from linksim.digital.ldpc import get_code
    from linksim.digital.modulation import make_modulation
    from linksim.digital.source import validate_downscale

    if not isinstance(value, dict):
        raise ConfigError(where, value, "a mapping with at least 'name' and 'type'")
    kind = value.get("type")
    if kind not in SCHEME_TYPES:
        raise ConfigError(f"{where}.type", kind, f"one of {list(SCHEME_TYPES)}")
    name = value.get("name", kind)
    if not isinstance(name, str) or not name.strip():
        raise ConfigError(f"{where}.name", name, "a non-empty string")
    if kind == "deepjscc":
        return _deepjscc_scheme(value, where, name, bandwidth if isinstance(bandwidth, list) else [bandwidth])
    if kind == "linear":
        return _linear_scheme(value, where, name)
    allowed_keys = {"name", "type", "codec", "downscale", "failure_fill"} | ({"mcs", "decoder"} if kind == "separate" else set())
    unknown = sorted(set(value) - allowed_keys)
    if unknown:
        raise ConfigError(f"{where}", unknown[0], f"keys among {sorted(allowed_keys)}")

    codec = value.get("codec", {"name": "bpg"})
    codec = {"name": codec} if isinstance(codec, str) else codec
    if not isinstance(codec, dict) or "name" not in codec:
        raise ConfigError(f"{where}.codec", codec, "a codec name ('bpg', 'jpeg') or {name: bpg, chroma: '420'}")
    make_codec(codec["name"], **{k: v for k, v in codec.items() if k != "name"})
    scheme = {"name": name.strip(), "type": kind, "codec": dict(codec),
              "downscale": validate_downscale(value.get("downscale", [1]), f"{where}.downscale"),
              "failure_fill": _number(value.get("failure_fill", 0.5), f"{where}.failure_fill", low=0, high=1)}
    if kind == "separate":
        mcs = value.get("mcs")
        mcs = [mcs] if isinstance(mcs, dict) else mcs
        if not isinstance(mcs, list) or not mcs:
            raise ConfigError(f"{where}.mcs", mcs, "{code: wifi-1944-1/2, modulation: bpsk} or a non-empty list of them")
        for j, entry in enumerate(mcs):
            if not isinstance(entry, dict) or set(entry) != {"code", "modulation"}:
                raise ConfigError(f"{where}.mcs[{j}]", entry, "{code: NAME, modulation: bpsk|qpsk|16qam}")
            get_code(entry["code"])
            make_modulation(entry["modulation"])
        # default backend: numba (fast CPU BP) when every code has a parity-check matrix
        # (802.11n), else sionna (5G NR rate matching lives in Sionna)
        from linksim.digital.ldpc.decoder import default_backend, validate_decoder_options

        backend = "numba" if all(default_backend(get_code(e["code"])) == "numba" for e in mcs) else "sionna"
        given = value.get("decoder") or {}
        if not isinstance(given, dict):
            raise ConfigError(f"{where}.decoder", given, "{backend: numba|sionna|pyldpc, iterations: N, ...}")
        decoder = {"backend": backend, "iterations": 20, **given}
        decoder["iterations"] = _number(decoder["iterations"], f"{where}.decoder.iterations", low=1, high=1000, integer=True)
        validate_decoder_options(**decoder, field=f"{where}.decoder")
        if decoder["backend"] == "numba":
            for entry in mcs:
                if get_code(entry["code"]).H is None:
                    raise ConfigError(f"{where}.decoder.backend", "numba", f"sionna for code {entry['code']} (5G NR)")
        scheme.update(mcs=[dict(e) for e in mcs], decoder=decoder)
        if len(mcs) > 1:  # link adaptation needs a threshold for every candidate: check now, not mid-sweep
            from linksim.digital.mcs import MCS

            for entry in mcs:
                MCS(entry["code"], entry["modulation"]).threshold_snr_db()
    return scheme


def _restorers(value, scheme_names: list[str]) -> list[dict]:
    """The ``restorers:`` list: each entry validated by the restorer registry (no weights
    loaded), plus ``after``, the schemes it restores (default: all)."""
    from linksim.restore.specs import validate_spec

    if value is None:
        return []
    if not isinstance(value, list):
        raise ConfigError("restorers", value, "a list of restorers, e.g. [{type: sing-zero, prior: PATH_OR_NAME, "
                                              "operator: avgpool4}]")
    parsed = []
    for i, entry in enumerate(value):
        where = f"restorers[{i}]"
        spec = validate_spec({k: v for k, v in entry.items() if k != "after"} if isinstance(entry, dict) else entry, where)
        after = entry.get("after")
        if after is None:
            after = list(scheme_names)
        elif isinstance(after, str):
            after = [after]
        if (not isinstance(after, list) or not after or any(a not in scheme_names for a in after)
                or len(set(after)) != len(after)):
            raise ConfigError(f"{where}.after", entry.get("after"), f"distinct scheme names among {scheme_names} "
                                                                    "(default: every scheme)")
        parsed.append({**spec, "after": [a for a in scheme_names if a in after]})
    names = [r["name"] for r in parsed]
    if len(set(names)) != len(names):
        raise ConfigError("restorers", names, "distinct restorer names (set name: on each entry)")
    return parsed


def parse_scenario(raw: Any, source: Path | None = None) -> Scenario:
    """Validate a scenario mapping (as loaded from YAML) into a :class:`Scenario`."""
    if not isinstance(raw, dict):
        raise ConfigError("scenario", type(raw).__name__, "a YAML mapping of scenario fields")
    unknown = sorted(set(raw) - TOP_LEVEL_KEYS)
    if unknown:
        raise ConfigError("scenario", unknown[0], f"fields among {sorted(TOP_LEVEL_KEYS)}")
    name = raw.get("name") or (source.stem if source else "scenario")
    schemes = raw.get("schemes")
    if not isinstance(schemes, list) or not schemes:
        raise ConfigError("schemes", schemes, "a non-empty list of schemes")
    bandwidths = validate_bandwidths(raw.get("bandwidth"))  # before the schemes: a deepjscc checkpoint must match its ρ
    parsed = [validate_scheme(s, bandwidths, f"schemes[{i}]") for i, s in enumerate(schemes)]
    names = [s["name"] for s in parsed]
    if len(set(names)) != len(names):
        raise ConfigError("schemes", names, "distinct scheme names")
    restorers = _restorers(raw.get("restorers"), names)
    metrics = check_metric_names(raw.get("metrics", ["psnr", "ms_ssim", "lpips"]))
    limit = raw.get("limit")
    if limit is not None:
        limit = _number(limit, "limit", low=1, integer=True)
    snr_grid = _snr_grid(raw.get("snr_db"))
    grid = raw.get("grid") or {}
    if not isinstance(grid, dict) or set(grid) - {"snr_db", "images"}:
        raise ConfigError("grid", grid, "{snr_db: [three SNRs of the grid], images: N}")
    # default: the first, middle and last SNR (once each: a grid of one or two SNRs has no repeats)
    grid_snrs = grid.get("snr_db") or list(dict.fromkeys([snr_grid[0], snr_grid[len(snr_grid) // 2], snr_grid[-1]]))
    grid_snrs = [_number(v, f"grid.snr_db[{i}]") for i, v in enumerate(grid_snrs)]
    missing = [v for v in grid_snrs if v not in snr_grid]
    if missing:
        raise ConfigError("grid.snr_db", missing, f"values of snr_db {snr_grid}")
    cache_dir = raw.get("cache_dir")
    crop_multiple = raw.get("crop_multiple")
    if crop_multiple is not None:
        crop_multiple = _number(crop_multiple, "crop_multiple", low=1, high=4096, integer=True)
    resize = raw.get("resize")
    if resize is not None:
        resize = _number(resize, "resize", low=1, high=16384, integer=True)
    return Scenario(
        name=str(name),
        description=str(raw.get("description", "")),
        seed=_number(raw.get("seed", 0), "seed", low=0, integer=True),
        images=resolve_paths(raw.get("images", "samples"), source),
        limit=limit,
        channel=_channel(raw.get("channel", "awgn")),
        snr_db=snr_grid,
        trials=_number(raw.get("trials", 1), "trials", low=1, high=100000, integer=True),
        bandwidths=bandwidths,
        schemes=parsed,
        metrics=list(metrics),
        grid={"snr_db": grid_snrs, "images": _number(grid.get("images", 3), "grid.images", low=1, integer=True)},
        output=Path(raw.get("output") or Path("runs") / str(name)),
        cache_dir=resolve_paths(Path(cache_dir), source) if cache_dir else None,
        source=source,
        raw=raw,
        crop_multiple=crop_multiple,
        resize=resize,
        checkpoints={s["name"]: _checkpoint_digests(s["model"] if s["type"] == "deepjscc" else s["basis"])
                     for s in parsed if s["type"] in ("deepjscc", "linear")},
        restorers=restorers,
        priors={r["name"]: _restorer_digest(r, i) for i, r in enumerate(restorers)},
        execution=_execution(raw.get("execution")),
    )


def resolve_paths(value, source: Path | None):
    """``value`` with each relative path resolved from the folder of the scenario file ``source``.

    A scenario names its inputs (``images``, ``cache_dir``) relative to where the YAML file lies,
    so ``linksim run scenarios/x.yaml`` reads the same files from any working folder. Left as
    they are: the keyword ``"samples"`` (the bundled photographs), absolute and ``~`` paths,
    anything that is not a string or path (validated later by the loader, which names the
    field), and every path of a scenario that has no file (``parse_scenario`` of a mapping).
    """
    if source is None:
        return value
    if isinstance(value, list):
        return [resolve_paths(v, source) for v in value]
    if isinstance(value, str) and value == "samples":
        return value
    if not isinstance(value, (str, Path)) or str(value).startswith("~") or Path(value).is_absolute():
        return value
    resolved = Path(source).parent / value
    return str(resolved) if isinstance(value, str) else resolved


def _execution(value) -> dict:
    from linksim.execution import validate_execution

    if value is not None and not isinstance(value, dict):
        raise ConfigError("execution", value, "{executor: local|ray, workers: N, address: HOST:PORT, threads: N}")
    return validate_execution(value or {}, where="execution.")


def _restorer_digest(restorer: dict, index: int) -> str:
    from linksim.restore.specs import weights_digest

    return weights_digest({k: v for k, v in restorer.items() if k != "after"}, f"restorers[{index}]")


def load_scenario(path: str | Path) -> Scenario:
    """Read and validate a YAML scenario file (``yaml.safe_load``: no arbitrary objects)."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError("scenario", str(path), "an existing YAML file")
    try:
        raw = yaml.safe_load(path.read_text())
    except yaml.YAMLError as error:
        raise ConfigError("scenario", str(path), f"valid YAML ({str(error).splitlines()[0]})") from None
    return parse_scenario(raw, source=path)
