"""linksim: an end-to-end wireless image link simulator with a physical-layer focus.

``import linksim as ls`` gives the objects a notebook needs to run a link, without their
module paths::

    import linksim as ls
    x = ls.to_tensor(ls.load_images("samples", limit=1))          # float32 [1, 3, H, W] in [0, 1]
    scheme = ls.SeparateScheme("BPG + LDPC", ls.Bandwidth(bcr=1/48), {"name": "bpg", "chroma": "420"},
                               mcs=ls.MCS("wifi-1944-1/2", "bpsk"))
    out = scheme.run(x, 5.0, ls.make_channel("awgn"), ls.point_generator(0, "demo"))
    ls.psnr(x, out.x_hat)                                         # float32 [1], dB

Every name is imported on first access (module ``__getattr__``), so ``import linksim`` and the
command line stay fast and importing a channel does not import Sionna's decoders or torch
models. ``dir(linksim)`` lists them; :data:`__all__` is the same list.
"""

from __future__ import annotations

import importlib

__version__ = "0.1.0"

#: Where each public name lives: module → the names it gives.
_MODULES: dict[str, tuple[str, ...]] = {
    # channels and units
    "linksim.channel": ("AWGNChannel", "RayleighBlockChannel", "RayleighFastChannel", "Channel", "ChannelOutput",
                        "make_channel", "equalize"),
    "linksim.link": ("Bandwidth", "LinkOutput", "Scheme"),
    "linksim.units": ("normalize_power", "db_to_linear", "linear_to_db", "noise_variance", "channel_uses", "cpp",
                      "bcr", "bpp", "ebno_db", "snr_db_from_ebno", "capacity_bits"),
    "linksim.seeding": ("point_generator",),
    "linksim.errors": ("ConfigError", "ImageError", "LinkSimError"),
    # separate coding: codecs, LDPC, modulation, MCS
    "linksim.digital.codecs": ("make_codec", "BPGCodec", "JPEGCodec", "rate_quality_table"),
    "linksim.digital.ldpc": ("get_code", "available_codes", "LDPCCode", "LDPCEncoder", "LDPCDecoder", "simulate_fer"),
    "linksim.digital.modulation": ("Modulation", "make_modulation", "Mapper", "Demapper"),
    "linksim.digital.mcs": ("MCS", "select_mcs"),
    # schemes
    "linksim.digital.separate": ("SeparateScheme", "SeparateStages", "LadderCache"),
    "linksim.digital.capacity": ("CapacityScheme",),
    "linksim.jscc.scheme": ("DeepJSCCScheme",),
    "linksim.jscc.linear": ("LinearScheme",),
    "linksim.jscc.models": ("DeepJSCC", "DeepJSCCConfig"),
    "linksim.schemes": ("make_scheme",),
    # restorers, metrics, data, scenarios, checkpoints
    "linksim.restore.registry": ("make_restorer",),
    "linksim.metrics": ("psnr", "ms_ssim", "lpips", "haarpsi", "vsi", "frechet_distance", "kernel_distance", "MetricSuite"),
    "linksim.data": ("load_images", "read_image", "to_tensor", "to_uint8", "ImageItem", "SAMPLE_NAMES"),
    "linksim.scenario": ("load_scenario", "parse_scenario"),
    "linksim.runner": ("run_scenario", "format_summary"),
    "linksim.zoo": ("load",),
}

_WHERE: dict[str, str] = {name: module for module, names in _MODULES.items() for name in names}

__all__ = sorted(_WHERE)


def __getattr__(name: str):
    if name in _WHERE:
        return getattr(importlib.import_module(_WHERE[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
