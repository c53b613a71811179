"""DiffJSCC's pipeline on tiny random components (CPU, a few seconds)."""

from __future__ import annotations

import shutil

import pytest
import torch

pytest.importorskip("diffusers")
from diffjscc_tiny import save_tiny_base, tiny_unet, tiny_vae  # noqa: E402
from diffusers import DDPMScheduler  # noqa: E402

from linksim.errors import ConfigError  # noqa: E402
from linksim.restore.diffjscc import DiffJSCCPipeline, wavelet_color_fix, wavelet_decomposition  # noqa: E402
from linksim.restore.diffjscc_control import ControlledUNet, ControlModule  # noqa: E402

H = 16          # image size; the tiny VAE halves it → 8×8 latents
STEPS = 4
EPS32 = torch.finfo(torch.float32).eps


def randomize_zero_convs(control: ControlModule, seed: int = 3) -> None:
    g = torch.Generator().manual_seed(seed)
    mods = list(control.zero_convs_down) + [control.zero_conv_mid, control.snr_embedding.mlp.linear_2]
    with torch.no_grad():
        for m in mods:
            for p in m.parameters():
                p.copy_(0.1 * torch.randn(p.shape, generator=g))
        control.conv_in.weight[:, 4:].normal_(0.0, 0.1, generator=g)


def gens(*seeds: int) -> list[torch.Generator]:
    return [torch.Generator().manual_seed(s) for s in seeds]


def x_hat(batch: int = 2, seed: int = 5) -> torch.Tensor:
    return torch.rand(batch, 3, H, H, generator=torch.Generator().manual_seed(seed))


@pytest.fixture(scope="module")
def pipe() -> DiffJSCCPipeline:
    unet = tiny_unet()
    return DiffJSCCPipeline(tiny_vae(), ControlledUNet(unet), DDPMScheduler(num_train_timesteps=1000), device="cpu")


@pytest.fixture(scope="module")
def controlled_pipe() -> DiffJSCCPipeline:
    unet = tiny_unet()
    control = ControlModule.from_unet(unet)
    randomize_zero_convs(control)
    return DiffJSCCPipeline(tiny_vae(), ControlledUNet(unet, control), DDPMScheduler(num_train_timesteps=1000),
                            device="cpu")


def test_zero_init_reproduces_base_sampler_exactly(pipe, controlled_pipe):
    x = x_hat()
    out, z = pipe.restore(x, torch.tensor([0.0, 10.0]), gens(1, 2), steps=STEPS, color_fix=False, return_latents=True)
    base = pipe.sample_base(8, gens(1, 2), steps=STEPS)
    assert z.shape == (2, 4, 8, 8)
    assert torch.equal(z, base)
    assert torch.equal(out, pipe.decode(base))
    # the comparison can fail: a control module with non-zero zero convs changes the latents
    _, z2 = controlled_pipe.restore(x, torch.tensor([0.0, 10.0]), gens(1, 2), steps=STEPS, color_fix=False,
                                    return_latents=True)
    assert not torch.allclose(z2, controlled_pipe.sample_base(8, gens(1, 2), steps=STEPS), atol=1e-4)


def test_reproducible_and_batch_equals_singles(controlled_pipe):
    p, x, snr = controlled_pipe, x_hat(), torch.tensor([3.0, 12.0])
    a = p.restore(x, snr, gens(1, 2), steps=STEPS)
    assert torch.equal(a, p.restore(x, snr, gens(1, 2), steps=STEPS))
    assert not torch.allclose(a, p.restore(x, snr, gens(7, 8), steps=STEPS), atol=1e-4)
    # A batch of 2 and two batches of 1 run other conv/GEMM/attention kernels (which ones depends on the
    # CPU), and the pipeline is float32 only. Worst case per network evaluation: K·eps for a float32 sum
    # of K terms (K = 64 channels × 3×3 taps, the widest conv), growing linearly over the STEPS UNet and
    # 2 VAE evaluations, on values of scale 1: ≈ 4e-4. Seen: ≤ 1e-5 (latents), ≤ 2e-6 (images).
    tol = 64 * 9 * EPS32 * (STEPS + 2)
    singles = torch.cat([p.restore(x[i:i + 1], snr[i:i + 1], gens(i + 1), steps=STEPS) for i in range(2)])
    torch.testing.assert_close(a, singles, rtol=0, atol=tol)
    # a batching bug is far outside it: each image sampled with the other one's noise
    swapped = torch.cat([p.restore(x[i:i + 1], snr[i:i + 1], gens(2 - i), steps=STEPS) for i in range(2)])
    assert float((a - swapped).abs().max()) > 100 * tol


def test_output_shape_range_and_input_checks(controlled_pipe):
    p = controlled_pipe
    for fix in (True, False):
        out = p.restore(x_hat(), 5.0, gens(1, 2), steps=STEPS, color_fix=fix)
        assert out.shape == (2, 3, H, H) and out.dtype == torch.float32
        assert out.min() >= 0.0 and out.max() <= 1.0
    for bad in (torch.rand(2, 3, 15, 16), torch.rand(2, 1, 16, 16), torch.rand(3, 16, 16), "image"):
        with pytest.raises(ConfigError) as e:
            p.restore(bad, 5.0, gens(1, 2), steps=STEPS)
        assert e.value.field == "x_hat"
    with pytest.raises(ConfigError, match="text encoder") as e:
        p.restore(x_hat(), 5.0, gens(1, 2), captions="a photo of a cat", steps=STEPS)
    assert e.value.field == "captions"
    with pytest.raises(ConfigError) as e:
        p.restore(x_hat(), 5.0, gens(1, 2), text_features=torch.zeros(2, 77, 16), steps=STEPS)
    assert e.value.field == "text_features"
    # empty captions = null text = zeros [B, 77, D]; precomputed features change the output
    null = p.text_features(2, ["", None])
    assert torch.equal(null, torch.zeros(2, 77, 32))
    a = p.restore(x_hat(), 5.0, gens(1, 2), captions=["", ""], steps=STEPS)
    assert torch.equal(a, p.restore(x_hat(), 5.0, gens(1, 2), steps=STEPS))
    text = torch.randn(1, 7, 32, generator=torch.Generator().manual_seed(0))
    assert not torch.allclose(a, p.restore(x_hat(), 5.0, gens(1, 2), text_features=text, steps=STEPS), atol=1e-4)


def test_wavelet_color_fix():
    g = torch.Generator().manual_seed(0)
    img, ref = torch.rand(2, 3, 16, 16, generator=g), torch.rand(2, 3, 16, 16, generator=g)
    high, low = wavelet_decomposition(img)
    # float32 on [0, 1] images: sums and blurs of a few terms round by ≲ 10 eps ≈ 1e-6 (seen ≤ 2e-7); 1e-5 here and below
    torch.testing.assert_close(high + low, img, rtol=0, atol=1e-5)
    const = torch.full((1, 3, 16, 16), 0.3)
    torch.testing.assert_close(wavelet_decomposition(const)[1], const)   # the blur keeps constants
    fixed = wavelet_color_fix(img, ref)
    # a colour shift (a constant per channel) of the content is undone: its details stay, x̂'s colours return
    shift = torch.tensor([0.2, -0.1, 0.05]).view(1, 3, 1, 1)
    torch.testing.assert_close(wavelet_color_fix(img + shift, img), img, rtol=0, atol=1e-5)
    torch.testing.assert_close(wavelet_color_fix(img, ref + shift), fixed + shift, rtol=0, atol=1e-5)
    torch.testing.assert_close(fixed.mean(dim=(2, 3)), ref.mean(dim=(2, 3)), rtol=0, atol=0.05)
    torch.testing.assert_close(wavelet_color_fix(img, img), img, rtol=0, atol=1e-5)


def test_from_pretrained_offline(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    unet, vae, sched = tiny_unet(), tiny_vae(), DDPMScheduler(num_train_timesteps=1000)
    base = save_tiny_base(tmp_path / "base", vae, unet, sched)
    ref = DiffJSCCPipeline(vae, ControlledUNet(unet), sched, device="cpu")

    loaded = DiffJSCCPipeline.from_pretrained(base, device="cpu")
    assert loaded.text_encoder is None and "text_encoder" in loaded.text_unavailable
    x = x_hat()
    expected = ref.restore(x, 5.0, gens(1, 2), steps=STEPS)
    assert torch.equal(loaded.restore(x, 5.0, gens(1, 2), steps=STEPS), expected)

    # a saved control module loads and its weights are the ones used
    control = ControlModule.from_unet(unet)
    randomize_zero_convs(control)
    control.save(tmp_path / "ctrl")
    with_ctrl = DiffJSCCPipeline.from_pretrained(base, tmp_path / "ctrl", device="cpu")
    sd = control.state_dict()
    assert all(torch.equal(v, sd[k]) for k, v in with_ctrl.controlled.control.state_dict().items())
    direct = DiffJSCCPipeline(vae, ControlledUNet(unet, control), sched, device="cpu")
    got = with_ctrl.restore(x, 5.0, gens(1, 2), steps=STEPS)
    assert torch.equal(got, direct.restore(x, 5.0, gens(1, 2), steps=STEPS))
    assert not torch.allclose(got, expected, atol=1e-4)

    with pytest.raises(ConfigError) as e:
        DiffJSCCPipeline.from_pretrained(base, tmp_path / "nowhere", device="cpu")
    assert e.value.field == "control"
    with pytest.raises(ConfigError) as e:
        DiffJSCCPipeline.from_pretrained(tmp_path / "missing-base", device="cpu")
    assert e.value.field == "base_folder"
    (base / "unet" / "diffusion_pytorch_model.safetensors").unlink()
    with pytest.raises(ConfigError) as e:
        DiffJSCCPipeline.from_pretrained(base, device="cpu")
    assert e.value.field == "unet"
    shutil.rmtree(base / "vae")
    with pytest.raises(ConfigError) as e:
        DiffJSCCPipeline.from_pretrained(base, device="cpu")
    assert e.value.field == "vae" and str(base / "vae") in str(e.value)


def test_condition_snr_and_text_encoder_reach_the_sampler(controlled_pipe):
    p, x = controlled_pipe, x_hat()
    _, z = p.restore(x, 5.0, gens(1, 2), steps=STEPS, return_latents=True)
    _, z_x = p.restore(x_hat(seed=6), 5.0, gens(1, 2), steps=STEPS, return_latents=True)
    _, z_snr = p.restore(x, 15.0, gens(1, 2), steps=STEPS, return_latents=True)
    assert not torch.allclose(z, z_x, atol=1e-4) and not torch.allclose(z, z_snr, atol=1e-4)

    class Tokens:  # what a transformers tokenizer returns (only input_ids is read)
        def __init__(self, ids):
            self.input_ids = ids

    class FakeTokenizer:  # CLIP-style call signature
        model_max_length = 6

        def __call__(self, texts, padding, max_length, truncation, return_tensors):
            assert padding == "max_length" and truncation and return_tensors == "pt"
            return Tokens(torch.tensor([[len(t) % 50] * max_length for t in texts]))

    class FakeEncoder(torch.nn.Module):  # returns (last_hidden_state,) like CLIPTextModel
        def __init__(self):
            super().__init__()
            self.emb = torch.nn.Embedding(50, 32)

        def forward(self, ids):
            return (self.emb(ids),)

    torch.manual_seed(0)
    with_text = DiffJSCCPipeline(p.vae, p.controlled, p.scheduler, FakeEncoder(), FakeTokenizer(), device="cpu")
    feats = with_text.text_features(2, ["a cat", "a dog on grass"])
    assert feats.shape == (2, 6, 32) and not torch.equal(feats[0], feats[1])
    out = with_text.restore(x, 5.0, gens(1, 2), captions="a cat", steps=STEPS)
    assert torch.equal(out, with_text.restore(x, 5.0, gens(1, 2), text_features=feats[:1], steps=STEPS))


def test_latent_guidance_pulls_the_clean_latent_to_the_condition(controlled_pipe):
    """ẑ₀ ← ẑ₀ − λ(ẑ₀ − z_c): with λ = 1 the sampler returns z_c itself (the core returns the last
    corrected ẑ₀); with λ = 0.5 the result lies closer to z_c than the unguided one."""
    p, x, snr = controlled_pipe, x_hat(), torch.tensor([3.0, 12.0])
    cond = p.encode(x)
    _, z_free = p.restore(x, snr, gens(1, 2), steps=STEPS, color_fix=False, return_latents=True)
    _, z_full = p.restore(x, snr, gens(1, 2), steps=STEPS, color_fix=False, latent_guidance=1.0, return_latents=True)
    _, z_half = p.restore(x, snr, gens(1, 2), steps=STEPS, color_fix=False, latent_guidance=0.5, return_latents=True)
    # λ = 1: ẑ₀ − (ẑ₀ − z_c) is z_c up to two roundings of these small latents (seen: 1e-9)
    torch.testing.assert_close(z_full, cond, rtol=0, atol=1e-6)
    assert (z_half - cond).norm() < 0.75 * (z_free - cond).norm()
    for bad in (-0.1, 1.5, True, "strong"):
        with pytest.raises(ConfigError) as err:
            p.restore(x, snr, gens(1, 2), steps=STEPS, latent_guidance=bad)
        assert err.value.field == "latent_guidance"
