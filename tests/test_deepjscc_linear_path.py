"""DeepJSCC with a linear path: it starts as the linear analog code, trains its residuals, and
resumes bit for bit.

At initialization (:meth:`DeepJSCC.init_linear_path`) the residual outputs are zero, so the
model *is* a linear code: PCA coefficients of each 16×16 block, Lee–Petersen amplitudes at
the SNR, one factor s normalizing the image to ‖z‖² = kP (told to the decoder), then the
per-coefficient LMMSE estimate. At a practically noiseless SNR the LMMSE weight is 1/(s·g),
so the output is the PCA projection: computed here with :class:`LinearBasis`' own matrix
products, independently of the model's strided convolutions.
"""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load_file

from linksim.channel import make_channel
from linksim.errors import ConfigError
from linksim.jscc.linear import DEFAULT_BASIS, lee_petersen_powers, load_linear_basis, to_blocks, from_blocks
from linksim.jscc.models import DeepJSCC, DeepJSCCConfig
from linksim.train.deepjscc import DeepJSCCSettings, train_deepjscc


@pytest.fixture(scope="module")
def basis():
    return load_linear_basis(DEFAULT_BASIS)


@pytest.fixture(scope="module")
def photo():
    from skimage import data

    pixels = data.astronaut()[100:164, 150:246]  # 64×96
    return torch.from_numpy(pixels.copy()).permute(2, 0, 1)[None].float() / 255


def linear_model(basis, widths=(8, 8, 8, 8)) -> DeepJSCC:
    torch.manual_seed(0)
    model = DeepJSCC(DeepJSCCConfig(latent_channels=32, widths=widths, linear_path=True))
    model.init_linear_path(basis)
    return model.eval()


def test_at_initialization_it_is_the_pca_projection(basis, photo):
    snr = 80.0
    model = linear_model(basis)
    with torch.no_grad():
        out = model(photo, snr, make_channel("awgn"), torch.Generator().manual_seed(0))
    coefficients = basis.analyze(to_blocks(photo.double()))[..., :32]           # [1, N, 32]
    lam = basis.variances[:32].double()
    gain = torch.sqrt(lee_petersen_powers(lam, 10 ** (-snr / 10) / 2, 16.0) / lam)
    k = 32 // 2 * coefficients.shape[1]
    s = float(torch.sqrt(k / (coefficients * gain).square().sum()))
    kept = torch.zeros(1, coefficients.shape[1], 768, dtype=torch.float64)
    kept[..., :32] = coefficients
    expected = from_blocks(basis.synthesize(kept), 64, 96).clamp(0, 1)
    # float32 convolutions vs float64 products, noise at 80 dB (σ ≈ 1e-4 per symbol, × 1/(s·g)):
    # both far below one grey level
    assert float((out.double() - expected).abs().max()) < 2e-3
    assert s != pytest.approx(1.0, abs=0.05)  # the test image does exercise the normalization
    with torch.no_grad(), pytest.raises(ConfigError, match="scale"):  # told no factor: refused, not off by s
        model.decode(model.encode(photo, snr), (64, 96), snr)


def test_the_residuals_start_at_zero_and_receive_gradients(basis, photo):
    model = linear_model(basis).train()
    assert float(model.to_latent.weight.detach().abs().sum()) == 0 and float(model.to_image.weight.detach().abs().sum()) == 0
    out = model(photo, 5.0, make_channel("awgn"), torch.Generator().manual_seed(1))
    torch.nn.functional.mse_loss(out, photo).backward()
    assert float(model.to_latent.weight.grad.abs().sum()) > 0 and float(model.to_image.weight.grad.abs().sum()) > 0
    assert not any(name.startswith("linear_") for name, _ in model.named_parameters())  # frozen: buffers only
    assert {"linear_mean", "linear_components", "linear_variances"} <= set(model.state_dict())


def test_linear_path_config_is_checked_and_old_configs_mean_none():
    with pytest.raises(ConfigError, match="linear_path"):
        DeepJSCCConfig(latent_channels=32, adaptive=False, linear_path=True)
    with pytest.raises(ConfigError, match="linear_path"):
        DeepJSCCConfig(latent_channels=32, linear_path="yes")
    assert DeepJSCCConfig.from_dict({"latent_channels": 32}).linear_path is False
    with pytest.raises(ConfigError, match="linear_path"):
        DeepJSCC(DeepJSCCConfig(latent_channels=32)).init_linear_path(None)
    with pytest.raises(ConfigError, match="linear_path"):
        DeepJSCCSettings(bcr=1 / 48, data=["x"], arch="bourtsoulatze", linear_path=DEFAULT_BASIS)


def test_training_with_a_linear_path_resumes_bit_for_bit(image_dir, tmp_path, same_threads):
    settings = DeepJSCCSettings(bcr=1 / 48, data=[str(image_dir)], widths=(8, 8, 8, 8), crop=32, batch=2, steps=4,
                             save_every=2, bf16=False, seed=3, linear_path=DEFAULT_BASIS)
    train_deepjscc(settings, tmp_path / "full", progress=False)
    full = load_file(str(tmp_path / "full" / "model.safetensors"))
    out = tmp_path / "interrupted"
    train_deepjscc(settings, out, progress=False, stop_after=2)
    train_deepjscc(settings, out, progress=False)
    resumed = load_file(str(out / "model.safetensors"))
    assert set(resumed) == set(full)
    for name in full:  # same process, same kernels, same thread count: bit-identical
        assert torch.equal(resumed[name], full[name]), name
    assert float(full["to_latent.weight"].abs().sum()) > 0  # the residual did train
    config = json.loads((out / "config.json").read_text())
    assert config["config"]["linear_path"] is True and config["training"]["linear_path"] == DEFAULT_BASIS
    assert "linear path" in (out / "MODEL_CARD.md").read_text()
