"""``linksim train prior``: the folder it writes loads everywhere, resume is bit-identical,
other settings are refused. Tiny UNets (8/16 channels, 16×16) trained for 2–3 steps."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load_file

from linksim import zoo
from linksim.cli import main
from linksim.errors import ConfigError
from linksim.restore import inspect_prior, load_prior
from linksim.crops import ResizedCrops
from linksim.train.prior import PriorSettings, train_prior
from linksim.train.state import STATE


def tiny_settings(prior_images, **changes) -> PriorSettings:
    values = dict(data=[str(prior_images)], size=16, channels=(8, 16), layers_per_block=1, attention_res=0,
                  steps=3, batch=2, ema=0.9)
    values.update(changes)
    return PriorSettings(**values)


def test_tiny_prior_folder_loads_by_path_and_by_name(tiny_prior, monkeypatch, capsys):
    names = sorted(p.relative_to(tiny_prior).as_posix() for p in tiny_prior.rglob("*") if p.is_file())
    assert names == ["MODEL_CARD.md", "config.json", "model_index.json", "scheduler/scheduler_config.json",
                     "unet/config.json", "unet/diffusion_pytorch_model.safetensors"]  # no train_state, no pickle
    meta = json.loads((tiny_prior / "config.json").read_text())
    assert meta["kind"] == "ddpm-prior" and meta["step"] == 2 and meta["data_images"] == 3
    assert meta["config"]["sample_size"] == 16 and meta["training"]["channels"] == [8, 16]
    assert json.loads((tiny_prior / "model_index.json").read_text())["_class_name"] == "DDPMPipeline"
    card = (tiny_prior / "MODEL_CARD.md").read_text()
    assert "(tests)" in card and "3 image(s)" in card and "2 of 2 steps" in card and "cannot do" in card

    prior = load_prior(tiny_prior, device="cpu")
    assert prior.image_shape == (3, 16, 16)
    cfg = prior.scheduler.config
    assert (cfg.num_train_timesteps, cfg.beta_start, cfg.beta_end, cfg.beta_schedule, cfg.prediction_type) == (
        1000, 1e-4, 0.02, "linear", "epsilon")
    assert inspect_prior(tiny_prior).weights == tiny_prior / "unet" / "diffusion_pytorch_model.safetensors"

    monkeypatch.setenv("LINKSIM_CHECKPOINTS", str(tiny_prior.parent))
    assert "tiny-prior-16" in zoo.available("ddpm-prior")
    assert zoo.resolve_prior("tiny-prior-16") == tiny_prior
    assert zoo.resolve("tiny-prior-16") == tiny_prior  # name → folder, like every checkpoint
    with pytest.raises(ConfigError, match=r"prior: got 'no-such-prior'.*tiny-prior-16"):
        zoo.resolve_prior("no-such-prior")
    assert main(["models"]) == 0
    assert "tiny-prior-16" in capsys.readouterr().out


def test_resume_after_stop_is_bit_identical(tmp_path, prior_images, same_threads):
    settings = tiny_settings(prior_images)
    whole = train_prior(settings, tmp_path / "whole", progress=False, keep_state=True)
    assert whole["step"] == 3
    parts = tmp_path / "parts"
    assert train_prior(settings, parts, progress=False, stop_after=1)["step"] == 1
    assert (parts / STATE).exists()
    with pytest.raises(ConfigError, match="different settings"):  # another lr: refused, nothing touched
        train_prior(tiny_settings(prior_images, lr=1e-3), parts, progress=False)
    assert train_prior(settings, parts, progress=False, stop_after=1)["step"] == 2
    assert train_prior(settings, parts, progress=False, keep_state=True)["step"] == 3
    for name in ("unet/diffusion_pytorch_model.safetensors", STATE):
        a, b = load_file(str(tmp_path / "whole" / name)), load_file(str(parts / name))
        assert a.keys() == b.keys()
        assert all(torch.equal(a[k], b[k]) for k in a), name
    ema, trained = load_file(str(parts / "unet/diffusion_pytorch_model.safetensors")), load_file(str(parts / STATE))
    assert any(not torch.equal(v, trained[f"model.{k}"]) for k, v in ema.items())  # the export is the EMA

    # a finished folder: the same settings return at once, others are refused
    assert train_prior(settings, tmp_path / "whole", progress=False)["step"] == 3
    with pytest.raises(ConfigError, match="finished"):
        train_prior(tiny_settings(prior_images, steps=4), tmp_path / "whole", progress=False)


def test_crops_are_resized_square_and_flipped(prior_images):
    crops = ResizedCrops([str(prior_images)], 16)
    assert sorted(tuple(img.shape) for img in crops.images) == [(3, 16, 21), (3, 16, 32), (3, 32, 16)]
    x = crops.sample(6, torch.Generator().manual_seed(0))
    assert x.shape == (6, 3, 16, 16) and x.dtype == torch.float32 and 0 <= float(x.min()) and float(x.max()) <= 1
    assert torch.equal(x, crops.sample(6, torch.Generator().manual_seed(0)))


@pytest.mark.parametrize("change, field", [({"size": 15}, "size"), ({"channels": ()}, "channels"),
                                           ({"ema": 1.0}, "ema"), ({"lr": 0}, "lr"), ({"data": []}, "data")])
def test_bad_settings_are_refused(prior_images, change, field):
    with pytest.raises(ConfigError) as caught:
        tiny_settings(prior_images, **change)
    assert caught.value.field == field


def test_cli_trains_a_prior_and_refuses_bad_input(tmp_path, prior_images, capsys):
    out = tmp_path / "cli-prior"
    args = ["train", "prior", "--data", str(prior_images), "--size", "16", "--channels", "8", "16",
            "--layers-per-block", "1", "--attention-res", "16", "--steps", "1", "--batch", "2", "--quiet"]
    assert main(args + ["--out", str(out)]) == 0
    meta = zoo.read_config(out)
    assert meta["step"] == 1 and meta["config"]["down_block_types"] == ["AttnDownBlock2D", "AttnDownBlock2D"]
    assert "linksim train prior --data" in (out / "MODEL_CARD.md").read_text()
    assert load_prior(out, device="cpu").image_shape == (3, 16, 16)
    capsys.readouterr()
    assert main(args[:5] + ["15"] + args[6:] + ["--out", str(tmp_path / "never")]) == 2
    assert "size: got 15" in capsys.readouterr().err
    assert main(args[:3] + [str(tmp_path / "nowhere")] + args[4:] + ["--out", str(tmp_path / "never")]) == 2
    assert "nowhere" in capsys.readouterr().err
    assert not (tmp_path / "never").exists()
