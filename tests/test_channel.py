"""Channels against theory: SNR, circular Gaussian noise, Rayleigh statistics, seeding, gradients."""

import math

import pytest
import torch
from sionna.phy import config as sionna_config

from linksim.channel import (
    AWGNChannel,
    ChannelOnCPU,
    ChannelOutput,
    RayleighBlockChannel,
    RayleighFastChannel,
    equalize,
    make_channel,
)
from linksim.errors import ConfigError
from linksim.units import normalize_power

Z = 4.5  # tolerance in standard errors (two-sided p ~ 7e-6 per check)


def _x(b, k, seed=0, device="cpu"):
    g = torch.Generator(device=device).manual_seed(seed)
    return normalize_power(torch.randn(b, k, dtype=torch.complex64, generator=g, device=device))


def _gen(seed, device="cpu"):
    return torch.Generator(device=device).manual_seed(seed)


ALL = ["awgn", "rayleigh-block", "rayleigh-fast", {"type": "rayleigh-block", "block_length": 64}]


# ----------------------------------------------------------------------------- AWGN
@pytest.mark.parametrize("snr_db", [-5.0, 0.0, 10.0, 25.0])
def test_awgn_measured_snr(snr_db):
    b, k = 8, 25_000
    x = _x(b, k)
    out = AWGNChannel()(x, snr_db, _gen(1))
    assert isinstance(out, ChannelOutput)
    assert out.y.dtype == torch.complex64 and out.y.shape == (b, k)
    assert out.h.dtype == torch.complex64 and torch.equal(out.h, torch.ones_like(x))
    assert out.noise_var.dtype == torch.float32 and out.noise_var.shape == (b,)
    sigma2 = 10 ** (-snr_db / 10)
    assert torch.allclose(out.noise_var, torch.full((b,), sigma2), rtol=1e-6)
    w = (out.y - x).to(torch.complex128)
    n = b * k
    # |w|^2 / sigma^2 ~ Exp(1): mean 1, std 1
    ratio = (w.abs().square().mean() / sigma2).item()
    assert abs(ratio - 1) < Z / math.sqrt(n)
    measured_snr_db = 10 * math.log10(x.abs().square().sum().item() / w.abs().square().sum().item())
    assert abs(measured_snr_db - snr_db) < 10 * math.log10(1 + Z / math.sqrt(n))


def test_awgn_noise_is_circular_gaussian():
    b, k, snr_db = 4, 50_000, 3.0
    x = _x(b, k)
    out = AWGNChannel()(x, snr_db, _gen(7))
    w = (out.y - x).to(torch.complex128).flatten()
    n, s2 = w.numel(), 10 ** (-snr_db / 10)
    re, im = w.real / math.sqrt(s2 / 2), w.imag / math.sqrt(s2 / 2)  # should be i.i.d. N(0,1)
    for part in (re, im):
        assert abs(part.mean().item()) < Z / math.sqrt(n)
        assert abs(part.square().mean().item() - 1) < Z * math.sqrt(2 / n)  # var of chi2_1 = 2
        assert abs(part.pow(4).mean().item() - 3) < Z * math.sqrt(96 / n)  # Gaussian kurtosis, var(x^4) = 96
    assert abs((re * im).mean().item()) < Z / math.sqrt(n)  # uncorrelated I/Q
    # pseudo-variance E[w^2] = 0 for circular noise
    assert abs((w * w).mean().item()) / s2 < Z * math.sqrt(2 / n)
    # white: adjacent samples uncorrelated
    assert abs((w[1:] * w[:-1].conj()).mean().item()) / s2 < Z / math.sqrt(n)


def test_awgn_per_image_snr_tensor():
    snr = torch.tensor([0.0, 10.0, 20.0, -3.0])
    x = _x(4, 40_000)
    out = AWGNChannel()(x, snr, _gen(3))
    assert torch.allclose(out.noise_var, 10 ** (-snr / 10))
    est = (out.y - x).abs().square().mean(-1).double()
    assert torch.allclose(est / out.noise_var.double(), torch.ones(4, dtype=torch.float64), atol=Z / math.sqrt(40_000))
    # 0-dim tensor works like a float
    out0 = AWGNChannel()(x, torch.tensor(10.0), _gen(3))
    out1 = AWGNChannel()(x, 10.0, _gen(3))
    assert torch.equal(out0.y, out1.y)


def test_awgn_noise_comes_from_callers_generator():
    """The Sionna AWGN block must draw from the generator we pass (real parts, then imaginary parts)."""
    x, snr_db = _x(3, 100), 6.0
    rng_before = sionna_config.torch_rng("cpu").get_state()
    out = AWGNChannel()(x, snr_db, _gen(11))
    assert torch.equal(sionna_config.torch_rng("cpu").get_state(), rng_before)  # Sionna's RNG untouched
    g = _gen(11)
    s = math.sqrt(10 ** (-snr_db / 10) / 2)
    re = torch.normal(0.0, s, size=(3, 100), generator=g)
    im = torch.normal(0.0, s, size=(3, 100), generator=g)
    # the same draws, scaled and added in another order: ≤ 2 ulp of |y| ≲ 3 (seen: 2.4e-7)
    assert torch.allclose(out.y, x + torch.complex(re, im), atol=1e-6)


@pytest.mark.parametrize("spec", ALL)
def test_seeding(spec):
    ch = make_channel(spec)
    x = _x(4, 300)
    a, b, c = ch(x, 5.0, _gen(42)), ch(x, 5.0, _gen(42)), ch(x, 5.0, _gen(43))
    assert torch.equal(a.y, b.y) and torch.equal(a.h, b.h)
    assert not torch.equal(a.y, c.y)
    if spec != "awgn":
        assert not torch.equal(a.h, c.h)
    # without a generator: Sionna's config RNG, still a valid draw
    d = ch(x, 5.0)
    assert d.y.shape == x.shape and torch.isfinite(d.y.abs()).all()


@pytest.mark.parametrize("spec", ALL)
def test_gradient_flows_to_x(spec):
    x = _x(2, 128).clone().requires_grad_(True)
    out = make_channel(spec)(x, 10.0, _gen(0))
    out.y.abs().sum().backward()
    assert x.grad is not None and torch.isfinite(x.grad.abs()).all() and x.grad.abs().sum() > 0
    # dy/dx = h (holomorphic): d Re(y).sum() / d Re(x) = Re(h)
    x2 = x.detach().clone().requires_grad_(True)
    out2 = make_channel(spec)(x2, 10.0, _gen(0))
    out2.y.real.sum().backward()
    assert torch.allclose(x2.grad.real, out2.h.real, atol=1e-6)


# ----------------------------------------------------------------------------- Rayleigh
def test_rayleigh_fast_statistics():
    b, k = 4, 50_000
    x = _x(b, k)
    out = RayleighFastChannel()(x, 10.0, _gen(5))
    h = out.h.to(torch.complex128)
    n = h.numel()
    p = h.abs().square()
    assert abs(p.mean().item() - 1) < Z / math.sqrt(n)  # E|h|^2 = 1 (|h|^2 ~ Exp(1))
    # Rayleigh envelope: P(|h|^2 < t) = 1 - exp(-t)
    for t in (0.1, 0.5, 1.0, 2.0):
        q = 1 - math.exp(-t)
        assert abs((p < t).double().mean().item() - q) < Z * math.sqrt(q * (1 - q) / n)
    assert abs((h * h).mean().item()) < Z * math.sqrt(2 / n)  # circular
    # independent per symbol: lag-1 and lag-7 correlation ~ 0, and across images
    for lag in (1, 7):
        assert abs((h[:, lag:] * h[:, :-lag].conj()).mean().item()) < Z / math.sqrt(n)
    assert abs((h[1:] * h[:-1].conj()).mean().item()) < Z / math.sqrt(n)
    # noise is still CN(0, sigma^2) on top of h x
    w = (out.y - out.h * x).to(torch.complex128)
    assert abs(w.abs().square().mean().item() / 0.1 - 1) < Z / math.sqrt(n)


def test_rayleigh_block_per_image():
    b, k = 20_000, 16
    out = RayleighBlockChannel()(_x(b, k), 10.0, _gen(6))
    h = out.h
    assert torch.equal(h, h[:, :1].expand(b, k))  # constant over the whole image
    h0 = h[:, 0].to(torch.complex128)
    assert abs(h0.abs().square().mean().item() - 1) < Z / math.sqrt(b)
    assert abs((h0[1:] * h0[:-1].conj()).mean().item()) < Z / math.sqrt(b)  # independent images
    # block_length >= k behaves like one coefficient per image
    out2 = RayleighBlockChannel(block_length=k)(_x(3, k), 10.0, _gen(6))
    assert torch.equal(out2.h, out2.h[:, :1].expand(3, k))


@pytest.mark.parametrize("k,block_length", [(1000, 64), (1024, 64), (50, 7), (5, 1)])
def test_rayleigh_block_blocks(k, block_length):
    b = 400
    out = RayleighBlockChannel(block_length=block_length)(_x(b, k), 10.0, _gen(8))
    h = out.h
    n_blocks = math.ceil(k / block_length)
    firsts = []
    for j in range(n_blocks):
        blk = h[:, j * block_length : min(k, (j + 1) * block_length)]
        assert torch.equal(blk, blk[:, :1].expand_as(blk))  # constant within a block (last may be shorter)
        firsts.append(blk[:, 0])
    hb = torch.stack(firsts, 1).to(torch.complex128)
    if n_blocks > 1:
        assert (hb[:, 1:] != hb[:, :-1]).all()  # a new draw at every block boundary
    n = hb.numel()
    assert abs(hb.abs().square().mean().item() - 1) < Z / math.sqrt(n)


def test_equalize():
    x = _x(4, 20_000)
    for spec in ("awgn", "rayleigh-fast", {"type": "rayleigh-block", "block_length": 10}):
        out = make_channel(spec)(x, 8.0, _gen(9))
        x_hat, nv = equalize(out)
        assert x_hat.shape == x.shape and x_hat.dtype == torch.complex64
        assert nv.shape == x.shape and nv.dtype == torch.float32
        h2 = out.h.abs().square()
        assert torch.allclose(nv, out.noise_var[:, None] / h2, rtol=1e-5)  # a few float32 roundings (≤ 3e-7 relative seen)
        # x_hat = x + w/h: the normalized error (x_hat - x)/sqrt(nv) is CN(0, 1)
        e = ((x_hat - x) / nv.sqrt()).to(torch.complex128)
        assert abs(e.abs().square().mean().item() - 1) < Z / math.sqrt(e.numel())
        if spec == "awgn":
            assert torch.allclose(x_hat, out.y)


# ----------------------------------------------------------------------------- factory and validation
def test_make_channel():
    assert isinstance(make_channel("awgn"), AWGNChannel)
    assert isinstance(make_channel("rayleigh-fast"), RayleighFastChannel)
    blk = make_channel("rayleigh-block")
    assert isinstance(blk, RayleighBlockChannel) and blk.block_length is None
    assert make_channel({"type": "rayleigh-block", "block_length": 64}).block_length == 64
    for spec in ("awgn", "rayleigh-fast", {"type": "rayleigh-block", "block_length": 32}):
        ch = make_channel(spec)
        assert make_channel(ch.to_spec()).to_spec() == ch.to_spec()
    for bad in ("rician", {"type": "foo"}, {"block_length": 3}, 42, {"type": "awgn", "block_length": 3}):
        with pytest.raises(ConfigError) as e:
            make_channel(bad)
        assert e.value.field == "channel"
    for bad in (0, -3, 1.5, True, "8"):
        with pytest.raises(ConfigError) as e:
            make_channel({"type": "rayleigh-block", "block_length": bad})
        assert e.value.field == "block_length"


@pytest.mark.parametrize("spec", ALL)
def test_bad_inputs(spec):
    ch = make_channel(spec)
    x = _x(2, 16)
    for bad_x in (torch.randn(2, 16), x[0], x[None], [1, 2]):
        with pytest.raises(ConfigError) as e:
            ch(bad_x, 10.0)
        assert e.value.field == "x"
    for bad_snr in (float("nan"), float("inf"), torch.tensor([1.0, float("nan")]), torch.zeros(3), "10", None):
        with pytest.raises(ConfigError) as e:
            ch(x, bad_snr)
        assert e.value.field == "snr_db"
    with pytest.raises(ConfigError) as e:
        ch(x, 10.0, generator="seed")
    assert e.value.field == "generator"


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("spec", ALL)
def test_cuda(spec):
    x = _x(4, 1000, device="cuda")
    ch = make_channel(spec)
    a = ch(x, 5.0, _gen(1, "cuda"))
    b = ch(x, 5.0, _gen(1, "cuda"))
    assert a.y.device == x.device and a.h.device == x.device and a.noise_var.device == x.device
    assert torch.equal(a.y, b.y)
    x_hat, nv = equalize(a)
    assert x_hat.device == x.device and nv.device == x.device
    with pytest.raises(ConfigError) as e:
        ch(x, 5.0, _gen(1, "cpu"))
    assert e.value.field == "generator"


# ----------------------------------------------------------------------------- ChannelOnCPU
@pytest.mark.parametrize("spec", ALL)
def test_channel_on_cpu_is_the_channel_on_the_cpu(spec):
    x = _x(3, 256, seed=4)
    direct = make_channel(spec)(x, 2.0, _gen(7))
    wrapped = ChannelOnCPU(make_channel(spec), "cpu")(x, 2.0, _gen(7))
    for name in ("y", "h", "noise_var"):
        assert torch.equal(getattr(wrapped, name), getattr(direct, name)), name


def test_channel_on_cpu_passes_gradients():
    x = _x(2, 128).clone().requires_grad_(True)
    out = ChannelOnCPU(make_channel("rayleigh-block"), "cpu")(x, 5.0, _gen(1))
    out.y.abs().pow(2).sum().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("spec", ALL)
def test_channel_on_cpu_gives_cuda_inputs_the_cpu_draws(spec):
    x = _x(3, 256, seed=4)
    cpu = make_channel(spec)(x, 2.0, _gen(7))
    x_cuda = x.to("cuda").requires_grad_(True)
    out = ChannelOnCPU(make_channel(spec), "cuda")(x_cuda, 2.0, _gen(7))
    assert out.y.device == x_cuda.device and out.h.device == x_cuda.device and out.noise_var.device == x_cuda.device
    assert torch.equal(out.y.cpu(), cpu.y) and torch.equal(out.h.cpu(), cpu.h)
    out.y.real.sum().backward()
    assert x_cuda.grad is not None and x_cuda.grad.device == x_cuda.device
