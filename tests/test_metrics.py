"""Metrics against closed forms and the reference library; LPIPS gating."""

from __future__ import annotations

import math
import warnings

import pytest
import torch

from linksim import metrics as M
from linksim.errors import ImageError


def _img(b=2, h=64, w=80, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(b, 3, h, w, generator=g)


@pytest.mark.parametrize("delta", [0.5, 0.1, 0.01, 1 / 255])
def test_psnr_constant_offset(delta):
    x = _img() * 0.4
    assert torch.allclose(M.psnr(x, x + delta), torch.full((2,), 20 * math.log10(1 / delta)), atol=1e-4)
    assert torch.allclose(M.psnr(255 * x, 255 * x + 255 * delta, data_range=255),
                          torch.full((2,), 20 * math.log10(1 / delta)), atol=1e-4)


def test_psnr_per_image_and_inf():
    x = _img()
    y = x.clone()
    y[1] += 0.1
    p = M.psnr(x, y)
    assert p.shape == (2,) and p.dtype == torch.float32
    assert math.isinf(p[0]) and p[0] > 0 and abs(p[1] - 20.0) < 1e-4
    with pytest.raises(ImageError, match="same shape"):
        M.psnr(x, y[:, :, :10])


def test_ms_ssim_identity_and_noise():
    x = _img(b=1, h=168, w=176)
    assert torch.allclose(M.ms_ssim(x, x), torch.ones(1), atol=1e-6)
    g = torch.Generator().manual_seed(1)
    noise = torch.randn(x.shape, generator=g)
    vals = [M.ms_ssim(x, (x + s * noise).clamp(0, 1)).mean().item() for s in (0.01, 0.05, 0.2)]
    assert 1 > vals[0] > vals[1] > vals[2] > 0


def test_ms_ssim_five_scales_is_the_library():
    from pytorch_msssim import ms_ssim
    x = _img(h=161, w=170)
    y = (x + 0.05 * torch.randn_like(x)).clamp(0, 1)
    # another implementation of the same float32 arithmetic (identical here); rtol 1e-5 ≈ 80 eps on values ≤ 1
    assert torch.allclose(M.ms_ssim(x, y), ms_ssim(x, y, data_range=1.0, size_average=False))


@pytest.mark.parametrize("side,scales", [(11, 1), (20, 1), (21, 2), (41, 3), (81, 4), (160, 4), (161, 5)])
def test_ms_ssim_small_images(side, scales):
    assert M._ms_ssim_scales(side) == scales
    x = _img(b=1, h=side, w=side + 5)
    assert torch.allclose(M.ms_ssim(x, x), torch.ones(1), atol=1e-6)
    y = (x + 0.1 * torch.randn_like(x)).clamp(0, 1)
    v = M.ms_ssim(x, y)
    assert v.shape == (1,) and 0 < v.item() < 1


def test_ms_ssim_fewer_scales_matches_the_loop():
    # our loop with all five weights reproduces the library, so the renormalized variant is the same algorithm
    x = _img(b=1, h=170, w=170)
    y = (x + 0.05 * torch.randn_like(x)).clamp(0, 1)
    one_scale = M.ms_ssim(x[..., :20, :20], y[..., :20, :20])
    from pytorch_msssim import ssim
    assert torch.allclose(one_scale, ssim(x[..., :20, :20], y[..., :20, :20], data_range=1.0, size_average=False),
                          atol=1e-6)


def test_ms_ssim_too_small():
    x = _img(b=1, h=10, w=40)
    with pytest.raises(ImageError, match="11 px"):
        M.ms_ssim(x, x)


def test_backbone_urls_match_torchvision():
    import torchvision.models as tvm
    for net, enum in [("alex", tvm.AlexNet_Weights), ("vgg", tvm.VGG16_Weights),
                      ("squeeze", tvm.SqueezeNet1_1_Weights)]:
        assert M.backbone_weights_path(net)[1] == enum.IMAGENET1K_V1.url


def test_lpips_missing_weights_warns_once(tmp_path, monkeypatch):
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path))
    M._reset_lpips_state()
    x = _img()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert M.lpips(x, x) is None
        assert M.lpips(x, x) is None
        assert M.LPIPS("alex")(x, x) is None
    msgs = [w for w in caught if issubclass(w.category, M.MissingWeightsWarning)]
    assert len(msgs) == 1
    text = str(msgs[0].message)
    assert "alexnet-owt-7be5be79.pth" in text and str(tmp_path / "checkpoints") in text
    M._reset_lpips_state()


def test_lpips_loads_the_checkpoint_file(tmp_path, monkeypatch):
    """The trunk gets exactly the parameters of the checkpoint file (here a stand-in with random values)."""
    import torchvision
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path))
    M._reset_lpips_state()
    torch.manual_seed(0)
    ref = torchvision.models.alexnet(weights=None)
    (tmp_path / "checkpoints").mkdir()
    torch.save(ref.state_dict(), tmp_path / "checkpoints" / "alexnet-owt-7be5be79.pth")
    metric = M.LPIPS("alex")
    assert metric.available
    trunk = dict(metric.model.net.named_parameters())
    for name, p in ref.features.named_parameters():
        idx = name.split(".")[0]
        match = [v for k, v in trunk.items() if k.split(".", 1)[1] == name]
        assert len(match) == 1 and torch.equal(match[0], p), idx
    x = _img(h=64, w=64)
    d = M.lpips(x, x)
    assert d.shape == (2,) and torch.allclose(d, torch.zeros(2), atol=1e-6)
    d2 = M.lpips(x, (x + 0.2 * torch.randn_like(x)).clamp(0, 1))
    assert (d2 > 0).all()
    M._reset_lpips_state()


def test_metric_suite(tmp_path, monkeypatch):
    from linksim.errors import ConfigError
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path))
    M._reset_lpips_state()
    x = _img(h=32, w=40)
    y = (x + 0.1).clamp(0, 1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        scores = M.MetricSuite(["psnr", "ms_ssim", "lpips"])(x, y)
    assert list(scores) == ["psnr", "ms_ssim", "lpips"]
    assert scores["psnr"] == pytest.approx(M.psnr(x, y).tolist())
    assert all(isinstance(v, float) and 0 < v < 1 for v in scores["ms_ssim"])
    assert scores["lpips"] == [None, None]
    assert M.MetricSuite(["psnr"])(x[..., :5, :5], y[..., :5, :5])["psnr"][0] > 0
    assert M.MetricSuite(["ms_ssim"])(x[..., :5, :5], y[..., :5, :5]) == {"ms_ssim": [None, None]}
    with pytest.raises(ConfigError, match="metrics"):
        M.MetricSuite(["nonsense"])
    M._reset_lpips_state()
