"""Uncoded BER of BPSK/QPSK/16-QAM through Sionna's mapper + linksim channels vs. closed forms.

SNR = 1/sigma^2 per complex use (docs/ARCHITECTURE.md §2), unit-energy constellations, complex noise
CN(0, sigma^2) (sigma^2/2 per real dimension), hard decisions from the APP LLR sign.
Every point must fall inside the 99 % binomial confidence interval (normal approximation)
of the closed form.
"""

import math

import numpy as np
import pytest
import torch
from scipy.integrate import quad
from scipy.optimize import brentq
from scipy.special import erfc

from linksim.channel import equalize, make_channel
from linksim.digital.modulation import Demapper, Mapper, Modulation, make_modulation
from linksim.errors import ConfigError

N_BITS = 400_000
Z99 = 2.576
RESULTS = []  # (case, snr_db, measured, theory, half-width), printed with `pytest -s`


def Q(x):
    return 0.5 * erfc(x / math.sqrt(2))


def lin(snr_db):
    return 10 ** (snr_db / 10)


# ---- closed forms (SNR = Es/N0 per complex symbol, Es = 1) -----------------
def pb_bpsk_awgn(snr_db):
    return Q(math.sqrt(2 * lin(snr_db)))  # real +-1, real noise var sigma^2/2


def pb_qpsk_awgn(snr_db):
    return Q(math.sqrt(lin(snr_db)))  # +-1/sqrt2 per axis, noise sigma^2/2 per axis


def pb_16qam_awgn(snr_db):
    # Exact Gray 16-QAM (Cho & Yoon 2002): per axis Gray 4-PAM with d = 1/sqrt(10)
    # MSB: (Q(x)+Q(3x))/2, LSB: (2Q(x)+Q(3x)-Q(5x))/2, x = d/sqrt(sigma^2/2) = sqrt(SNR/5)
    x = math.sqrt(lin(snr_db) / 5)
    return 0.25 * (3 * Q(x) + 2 * Q(3 * x) - Q(5 * x))


def pb_bpsk_rayleigh(snr_db):
    g = lin(snr_db)
    return 0.5 * (1 - math.sqrt(g / (1 + g)))


def pb_qpsk_rayleigh(snr_db):
    g = lin(snr_db) / 2
    return 0.5 * (1 - math.sqrt(g / (1 + g)))


def _q16_lsb_threshold(snr):
    """Bit-wise MAP threshold tau of the Gray 4-PAM LSB (outer points: |y| > tau -> LSB = 1).

    Root of ln(e^{-(t-3d)^2/s2} + e^{-(t+3d)^2/s2}) = ln(e^{-(t-d)^2/s2} + e^{-(t+d)^2/s2}), s2 = 1/SNR;
    tau > 2d and tau -> 2d (the minimum-distance threshold) as SNR grows.
    """
    d, s2 = 1 / math.sqrt(10), 1 / snr

    def f(t):
        return np.logaddexp(-((t - 3 * d) ** 2) / s2, -((t + 3 * d) ** 2) / s2) - np.logaddexp(
            -((t - d) ** 2) / s2, -((t + d) ** 2) / s2
        )

    if f(2 * d) >= 0:  # high SNR: the difference underflows, tau == 2d to double precision
        return 2 * d
    return brentq(f, 2 * d, 3 * d + 50 * math.sqrt(s2) + 10 * d, xtol=1e-14)


def pb_16qam_app_lin(snr):
    """Exact BER of Gray 16-QAM with bit-wise MAP decisions (sign of the APP LLR), linear SNR.

    Per axis Gray 4-PAM {-3,-1,1,3}d, d = 1/sqrt(10), noise std s = sqrt(1/(2 SNR)).
    MSB threshold 0: (Q(d/s) + Q(3d/s))/2. LSB threshold +-tau (see _q16_lsb_threshold):
    inner points err with P(|y| > tau), outer with P(|y| < tau).
    With tau = 2d this is exactly Cho & Yoon's closed form (pb_16qam_awgn).
    """
    d, s = 1 / math.sqrt(10), math.sqrt(1 / (2 * snr))
    tau = _q16_lsb_threshold(snr)
    msb = 0.5 * (Q(d / s) + Q(3 * d / s))
    lsb = 0.5 * (Q((tau - d) / s) + Q((tau + d) / s) + Q((3 * d - tau) / s) - Q((3 * d + tau) / s))
    return 0.5 * (msb + lsb)


def pb_16qam_app_awgn(snr_db):
    return pb_16qam_app_lin(lin(snr_db))


def pb_16qam_rayleigh(snr_db):
    """Cho & Yoon averaged over |h|^2 ~ Exp(1) (minimum-distance / max-log decisions), closed form.

    E[Q(c sqrt(|h|^2 SNR / 5))] = (1 - sqrt(b / (1 + b))) / 2 with b = c^2 SNR / 10.
    """

    def f(c):
        b = c * c * lin(snr_db) / 10
        return 0.5 * (1 - math.sqrt(b / (1 + b)))

    return 0.25 * (3 * f(1) + 2 * f(3) - f(5))


def pb_16qam_app_rayleigh(snr_db):
    """Bit-wise MAP 16-QAM BER averaged over |h|^2 ~ Exp(1) (numerical integration)."""
    g = lin(snr_db)
    return quad(lambda t: pb_16qam_app_lin(g * t) * math.exp(-t), 0, np.inf, epsabs=1e-12, epsrel=1e-9, limit=200)[0]


# (name, modulation, channel, SNRs in dB, theory for the APP-sign decision, theory for the max-log-sign decision)
CASES = [
    ("bpsk-awgn", "bpsk", "awgn", [0.0, 4.0, 7.0], pb_bpsk_awgn, pb_bpsk_awgn),
    ("qpsk-awgn", "qpsk", "awgn", [3.0, 7.0, 10.0], pb_qpsk_awgn, pb_qpsk_awgn),
    ("16qam-awgn", "16qam", "awgn", [0.0, 6.0, 10.0, 14.0], pb_16qam_app_awgn, pb_16qam_awgn),
    ("bpsk-rayleigh-fast", "bpsk", "rayleigh-fast", [0.0, 10.0, 20.0], pb_bpsk_rayleigh, pb_bpsk_rayleigh),
    ("qpsk-rayleigh-fast", "qpsk", "rayleigh-fast", [3.0, 13.0, 23.0], pb_qpsk_rayleigh, pb_qpsk_rayleigh),
    ("16qam-rayleigh-fast", "16qam", "rayleigh-fast", [10.0, 20.0, 30.0], pb_16qam_app_rayleigh, pb_16qam_rayleigh),
]


def _simulate(mod_name, channel, snr_db, n_bits, seed):
    mod = make_modulation(mod_name)
    g = torch.Generator().manual_seed(seed)
    b = 8
    bits = torch.randint(0, 2, (b, n_bits // b), generator=g).float()
    x = mod.map(bits)
    out = make_channel(channel)(x, snr_db, g)
    x_hat, nv = equalize(out)
    llr = mod.demap(x_hat, nv)
    return bits, llr, out


def _check(name, rule, snr_db, bits, llr, p, m):
    """|p_hat - p| <= 2.576 sqrt(p(1-p)/N * deff) + 1e-6.

    The m bits of one symbol share its fading coefficient (and for 16-QAM its per-axis noise), so
    they are not independent trials: the binomial variance is inflated by the design effect
    deff = Var(errors per symbol) / (m p(1-p)), estimated from the per-symbol error counts and
    floored at 1 (deff = 1 exactly for BPSK; ~1.1-1.4 for QPSK/16-QAM on fast Rayleigh fading).
    """
    n = bits.numel()
    err = ((llr > 0).float() != bits).double()
    errors = int(err.sum().item())
    p_hat = errors / n
    per_symbol = err.reshape(-1, m).sum(1)
    deff = max(1.0, per_symbol.var().item() / (m * p_hat * (1 - p_hat))) if 0 < p_hat < 1 else 1.0
    half = Z99 * math.sqrt(p * (1 - p) / n * deff) + 1e-6
    RESULTS.append((name, rule, snr_db, p_hat, p, half))
    print(f"{name:20s} {rule:6s} SNR {snr_db:5.1f} dB  BER {p_hat:.4e}  theory {p:.4e}  99% CI +-{half:.1e} (deff {deff:.2f}, {errors} errors / {n} bits)")
    assert p > 5e-4  # the point is informative: >= 200 expected errors
    assert abs(p_hat - p) <= half, f"{name} ({rule}) at {snr_db} dB: BER {p_hat:.4e} vs theory {p:.4e} (+-{half:.1e})"


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_ber_vs_closed_form(case):
    """Hard decisions from the LLR sign: APP (bit-wise MAP) and max-log (nearest point)."""
    name, mod_name, channel, snrs, theory_app, theory_ml = case
    mod = make_modulation(mod_name)
    for i, snr_db in enumerate(snrs):
        bits, llr, out = _simulate(mod_name, channel, snr_db, N_BITS, seed=1000 * i + len(name))
        assert llr.dtype == torch.float32 and llr.shape == bits.shape
        _check(name, "app", snr_db, bits, llr, theory_app(snr_db), mod.bits_per_symbol)
        x_hat, nv = equalize(out)
        llr_ml = mod.demap(x_hat, nv, method="maxlog")
        if mod_name == "16qam":
            _check(name, "maxlog", snr_db, bits, llr_ml, theory_ml(snr_db), mod.bits_per_symbol)
        else:  # BPSK/QPSK: per-axis binary, both rules are the same decision
            # ... up to float32 ties: the two compute the same linear LLR in other ways (≤ 1e-5 apart
            # here; the distance terms are ≲ 1e3, so their rounding is ≲ 1e3·eps ≈ 1e-4), so a sign
            # is compared where |LLR| > 1e-3, i.e. for all but < 0.1 % of the bits
            decided = llr.abs() > 1e-3
            assert float(decided.float().mean()) > 0.999
            assert torch.equal((llr_ml > 0)[decided], (llr > 0)[decided])


def test_theory_sanity():
    """The closed forms agree with each other (and with brute-force integration) where they must."""
    for s in (0.0, 5.0, 10.0):
        # QPSK at SNR = BPSK at SNR - 3.01 dB (same Eb/N0)
        assert pb_qpsk_awgn(s + 10 * math.log10(2)) == pytest.approx(pb_bpsk_awgn(s), rel=1e-12)
        assert pb_qpsk_rayleigh(s + 10 * math.log10(2)) == pytest.approx(pb_bpsk_rayleigh(s), rel=1e-12)
    # 16-QAM high-SNR approximation (3/4) Q(sqrt(SNR/5))
    assert pb_16qam_awgn(20.0) == pytest.approx(0.75 * Q(math.sqrt(lin(20.0) / 5)), rel=1e-3)
    # bit-wise MAP <= minimum distance, equal at high SNR
    assert pb_16qam_app_awgn(0.0) < pb_16qam_awgn(0.0) - 4e-3
    assert pb_16qam_app_awgn(14.0) == pytest.approx(pb_16qam_awgn(14.0), rel=1e-6)
    # Rayleigh closed form == numerical average of the AWGN expression
    for s in (10.0, 20.0):
        num = quad(lambda t: pb_16qam_awgn(s + 10 * math.log10(t)) * math.exp(-t), 0, np.inf, limit=200)[0]
        assert pb_16qam_rayleigh(s) == pytest.approx(num, rel=1e-6)
    # bit-wise MAP BER by brute force: integrate the Gaussian over a fine grid with APP decisions
    for s_db in (0.0, 6.0):
        snr = lin(s_db)
        d, sd = 1 / math.sqrt(10), math.sqrt(1 / (2 * snr))
        pts, msb, lsb = np.array([-3, -1, 1, 3]) * d, np.array([1, 1, 0, 0]), np.array([1, 0, 0, 1])
        y = np.linspace(-3 * d - 10 * sd, 3 * d + 10 * sd, 400_001)
        lik = np.exp(-((y[None] - pts[:, None]) ** 2) / (2 * sd * sd))
        pdf, dy, ber = lik / (math.sqrt(2 * math.pi) * sd), y[1] - y[0], 0.0
        for lab in (msb, lsb):
            dec = (lik[lab == 1].sum(0) > lik[lab == 0].sum(0)).astype(int)
            ber += sum((pdf[i] * (dec != lab[i])).sum() * dy for i in range(4)) / 8
        assert pb_16qam_app_awgn(s_db) == pytest.approx(ber, rel=1e-4)


# ---- constellations ------------------------------------------------------------
@pytest.mark.parametrize("name,m,points", [
    ("bpsk", 1, [1, -1]),
    ("qpsk", 2, np.array([1 + 1j, 1 - 1j, -1 + 1j, -1 - 1j]) / math.sqrt(2)),
])
def test_constellation_points(name, m, points):
    mod = make_modulation(name)
    assert mod.name == name and mod.bits_per_symbol == m
    assert np.allclose(mod.points().numpy(), points, atol=1e-6)


@pytest.mark.parametrize("name", ["bpsk", "qpsk", "16qam"])
def test_unit_energy_and_gray(name):
    mod = make_modulation(name)
    p = mod.points().numpy().astype(np.complex128)
    m = mod.bits_per_symbol
    assert abs(np.mean(np.abs(p) ** 2) - 1) < 1e-6 and abs(np.mean(p)) < 1e-7
    # Gray: nearest neighbours differ in exactly one bit
    d = np.abs(p[:, None] - p[None, :])
    dmin = d[d > 1e-9].min()
    for i in range(len(p)):
        for j in range(len(p)):
            if i != j and abs(d[i, j] - dmin) < 1e-6:
                assert bin(i ^ j).count("1") == 1
    if name == "16qam":
        assert dmin == pytest.approx(2 / math.sqrt(10), rel=1e-6)
    # map: the bit label (MSB first) selects point index
    labels = np.array([[(i >> (m - 1 - t)) & 1 for t in range(m)] for i in range(2 ** m)], dtype=np.float32)
    sym = mod.map(torch.from_numpy(labels.reshape(1, -1)))
    assert sym.dtype == torch.complex64 and sym.shape == (1, 2 ** m)
    assert np.allclose(sym.numpy()[0], p, atol=1e-6)


# ---- LLRs ------------------------------------------------------------------------
def test_bpsk_llr_closed_form():
    """BPSK (bit 0 -> +1): LLR = ln P(1|y)/P(0|y) = -4 Re(y) |h|^2 / sigma^2 after ZF."""
    for channel in ("awgn", "rayleigh-fast"):
        bits, llr, out = _simulate("bpsk", channel, 2.0, 20_000, seed=5)
        h2 = out.h.abs().square()
        y_eq = (out.y * out.h.conj()) / h2
        expected = -4 * y_eq.real * h2 / out.noise_var[:, None]
        # Sionna's demapper vs this float32 formula: a few roundings each (seen ≤ 4e-6); 1e-4 ≈ 800 eps
        assert torch.allclose(llr, expected, rtol=1e-4, atol=1e-4)


def test_qpsk_llr_closed_form():
    bits, llr, out = _simulate("qpsk", "awgn", 5.0, 20_000, seed=6)
    s2 = out.noise_var[:, None]
    # Sionna's demapper vs this float32 formula: a few roundings each (seen ≤ 5e-6); 1e-4 ≈ 800 eps
    assert torch.allclose(llr[:, 0::2], -2 * math.sqrt(2) * out.y.real / s2, rtol=1e-4, atol=1e-4)
    assert torch.allclose(llr[:, 1::2], -2 * math.sqrt(2) * out.y.imag / s2, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("mod_name,channel,snr_db", [("16qam", "awgn", 8.0), ("16qam", "rayleigh-fast", 12.0), ("qpsk", "rayleigh-fast", 5.0)])
def test_llrs_are_calibrated(mod_name, channel, snr_db):
    """True APP LLRs satisfy P(b = 1 | L) = sigmoid(L): check per LLR bin with a 99.9 % CI."""
    bits, llr, _ = _simulate(mod_name, channel, snr_db, 400_000, seed=7)
    b, L = bits.flatten().double(), llr.flatten().double()
    edges = [-6.0, -3.0, -1.5, -0.5, 0.5, 1.5, 3.0, 6.0]
    for lo, hi in zip(edges[:-1], edges[1:]):
        sel = (L >= lo) & (L < hi)
        n = int(sel.sum())
        assert n > 2000
        q = torch.sigmoid(L[sel])
        freq, pred = b[sel].mean().item(), q.mean().item()
        assert abs(freq - pred) <= 3.29 * math.sqrt((q * (1 - q)).mean().item() / n) + 1e-4, (lo, hi, freq, pred)


def test_mapper_and_demapper_blocks_are_the_modulation():
    """The blocks of the separate chain give the Modulation's own numbers (same arithmetic)."""
    bits, llr, out = _simulate("16qam", "rayleigh-fast", 10.0, 4_000, seed=8)
    mod = make_modulation("16qam")
    assert torch.equal(Mapper("16qam")(bits), mod.map(bits)) and torch.equal(Mapper(mod)(bits), mod.map(bits))
    y, noise_var = equalize(out)
    assert torch.equal(Demapper("16qam")(y, noise_var), llr)
    assert torch.equal(Demapper(mod, "maxlog")(y, noise_var), mod.demap(y, noise_var, method="maxlog"))
    assert Mapper("qpsk").bits_per_symbol == Demapper("qpsk").bits_per_symbol == 2
    # BPSK closed form: LLR = -4 Re(y) / sigma^2
    assert torch.equal(Demapper("bpsk")(torch.tensor([[0.5 + 0j, -0.25 + 0j]]), 1.0), torch.tensor([[-2.0, 1.0]]))
    with pytest.raises(ConfigError) as e:
        Demapper("16qam", method="log-map")
    assert e.value.field == "method"
    with pytest.raises(ConfigError) as e:
        Mapper("8psk")
    assert e.value.field == "modulation"


# ---- bad input -------------------------------------------------------------------
def test_bad_inputs():
    for bad in ("8psk", "64qam", "", 4):
        with pytest.raises(ConfigError) as e:
            make_modulation(bad)
        assert e.value.field == "modulation"
    with pytest.raises(ConfigError) as e:
        Modulation("QAM")
    assert e.value.field == "modulation"
    assert make_modulation("16-QAM").name == "16qam"
    mod = make_modulation("16qam")
    for bad in (torch.zeros(2, 6), torch.zeros(8), torch.full((1, 4), 2.0), torch.zeros(1, 4, dtype=torch.complex64)):
        with pytest.raises(ConfigError) as e:
            mod.map(bad)
        assert e.value.field == "bits"
    y = mod.map(torch.zeros(2, 8))
    with pytest.raises(ConfigError) as e:
        mod.demap(y, 0.1, method="log-map")
    assert e.value.field == "method"
    with pytest.raises(ConfigError) as e:
        mod.demap(y.real, 0.1)
    assert e.value.field == "y"
    for bad_nv in (torch.full((2,), 0.1), torch.full((3, 1), 0.1), -0.1, 0.0, float("nan"), "0.1", torch.tensor([[0.1], [-1.0]])):
        with pytest.raises(ConfigError) as e:
            mod.demap(y, bad_nv)
        assert e.value.field == "noise_var"
    # accepted shapes
    for nv in (0.1, torch.tensor(0.1), torch.full((2, 1), 0.1), torch.full((2, 2), 0.1)):
        assert mod.demap(y, nv).shape == (2, 8)
