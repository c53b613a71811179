"""The 3GPP TR 38.901 CDL channels (SISO, omni antennas) over the OFDM link, against theory and
the published profiles: unit average power per subcarrier, the Rician K-factors of the LoS
profiles CDL-D/E (Tables 7.7.1-4/-5), Rayleigh statistics and BER of the NLoS profiles, the
frequency covariance the LMMSE estimator uses, and reproducibility from the caller's generator."""

from __future__ import annotations

import functools
import math

import numpy as np
import pytest
import torch
from PIL import Image
from sionna.phy import config as sionna_config

from linksim.channel import OFDMChannel, OFDMConfig, make_channel
from linksim.channel.cdl import GeneratorCDL, cdl_freq_cov_mat
from linksim.cli import main
from linksim.errors import ConfigError
from linksim.results import read_results
from linksim.units import normalize_power
from test_ofdm_schemes import _scenario

Z = 4.5          # tolerance in standard errors (two-sided p ≈ 7e-6 per check)
Z99 = 2.576      # the 99 % confidence interval
GRIDS = 1000     # independent channel realizations per profile for the statistics below

#: TR 38.901 Tables 7.7.1-4 (CDL-D) and 7.7.1-5 (CDL-E): cluster powers in dB, the specular
#: LoS ray first, then the Laplacian clusters (the first one at the LoS ray's delay, 0)
TABLE_POWERS_DB = {
    "cdl-d": [-0.2, -13.5, -18.8, -21.0, -22.8, -17.9, -20.1, -21.9, -22.9, -27.8, -23.6, -24.8, -30.0, -27.7],
    "cdl-e": [-0.03, -22.03, -15.8, -18.1, -19.8, -22.9, -22.4, -18.6, -20.8, -22.6, -22.3, -25.6, -20.2, -29.8,
              -29.2],
}
#: the tables' "Ricean K-factor": the LoS ray over the zero-delay cluster
TABLE_K_DB = {"cdl-d": 13.3, "cdl-e": 22.0}


def _gen(seed):
    return torch.Generator().manual_seed(seed)


def _rayleigh_ber(snr_per_bit: float) -> float:
    """BER of antipodal signalling over a CN(0, 1) gain with coherent detection."""
    return 0.5 * (1 - math.sqrt(snr_per_bit / (1 + snr_per_bit)))


def _single_symbol_link(model: str) -> OFDMChannel:
    """64 subcarriers (1.92 MHz), one OFDM symbol per grid, 300 ns: each grid is one independent
    realization seen over ≈ 6 coherence bandwidths; cp 24 covers CDL-E's 25 taps (no ISI)."""
    return OFDMChannel(OFDMConfig.from_spec({
        "model": model, "delay_spread_ns": 300.0, "fft_size": 64, "cp_length": 24, "num_ofdm_symbols": 1,
        "pilots": {"pattern": "none"}, "csi": "perfect", "equalizer": "zf"}))


@functools.lru_cache(maxsize=None)
def _gains(model: str) -> torch.Tensor:
    """The true frequency response of GRIDS independent grids: complex128 [GRIDS, 64]."""
    t = _single_symbol_link(model).transmit(torch.ones(1, GRIDS * 64, dtype=torch.complex64), 30.0, _gen(1))
    return t.h_true[:, 0, 0, 0, 0, 0, :].to(torch.complex128)


def _jackknife(statistic, h: torch.Tensor, groups: int = 20) -> tuple[float, float]:
    """(statistic of all grids, its jackknife standard error over ``groups`` blocks of grids).
    Grids are independent, subcarriers within a grid are not: resampling whole grids is valid."""
    blocks = torch.arange(h.shape[0]).reshape(groups, -1)
    loo = torch.tensor([statistic(h[blocks[torch.arange(groups) != g].flatten()]) for g in range(groups)])
    return statistic(h), math.sqrt((groups - 1) / groups * ((loo - loo.mean()) ** 2).sum().item())


def _rician_k(h: torch.Tensor) -> float:
    """Moment estimator of the Rician K-factor: with h = μ + n, E|n|² = σ², K = |μ|²/σ²,
    E|h|⁴/(E|h|²)² = (K² + 4K + 2)/(K + 1)², so √(2 − ratio) = K/(K + 1)."""
    p = h.abs().square()
    s = math.sqrt(max(2 - (p.square().mean() / p.mean() ** 2).item(), 0.0))
    return s / (1 - s)


def _second_moment_ratio(h: torch.Tensor) -> float:
    p = h.abs().square()
    return (p.square().mean() / p.mean() ** 2).item()


# ----------------------------------------------------------------------------- power
@pytest.mark.parametrize("model", ["cdl-a", "cdl-b", "cdl-c", "cdl-d", "cdl-e"])
def test_average_power_per_subcarrier_is_one(model):
    """E|H|² over subcarriers and realizations is the profile's total power, 1, less what the
    sinc pulse's truncation to the l_tot taps drops: by Parseval, Σ_p P_p Σ_ℓ sinc²(ℓ − τ_p·N·Δf)
    (> 0.98 here). The measured mean lies within Z jackknife standard errors of it."""
    ch = _single_symbol_link(model)
    taps = ch.blocks().taps
    delays, powers = taps.paths.power_delay_profile()
    lags = np.arange(taps.l_min, taps.l_max + 1)
    kept = float((powers[:, None] * np.sinc(lags[None, :] - delays[:, None] * ch.config.bandwidth_hz) ** 2).sum())
    assert abs(powers.sum() - 1) < 1e-6 and kept > 0.98
    mean, se = _jackknife(lambda h: h.abs().square().mean().item(), _gains(model))
    assert abs(mean - kept) < Z * se, (mean, se, kept)
    assert se < 0.03                          # the check has teeth: ±0.14 at most around ≈ 1


# ----------------------------------------------------------------------------- LoS: K-factors
@pytest.mark.parametrize("model", ["cdl-d", "cdl-e"])
def test_los_zero_delay_path_has_the_table_k_factor(model):
    """The tables' K-factor (13.3 dB for CDL-D, 22 dB for CDL-E) is the LoS ray's power over the
    zero-delay cluster's: measured on the first path's coefficient over 4,000 realizations."""
    cdl = GeneratorCDL(model[-1].upper(), 300e-9, 3.5e9, 3 / 3.6)
    a, tau = cdl.draw(4000, 1, 1e6, _gen(2))
    assert float(tau[0, 0, 0, 0]) == 0.0
    k, se = _jackknife(_rician_k, a[:, 0, 0, 0, 0, 0, :].to(torch.complex128))
    k_db, se_db = 10 * math.log10(k), 10 / math.log(10) * se / k
    # ± 0.05 dB: the table's powers are given to 0.1 dB
    assert abs(k_db - TABLE_K_DB[model]) < Z * se_db + 0.05, (k_db, se_db)
    assert se_db < 0.2


@pytest.mark.parametrize("model", ["cdl-d", "cdl-e"])
def test_los_subcarrier_gain_is_rician_with_los_over_all_clusters(model):
    """Per subcarrier the LoS ray adds to *every* cluster (all delays), so its K-factor is
    P_LoS / Σ P_clusters of the table: 9.0 dB (CDL-D), 9.3 dB (CDL-E), not the zero-delay ratio.
    Allowance 0.15 dB: the sinc truncation drops up to 3.4 % of a cluster's power, none of the
    LoS ray's (at delay 0, one tap)."""
    p = 10 ** (np.array(TABLE_POWERS_DB[model]) / 10)
    expected_db = 10 * math.log10(p[0] / p[1:].sum())
    k, se = _jackknife(_rician_k, _gains(model))
    k_db, se_db = 10 * math.log10(k), 10 / math.log(10) * se / k
    assert abs(k_db - expected_db) < Z * se_db + 0.15, (k_db, se_db, expected_db)
    assert se_db < 0.2 and abs(k_db - TABLE_K_DB[model]) > 3


@pytest.mark.parametrize("model", ["cdl-a", "cdl-b", "cdl-c"])
def test_nlos_subcarrier_gain_is_rayleigh(model):
    """NLoS: H is a sum of 20 rays per cluster with independent phases, ≈ CN(0, 1), so |H|² is
    exponential and E|H|⁴/(E|H|²)² = 2 (less Σ_p P_p²/20 ≤ 0.01 for the finite rays)."""
    ratio, se = _jackknife(_second_moment_ratio, _gains(model))
    assert abs(ratio - 2) < Z * se + 0.01, (ratio, se)
    assert se < 0.06                           # far from the LoS profiles' ≈ 1.2


def test_frequency_covariance_of_the_lmmse_estimator_matches_the_channel():
    """The LMMSE estimator's R_f (from the CDL's power-delay profile) is the channel's
    E[H_u H_{u+d}^*], measured over realizations, at lags d = 1 … 48 subcarriers (CDL-C 300 ns:
    |R_f| falls from 1 to 0.61 at 48 subcarriers, 1.44 MHz)."""
    ch = _single_symbol_link("cdl-c")
    h = _gains("cdl-c")
    theory = cdl_freq_cov_mat(ch.blocks().taps.paths, ch.config.subcarrier_spacing_hz, 64)[0]
    for d in (1, 4, 16, 32, 48):
        per_grid = (h[:, :-d] * h[:, d:].conj()).mean(dim=1)       # independent across grids
        se = math.sqrt((per_grid.real.var() + per_grid.imag.var()).item() / GRIDS)
        # + 0.02: the sinc truncation (≤ 1.3 % of the power here) is not in R_f
        assert abs(per_grid.mean().item() - theory[d].item()) < Z * se + 0.02, (d, per_grid.mean(), theory[d])
    assert abs(theory[48]) < 0.7


def test_lmmse_estimation_over_cdl_beats_ls():
    """With the CDL's covariances the LMMSE estimate has a smaller MSE than LS + linear
    interpolation on the same pilots and draws; a wrong covariance would not buy this."""
    mse = {}
    for csi in ("ls", "lmmse"):
        cfg = OFDMConfig.from_spec({"model": "cdl-c", "fft_size": 64, "cp_length": 14, "csi": csi, "equalizer": "zf"})
        x = normalize_power(torch.randn(1, 20 * cfg.data_res_per_grid, dtype=torch.complex64, generator=_gen(6)))
        t = OFDMChannel(cfg).transmit(x, 5.0, _gen(7))
        mse[csi] = (t.h_hat - t.h_true).abs().square().mean().item()
    assert mse["lmmse"] < 0.5 * mse["ls"], mse


# ----------------------------------------------------------------------------- BER
def _ber_per_grid(model: str, snr_db: float) -> torch.Tensor:
    # 300 ns: ≈ 6 coherence bandwidths per grid keep the per-grid BER's spread small; cp 24 ≥ l_tot − 1
    cfg = OFDMConfig.from_spec({"model": model, "delay_spread_ns": 300.0, "fft_size": 64, "cp_length": 24,
                                "num_ofdm_symbols": 4,
                                "pilots": {"pattern": "none"}, "csi": "perfect", "equalizer": "zf"})
    grids = 400
    bits = torch.randint(0, 2, (1, grids * cfg.data_res_per_grid), generator=_gen(2))
    x = (1 - 2 * bits).to(torch.complex64)
    t = OFDMChannel(cfg).transmit(x, snr_db, _gen(3))
    return ((t.x_hat.real > 0) != (x.real > 0)).double().reshape(grids, -1).mean(dim=1)


def test_bpsk_ber_over_cdl_a_is_rayleigh_and_below_it_over_cdl_d():
    """Perfect CSI + ZF: per RE, BPSK over CDL-A (NLoS) has the Rayleigh BER ½(1 − √(γ/(1+γ)))
    within the 99 % confidence interval of the per-grid BERs (grids are independent); over
    CDL-D the LoS ray (K ≈ 9 dB per subcarrier) leaves far fewer errors."""
    snr_db = 10.0
    theory = _rayleigh_ber(10 ** (snr_db / 10))
    a = _ber_per_grid("cdl-a", snr_db)
    mean, half = a.mean().item(), Z99 * a.std().item() / math.sqrt(len(a))
    assert mean - half <= theory <= mean + half, (mean, half, theory)
    assert half < 0.25 * theory
    d = _ber_per_grid("cdl-d", snr_db)
    assert d.mean().item() + Z99 * d.std().item() / math.sqrt(len(d)) < theory / 3, (d.mean(), theory)


# ----------------------------------------------------------------------------- reproducibility, config
def test_same_generator_same_bytes_and_no_global_rng_is_used():
    """Velocities, ray coupling and ray phases all come from the caller's generator: other global
    seeds and a fresh channel object give the same bytes, and Sionna's and PyTorch's global
    generators are left untouched (nothing is drawn from them)."""
    spec = {"type": "ofdm", "model": "cdl-e", "fft_size": 64, "cp_length": 16, "csi": "lmmse", "speed_kmh": 60}
    x = normalize_power(torch.randn(2, 1500, dtype=torch.complex64, generator=_gen(10)))
    sionna_config.seed = 1
    a = make_channel(spec)(x, 5.0, _gen(11))
    sionna_config.seed = 2
    torch.manual_seed(123)
    states = sionna_config.torch_rng("cpu").get_state(), torch.get_rng_state()
    b = make_channel(spec)(x, 5.0, _gen(11))
    assert torch.equal(sionna_config.torch_rng("cpu").get_state(), states[0])
    assert torch.equal(torch.get_rng_state(), states[1])
    assert torch.equal(a.y, b.y) and torch.equal(a.h, b.h)
    assert not torch.equal(a.y, make_channel(spec)(x, 5.0, _gen(12)).y)


def test_unknown_model_is_refused_with_the_allowed_ones():
    with pytest.raises(ConfigError) as err:
        make_channel({"type": "ofdm", "model": "cdl-f"})
    assert err.value.field == "channel.model" and "cdl-f" in str(err.value)
    assert all(f"cdl-{x}" in str(err.value) for x in "abcde") and "tdl-a" in str(err.value)


def test_cdl_max_delay_sets_the_isi_free_cyclic_prefix():
    """l_tot comes from the CDL's longest delay: CDL-E at 300 ns reaches 6.19 µs (20.64 × 300 ns,
    Table 7.7.1-5), 11.9 samples at 1.92 MHz, so L_max = 12 + 6, L_min = −6, 25 taps."""
    taps = _single_symbol_link("cdl-e").blocks().taps
    assert taps.paths.max_delay == pytest.approx(20.6419 * 300e-9, rel=1e-4)
    assert (taps.l_min, taps.l_max, taps.isi_free_cp) == (-6, 18, 24)


# ----------------------------------------------------------------------------- a scenario
def test_scenario_over_cdl_c_with_ls_csi_is_reproducible_and_sane(tmp_path, photo):
    """Linear code and per-RE capacity over CDL-C with LS CSI, end to end through the CLI: same
    seed → same bytes; the per-RE capacity stays below the AWGN bound log2(1 + SNR) per RE
    (Jensen) and grows with the SNR as the fading channel's does."""
    folder = tmp_path / "imgs"
    folder.mkdir()
    Image.fromarray(photo).save(folder / "astro.png")
    channel = {"type": "ofdm", "model": "cdl-c", "fft_size": 64, "cp_length": 14, "csi": "ls"}
    path = _scenario(tmp_path, folder, channel)  # linear code + BPG/capacity at 0 and 8 dB, as for TDL
    assert main(["run", str(path), "--out", str(tmp_path / "a"), "--quiet"]) == 0
    assert main(["run", str(path), "--out", str(tmp_path / "b"), "--quiet"]) == 0
    assert (tmp_path / "a" / "results.csv").read_bytes() == (tmp_path / "b" / "results.csv").read_bytes()
    rows = read_results(tmp_path / "a" / "results.csv")
    assert {r["channel"] for r in rows} == {"ofdm-cdl-c"} and {r["csi"] for r in rows} == {"ls"}
    assert {r["scheme"] for r in rows} == {"Linear", "BPG + capacity"} and len(rows) == 4
    bits = {}
    for r in rows:
        if r["scheme"] == "BPG + capacity":
            k, snr = int(r["k"]), float(r["snr_db"])
            bits[snr] = float(r["budget_bits"]) / k
            assert 0 < bits[snr] < math.log2(1 + 10 ** (snr / 10))
    # ergodic Rayleigh capacity: 0.86 bit/RE at 0 dB, 2.40 at 8 dB; two slots cannot bridge that
    assert bits[8.0] > bits[0.0] + 0.7
