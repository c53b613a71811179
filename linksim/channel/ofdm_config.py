"""The OFDM link's configuration: numerology, resource grid, pilots, CSI and equalizer.

One validated, frozen record built from a scenario's ``{type: ofdm, ...}`` entry
(:meth:`OFDMConfig.from_spec`); every bad value raises a :class:`~linksim.errors.ConfigError`
naming the field, the value and what is allowed. It also builds Sionna's
:class:`~sionna.phy.ofdm.ResourceGrid` and states the overheads.

**Bandwidth rule.** The image's budget k counts *data* resource elements (REs) only. Pilots,
nulled subcarriers (guards, DC) and the cyclic prefix are overhead on top of k, reported per
image in the ``pilot_res``, ``null_res`` and ``cp_overhead`` columns of ``results.csv``
(:meth:`OFDMConfig.overhead`), never taken from the image's budget. A resource grid (one slot of
``num_ofdm_symbols`` OFDM symbols) carries :attr:`OFDMConfig.data_res_per_grid` data REs; an image
of k REs fills ``ceil(k / data_res_per_grid)`` grids, the last one padded with idle (zero) REs.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from numbers import Real
from typing import Optional

import numpy as np
import torch

from linksim.errors import ConfigError

__all__ = ["OFDMConfig", "MODELS", "CSI_MODES", "EQUALIZERS"]

#: channel models: 3GPP TR 38.901 TDL and CDL profiles (single antennas) and a unit flat channel
MODELS = ("tdl-a", "tdl-b", "tdl-c", "tdl-d", "tdl-e", "cdl-a", "cdl-b", "cdl-c", "cdl-d", "cdl-e", "flat")
CSI_MODES = ("perfect", "ls", "lmmse")
EQUALIZERS = ("zf", "lmmse")
PILOT_PATTERNS = ("kronecker", "none")
INTERPOLATIONS = ("nn", "lin", "lin_time_avg")
#: 5G NR numerologies μ = 0…4 (TS 38.211 §4.2)
SUBCARRIER_SPACINGS_KHZ = (15, 30, 60, 120, 240)

_KEYS = ("model", "delay_spread_ns", "speed_kmh", "carrier_ghz", "subcarrier_spacing_khz", "fft_size",
         "num_ofdm_symbols", "cp_length", "guard_carriers", "dc_null", "pilots", "csi", "interpolation",
         "equalizer")


def _number(name: str, value, low: float, low_open: bool, allowed: str) -> float:
    ok = not isinstance(value, bool) and isinstance(value, Real) and math.isfinite(value) \
        and (value > low if low_open else value >= low)
    if not ok:
        raise ConfigError(name, value, allowed)
    return float(value)


def _integer(name: str, value, low: int, allowed: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise ConfigError(name, value, allowed)
    return int(value)


@dataclass(frozen=True)
class OFDMConfig:
    """An OFDM link over a multipath channel (SISO).

    :ivar model: ``tdl-a`` … ``tdl-e`` (3GPP TR 38.901 tapped delay lines), ``cdl-a`` … ``cdl-e``
        (clustered delay lines, one omni vertically polarized antenna at each end, downlink;
        :mod:`linksim.channel.cdl`) or ``flat`` (h = 1).
    :ivar delay_spread_ns: RMS delay spread of the TDL or CDL profile, ns (> 0).
    :ivar speed_kmh: terminal speed, km/h (≥ 0); sets the maximum Doppler shift v·f_c/c.
    :ivar carrier_ghz: carrier frequency, GHz (> 0).
    :ivar subcarrier_spacing_khz: Δf, kHz, a 5G numerology (15, 30, 60, 120, 240).
    :ivar fft_size: subcarriers N (≥ 8); sampling rate N·Δf.
    :ivar num_ofdm_symbols: OFDM symbols per resource grid (a slot, 14 in 5G NR).
    :ivar cp_length: cyclic prefix, samples (0 ≤ cp < N). Inter-symbol interference is absent when
        it is ≥ the length of the discrete-time channel minus one
        (:attr:`~linksim.channel.multipath.MultipathTaps.isi_free_cp`, from the profile's longest delay).
    :ivar guard_carriers: ``[left, right]`` nulled guard subcarriers.
    :ivar dc_null: whether the DC subcarrier is nulled.
    :ivar pilots: ``{"pattern": "kronecker", "symbols": [2, 11]}`` (pilots on every effective
        subcarrier of the listed OFDM symbols; density = len(symbols)/num_ofdm_symbols) or
        ``{"pattern": "none"}`` (only with perfect CSI).
    :ivar csi: ``perfect`` (the receiver knows the channel's frequency response), ``ls`` (least
        squares at the pilots, interpolated) or ``lmmse`` (LMMSE filtering in frequency then time,
        with the TDL or CDL profile's covariances).
    :ivar interpolation: the LS estimate's interpolation: ``nn``, ``lin`` (linear), ``lin_time_avg``.
    :ivar equalizer: ``zf`` or ``lmmse`` (both report the post-equalization noise variance per RE).
    """

    model: str = "tdl-a"
    delay_spread_ns: float = 100.0
    speed_kmh: float = 3.0
    carrier_ghz: float = 3.5
    subcarrier_spacing_khz: float = 30.0
    fft_size: int = 256
    num_ofdm_symbols: int = 14
    cp_length: int = 20
    guard_carriers: tuple = (0, 0)
    dc_null: bool = False
    pilots: dict = field(default_factory=lambda: {"pattern": "kronecker", "symbols": [2, 11]})
    csi: str = "ls"
    interpolation: str = "lin"
    equalizer: str = "lmmse"

    # -- construction --------------------------------------------------------------------
    @classmethod
    def from_spec(cls, spec: dict) -> "OFDMConfig":
        """Validate a ``{type: ofdm, ...}`` channel entry (``type`` optional here).

        :raises ConfigError: the first bad field (unknown keys under ``channel``).
        """
        if not isinstance(spec, dict):
            raise ConfigError("channel", spec, "a mapping {type: ofdm, model: tdl-a, ...}")
        unknown = sorted(set(spec) - set(_KEYS) - {"type"})
        if unknown:
            raise ConfigError(f"channel.{unknown[0]}", spec[unknown[0]], f"OFDM fields among {list(_KEYS)}")
        d = {**asdict(cls()), **{k: v for k, v in spec.items() if k != "type"}}
        f = "channel."
        if d["model"] not in MODELS:
            raise ConfigError(f + "model", d["model"], f"one of {list(MODELS)}")
        ds = _number(f + "delay_spread_ns", d["delay_spread_ns"], 0, True, "a delay spread in ns > 0")
        speed = _number(f + "speed_kmh", d["speed_kmh"], 0, False, "a speed in km/h ≥ 0")
        fc = _number(f + "carrier_ghz", d["carrier_ghz"], 0, True, "a carrier frequency in GHz > 0")
        scs = d["subcarrier_spacing_khz"]
        if isinstance(scs, bool) or scs not in SUBCARRIER_SPACINGS_KHZ:
            raise ConfigError(f + "subcarrier_spacing_khz", scs, f"a 5G NR spacing in kHz, one of {list(SUBCARRIER_SPACINGS_KHZ)}")
        n = _integer(f + "fft_size", d["fft_size"], 8, "an integer ≥ 8 (subcarriers)")
        sym = _integer(f + "num_ofdm_symbols", d["num_ofdm_symbols"], 1, "an integer ≥ 1 (OFDM symbols per slot)")
        cp = _integer(f + "cp_length", d["cp_length"], 0, f"an integer in [0, fft_size = {n})")
        if cp >= n:
            raise ConfigError(f + "cp_length", cp, f"an integer in [0, fft_size = {n})")
        guards = d["guard_carriers"]
        if not isinstance(guards, (list, tuple)) or len(guards) != 2 or any(
                isinstance(g, bool) or not isinstance(g, int) or g < 0 for g in guards) or sum(guards) >= n - 1:
            raise ConfigError(f + "guard_carriers", guards, f"[left, right] non-negative integers leaving ≥ 2 of {n} subcarriers")
        if not isinstance(d["dc_null"], bool):
            raise ConfigError(f + "dc_null", d["dc_null"], "true or false")
        if d["csi"] not in CSI_MODES:
            raise ConfigError(f + "csi", d["csi"], f"one of {list(CSI_MODES)}")
        if d["interpolation"] not in INTERPOLATIONS:
            raise ConfigError(f + "interpolation", d["interpolation"], f"one of {list(INTERPOLATIONS)}")
        if d["equalizer"] not in EQUALIZERS:
            raise ConfigError(f + "equalizer", d["equalizer"], f"one of {list(EQUALIZERS)}")
        pilots = cls._pilots(d["pilots"], sym, d["csi"])
        return cls(model=d["model"], delay_spread_ns=ds, speed_kmh=speed, carrier_ghz=fc,
                   subcarrier_spacing_khz=float(scs), fft_size=n, num_ofdm_symbols=sym, cp_length=cp,
                   guard_carriers=(int(guards[0]), int(guards[1])), dc_null=d["dc_null"], pilots=pilots,
                   csi=d["csi"], interpolation=d["interpolation"], equalizer=d["equalizer"])

    @staticmethod
    def _pilots(value, num_symbols: int, csi: str) -> dict:
        allowed = "{pattern: kronecker, symbols: [2, 11]} (OFDM symbol indices) or {pattern: none} (perfect CSI only)"
        if not isinstance(value, dict) or value.get("pattern") not in PILOT_PATTERNS or \
                set(value) - {"pattern", "symbols"}:
            raise ConfigError("channel.pilots", value, allowed)
        if value["pattern"] == "none":
            if csi != "perfect":
                raise ConfigError("channel.pilots", value, f"pilots to estimate the channel with csi: {csi} — {allowed}")
            return {"pattern": "none"}
        symbols = value.get("symbols", [2, 11])
        if not isinstance(symbols, (list, tuple)) or not symbols or len(set(symbols)) != len(symbols) or any(
                isinstance(s, bool) or not isinstance(s, int) or not 0 <= s < num_symbols for s in symbols) \
                or len(symbols) >= num_symbols:
            raise ConfigError("channel.pilots.symbols", symbols,
                              f"distinct OFDM symbol indices in [0, {num_symbols}), fewer than {num_symbols}")
        return {"pattern": "kronecker", "symbols": sorted(int(s) for s in symbols)}

    def to_spec(self) -> dict:
        """The scenario entry that rebuilds this configuration."""
        d = asdict(self)
        d["guard_carriers"] = list(self.guard_carriers)
        return {"type": "ofdm", **d}

    # -- derived quantities ----------------------------------------------------------------
    @property
    def subcarrier_spacing_hz(self) -> float:
        return self.subcarrier_spacing_khz * 1e3

    @property
    def bandwidth_hz(self) -> float:
        """Sampling rate N·Δf (Hz): the time-domain simulation's sample rate."""
        return self.fft_size * self.subcarrier_spacing_hz

    @property
    def pilot_symbols(self) -> list[int]:
        return list(self.pilots.get("symbols", [])) if self.pilots["pattern"] == "kronecker" else []

    @property
    def effective_subcarriers(self) -> int:
        """Subcarriers that carry data or pilots (N minus guards and DC)."""
        return self.fft_size - sum(self.guard_carriers) - int(self.dc_null)

    @property
    def data_res_per_grid(self) -> int:
        """Data REs of one resource grid (the slot's REs minus pilots and nulls)."""
        return (self.num_ofdm_symbols - len(self.pilot_symbols)) * self.effective_subcarriers

    def grids(self, k: int) -> int:
        """Resource grids needed for k data REs."""
        return math.ceil(k / self.data_res_per_grid)

    def overhead(self, k: int) -> dict:
        """The overhead columns of an image sent in k data REs.

        :output: ``ofdm_grids`` (slots used), ``pilot_res`` (pilot REs sent), ``null_res`` (nulled
            REs: guards, DC, and the idle data REs of the last grid), ``cp_overhead`` (fraction of
            the air time spent on cyclic prefixes, cp/(N + cp)).
        """
        g = self.grids(k)
        pilots = g * len(self.pilot_symbols) * self.effective_subcarriers
        nulls = g * self.num_ofdm_symbols * (self.fft_size - self.effective_subcarriers) + (g * self.data_res_per_grid - k)
        return {"ofdm_grids": g, "pilot_res": pilots, "null_res": nulls,
                "cp_overhead": self.cp_length / (self.fft_size + self.cp_length)}

    def resource_grid(self, precision: str = "single", device: str = "cpu"):
        """Sionna's :class:`~sionna.phy.ofdm.ResourceGrid` of one slot, with fixed pilot values.

        The pilots are QPSK symbols of unit energy drawn once from a generator seeded with 0
        (Sionna's own Kronecker pattern draws them from its global RNG, which would make the
        pilot values depend on whatever ran before).
        """
        from sionna.phy.ofdm import PilotPattern, ResourceGrid

        rg = ResourceGrid(num_ofdm_symbols=self.num_ofdm_symbols, fft_size=self.fft_size,
                          subcarrier_spacing=self.subcarrier_spacing_hz, num_tx=1, num_streams_per_tx=1,
                          cyclic_prefix_length=self.cp_length, num_guard_carriers=tuple(self.guard_carriers),
                          dc_null=self.dc_null, pilot_pattern="empty", precision=precision, device=device)
        mask = np.zeros((1, 1, self.num_ofdm_symbols, self.effective_subcarriers), dtype=bool)
        mask[..., self.pilot_symbols, :] = True
        n_pilots = int(mask.sum())
        g = torch.Generator().manual_seed(0)
        bits = torch.randint(0, 2, (2, n_pilots), generator=g).numpy()
        pilots = ((1 - 2 * bits[0]) + 1j * (1 - 2 * bits[1])) / math.sqrt(2)
        rg.pilot_pattern = PilotPattern(mask, pilots.astype(np.complex64).reshape(1, 1, n_pilots),
                                        precision=precision, device=device)
        return rg
