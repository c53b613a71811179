"""DeepJSCC against its contract (docs/ARCHITECTURE.md §2, §4): power, bandwidth, LMMSE, GDN, gradients, training, CLI.

Tiny models only (widths (8, 8), c = 2–4, 16–50 px images): the whole file runs in seconds
on one CPU thread.
"""

from __future__ import annotations

import json
import math
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from linksim import units, zoo
from linksim.channel import make_channel
from linksim.errors import ConfigError
from linksim.jscc.gdn import GDN
from linksim.jscc.models import (
    AF_GATES,
    BOURTSOULATZE,
    AFModule,
    DeepJSCC,
    DeepJSCCConfig,
    latent_channels_for,
    mmse_estimate,
)
from linksim.train.deepjscc import DeepJSCCSettings, evaluate, model_card, train_deepjscc

F = torch.nn.functional
TINY = dict(widths=(8, 8), same_layers=1)
ARCHS = {
    "adaptive": dict(latent_channels=4, **TINY),
    "bourtsoulatze": dict(latent_channels=4, **{**BOURTSOULATZE, "widths": (8, 8)}),
}


def _model(seed: int = 0, **config) -> DeepJSCC:
    """A freshly initialized model; the global RNG is left as it was."""
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        return DeepJSCC(DeepJSCCConfig(**config))


def _images(b, h, w, seed=0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.rand(b, 3, h, w, generator=g)


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _k(c, h, w, d) -> int:
    """k = (c/2)·⌈H/2^d⌉·⌈W/2^d⌉ (DeepJSCC module docstring), computed independently."""
    s = 2 ** d
    return (c // 2) * math.ceil(h / s) * math.ceil(w / s)


# ----------------------------------------------------------------------------- power constraint
@pytest.mark.parametrize("arch", list(ARCHS))
@pytest.mark.parametrize("power", [1.0, 2.5])
@pytest.mark.parametrize("size", [(16, 16), (17, 33), (40, 24)])
def test_power_constraint_exact_per_image(arch, power, size):
    h, w = size
    model = _model(**{**ARCHS[arch], "power": power})
    x = _images(4, h, w)
    x[0] = 0.0  # a black image, a white one, and two random ones: every row is normalized on its own
    x[1] = 1.0
    x[3] *= 0.01
    snr = torch.tensor([-5.0, 0.0, 7.0, 20.0])
    with torch.no_grad():
        z = model.encode(x, snr)
    k = _k(4, h, w, 2)
    assert z.dtype == torch.complex64 and z.shape == (4, k)
    energy = z.to(torch.complex128).abs().square().sum(-1)
    # the norm is a float32 sum of 2k squares in a CPU-dependent order: worst case (Higham) k·eps on ‖z‖,
    # and 3 more roundings, so the energy is within (k + 3)·eps of kP (seen: ≤ 4e-7)
    rtol = (k + 3) * torch.finfo(torch.float32).eps
    assert torch.allclose(energy, torch.full((4,), k * power, dtype=torch.float64), rtol=rtol, atol=0)
    # average power P per complex use
    assert torch.allclose(energy / k, torch.full((4,), power, dtype=torch.float64), rtol=rtol, atol=0)


def test_symbol_layout_first_half_real_second_half_imaginary():
    """z pairs the encoder's c real outputs: channels [0, c/2) are real parts, [c/2, c) imaginary parts."""
    model = _model(latent_channels=4, **TINY)
    latent = {}
    model.to_latent.register_forward_hook(lambda mod, inp, out: latent.setdefault("f", out.detach()))
    x = _images(2, 20, 12)
    with torch.no_grad():
        z = model.encode(x, 3.0)
    f = latent["f"].double()  # [B, c, 5, 3]
    re, im = f[:, :2].flatten(1), f[:, 2:].flatten(1)
    norm = (re.square() + im.square()).sum(-1, keepdim=True).sqrt()
    k = re.shape[1]
    scale = math.sqrt(k) / norm
    # the model's float32 normalization (a sum of 2k = 30 squares) vs this float64 one: relative error
    # ≲ (k + 4)·eps/2 ≈ 1e-6 on |z| ≲ 3, so 1e-5 holds on any CPU (seen: 2.4e-7)
    assert torch.allclose(z.real.double(), re * scale, atol=1e-5)
    assert torch.allclose(z.imag.double(), im * scale, atol=1e-5)


# ----------------------------------------------------------------------------- any image size / bandwidth
@pytest.mark.parametrize("widths", [(8, 8), (8, 8, 8)])
@pytest.mark.parametrize("size", [(17, 33), (32, 32), (50, 20), (5, 7), (48, 16)])
def test_any_image_size_and_channel_uses(widths, size):
    h, w = size
    c, d = 4, len(widths)
    model = _model(latent_channels=c, widths=widths, same_layers=0)
    x = _images(2, h, w)
    with torch.no_grad():
        z = model.encode(x, 0.0)
        x_hat = model.decode(z, (h, w), 0.0)
        x_link = model(x, 5.0, make_channel("awgn"), _gen(0))
    k = _k(c, h, w, d)
    assert z.shape == (2, k) and model.channel_uses(h, w) == k
    assert x_hat.shape == x.shape and x_link.shape == x.shape
    assert x_hat.dtype == torch.float32 and 0 <= float(x_hat.min()) and float(x_hat.max()) <= 1
    s = 2 ** d
    if h % s == 0 and w % s == 0:
        # ρ = k/(3HW) = c/(6·4^d) exactly
        assert Fraction(k, 3 * h * w) == Fraction(c, 6 * 4 ** d)
        assert units.bcr(k, h, w) == pytest.approx(model.config.bcr(), rel=1e-15)
        assert model.config.bcr() == c / (6 * 4 ** d)
    else:  # padding costs channel uses: more than ρ·3HW
        assert k > model.config.bcr() * 3 * h * w


def test_padding_is_bottom_right_edge_replication_and_output_is_cropped():
    """An H×W image is sent as its bottom/right edge-replicated padding to multiples of 2^d."""
    model = _model(latent_channels=4, **TINY)
    x = _images(2, 17, 33)
    padded = torch.cat([x, x[:, :, :, -1:].expand(-1, -1, -1, 3)], dim=3)  # 17×36
    padded = torch.cat([padded, padded[:, :, -1:, :].expand(-1, -1, 3, -1)], dim=2)  # 20×36
    assert padded.shape[-2:] == (20, 36) and torch.equal(padded[:, :, :17, :33], x)
    with torch.no_grad():
        z = model.encode(x, 2.0)
        z_padded = model.encode(padded, 2.0)
        assert torch.allclose(z, z_padded, atol=1e-6)
        out_small = model.decode(z, (17, 33), 2.0)
        out_big = model.decode(z, (20, 36), 2.0)
    assert torch.equal(out_small, out_big[:, :, :17, :33])  # the crop keeps the top-left corner


def test_latent_channels_for_bcr():
    assert latent_channels_for(1 / 48) == 32  # default 4 stages: c = 6·256/48
    assert DeepJSCC(DeepJSCCConfig(latent_channels=latent_channels_for(1 / 48))).config.bcr() == pytest.approx(1 / 48)
    assert latent_channels_for(1 / 12) == 128
    assert latent_channels_for(1 / 192) == 8
    assert latent_channels_for(1 / 768) == 2
    assert latent_channels_for(1 / 12, widths=(16, 32)) == 8  # Bourtsoulatze: 6·16/12
    assert latent_channels_for(1 / 6, widths=(16, 32)) == 16  # the paper's k/n = 1/6
    for bad in (1 / 512, 1 / 1000, 1 / 1536, 0.0, -1 / 48):  # c = 3 (odd), 1.536, 1, 0, negative
        with pytest.raises(ConfigError) as e:
            latent_channels_for(bad)
        assert e.value.field == "bcr" and "even integer" in str(e.value)
    for bad_c in (3, 0, 1, 2.0, True):
        with pytest.raises(ConfigError) as e:
            DeepJSCCConfig(latent_channels=bad_c)
        assert e.value.field == "latent_channels"


def test_config_validation_and_json_round_trip():
    for cfg in (DeepJSCCConfig(latent_channels=32), DeepJSCCConfig(latent_channels=4, **TINY, power=2.0,
                                                                    channel="rayleigh-block", snr_range_db=(0, 20)),
                DeepJSCCConfig(latent_channels=16, **BOURTSOULATZE)):
        assert DeepJSCCConfig.from_dict(json.loads(json.dumps(cfg.to_dict()))) == cfg
    # any odd kernel keeps the sizes right
    model = _model(latent_channels=4, widths=(8, 8), kernel_size=3)
    assert model(_images(1, 17, 9), 0.0, make_channel("awgn"), _gen(0)).shape == (1, 3, 17, 9)
    for field, value in [("widths", ()), ("widths", (8, 0)), ("same_layers", -1), ("power", 0.0),
                         ("channel", "rayleigh-fast"), ("snr_range_db", (10.0, 0.0)), ("kernel_size", 4),
                         ("kernel_size", 0), ("af_gate", "relu")]:
        with pytest.raises(ConfigError) as e:
            DeepJSCCConfig(latent_channels=4, **{field: value})
        assert e.value.field == field and field in str(e.value)
    with pytest.raises(ConfigError) as e:
        DeepJSCCConfig.from_dict({"latent_channels": 4, "width": [8]})
    assert "width" in str(e.value)
    with pytest.raises(ConfigError):
        DeepJSCCConfig.from_dict({"widths": [8]})


# ----------------------------------------------------------------------------- gradients through the channel
@pytest.mark.parametrize("arch", list(ARCHS))
@pytest.mark.parametrize("channel", ["awgn", "rayleigh-block"])
def test_gradients_reach_every_encoder_parameter(arch, channel):
    model = _model(**ARCHS[arch])
    x = _images(2, 16, 16)
    x_hat = model(x, torch.tensor([0.0, 10.0]), make_channel(channel), _gen(5))
    F.mse_loss(x_hat, x).backward()
    encoder = list(model.encoder.named_parameters(prefix="encoder")) + \
        list(model.to_latent.named_parameters(prefix="to_latent"))
    assert len(encoder) > 4
    for name, p in encoder:
        assert p.grad is not None, name
        assert bool(torch.isfinite(p.grad).all()), name
        assert float(p.grad.abs().max()) > 0, f"{name}: zero gradient (the channel blocks it?)"
    for name, p in model.named_parameters():
        assert p.grad is not None and bool(torch.isfinite(p.grad).all()), name


@pytest.mark.parametrize("arch", list(ARCHS))
@pytest.mark.parametrize("channel", ["awgn", "rayleigh-block"])
@pytest.mark.parametrize("seed", [0, 1])
def test_one_adam_step_lowers_the_loss(arch, channel, seed):
    model = _model(seed, **ARCHS[arch])
    x = _images(4, 16, 16, seed=seed)
    snr, ch = torch.tensor([0.0, 5.0, 10.0, 15.0]), make_channel(channel)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    before = F.mse_loss(model(x, snr, ch, _gen(seed + 10)), x)  # same noise and fading before and after
    opt.zero_grad()
    before.backward()
    opt.step()
    with torch.no_grad():
        after = F.mse_loss(model(x, snr, ch, _gen(seed + 10)), x)
    assert after.item() < before.item() * (1 - 1e-5), (before.item(), after.item())


# ----------------------------------------------------------------------------- SNR adaptivity
def test_adaptive_model_output_depends_on_the_snr_input():
    model = _model(**ARCHS["adaptive"])
    x = _images(2, 16, 24)
    with torch.no_grad():
        z = model.encode(x, 5.0)
        noise = 0.1 * torch.randn(z.shape, dtype=z.dtype, generator=_gen(3))
        z_hat = z + noise  # the same received symbols, decoded under different conditions
        out0 = model.decode(z_hat, (16, 24), snr_db=0.0)
        out10 = model.decode(z_hat, (16, 24), snr_db=10.0)
        eff = model.decode(z_hat, (16, 24), snr_db=10.0, snr_eff_db=3.0)  # fading: effective SNR ≠ SNR
        assert float((out0 - out10).abs().max()) > 1e-6
        assert float((out10 - eff).abs().max()) > 1e-6
        # the encoder is conditioned too (the transmitter knows the average SNR)
        assert float((model.encode(x, 0.0) - model.encode(x, 10.0)).abs().max()) > 1e-6
        # a per-image SNR [B] is the same as decoding each image at its own scalar SNR
        both = model.decode(z_hat, (16, 24), snr_db=torch.tensor([0.0, 10.0]))
        assert torch.allclose(both[0], out0[0], atol=1e-6) and torch.allclose(both[1], out10[1], atol=1e-6)


# ----------------------------------------------------------------------------- the AF gate
def test_af_gate_default_and_the_meaning_of_a_config_without_it():
    assert DeepJSCCConfig(latent_channels=4).af_gate == "2sigmoid"
    # config.json files written before the field existed (the checkpoints shipped until then) mean ADJSCC's sigmoid
    assert DeepJSCCConfig.from_dict({"latent_channels": 4}).af_gate == "sigmoid"
    model = DeepJSCC(DeepJSCCConfig.from_dict({"latent_channels": 4, "widths": list(TINY["widths"])}))
    assert all(stage.af.gate is AF_GATES["sigmoid"] for stage in [*model.encoder, *model.decoder])


@pytest.mark.parametrize(("gate", "scale"), [("2sigmoid", 1.0), ("sigmoid", 0.5)])
def test_af_module_with_zero_logits_scales_by_the_gate_at_zero(gate, scale):
    """g(0): 2·sigmoid(0) = 1 (identity), sigmoid(0) = ½ — the whole difference at initialization."""
    af = AFModule(8, 2, gate)
    torch.nn.init.zeros_(af.mlp[2].weight), torch.nn.init.zeros_(af.mlp[2].bias)
    f = torch.randn(3, 8, 5, 4, generator=_gen(0))
    assert torch.equal(af(f, torch.randn(3, 2, generator=_gen(1))), f * scale)


def test_sigmoid_gates_shrink_the_decoders_response_to_its_input_at_initialization():
    """With the same weights, ADJSCC's gate makes the decoder's last hidden features respond ~2⁻⁵ as much
    to a change of its input (five halvings: PReLU is homogeneous, GDN near-linear at init, the biases
    cancel in the difference); the 2·sigmoid gate does not shrink it."""
    config = dict(latent_channels=8, widths=(16, 16, 16, 16), same_layers=1)
    ours, adjscc = _model(0, **config), _model(0, **config, af_gate="sigmoid")
    adjscc.load_state_dict(ours.state_dict())  # same tensors, only the gate differs
    z1, z2 = torch.randn(2, 2, 8, 2, 2, generator=_gen(2))

    def last_hidden(model, z):
        f, cond = z, model._conditions(5.0, 2, "cpu")[1]
        with torch.no_grad():
            for stage in model.decoder:
                f = stage(f, cond)
        return f

    def response(model):
        return float((last_hidden(model, z1) - last_hidden(model, z2)).square().mean().sqrt())

    ratio = response(ours) / response(adjscc)
    assert 2 ** 5 / 2 < ratio < 2 ** 5 * 2, ratio


def test_bourtsoulatze_model_ignores_the_snr_input():
    model = _model(**ARCHS["bourtsoulatze"])
    assert not model.config.adaptive
    x = _images(2, 16, 24)
    with torch.no_grad():
        z = model.encode(x, 5.0)
        assert torch.equal(z, model.encode(x, -3.0))
        z_hat = z + 0.1 * torch.randn(z.shape, dtype=z.dtype, generator=_gen(3))
        out0 = model.decode(z_hat, (16, 24), snr_db=0.0)
        assert torch.equal(out0, model.decode(z_hat, (16, 24), snr_db=10.0))
        assert torch.equal(out0, model.decode(z_hat, (16, 24), snr_db=10.0, snr_eff_db=-20.0))


# ----------------------------------------------------------------------------- LMMSE receiver
def test_mmse_estimate_matches_numpy():
    rng = np.random.default_rng(0)
    b, k = 3, 257
    y = (rng.standard_normal((b, k)) + 1j * rng.standard_normal((b, k))).astype(np.complex64)
    h = (rng.standard_normal((b, k)) + 1j * rng.standard_normal((b, k))).astype(np.complex64) * 0.7
    h[0, :5] = [0, 1e-4, 1e-4j, 5, -5j]  # deep fades and strong taps
    nv = np.array([1.0, 0.1, 1e-3], dtype=np.float32)
    y64, h64 = y.astype(np.complex128), h.astype(np.complex128)
    expected = y64 * np.conj(h64) / (np.abs(h64) ** 2 + nv[:, None].astype(np.float64))
    got = mmse_estimate(torch.from_numpy(y), torch.from_numpy(h), torch.from_numpy(nv))
    assert got.shape == (b, k) and got.is_complex()
    # complex64 y·h*/(|h|² + σ²) vs complex128: a handful of roundings (≲ 10 eps relative); 2e-5 ≈ 170 eps
    np.testing.assert_allclose(got.numpy(), expected, rtol=2e-5, atol=1e-6)
    # bounded in deep fades (unlike zero forcing): |h|/(|h|²+σ²) ≤ 1/(2σ)
    bound = np.abs(y64) / (2 * np.sqrt(nv[:, None]))
    assert np.all(np.abs(got.numpy()) <= bound * (1 + 1e-5))


def test_mmse_estimate_without_noise_on_awgn_returns_y():
    y = torch.randn(2, 100, dtype=torch.complex64, generator=_gen(1))
    ones = torch.ones_like(y)
    assert torch.equal(mmse_estimate(y, ones, torch.zeros(2)), y)
    assert torch.allclose(mmse_estimate(y, ones, torch.full((2,), 1e-9)), y, rtol=1e-6, atol=0)
    # zero forcing is the σ² → 0 limit on a fading channel too
    h = torch.randn(2, 100, dtype=torch.complex64, generator=_gen(2))
    assert torch.allclose(mmse_estimate(h * y, h, torch.zeros(2)), y, rtol=1e-4, atol=1e-5)


def test_mmse_estimate_error_is_the_lmmse_error():
    """For z ~ CN(0,1), y = h·z + w, the LMMSE error is E|z − ẑ|² = σ²/(|h|² + σ²)."""
    n = 200_000
    g = _gen(11)
    h_vals = torch.tensor([0.3 + 0.4j, 1.0, -1.2j], dtype=torch.complex128)
    nv = torch.tensor([0.5, 0.1, 2.0], dtype=torch.float64)
    z = torch.randn(3, n, dtype=torch.complex128, generator=g)  # CN(0,1)
    w = torch.randn(3, n, dtype=torch.complex128, generator=g) * nv.sqrt()[:, None]
    h = h_vals[:, None].expand(3, n)
    mse = (z - mmse_estimate(h * z + w, h, nv)).abs().square().mean(-1)
    theory = nv / (h_vals.abs().square() + nv)
    # |z − ẑ|² is Exp(theory)-distributed: std of the mean = theory/√n
    assert torch.all((mse - theory).abs() < 4.5 * theory / math.sqrt(n))


@pytest.mark.parametrize("arch", list(ARCHS))
def test_noiseless_awgn_link_is_decode_of_encode(arch):
    """At a very high SNR the link is deterministic: x̂ = decode(encode(x)) whatever the noise seed."""
    model = _model(**ARCHS[arch]).eval()
    x, snr = _images(2, 20, 28), 120.0
    with torch.no_grad():
        ideal = model.decode(model.encode(x, snr), (20, 28), snr, snr)
        a = model(x, snr, make_channel("awgn"), _gen(1))
        b = model(x, snr, make_channel("awgn"), _gen(2))
    # at 120 dB the noise is 1e-6 per symbol; with float32 rounding of the equalizer the outputs in [0, 1]
    # move by ~1e-7 (seen: 6e-8, whatever the CPU's kernels): 1e-5 leaves two orders of magnitude
    assert torch.allclose(a, ideal, atol=1e-5) and torch.allclose(b, ideal, atol=1e-5)
    # at a moderate SNR the noise matters: different seeds, different outputs
    with torch.no_grad():
        c = model(x, 0.0, make_channel("awgn"), _gen(1))
        d = model(x, 0.0, make_channel("awgn"), _gen(2))
        e = model(x, 0.0, make_channel("awgn"), _gen(1))
    assert not torch.equal(c, d) and torch.equal(c, e)


def test_noiseless_rayleigh_link_uses_perfect_csi_and_effective_snr():
    """Rayleigh block at a very high SNR: ẑ = z, and the decoder sees SNR·|h|² (dB) as the effective SNR."""
    model = _model(**ARCHS["adaptive"]).eval()
    x, snr = _images(2, 16, 16), 120.0
    ch = make_channel("rayleigh-block")
    with torch.no_grad():
        z = model.encode(x, snr)
        h = ch(z, snr, _gen(4)).h  # the same draw the link makes from the same seed
        h2 = h.abs().square().mean(-1)
        eff = snr + 10 * torch.log10(h2)
        expected = model.decode(z, (16, 16), snr, eff)
        out = model(x, snr, ch, _gen(4))
    assert torch.allclose(out, expected, atol=1e-5)  # as in the AWGN test: noise 1e-6 + rounding (seen: 6e-8)


class _FixedFade(torch.nn.Module):
    """A noiseless stand-in channel with a known gain per image: y = h·z, σ² = 0 (the Channel interface)."""

    def __init__(self, gains):
        super().__init__()
        self.gains = torch.tensor(gains, dtype=torch.complex64)

    def forward(self, z, snr_db, generator=None):
        from linksim.channel import ChannelOutput

        h = self.gains[:, None].expand_as(z)
        return ChannelOutput(y=h * z, h=h, noise_var=torch.zeros(z.shape[0]))


def test_link_decodes_with_the_effective_snr_of_the_fade():
    """Effective SNR = SNR·mean|h|² in dB: with |h|² = 1/4 at 10 dB the decoder is told 10 − 6.02 dB."""
    model = _model(**ARCHS["adaptive"]).eval()
    x, snr = _images(2, 16, 16), 10.0
    with torch.no_grad():
        z = model.encode(x, snr)
        out = model(x, snr, _FixedFade([0.5, -0.3 + 0.4j]), None)  # |h|² = 0.25 both
        expected = model.decode(z, (16, 16), snr, snr + 10 * math.log10(0.25))
        ignoring_the_fade = model.decode(z, (16, 16), snr, snr)
    # noiseless: only float32 rounding of y·h*/|h|² (≈ eps on z) and of the SNR in dB; same kernels
    # for both decodes (same shapes), so the outputs in [0, 1] differ by ≲ 1e-7 (seen: 6e-8)
    assert torch.allclose(out, expected, atol=1e-6)
    assert float((out - ignoring_the_fade).abs().max()) > 1e-5


# ----------------------------------------------------------------------------- GDN
def _raw(value: torch.Tensor) -> torch.Tensor:
    """A stored parameter whose effective value is ``value`` (squared reparametrization)."""
    return value.double().sqrt()


def test_gdn_hand_computation_two_channels():
    beta = torch.tensor([0.5, 2.0], dtype=torch.float64)
    gamma = torch.tensor([[0.3, 0.7], [0.1, 1.5]], dtype=torch.float64)  # asymmetric: row i normalizes output i
    x = torch.tensor([1.0, -2.0], dtype=torch.float64).view(1, 2, 1, 1)
    for inverse, expected in [(False, [1 / math.sqrt(3.6), -2 / math.sqrt(8.1)]),  # 0.5+0.3·1+0.7·4, 2+0.1+1.5·4
                              (True, [math.sqrt(3.6), -2 * math.sqrt(8.1)])]:
        gdn = GDN(2, inverse=inverse).double()
        with torch.no_grad():
            gdn.beta.copy_(_raw(beta))
            gdn.gamma.copy_(_raw(gamma))
        y = gdn(x).flatten().tolist()
        assert y == pytest.approx(expected, rel=1e-9)


@pytest.mark.parametrize("inverse", [False, True])
def test_gdn_matches_numpy_on_a_batch(inverse):
    rng = np.random.default_rng(3)
    c = 3
    beta = rng.uniform(0.1, 2.0, c)
    gamma = rng.uniform(0.0, 1.0, (c, c))
    x = rng.standard_normal((2, c, 4, 5))
    gdn = GDN(c, inverse=inverse).double()
    with torch.no_grad():
        gdn.beta.copy_(_raw(torch.from_numpy(beta)))
        gdn.gamma.copy_(_raw(torch.from_numpy(gamma)))
    norm = beta[None, :, None, None] + np.einsum("ij,bjhw->bihw", gamma, x ** 2)
    expected = x * np.sqrt(norm) if inverse else x / np.sqrt(norm)
    np.testing.assert_allclose(gdn(torch.from_numpy(x)).detach().numpy(), expected, rtol=1e-9)


def test_gdn_default_init_is_beta_one_gamma_point_one_identity():
    x = torch.tensor([0.5, -1.0], dtype=torch.float64).view(1, 2, 1, 1)
    y = GDN(2).double()(x).flatten().tolist()
    assert y == pytest.approx([0.5 / math.sqrt(1 + 0.1 * 0.25), -1 / math.sqrt(1 + 0.1)], rel=1e-9)


def _effective_parameters(gdn: GDN) -> tuple[np.ndarray, np.ndarray]:
    """Recover β and γ from GDN outputs alone: (x_i / y_i)² = β_i + Σ_j γ_ij x_j² is linear in (β, γ)."""
    c = gdn.beta.numel()
    rng = np.random.default_rng(0)
    xs = rng.uniform(0.5, 2.0, (c + 1 + 3, c))  # more probes than unknowns (c + 1 per output channel)
    with torch.no_grad():
        y = gdn(torch.from_numpy(xs).view(-1, c, 1, 1)).view(-1, c).numpy()
    lhs = (xs / y) ** 2  # [N, c]
    design = np.concatenate([np.ones((len(xs), 1)), xs ** 2], axis=1)  # [N, 1 + c]
    sol, *_ = np.linalg.lstsq(design, lhs, rcond=None)  # [1 + c, c]
    return sol[0], sol[1:].T  # β [c], γ [c, c] with γ[i, j]


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_gdn_parameters_stay_non_negative_for_any_raw_values(seed):
    g = _gen(seed)
    c = 3
    gdn = GDN(c).double()
    with torch.no_grad():  # what an optimizer might leave behind: negative, zero, large
        gdn.beta.copy_(torch.randn(c, generator=g, dtype=torch.float64) * 2)
        gdn.gamma.copy_(torch.randn(c, c, generator=g, dtype=torch.float64) * 2)
        gdn.beta[0] = -5.0
        gdn.gamma[0, 1] = 0.0
    beta, gamma = _effective_parameters(gdn)
    assert np.all(beta >= 1e-6 * (1 - 1e-6)), beta
    assert np.all(gamma >= -1e-9), gamma
    assert beta[0] == pytest.approx(1e-6, rel=1e-4)  # a negative raw β sits at the lower bound
    assert abs(gamma[0, 1]) < 1e-9
    out = gdn(torch.randn(2, c, 3, 3, generator=g, dtype=torch.float64) * 100)
    assert bool(torch.isfinite(out).all())


def test_gdn_all_negative_raw_parameters_give_the_bounds():
    gdn = GDN(2).double()
    with torch.no_grad():
        gdn.beta.fill_(-1.0)
        gdn.gamma.fill_(-1.0)
    x = torch.tensor([0.5, -3.0], dtype=torch.float64).view(1, 2, 1, 1)
    assert gdn(x).flatten().tolist() == pytest.approx([0.5 / 1e-3, -3.0 / 1e-3], rel=1e-6)  # β = 1e-6, γ = 0
    igdn = GDN(2, inverse=True).double()
    igdn.load_state_dict(gdn.state_dict())
    assert igdn(x).flatten().tolist() == pytest.approx([0.5e-3, -3e-3], rel=1e-6)


def test_gdn_gradients_flow_to_beta_and_gamma():
    """Every β and γ entry gets a gradient at initialization, the off-diagonal γ (which start at 0) included."""
    gdn = GDN(4)
    gdn(torch.randn(2, 4, 5, 5, generator=_gen(0))).square().sum().backward()
    assert float(gdn.beta.grad.abs().min()) > 0
    assert bool(torch.isfinite(gdn.gamma.grad).all()) and float(gdn.gamma.grad.abs().min()) > 0


def test_gdn_cross_channel_terms_can_be_learned_from_zero():
    """Shrinking the output calls for more normalization: one Adam step makes γ_ij > 0 for i ≠ j."""
    gdn = GDN(3).double()
    _, gamma0 = _effective_parameters(gdn)
    assert np.allclose(gamma0, 0.1 * np.eye(3), atol=1e-9)
    opt = torch.optim.Adam(gdn.parameters(), lr=1e-2)
    gdn(torch.randn(4, 3, 5, 5, generator=_gen(1), dtype=torch.float64)).square().sum().backward()
    opt.step()
    _, gamma1 = _effective_parameters(gdn)
    assert np.all(gamma1[~np.eye(3, dtype=bool)] > 1e-5), gamma1


def test_gdn_parameter_below_the_bound_only_moves_up():
    """At the bound the value cannot decrease; a gradient asking to decrease it is not passed on."""
    gdn = GDN(2).double()
    with torch.no_grad():
        gdn.gamma.fill_(-1.0)
    x = torch.randn(2, 2, 3, 3, generator=_gen(2), dtype=torch.float64)
    gdn(x).square().sum().backward()  # wants more normalization: raise γ
    assert float(gdn.gamma.grad.max()) < 0
    gdn.zero_grad()
    (-gdn(x).square().sum()).backward()  # wants less normalization: γ is already at 0
    assert torch.equal(gdn.gamma.grad, torch.zeros_like(gdn.gamma))


# ----------------------------------------------------------------------------- training
def _settings(image_dir: Path, **changes) -> DeepJSCCSettings:
    base = dict(bcr=1 / 24, data=[str(image_dir)], widths=(8, 8), crop=16, batch=2, steps=4, save_every=2,
                val_data=[str(image_dir)], val_every=2, val_snrs=(0.0, 10.0), bf16=False, seed=3)
    return DeepJSCCSettings(**{**base, **changes})


def _no_leftovers(parent: Path) -> list[str]:
    """Temporary save folders (``.<name>-…``) or ``.tmp`` files left behind."""
    return [str(p) for p in parent.rglob("*") if p.name.startswith(".") or p.name.endswith(".tmp")]


@pytest.mark.parametrize(("field", "changes"), [
    ("steps", {"steps": -1}), ("steps", {"steps": 0}), ("batch", {"batch": True}), ("crop", {"crop": 2.5}),
    ("channel", {"channel": "rayleigh-fast"}), ("snr_range", {"snr_range": (10.0, 0.0)}),
    ("snr_range", {"snr_range": (0.0, math.inf)}), ("loss", {"loss": "l1"}), ("arch", {"arch": "resnet"}),
    ("lr", {"lr": 0.0}), ("data", {"data": []}), ("save_every", {"save_every": 0}),
    ("af_gate", {"af_gate": "tanh"}),
])
def test_bad_train_settings_name_the_field(image_dir, field, changes):
    with pytest.raises(ConfigError) as e:
        _settings(image_dir, **changes)
    assert e.value.field == field and str(e.value).startswith(f"{field}: got ")


def test_train_writes_a_complete_checkpoint(image_dir, tmp_path):
    out = tmp_path / "run"
    meta = train_deepjscc(_settings(image_dir), out, command="linksim train deepjscc --tiny", progress=False)
    assert sorted(p.name for p in out.iterdir()) == ["MODEL_CARD.md", "config.json", "model.safetensors"]
    assert _no_leftovers(tmp_path) == []
    cfg = json.loads((out / "config.json").read_text())
    assert cfg == meta
    assert cfg["kind"] == "deepjscc" and cfg["step"] == 4
    model_cfg = DeepJSCCConfig.from_dict(cfg["config"])
    assert model_cfg.latent_channels == 4 and model_cfg.widths == (8, 8) and model_cfg.bcr() == pytest.approx(1 / 24)
    assert [h["step"] for h in cfg["history"]] == [2, 4]
    assert cfg["history"][-1]["snr_db"] == [0.0, 10.0] and cfg["history"][-1]["images"] == 3
    card = (out / "MODEL_CARD.md").read_text()
    assert "`linksim train deepjscc --tiny`" in card
    assert "## Validation" in card and "| SNR (dB) | 0 | 10 |" in card
    last = cfg["history"][-1]["psnr"]
    assert f"| PSNR (dB) | {last[0]:.2f} | {last[1]:.2f} |" in card
    assert "4 of 4 steps" in card
    assert cfg["device"] == "cpu" and "CPU thread(s)" in card
    # the weights are a plain safetensors file matching the config
    state = load_file(str(out / "model.safetensors"))
    assert set(state) == set(DeepJSCC(model_cfg).state_dict())


def test_log_mse_loss_is_minus_the_mean_psnr_and_weighs_images_by_their_inverse_mse():
    from linksim.metrics import psnr
    from linksim.train.deepjscc import log_mse_loss

    gen = torch.Generator().manual_seed(0)
    x = torch.rand(2, 3, 8, 8, generator=gen)
    noise = torch.randn(2, 3, 8, 8, generator=gen) * torch.tensor([0.1, 0.03]).view(2, 1, 1, 1)
    x_hat = (x + noise).requires_grad_()
    loss = log_mse_loss(x_hat, x)
    assert loss.item() == pytest.approx(-psnr(x, x_hat.detach()).double().mean().item(), abs=1e-4)
    loss.backward()
    # d loss / d x̂_i = 10/(ln10·B) · 2(x̂_i − x_i)/(N·MSE_i): per-image gradients scaled by 1/MSE_i
    mse = noise.pow(2).flatten(1).mean(1)
    n = x[0].numel()
    expected = 10 / (math.log(10) * 2) * 2 * noise / (n * mse.view(2, 1, 1, 1))
    torch.testing.assert_close(x_hat.grad, expected, rtol=1e-4, atol=1e-9)


def test_training_with_the_log_mse_loss_runs_and_records_it(image_dir, tmp_path):
    meta = train_deepjscc(_settings(image_dir, loss="log-mse"), tmp_path / "run", progress=False)
    assert meta["training"]["loss"] == "log-mse" and meta["step"] == 4
    assert "loss log-mse" in (tmp_path / "run" / "MODEL_CARD.md").read_text()


def _run_to_end(settings, out, **kw) -> dict[str, torch.Tensor]:
    train_deepjscc(settings, out, progress=False, **kw)
    return load_file(str(out / "model.safetensors"))


@pytest.mark.parametrize("bf16", [False, True], ids=["float32", "bf16-autocast"])
def test_resume_is_bit_identical_to_an_uninterrupted_run(image_dir, tmp_path, bf16, same_threads):
    settings = _settings(image_dir, bf16=bf16)
    full = _run_to_end(settings, tmp_path / "full")
    full_cfg = json.loads((tmp_path / "full" / "config.json").read_text())

    out = tmp_path / "interrupted"
    train_deepjscc(settings, out, progress=False, stop_after=2)
    assert (out / "train_state.safetensors").is_file()
    assert json.loads((out / "config.json").read_text())["step"] == 2
    assert not torch.equal(load_file(str(out / "model.safetensors"))["to_latent.weight"], full["to_latent.weight"])
    resumed = _run_to_end(settings, out)
    assert not (out / "train_state.safetensors").exists()
    assert set(resumed) == set(full)
    for name in full:
        assert torch.equal(resumed[name], full[name]), name
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["step"] == 4 and cfg["history"] == full_cfg["history"]


def test_resume_from_a_point_between_saves(image_dir, tmp_path, same_threads):
    """Stopped after 3 steps with saves every 2: the rerun restarts from step 2 and still ends identical."""
    settings = _settings(image_dir)
    full = _run_to_end(settings, tmp_path / "full")
    out = tmp_path / "interrupted"
    train_deepjscc(settings, out, progress=False, stop_after=3)
    assert json.loads((out / "config.json").read_text())["step"] == 2
    train_deepjscc(settings, out, progress=False, stop_after=1)  # step 3, not saved
    resumed = _run_to_end(settings, out)
    for name in full:
        assert torch.equal(resumed[name], full[name]), name


def test_resume_with_different_settings_is_refused(image_dir, tmp_path):
    out = tmp_path / "run"
    train_deepjscc(_settings(image_dir), out, progress=False, stop_after=2)
    before = (out / "model.safetensors").read_bytes()
    for changes in ({"lr": 2e-3}, {"steps": 6}, {"seed": 4}):
        with pytest.raises(ConfigError) as e:
            train_deepjscc(_settings(image_dir, **changes), out, progress=False)
        assert e.value.field == "out" and "different settings" in str(e.value)
    assert (out / "model.safetensors").read_bytes() == before  # nothing overwritten


def test_finished_run_is_not_retrained(image_dir, tmp_path):
    out = tmp_path / "run"
    meta = train_deepjscc(_settings(image_dir), out, progress=False)
    weights = (out / "model.safetensors").read_bytes()
    assert train_deepjscc(_settings(image_dir), out, progress=False) == meta  # same settings: already complete
    assert (out / "model.safetensors").read_bytes() == weights
    with pytest.raises(ConfigError) as e:
        train_deepjscc(_settings(image_dir, steps=6), out, progress=False)
    assert e.value.field == "out" and "finished checkpoint" in str(e.value)


@pytest.mark.parametrize("device", ["tpu", "cuda:x"] + ([] if torch.cuda.is_available() else ["cuda"]))
def test_bad_device_is_refused_before_anything_is_written(image_dir, tmp_path, device):
    out = tmp_path / "run"
    with pytest.raises(ConfigError) as e:
        train_deepjscc(_settings(image_dir), out, progress=False, device=device)
    assert e.value.field == "device" and e.value.value == device and "'cpu'" in str(e.value)
    assert not out.exists()


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_a_run_interrupted_on_the_cpu_resumes_on_cuda(image_dir, tmp_path):
    settings = _settings(image_dir, steps=6, save_every=3, val_every=3)
    out = tmp_path / "mixed"
    train_deepjscc(settings, out, progress=False, stop_after=3)
    halfway = load_file(str(out / "model.safetensors"))
    resumed = _run_to_end(settings, out, device="cuda")
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["step"] == 6 and cfg["device"].startswith("cuda") and "cuda" in (out / "MODEL_CARD.md").read_text()
    assert all(torch.isfinite(t).all() for t in resumed.values())
    assert not torch.equal(resumed["to_latent.weight"], halfway["to_latent.weight"])


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_evaluation_on_cuda_uses_the_cpu_channel_draws(image_dir):
    """Another noise realization would move the PSNR by ~0.01–0.1 dB; rounding moves it by far less."""
    from linksim.data import load_images

    items = load_images(str(image_dir))
    model = _model(**ARCHS["adaptive"]).float()
    cpu = evaluate(model, items, [0.0, 10.0], "awgn", seed=1)["psnr"]
    cuda = evaluate(model.to("cuda"), items, [0.0, 10.0], "awgn", seed=1)["psnr"]
    assert cuda == pytest.approx(cpu, abs=1e-3)


def test_mse_lpips_without_real_weights_is_refused(image_dir, tmp_path):
    from linksim.metrics import backbone_weights_path

    path, _ = backbone_weights_path("alex")
    if Path(path).is_file():
        pytest.skip(f"the LPIPS backbone weights exist at {path}")
    out = tmp_path / "run"
    with pytest.raises(ConfigError) as e:
        train_deepjscc(_settings(image_dir, loss="mse+lpips"), out, progress=False)
    assert e.value.field == "loss" and e.value.value == "mse+lpips"
    assert path in str(e.value) and "not on this machine" in str(e.value)
    assert not out.exists()


def test_evaluate_gives_each_image_its_own_noise(image_dir):
    from linksim.data import load_images

    items = load_images(str(image_dir))
    model = _model(**ARCHS["adaptive"])
    a = evaluate(model, items, [0.0, 10.0], "awgn", seed=1)
    b = evaluate(model, items[::-1], [0.0, 10.0], "awgn", seed=1)  # order does not matter
    assert a["snr_db"] == [0.0, 10.0] and a["images"] == 3
    assert a["psnr"] == pytest.approx(b["psnr"], abs=1e-9)
    assert evaluate(model, items, [0.0, 10.0], "awgn", seed=2)["psnr"] != a["psnr"]


# ----------------------------------------------------------------------------- CLI
def test_cli_train_and_eval_end_to_end(image_dir, tmp_path, capsys):
    """The CLI uses the default 4-stage widths (48, 64, 96, 128): one step on 16-px crops (~5 s)."""
    from linksim.cli import main

    out = tmp_path / "cli-run"
    argv = ["train", "deepjscc", "--bcr", "1/48", "--data", str(image_dir), "--crop", "16", "--batch", "2",
            "--steps", "1", "--float32", "--quiet", "--val-data", str(image_dir), "--val-every", "1", "--out", str(out)]
    assert main(argv) == 0
    assert sorted(p.name for p in out.iterdir()) == ["MODEL_CARD.md", "config.json", "model.safetensors"]
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["config"]["latent_channels"] == 32 and cfg["config"]["widths"] == [48, 64, 96, 128]
    assert cfg["step"] == 1 and not cfg["training"]["bf16"]
    card = (out / "MODEL_CARD.md").read_text()
    assert "ρ = 1/48" in card
    assert f"`linksim train deepjscc --bcr 1/48 --data {image_dir}" in card  # the command that was run

    assert main(["eval", "deepjscc", str(out), "--data", str(image_dir), "--snr", "0", "10", "--record", "tiny",
                 "--quiet"]) == 0
    printed = capsys.readouterr().out
    assert "SNR    0.0 dB" in printed and "SNR   10.0 dB" in printed
    cfg = json.loads((out / "config.json").read_text())
    (ev,) = cfg["evaluation"]
    assert ev["data"] == "tiny" and ev["snr_db"] == [0.0, 10.0] and ev["images"] == 3 and ev["channel"] == "awgn"
    card = (out / "MODEL_CARD.md").read_text()
    assert "## Evaluation: tiny (3 images, full size, awgn)" in card
    assert "| SNR (dB) | 0 | 10 |" in card and "--record tiny" in card
    assert "## Validation" in card  # the training record is kept

    assert main(["eval", "deepjscc", str(out), "--data", str(image_dir), "--device", "tpu", "--quiet"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("linksim: error: device: got 'tpu'") and "'cuda:N'" in err


def test_cli_bad_bcr_exits_with_a_clear_message(image_dir, tmp_path, capsys):
    from linksim.cli import main

    out = tmp_path / "never"
    with pytest.raises(SystemExit) as e:
        main(["train", "deepjscc", "--bcr", "abc", "--data", str(image_dir), "--out", str(out)])
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert "--bcr" in err and "'abc'" in err and "1/48" in err
    # a ratio with no even c: one line naming the field, exit status 2, nothing written
    assert main(["train", "deepjscc", "--bcr", "1/512", "--data", str(image_dir), "--crop", "16",
                 "--quiet", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("linksim: error: bcr: got 0.001953125") and "even integer" in err
    assert "Traceback" not in err and not out.exists()


# ----------------------------------------------------------------------------- shipped model cards
SHIPPED = Path(__file__).parents[1] / "linksim" / "checkpoints"


@pytest.mark.parametrize("name", sorted(p.name for p in SHIPPED.glob("deepjscc-*")))
def test_shipped_model_cards_say_what_their_config_says(name):
    """A card is generated from config.json; one edited by hand, or left behind by a change to the card
    format (the AF gate once went missing from four of them), no longer matches."""
    folder = SHIPPED / name
    assert (folder / "MODEL_CARD.md").read_text() == model_card(zoo.read_config(folder), name).text()


def test_a_card_lists_the_earlier_stages_of_a_continued_checkpoint():
    """A checkpoint trained in stages (each run warm-started from the last) keeps each earlier
    run's command, steps and last validation in ``lineage``; the card shows them in order."""
    meta = zoo.read_config(SHIPPED / "deepjscc-awgn-r1_48")
    stages = [{"command": f"linksim train deepjscc --steps {n} --out runs/stage{i}", "steps": n, "wall_minutes": n / 100,
               "history": [{"step": n, "snr_db": [-5.0, 15.0], "psnr": [18.0 + i, 24.0 + i], "images": 14}]}
              for i, n in enumerate((3000, 6000))]
    text = model_card({**meta, "lineage": stages}, "staged").text()
    first, second = text.index("runs/stage0"), text.index("runs/stage1")
    assert text.index("## Training") < first < second < text.index("## Validation")
    assert "3000 steps, 30.0 min; validation PSNR 18.00 / 24.00 dB at -5 / 15 dB" in text
    single_run = {k: v for k, v in meta.items() if k != "lineage"}
    assert "Earlier stages" not in model_card(single_run, "plain").text()


def test_a_continued_run_records_the_runs_it_continues_and_a_warm_started_sibling_does_not(image_dir, tmp_path):
    """``--init`` from a checkpoint of the same ρ and channel continues that model: the new record's
    ``lineage`` is the old one's lineage plus the old run itself (also across an interruption). A
    warm start at another ρ is a new model: no lineage."""
    first = train_deepjscc(_settings(image_dir), tmp_path / "a", command="linksim train deepjscc --out a",
                           progress=False)
    settings_b = _settings(image_dir, init=str(tmp_path / "a"), seed=4)
    train_deepjscc(settings_b, tmp_path / "b", command="linksim train deepjscc --out b", progress=False, stop_after=2)
    second = train_deepjscc(settings_b, tmp_path / "b", command="linksim train deepjscc --out b", progress=False)
    third = train_deepjscc(_settings(image_dir, init=str(tmp_path / "b"), seed=5), tmp_path / "c", progress=False)
    sibling = train_deepjscc(_settings(image_dir, init=str(tmp_path / "b"), bcr=1 / 12), tmp_path / "d",
                             progress=False)
    assert "lineage" not in first and "lineage" not in sibling
    assert [stage["command"] for stage in second["lineage"]] == ["linksim train deepjscc --out a"]
    assert [stage["command"] for stage in third["lineage"]] == ["linksim train deepjscc --out a",
                                                                "linksim train deepjscc --out b"]
    assert third["lineage"][0] == {"command": first["command"], "steps": 4,
                                   "wall_minutes": round(first["wall_seconds"] / 60, 1),
                                   "history": first["history"][-1:]}
    assert "linksim train deepjscc --out b`: 4 steps" in (tmp_path / "c" / "MODEL_CARD.md").read_text()
