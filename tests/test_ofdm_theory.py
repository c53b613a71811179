"""The OFDM channel against theory: unitary modulation, Rayleigh BER per RE, LS error variance,
LMMSE vs LS, the cyclic prefix and inter-symbol interference, seeding."""

import math

import pytest
import torch
from sionna.phy import config as sionna_config

from linksim.channel import OFDMChannel, OFDMConfig, equalize, make_channel
from linksim.units import normalize_power

Z = 4.5          # tolerance in standard errors for checks on i.i.d. samples (two-sided p ~ 7e-6)
Z99 = 2.576      # the 99 % confidence interval


def _gen(seed):
    return torch.Generator().manual_seed(seed)


def _qpsk(n, seed):
    bits = torch.randint(0, 2, (2, 1, n), generator=_gen(seed))
    return ((1 - 2 * bits[0]) + 1j * (1 - 2 * bits[1])).to(torch.complex64) / math.sqrt(2)


def _small(**changes) -> OFDMConfig:
    """A 64-subcarrier link (1.92 MHz): TDL-A 100 ns spans taps −6…8, so cp 14 is ISI-free."""
    base = dict(fft_size=64, cp_length=14, num_ofdm_symbols=14, csi="perfect", equalizer="zf")
    return OFDMConfig.from_spec({**base, **changes})


# ----------------------------------------------------------------------------- unit flat channel
@pytest.mark.parametrize("equalizer", ["zf", "lmmse"])
def test_flat_unit_channel_is_awgn_per_data_re(equalizer):
    """OFDM is unitary: on h = 1 with perfect CSI, ẑ − z ~ CN(0, σ²) per data RE and the
    reported post-equalization variance is σ², as on the AWGN channel at the same SNR."""
    snr_db, sigma2 = 3.0, 10 ** (-3.0 / 10)
    ch = OFDMChannel(_small(model="flat", equalizer=equalizer))
    x = normalize_power(torch.randn(2, 20_000, dtype=torch.complex64, generator=_gen(0)))
    t = ch.transmit(x, snr_db, _gen(1))
    e = (t.x_hat - x).to(torch.complex128)
    n = e.numel()
    assert abs(e.abs().square().mean().item() / sigma2 - 1) < Z / math.sqrt(n)
    # circular: real and imaginary parts each carry σ²/2 and are uncorrelated
    assert abs(e.real.square().mean().item() / (sigma2 / 2) - 1) < Z * math.sqrt(2 / n)
    assert abs((e.real * e.imag).mean().item()) / (sigma2 / 2) < Z / math.sqrt(n)
    assert torch.allclose(t.no_eff, torch.full_like(t.no_eff, sigma2), rtol=1e-4)
    x_hat, nv = equalize(ch(x, snr_db, _gen(1)))       # what every scheme's receiver sees
    assert torch.allclose(x_hat, t.x_hat, atol=1e-5) and torch.allclose(nv, t.no_eff, rtol=1e-5)


# ----------------------------------------------------------------------------- Rayleigh BER per RE
def _rayleigh_ber(snr_per_bit: float) -> float:
    """BER of antipodal signalling over a CN(0, 1) gain with coherent detection."""
    return 0.5 * (1 - math.sqrt(snr_per_bit / (1 + snr_per_bit)))


@pytest.mark.parametrize("modulation, snr_db", [("bpsk", 10.0), ("qpsk", 10.0), ("qpsk", 0.0)])
def test_ber_per_re_over_tdl_matches_rayleigh(modulation, snr_db):
    """Each subcarrier of a TDL (NLOS) channel sees a complex Gaussian gain of unit power:
    with perfect CSI and ZF, the BER per RE is the Rayleigh closed form. The 99 % confidence
    interval is built from per-grid BERs (the grids are independent; REs within a grid are not)."""
    cfg = _small(model="tdl-a", num_ofdm_symbols=4, pilots={"pattern": "none"})
    ch = OFDMChannel(cfg)
    grids = 400
    n = grids * cfg.data_res_per_grid
    if modulation == "bpsk":
        bits = torch.randint(0, 2, (1, n), generator=_gen(2))
        x = (1 - 2 * bits).to(torch.complex64)
    else:
        x = _qpsk(n, 2)
    t = ch.transmit(x, snr_db, _gen(3))
    if modulation == "bpsk":
        errors = ((t.x_hat.real > 0) != (x.real > 0)).float()
        snr_bit = 10 ** (snr_db / 10)
    else:
        errors = 0.5 * (((t.x_hat.real > 0) != (x.real > 0)).float() + ((t.x_hat.imag > 0) != (x.imag > 0)).float())
        snr_bit = 10 ** (snr_db / 10) / 2
    per_grid = errors.reshape(grids, -1).mean(dim=1).double()
    mean, half = per_grid.mean().item(), Z99 * per_grid.std().item() / math.sqrt(grids)
    theory = _rayleigh_ber(snr_bit)
    assert mean - half <= theory <= mean + half, (mean, half, theory)


# ----------------------------------------------------------------------------- estimation
@pytest.mark.parametrize("snr_db", [0.0, 10.0])
def test_ls_error_variance_at_pilots_is_noise_over_pilot_power(snr_db):
    """LS at a pilot: ĥ = y/p = h + w/p, so E|ĥ − h|² = σ²/|p|² (= σ², unit-power QPSK pilots)."""
    sigma2 = 10 ** (-snr_db / 10)
    cfg = _small(model="tdl-a", speed_kmh=0.0, csi="ls", interpolation="nn")
    ch = OFDMChannel(cfg)
    x = normalize_power(torch.randn(1, 40 * cfg.data_res_per_grid, dtype=torch.complex64, generator=_gen(4)))
    t = ch.transmit(x, snr_db, _gen(5))
    pilots = cfg.pilot_symbols
    err = (t.h_hat - t.h_true)[..., pilots, :].to(torch.complex128)
    n = err.numel()
    assert abs(err.abs().square().mean().item() / sigma2 - 1) < Z / math.sqrt(n)
    # the estimator reports the same variance at its pilots
    reported = t.err_var.broadcast_to(t.h_hat.shape)[..., pilots, :]
    assert torch.allclose(reported, torch.full_like(reported, sigma2), rtol=1e-4)


@pytest.mark.parametrize("snr_db", [0.0, 10.0])
def test_lmmse_estimator_beats_ls(snr_db):
    """With the channel's statistics, LMMSE filtering has a smaller MSE over the whole grid than
    LS with linear interpolation (same pilots, same draws)."""
    mse = {}
    for csi in ("ls", "lmmse"):
        cfg = _small(model="tdl-a", csi=csi)
        x = normalize_power(torch.randn(1, 30 * cfg.data_res_per_grid, dtype=torch.complex64, generator=_gen(6)))
        t = OFDMChannel(cfg).transmit(x, snr_db, _gen(7))
        mse[csi] = (t.h_hat - t.h_true).abs().square().mean().item()
    assert mse["lmmse"] < 0.8 * mse["ls"], mse


# ----------------------------------------------------------------------------- cyclic prefix
def _residual_power(cp_length: int, snr_db: float = 40.0) -> float:
    """Mean power of y − H·x on the received grids (noise + ISI), at a static TDL-C 300 ns channel."""
    cfg = _small(model="tdl-c", delay_spread_ns=300.0, speed_kmh=0.0, cp_length=cp_length)
    ch = OFDMChannel(cfg)
    x = normalize_power(torch.randn(1, 30 * cfg.data_res_per_grid, dtype=torch.complex64, generator=_gen(8)))
    t = ch.transmit(x, snr_db, _gen(9))
    residual = t.y[:, 0, 0] - t.h_true[:, 0, 0, 0, 0] * t.grid[:, 0, 0]
    return residual.abs().square().mean().item()


def test_cyclic_prefix_longer_than_the_channel_leaves_no_isi():
    ch = OFDMChannel(_small(model="tdl-c", delay_spread_ns=300.0, speed_kmh=0.0))
    taps = ch.blocks().taps
    assert taps.l_tot - 1 < 64
    # the CP covers the whole discrete-time channel: only the noise σ² is left (≈ 8e4 samples)
    assert abs(_residual_power(taps.l_tot - 1) / 1e-4 - 1) < 0.05


def test_cyclic_prefix_shorter_than_the_delay_spread_gives_an_isi_floor():
    # TDL-C 300 ns: paths up to 2.6 µs, i.e. 5 samples at 1.92 MHz (plus the sinc tails); no CP
    at_40, at_60 = _residual_power(0, 40.0), _residual_power(0, 60.0)
    assert at_40 > 30 * 1e-4            # the interference dominates the noise by > 15 dB at 40 dB
    assert at_60 > 0.9 * at_40          # and 20 dB more SNR does not lower it: an error floor


# ----------------------------------------------------------------------------- seeding
def test_same_generator_same_bytes_and_sionna_global_seed_is_irrelevant():
    ch = make_channel({"type": "ofdm", "fft_size": 64, "cp_length": 14, "csi": "ls"})
    x = normalize_power(torch.randn(2, 2000, dtype=torch.complex64, generator=_gen(10)))
    sionna_config.seed = 1
    a = ch(x, 5.0, _gen(11))
    sionna_config.seed = 2
    torch.manual_seed(123)
    b = OFDMChannel(ch.config)(x, 5.0, _gen(11))      # a fresh channel object, other global seeds
    assert torch.equal(a.y, b.y) and torch.equal(a.h, b.h)
    c = ch(x, 5.0, _gen(12))
    assert not torch.equal(a.y, c.y)


def test_gradients_flow_through_the_ofdm_channel():
    ch = OFDMChannel(_small(model="tdl-a", csi="ls"))
    x = normalize_power(torch.randn(1, 500, dtype=torch.complex64, generator=_gen(13))).requires_grad_()
    out = ch(x, 10.0, _gen(14))
    out.y.abs().square().sum().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0


def test_data_re_gains_follow_the_mapper_order():
    """With perfect CSI and ZF the post-equalization variance of a data RE is σ²/|H|² of that RE:
    the gains picked for the per-RE capacity are those of the REs the symbols were mapped to."""
    cfg = _small(model="tdl-a", guard_carriers=[2, 1], dc_null=True)
    ch = OFDMChannel(cfg)
    x = normalize_power(torch.randn(2, 1000, dtype=torch.complex64, generator=_gen(15)))
    t = ch.transmit(x, 10.0, _gen(16))
    h2 = ch.data_re_gains(t.h_true, x.shape).abs().square()
    assert torch.allclose(t.no_eff, 0.1 / h2, rtol=1e-3)
