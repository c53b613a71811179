"""The linear analog scheme against its theory: Lee–Petersen's optimum, the LMMSE error in
closed form, the power constraint, and the scenario entry.

For a coefficient X sent as r = a·g·X + noise (noise variance n per real dimension, a = |h|
the fading amplitude, 1 on AWGN) and estimated as w·r with w = a g λ/(a²g²λ + n), the error
over the noise is (1 − w a g)²X² + w² n. Summed over the blocks with λ the image's own
second moment (``variances: image``) this is N·λ n/(a² p + n) per coefficient on AWGN
(p = g²λ): the classic formula, derived here independently of the code under test.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from linksim.channel import make_channel
from linksim.errors import ConfigError
from linksim.jscc.linear import (
    DEFAULT_BASIS,
    LinearAnalogCode,
    LinearScheme,
    from_blocks,
    lee_petersen_powers,
    load_linear_basis,
    to_blocks,
)
from linksim.link import Bandwidth
from linksim.scenario import parse_scenario

F64 = torch.float64


@pytest.fixture(scope="module")
def basis():
    return load_linear_basis(DEFAULT_BASIS)


@pytest.fixture(scope="module")
def photo():
    """A bundled photograph (scikit-image's astronaut), 96×128 crop: [1, 3, 96, 128] in [0, 1]."""
    from skimage import data

    pixels = data.astronaut()[100:196, 150:278]
    return torch.from_numpy(pixels.copy()).permute(2, 0, 1)[None].double() / 255


def bisection_powers(lam: np.ndarray, noise: float, total: float) -> np.ndarray:
    """The textbook water-filling-like solution by bisection on the multiplier (reference)."""
    lo, hi = -80.0, 80.0
    for _ in range(300):
        mid = (lo + hi) / 2
        p = np.maximum(0.0, np.sqrt(lam * noise / np.exp(mid)) - noise)
        lo, hi = (mid, hi) if p.sum() > total else (lo, mid)
    return p


@pytest.mark.parametrize("snr_db", [-10.0, 0.0, 10.0, 30.0])
def test_lee_petersen_powers_meet_the_kkt_conditions(snr_db):
    rng = np.random.default_rng(3)
    lam = np.sort(rng.gamma(0.5, 2.0, size=40))[::-1] * np.logspace(0, -4, 40)
    noise, total = 0.5 * 10 ** (-snr_db / 10), 20.0
    p = lee_petersen_powers(torch.tensor(lam), noise, total).numpy()
    assert p.min() >= 0 and p.sum() == pytest.approx(total, rel=1e-12)
    # KKT: λ n/(p + n)² is the same multiplier ν on the active set, and λ/n ≤ ν off it
    active = p > 0
    marginal = lam * noise / (p + noise) ** 2
    nu = marginal[active].mean()
    assert np.allclose(marginal[active], nu, rtol=1e-9)
    assert np.all(lam[~active] / noise <= nu * (1 + 1e-9))
    np.testing.assert_allclose(p, bisection_powers(lam, noise, total), atol=1e-9 * total)
    if snr_db <= 0:
        assert not active.all()  # at low SNR the weakest coefficients get nothing


def test_lee_petersen_equal_variances_share_equally_and_batches_agree():
    p = lee_petersen_powers(torch.ones(2, 8), torch.tensor([0.1, 1.0]), torch.tensor([4.0, 8.0]))
    torch.testing.assert_close(p, torch.tensor([[0.5] * 8, [1.0] * 8], dtype=F64), rtol=1e-12, atol=0)


def test_blocks_round_trip_and_the_shipped_basis_is_orthonormal(basis):
    x = torch.rand(2, 3, 32, 48, generator=torch.Generator().manual_seed(0), dtype=F64)
    b = to_blocks(x)
    assert b.shape == (2, 6, 768)
    torch.testing.assert_close(b[0, 1].reshape(3, 16, 16), x[0, :, :16, 16:32])  # raster order, channel-major
    torch.testing.assert_close(from_blocks(b, 32, 48), x)
    q = basis.components.double()
    # stored in float32: orthonormal to float32 rounding of a 768-term dot product (~768·2⁻²⁴ ≪ 1e-4)
    torch.testing.assert_close(q @ q.T, torch.eye(768, dtype=F64), rtol=0, atol=1e-4)
    assert bool((basis.variances[:-1] >= basis.variances[1:]).all())
    with pytest.raises(ConfigError, match="multiples of 16"):
        to_blocks(torch.zeros(1, 3, 20, 32))


def test_noiseless_with_every_coefficient_returns_the_image(basis, photo):
    code = LinearAnalogCode(basis)
    k = 3 * 96 * 128 // 2  # 768 real values per block: the whole transform
    z, side = code.encode(photo, 200.0, k)
    assert side["keep"].shape[1] == 768
    out = make_channel("awgn")(z, 200.0, torch.Generator().manual_seed(0))
    x_hat = code.decode(out.y, out.h, out.noise_var, side, clip=False)
    # float32 basis and channel: an error of order 1e-5 per pixel, far below one grey level (1/255)
    assert float((x_hat - photo).abs().max()) < 1e-3


@pytest.mark.parametrize("mode", ["image", "prior"])
def test_power_is_exactly_k_used_times_p(basis, photo, mode):
    code = LinearAnalogCode(basis, mode)
    for k in (96 * 128 // 16, 96 * 128 // 16 + 7, 96 * 128 // 64):
        z, side = code.encode(photo.repeat(2, 1, 1, 1) * torch.tensor([1.0, 0.5]).view(2, 1, 1, 1), 5.0, k)
        c = side["keep"].shape[1]
        assert z.shape[1] == math.ceil(c * 48 / 2) <= k
        torch.testing.assert_close(z.abs().square().sum(1), torch.full((2,), float(z.shape[1]), dtype=F64), rtol=1e-10, atol=0)


def test_expected_mse_is_the_classic_formula_on_awgn(basis, photo):
    """variances: image → E MSE = [Σ_kept N λ n/(p + n) + dropped energy] / (N·768)."""
    code = LinearAnalogCode(basis, "image")
    z, side = code.encode(photo, 3.0, 96 * 128 // 16)
    lam, p, n = side["lam"][0], side["gain"][0].square() * side["lam"][0], float(side["noise"][0])
    coefficients = basis.analyze(to_blocks(photo))
    n_blocks = coefficients.shape[1]
    dropped = float(coefficients.square().sum()) - n_blocks * float(lam.sum())
    classic = (n_blocks * float((lam * n / (p + n)).sum()) + dropped) / (n_blocks * 768)
    assert float(code.expected_mse(photo, side)[0]) == pytest.approx(classic, rel=1e-9)


@pytest.mark.parametrize("channel, mode", [("awgn", "image"), ("awgn", "prior"), ("rayleigh-fast", "image"),
                                           ("rayleigh-block", "prior")])
def test_simulated_mse_matches_the_closed_form(basis, photo, channel, mode):
    """Mean over 200 noise (and fading) draws of the unclipped MSE vs the closed form given each
    draw's channel: equal within 4 standard errors of the Monte-Carlo mean."""
    code = LinearAnalogCode(basis, mode)
    ch = make_channel(channel)
    k = 96 * 128 // 16
    gaps = []
    for trial in range(200):
        z, side = code.encode(photo, 2.0, k)
        out = ch(z.to(torch.complex64), 2.0, torch.Generator().manual_seed(trial))
        x_hat = code.decode(out.y, out.h, out.noise_var, side, clip=False)
        simulated = float((x_hat - photo).square().mean())
        expected = float(code.expected_mse(photo, side, None if channel == "awgn" else out.h)[0])
        gaps.append(simulated - expected)
    gaps = np.array(gaps)
    standard_error = gaps.std(ddof=1) / math.sqrt(len(gaps))
    assert abs(gaps.mean()) < 4 * standard_error, (gaps.mean(), standard_error)
    assert standard_error > 0


def test_quality_rises_smoothly_with_the_snr(basis, photo):
    """The expected PSNR (closed form, checked against the simulation above) rises with the SNR
    by < 1.5 dB per dB, and the scheme reports an analog link (no bits, never lost)."""
    scheme = LinearScheme("linear", Bandwidth(bcr=1 / 48))
    psnr = []
    for snr in range(-5, 16):
        _, side = scheme.code.encode(photo, float(snr), 96 * 128 // 16)
        psnr.append(-10 * math.log10(float(scheme.code.expected_mse(photo, side)[0])))
    steps = np.diff(psnr)
    assert steps.min() > 0 and steps.max() < 1.5 and psnr[-1] - psnr[0] > 5
    out = scheme.run(photo.float(), 5.0, make_channel("awgn"), torch.Generator().manual_seed(0))
    assert out.k == 96 * 128 // 16 and bool(out.decoded.all()) and int(out.bits.sum()) == 0
    assert out.extras["channel_uses_used"] == [96 * 128 // 16] and out.x_hat.dtype == torch.float32


def test_scenario_entry_and_its_errors():
    base = {"images": "samples", "snr_db": [0], "bandwidth": {"bcr": "1/48"}, "metrics": ["psnr"]}
    scenario = parse_scenario({**base, "schemes": [{"name": "Linear", "type": "linear"}]})
    assert scenario.schemes == [{"name": "Linear", "type": "linear", "basis": DEFAULT_BASIS, "variances": "image"}]
    assert "Linear" in scenario.fingerprint()["checkpoints"]
    with pytest.raises(ConfigError, match=r"schemes\[0\]\.variances.*'image', 'prior'"):
        parse_scenario({**base, "schemes": [{"type": "linear", "variances": "oracle"}]})
    with pytest.raises(ConfigError, match=r"schemes\[0\]\.basis.*linear-pca16-natural"):
        parse_scenario({**base, "schemes": [{"type": "linear", "basis": "no-such-basis"}]})
    with pytest.raises(ConfigError, match=r"schemes\[0\].*codec"):
        parse_scenario({**base, "schemes": [{"type": "linear", "codec": "bpg"}]})
    with pytest.raises(ConfigError, match=r"basis.*linear-basis checkpoint"):
        load_linear_basis("deepjscc-awgn-r1_48")
