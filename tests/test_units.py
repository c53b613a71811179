"""linksim.units against hand-computed values (docs/ARCHITECTURE.md §2)."""

import math

import numpy as np
import pytest
import torch

from linksim import units
from linksim.errors import ConfigError


def test_db_linear_hand_values():
    assert units.db_to_linear(0.0) == pytest.approx(1.0)
    assert units.db_to_linear(10.0) == pytest.approx(10.0)
    assert units.db_to_linear(3.0) == pytest.approx(1.9952623, rel=1e-7)
    assert units.db_to_linear(-20.0) == pytest.approx(0.01)
    assert units.linear_to_db(100.0) == pytest.approx(20.0)
    assert units.linear_to_db(0.5) == pytest.approx(-3.0103, abs=1e-4)
    t = torch.tensor([0.0, 10.0, 20.0])
    assert torch.allclose(units.db_to_linear(t), torch.tensor([1.0, 10.0, 100.0]))
    assert torch.allclose(units.linear_to_db(torch.tensor([1.0, 10.0])), torch.tensor([0.0, 10.0]))
    assert np.allclose(units.db_to_linear(np.array([0.0, 10.0])), [1.0, 10.0])


def test_noise_variance_float_and_tensor():
    assert units.noise_variance(0.0) == pytest.approx(1.0)
    assert units.noise_variance(10.0) == pytest.approx(0.1)
    assert units.noise_variance(20.0) == pytest.approx(0.01)
    assert units.noise_variance(-3.0) == pytest.approx(1.9952623, rel=1e-7)
    assert units.noise_variance(10.0, power=2.0) == pytest.approx(0.2)
    nv = units.noise_variance(torch.tensor([0.0, 10.0, 30.0]))
    assert isinstance(nv, torch.Tensor)
    assert torch.allclose(nv, torch.tensor([1.0, 0.1, 0.001]))


def test_channel_uses_and_rates():
    assert units.channel_uses(32, 32, cpp=0.25) == 256
    assert units.channel_uses(32, 32, bcr=1 / 12) == 256
    assert units.channel_uses(32, 32, bcr=1.0) == 3072
    assert units.channel_uses(32, 32, cpp=3.0) == 3072
    # floor, not round: 1/6 * 1024 = 170.67 -> 170
    assert units.channel_uses(32, 32, cpp=1 / 6) == 170
    # the 1e-9 slack absorbs float error: (1/9)*15*15 = 24.999999999999996 in floating point
    assert (1 / 9) * 15 * 15 < 25
    assert units.channel_uses(15, 15, cpp=1 / 9) == 25
    assert 0.7 * 3 * 10 * 10 < 210
    assert units.channel_uses(10, 10, bcr=0.7) == 210
    assert units.channel_uses(48, 48, cpp=1 / 6) == 384
    assert units.channel_uses(48, 48, bcr=1 / 18) == 384
    assert units.channel_uses(64, 48, cpp=0.5) == 1536
    # rho = cpp/3
    for k, h, w in [(256, 32, 32), (170, 32, 32), (384, 48, 48), (1, 8, 8)]:
        assert units.bcr(k, h, w) == pytest.approx(units.cpp(k, h, w) / 3)
    assert units.bcr(256, 32, 32) == pytest.approx(1 / 12)
    assert units.cpp(256, 32, 32) == pytest.approx(0.25)
    assert units.bpp(2048, 32, 32) == pytest.approx(2.0)
    assert units.bpp(1000, 10, 20) == pytest.approx(5.0)


@pytest.mark.parametrize("bad", [0, 0.0, 1.5, -1, float("nan"), float("inf")])
def test_channel_uses_bad_bcr(bad):
    with pytest.raises(ConfigError) as e:
        units.channel_uses(32, 32, bcr=bad)
    assert e.value.field == "bcr"


@pytest.mark.parametrize("bad", [0, -0.5, 3.5])
def test_channel_uses_bad_cpp(bad):
    with pytest.raises(ConfigError) as e:
        units.channel_uses(32, 32, cpp=bad)
    assert e.value.field == "cpp"


def test_channel_uses_other_errors():
    with pytest.raises(ConfigError) as e:  # k = floor(1e-4 * 64) = 0
        units.channel_uses(8, 8, cpp=1e-4)
    assert e.value.field == "cpp"
    with pytest.raises(ConfigError):
        units.channel_uses(32, 32)  # neither
    with pytest.raises(ConfigError):
        units.channel_uses(32, 32, cpp=0.25, bcr=0.1)  # both
    with pytest.raises(ConfigError) as e:
        units.channel_uses(0, 32, cpp=0.25)
    assert e.value.field == "height"


def test_ebno_hand_values():
    # uncoded BPSK: Eb/N0 = SNR
    assert units.ebno_db(5.0, 1, 1.0) == pytest.approx(5.0)
    # QPSK uncoded: m R = 2 -> -3.0103 dB
    assert units.ebno_db(5.0, 2, 1.0) == pytest.approx(5.0 - 3.0103, abs=1e-4)
    # 16-QAM rate 1/2: m R = 2
    assert units.ebno_db(10.0, 4, 0.5) == pytest.approx(6.9897, abs=1e-4)
    # 16-QAM rate 3/4: m R = 3 -> 4.7712 dB
    assert units.ebno_db(10.0, 4, 0.75) == pytest.approx(10.0 - 4.7712, abs=1e-4)
    # BPSK rate 1/2: m R = 1/2 -> +3.0103 dB
    assert units.ebno_db(0.0, 1, 0.5) == pytest.approx(3.0103, abs=1e-4)
    for snr in [-5.0, 0.0, 7.5]:
        for m, r in [(1, 0.5), (2, 2 / 3), (4, 5 / 6)]:
            assert units.snr_db_from_ebno(units.ebno_db(snr, m, r), m, r) == pytest.approx(snr)
    with pytest.raises(ConfigError) as e:
        units.ebno_db(0.0, 2, 1.5)
    assert e.value.field == "code_rate"
    with pytest.raises(ConfigError) as e:
        units.ebno_db(0.0, 0, 0.5)
    assert e.value.field == "bits_per_symbol"


def test_capacity_bits_hand_values():
    assert units.capacity_bits(100, 0.0) == pytest.approx(100.0)  # log2(2) = 1
    assert units.capacity_bits(1, 10 * math.log10(3)) == pytest.approx(2.0)  # log2(4)
    assert units.capacity_bits(10, 10 * math.log10(15)) == pytest.approx(40.0)  # log2(16)
    c = units.capacity_bits(2, torch.tensor([0.0, 10 * math.log10(7)], dtype=torch.float64))
    assert torch.allclose(c, torch.tensor([2.0, 6.0], dtype=torch.float64))


@pytest.mark.parametrize("k", [1, 7, 256, 4096])
@pytest.mark.parametrize("power", [1.0, 0.5, 3.0])
@pytest.mark.parametrize("dtype", [torch.complex64, torch.complex128])
def test_normalize_power_exact(k, power, dtype):
    g = torch.Generator().manual_seed(k)
    z = torch.randn(5, k, dtype=dtype, generator=g) * torch.tensor([1e-3, 0.1, 1.0, 10.0, 1e3]).to(dtype)[:, None]
    zn = units.normalize_power(z, power)
    assert zn.dtype == dtype and zn.shape == z.shape
    zn64, z64 = zn.to(torch.complex128), z.to(torch.complex128)  # the checks' own sums add no rounding
    energy = zn64.abs().square().sum(-1)
    # complex64: the norm is a float32 sum of 2k squares, in an order that depends on the CPU's kernel;
    # worst case (Higham) k·eps on ‖z‖, and 3 more roundings: energy within (k + 3)·eps (seen: ≤ 2e-6 at k = 4096)
    rtol = (k + 3) * torch.finfo(torch.float32).eps if dtype == torch.complex64 else 1e-12
    assert torch.allclose(energy, torch.full((5,), k * power, dtype=torch.float64), rtol=rtol, atol=0)
    # direction preserved
    cos = (zn64 * z64.conj()).sum(-1).abs() / (energy.sqrt() * z64.abs().square().sum(-1).sqrt())
    assert torch.allclose(cos, torch.ones(5, dtype=torch.float64), rtol=1e-5)


def test_normalize_power_differentiable_and_errors():
    z = torch.randn(3, 16, dtype=torch.complex64, requires_grad=True)
    units.normalize_power(z).real.sum().backward()
    assert z.grad is not None and torch.isfinite(z.grad.abs()).all()
    with pytest.raises(ConfigError) as e:
        units.normalize_power(torch.zeros(2, 4, dtype=torch.complex64))
    assert e.value.field == "z"
    with pytest.raises(ConfigError) as e:
        units.normalize_power(torch.randn(2, 4))  # real
    assert e.value.field == "z"
    with pytest.raises(ConfigError) as e:
        units.normalize_power(torch.randn(2, 4, dtype=torch.complex64), power=0.0)
    assert e.value.field == "power"
