"""Training the small latent-diffusion base model of DiffJSCC (``linksim train diffjscc-base``), tiny and on the CPU."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

pytest.importorskip("diffusers")
from diffjscc_tiny import write_gradient_images  # noqa: E402
from safetensors.torch import load_file  # noqa: E402

from linksim import zoo  # noqa: E402
from linksim.cli import main  # noqa: E402
from linksim.errors import ConfigError  # noqa: E402
from linksim.restore.diffjscc import DiffJSCCPipeline  # noqa: E402
from linksim.train.diffjscc_base import BASE_KIND, BaseSettings, train_base  # noqa: E402
from linksim.restore.specs import validate_spec  # noqa: E402
from linksim.crops import ResizedCrops  # noqa: E402
from linksim.seeding import point_generator  # noqa: E402

VAE_WEIGHTS = "vae/diffusion_pytorch_model.safetensors"
UNET_WEIGHTS = "unet/diffusion_pytorch_model.safetensors"


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    """Four smooth 20×28 colour images with a little noise (the crops are 16² at their own scale)."""
    return write_gradient_images(tmp_path_factory.mktemp("images"), 4, 20, 28, seed=1)


def tiny(images, **kw) -> BaseSettings:
    return BaseSettings(**{"data": [str(images)], "crop": 16, "vae_channels": (8, 16), "latent_channels": 4,
                           "unet_channels": (16, 32), "text_dim": 8, "vae_steps": 4, "vae_batch": 4, "unet_steps": 4,
                           "unet_batch": 4, "vae_lr": 1e-3, "unet_lr": 1e-3, "save_every": 2, **kw})


def test_writes_a_diffusers_base_that_the_pipeline_and_scenarios_load(data, tmp_path, monkeypatch):
    out = tmp_path / "ckpts" / "tiny-base"
    record = train_base(tiny(data), out, progress=False)
    assert record["kind"] == BASE_KIND and record["vae"]["done"] and record["unet"]["done"]
    assert record["vae"]["step"] == 4 and record["unet"]["step"] == 4
    assert not (out / ".vae-run").exists() and not (out / ".unet-run").exists()  # no resumable state left
    pipe = DiffJSCCPipeline.from_pretrained(out, device="cpu")
    assert pipe.downsampling == 2 and pipe.cross_attention_dim == 8
    assert pipe.scheduler.config.beta_schedule == "scaled_linear" and pipe.scheduler.config.prediction_type == "epsilon"
    x_hat = torch.rand(1, 3, 16, 16, generator=torch.Generator().manual_seed(0))
    y = pipe.restore(x_hat, 5.0, [point_generator(0, 0)], steps=3)
    assert y.shape == (1, 3, 16, 16) and torch.isfinite(y).all()
    # by name, as a shipped checkpoint would be found
    monkeypatch.setenv("LINKSIM_CHECKPOINTS", str(out.parent))
    assert "tiny-base" in zoo.available(BASE_KIND)
    spec = validate_spec({"type": "diffjscc", "base": "tiny-base", "steps": 3}, "restorers[0]")
    assert spec["base"] == "tiny-base"
    assert "Loss curve" in (out / zoo.CARD).read_text()


def test_latent_scaling_gives_unit_variance(data, tmp_path):
    """SD's scaling factor: 1/std of the VAE's latent modes, so z·scale has std ≈ 1 on fresh crops."""
    out = tmp_path / "base"
    train_base(tiny(data, unet_steps=1), out, progress=False)
    pipe = DiffJSCCPipeline.from_pretrained(out, device="cpu")
    crops = ResizedCrops([str(data)], 16, keep_scale=True)
    x = crops.sample(256, torch.Generator().manual_seed(123))
    z = pipe.encode(x)  # (mode − shift) · scaling_factor
    assert abs(z.std().item() - 1.0) < 0.2


def test_vae_reconstruction_improves(data, tmp_path):
    """The VAE phase learns: mean MSE of the last logged steps well below the first."""
    record = train_base(tiny(data, vae_steps=60, unet_steps=1, save_every=10), tmp_path / "b", progress=False)
    h = record["vae"]["history"]
    assert h[-1]["loss"] < 0.5 * h[0]["loss"]
    assert record["vae"]["crop_psnr_db"] > 10 * np.log10(1 / h[0]["loss"])


def test_resume_is_bit_identical(data, tmp_path, same_threads):
    settings = tiny(data)
    train_base(settings, tmp_path / "whole", progress=False)
    part = tmp_path / "part"
    train_base(settings, part, progress=False, stop_after=3)  # stops inside the VAE phase
    assert (part / ".vae-run").exists() and not (part / "unet").exists()
    train_base(settings, part, progress=False, stop_after=3)  # finishes the VAE, stops inside the UNet phase
    assert (part / ".unet-run").exists()
    train_base(settings, part, progress=False)
    for weights in (VAE_WEIGHTS, UNET_WEIGHTS):
        a, b = load_file(str(tmp_path / "whole" / weights)), load_file(str(part / weights))
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a), weights
    assert json.loads((part / "config.json").read_text())["vae"]["scaling_factor"] == \
        json.loads((tmp_path / "whole" / "config.json").read_text())["vae"]["scaling_factor"]


@pytest.mark.parametrize("field, value", [
    ("crop", 18), ("vae_channels", (8, 12)), ("unet_channels", (16,)), ("vae_lr", -1.0), ("kl_weight", -1e-3),
    ("ema", 1.0), ("vae_steps", 0), ("bf16", "yes"), ("data", []),
])
def test_bad_settings_name_the_field(data, field, value):
    with pytest.raises(ConfigError) as err:
        tiny(data, **{field: value})
    assert err.value.field == field


def test_refuses_another_runs_folder_and_an_unknown_device(data, tmp_path):
    train_base(tiny(data, vae_steps=2, unet_steps=1), tmp_path / "b", progress=False, stop_after=1)
    with pytest.raises(ConfigError) as err:
        train_base(tiny(data, vae_steps=3, unet_steps=1), tmp_path / "b", progress=False)
    assert err.value.field == "out"
    with pytest.raises(ConfigError) as err:
        train_base(tiny(data), tmp_path / "c", progress=False, device="tpu")
    assert err.value.field == "device"


def test_cli_end_to_end(data, tmp_path, capsys):
    out = tmp_path / "cli-base"
    code = main(["train", "diffjscc-base", "--data", str(data), "--crop", "16", "--vae-channels", "8", "16",
                 "--unet-channels", "16", "32", "--text-dim", "8", "--vae-steps", "2", "--vae-batch", "2",
                 "--unet-steps", "2", "--unet-batch", "2", "--out", str(out), "--quiet"])
    assert code == 0
    assert "UNet step 2 of 2" in capsys.readouterr().out
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["command"].startswith("linksim train diffjscc-base") and cfg["training"]["crop"] == 16
