"""Modulation and coding schemes (MCS) and link adaptation by measured thresholds.

An MCS pairs an LDPC code with a modulation. Link adaptation picks, at each SNR, the
MCS with the highest spectral efficiency m·R whose *measured* threshold the SNR clears:
the AWGN SNR at which its frame error rate falls to 1e-2 with the project's own decoder.
The thresholds ship in ``linksim/digital/ldpc/wifi_thresholds.json`` as Eb/N0 values for
BPSK, measured by ``benchmarks/measure_ldpc_thresholds.py``. Gray-mapped QPSK is two
independent BPSK streams on I and Q, so its Eb/N0 threshold is BPSK's; 16-QAM has no
measured entry yet and is refused for link adaptation (a single fixed 16-QAM MCS works).
On fading channels the same AWGN thresholds are applied to the *average* SNR, as a
transmitter without instantaneous CSI would.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cached_property, lru_cache
from importlib import resources

from linksim import units
from linksim.digital.ldpc import LDPCCode, get_code
from linksim.digital.modulation import Modulation, make_modulation
from linksim.errors import ConfigError

THRESHOLD_KEY = "ebno_db_fer_1e-2"


@lru_cache(maxsize=1)
def _threshold_table() -> dict:
    path = resources.files("linksim.digital.ldpc").joinpath("wifi_thresholds.json")
    return json.loads(path.read_text()) if path.is_file() else {}


@dataclass(frozen=True)
class MCS:
    """One modulation and coding scheme, e.g. ``MCS("wifi-1944-1/2", "bpsk")``."""

    code_name: str
    modulation_name: str

    @cached_property
    def code(self) -> LDPCCode:
        return get_code(self.code_name)

    @cached_property
    def modulation(self) -> Modulation:
        return make_modulation(self.modulation_name)

    @property
    def label(self) -> str:
        return f"{self.code_name}/{self.modulation_name}"

    @property
    def spectral_efficiency(self) -> float:
        """Information bits per complex channel use, m·R."""
        return self.modulation.bits_per_symbol * self.code.rate

    def threshold_snr_db(self) -> float:
        """AWGN SNR (dB) at which the frame error rate of this MCS is 1e-2 (measured)."""
        entry = _threshold_table().get(self.code_name)
        if entry is None or self.modulation_name not in ("bpsk", "qpsk"):
            measured = sorted(f"{name}/bpsk|qpsk" for name in _threshold_table())
            raise ConfigError("mcs", self.label, f"an MCS with a measured threshold for link adaptation: {measured}")
        return units.snr_db_from_ebno(entry[THRESHOLD_KEY], self.modulation.bits_per_symbol, self.code.rate)


def select_mcs(candidates: list[MCS], snr_db: float) -> MCS:
    """Link adaptation: the highest-m·R MCS whose threshold ``snr_db`` clears.

    With a single candidate it is returned as is (no threshold needed). When the SNR
    clears no threshold, the most robust MCS (lowest m·R) is used; it will mostly fail,
    which is the point of the cliff.
    """
    if len(candidates) == 1:
        return candidates[0]
    ordered = sorted(candidates, key=lambda m: m.spectral_efficiency)
    cleared = [m for m in ordered if m.threshold_snr_db() <= snr_db]
    return cleared[-1] if cleared else ordered[0]
