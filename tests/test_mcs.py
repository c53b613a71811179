"""Link adaptation: the measured thresholds agree with the published waterfalls, and the
chosen MCS is the fastest one whose threshold the SNR clears."""

from __future__ import annotations

import pytest

from linksim import units
from linksim.digital.mcs import MCS, THRESHOLD_KEY, _threshold_table, select_mcs
from linksim.errors import ConfigError

# FER 1e-2, 20 iterations of sum-product, BPSK on AWGN (the curves of the 802.11n code papers).
PUBLISHED_EBNO = {"wifi-1944-1/2": 1.71, "wifi-1944-2/3": 2.32, "wifi-1944-3/4": 2.84}

CANDIDATES = [MCS(code, modulation) for modulation in ("bpsk", "qpsk")
              for code in ("wifi-1944-1/2", "wifi-1944-2/3", "wifi-1944-3/4", "wifi-1944-5/6")]


@pytest.mark.parametrize("code", sorted(PUBLISHED_EBNO))
def test_shipped_thresholds_match_published_curves(code):
    entry = _threshold_table()[code]
    assert abs(entry[THRESHOLD_KEY] - PUBLISHED_EBNO[code]) <= 0.2
    assert entry["frames"] >= 1000


def test_qpsk_threshold_is_bpsk_plus_3db_in_snr():
    bpsk, qpsk = MCS("wifi-1944-1/2", "bpsk"), MCS("wifi-1944-1/2", "qpsk")
    assert qpsk.threshold_snr_db() - bpsk.threshold_snr_db() == pytest.approx(units.linear_to_db(2.0))


def test_link_adaptation_picks_the_fastest_cleared_mcs():
    ordered = sorted(CANDIDATES, key=lambda m: m.spectral_efficiency)
    for snr in [-5.0, -1.0, 0.5, 2.0, 4.0, 6.0, 9.0, 20.0]:
        chosen = select_mcs(CANDIDATES, snr)
        cleared = [m for m in ordered if m.threshold_snr_db() <= snr]
        if not cleared:
            assert chosen == ordered[0]
            continue
        assert chosen.threshold_snr_db() <= snr
        assert all(m.spectral_efficiency <= chosen.spectral_efficiency for m in cleared)
    # the envelope never loses rate as the SNR grows
    rates = [select_mcs(CANDIDATES, s).spectral_efficiency for s in range(-5, 21)]
    assert rates == sorted(rates)


def test_mcs_without_measured_threshold_is_refused_for_adaptation():
    with pytest.raises(ConfigError, match="mcs"):
        select_mcs([MCS("wifi-1944-1/2", "16qam"), MCS("wifi-1944-1/2", "bpsk")], 3.0)
