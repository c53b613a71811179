"""Training DiffJSCC's control module on a tiny base model (CPU, well under a minute)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

pytest.importorskip("diffusers")
from diffjscc_tiny import save_tiny_base, tiny_unet, tiny_vae, write_gradient_images  # noqa: E402
from diffusers import DDPMScheduler  # noqa: E402

from linksim.train import diffjscc_control  # noqa: E402
from linksim.train.diffjscc_control import TRAINING_JSON, ControlSettings, train_control  # noqa: E402
from linksim.errors import ConfigError  # noqa: E402
from linksim.restore.diffjscc import DiffJSCCPipeline  # noqa: E402
from linksim.train.state import STATE  # noqa: E402

DEEPJSCC = "deepjscc-awgn-r1_192"   # downsampling 16
SIZE = 16                          # tiny VAE halves it → 8×8 latents


def biased_unet():
    unet = tiny_unet()
    with torch.no_grad():  # a biased base ε-prediction: the control module has something clear to correct
        unet.conv_out.bias.fill_(1.0)
    return unet


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    root = tmp_path_factory.mktemp("base")
    save_tiny_base(root, tiny_vae(sample_size=SIZE), biased_unet())
    return root


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return write_gradient_images(tmp_path_factory.mktemp("images"), 3, 24, 24, seed=0)


def settings(base_folder, image_folder, **kw) -> ControlSettings:
    return ControlSettings(**{"deepjscc": DEEPJSCC, "base": str(base_folder), "data": [str(image_folder)],
                              "snr_range": (1.0, 13.0),
                              "size": SIZE, "steps": 4, "batch": 2, "lr": 1e-3, "seed": 0, "save_every": 100,
                              **kw})


def control_state(folder) -> dict:
    from safetensors.torch import load_file

    return load_file(str(folder / "model.safetensors"))


def test_trains_control_only_base_frozen_and_loads(base, data, tmp_path, monkeypatch):
    pipes = []
    build = diffjscc_control._build_pipeline

    def spy(s, device):
        pipes.append(build(s, device))
        return pipes[-1]

    monkeypatch.setattr(diffjscc_control, "_build_pipeline", spy)
    out = tmp_path / "ctrl"
    record = train_control(settings(base, data), out, progress=False)
    assert record["step"] == 4 and math_finite(record["final_loss"]) and not (out / STATE).exists()
    assert {"model.safetensors", "config.json", TRAINING_JSON, "MODEL_CARD.md"} <= {p.name for p in out.iterdir()}
    assert record["settings"]["snr_range"] == [1.0, 13.0] and record["settings"]["channel"] == "awgn"
    card = (out / "MODEL_CARD.md").read_text()
    assert DEEPJSCC in card and str(base) in card and "wall time" in card and "Loss curve" in card

    (pipe,) = pipes
    fresh = DiffJSCCPipeline.from_pretrained(base, device="cpu")
    # the base VAE and UNet: bit-identical to the folder's, and frozen
    for trained, ref in ((pipe.vae, fresh.vae), (pipe.controlled.unet, fresh.controlled.unet)):
        ref_sd = ref.state_dict()
        assert all(torch.equal(v, ref_sd[k]) for k, v in trained.state_dict().items())
        assert not any(p.requires_grad for p in trained.parameters())
    # the control module moved (its zero convs are no longer zero) and was saved
    saved = control_state(out)
    start = fresh.controlled.control.state_dict()
    assert any(not torch.equal(saved[k], start[k]) for k in start if k.startswith("zero_conv"))
    assert all(torch.equal(v, saved[k]) for k, v in pipe.controlled.control.state_dict().items())

    loaded = DiffJSCCPipeline.from_pretrained(base, out, device="cpu")
    assert all(torch.equal(v, saved[k]) for k, v in loaded.controlled.control.state_dict().items())
    x = torch.rand(1, 3, SIZE, SIZE, generator=torch.Generator().manual_seed(0))
    assert loaded.restore(x, 5.0, [torch.Generator().manual_seed(1)], steps=2).shape == (1, 3, SIZE, SIZE)
    # rerun of a finished run: nothing to do; other settings in the same folder: refused
    assert train_control(settings(base, data), out, progress=False) == record
    with pytest.raises(ConfigError) as e:
        train_control(settings(base, data, lr=2e-3), out, progress=False)
    assert e.value.field == "out"


def math_finite(v) -> bool:
    return isinstance(v, float) and np.isfinite(v)


def test_resume_is_bit_identical(base, data, tmp_path, same_threads):
    s = settings(base, data, steps=6, save_every=100)
    train_control(s, tmp_path / "once", progress=False)
    two = tmp_path / "twice"
    part = train_control(s, two, progress=False, stop_after=3)
    assert part["step"] == 3 and (two / STATE).exists()
    train_control(s, two, progress=False)
    a, b = control_state(tmp_path / "once"), control_state(two)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert not (two / STATE).exists()


def test_loss_goes_down(base, data, tmp_path):
    # the history holds the mean loss of each 5-step window (one per save)
    s5 = settings(base, data, steps=30, batch=4, lr=1e-3, save_every=5)
    rec = train_control(s5, tmp_path / "run5", progress=False)
    losses = [h["loss"] for h in rec["history"]]
    assert len(losses) == 6
    assert np.mean(losses[-2:]) < 0.85 * np.mean(losses[:2]), losses


def test_bad_settings_name_the_field(base, data, tmp_path):
    cases = [({"size": 17}, "size"), ({"size": 8}, "size"),          # VAE factor 2, DeepJSCC downsampling 16
             ({"base": str(tmp_path / "nowhere")}, "base"), ({"snr_range": (10.0, 1.0)}, "snr_range"),
             ({"steps": 0}, "steps"), ({"lr": -1.0}, "lr"), ({"data": []}, "data")]
    for kw, field in cases:
        with pytest.raises(ConfigError) as e:
            settings(base, data, **kw)
        assert e.value.field == field, (kw, e.value)
    # defaults from the checkpoint: its training SNR range and channel
    s = ControlSettings(deepjscc=DEEPJSCC, base=str(base), data=[str(data)], size=SIZE)
    assert s.snr_range == (-5.0, 15.0) and s.channel == "awgn" and s.lr == 1e-4
    # a scheduler predicting something other than ε is refused clearly
    other = tmp_path / "vbase"
    for name in ("vae", "unet"):
        (other / name).mkdir(parents=True)
        for f in (base / name).iterdir():
            (other / name / f.name).write_bytes(f.read_bytes())
    DDPMScheduler(num_train_timesteps=1000, prediction_type="v_prediction").save_pretrained(other / "scheduler")
    with pytest.raises(ConfigError, match="epsilon") as e:
        train_control(settings(other, data), tmp_path / "v", progress=False)
    assert e.value.field == "scheduler"


def test_cli_end_to_end(base, data, tmp_path, capsys):
    from linksim.cli import main

    out = tmp_path / "cli"
    rc = main(["train", "diffjscc-control", "--deepjscc", DEEPJSCC, "--base", base, "--data", data,
               "--snr-range", "0", "10", "--size", str(SIZE), "--steps", "2", "--batch", "2", "--lr", "1e-3",
               "--seed", "1", "--save-every", "1", "--out", out, "--quiet"])
    assert rc == 0 and "step 2 of 2" in capsys.readouterr().out
    record = json.loads((out / TRAINING_JSON).read_text())
    assert record["settings"]["snr_range"] == [0.0, 10.0] and record["settings"]["seed"] == 1
    assert "linksim train diffjscc-control" in record["command"]
    DiffJSCCPipeline.from_pretrained(base, out, device="cpu")
    rc = main(["train", "diffjscc-control", "--deepjscc", DEEPJSCC, "--base", base, "--data", data,
               "--snr-range", "10", "0", "--size", str(SIZE), "--out", tmp_path / "bad", "--quiet"])
    assert rc == 2 and "snr_range" in capsys.readouterr().err


def test_snr_embedding_must_be_a_bool(base, data):
    for bad in ("no", 0, None):
        with pytest.raises(ConfigError) as e:
            settings(base, data, snr_embedding=bad)
        assert e.value.field == "snr_embedding", bad
    assert settings(base, data).snr_embedding is True
    assert settings(base, data, snr_embedding=False).to_dict()["snr_embedding"] is False


def test_spatial_only_ablation_from_the_cli_with_a_named_base(base, data, tmp_path, capsys, monkeypatch):
    from linksim.cli import main

    monkeypatch.setenv("LINKSIM_CHECKPOINTS", str(base.parent))
    s = settings(base.name, data)
    assert s.base == base.name and s.base_folder == base  # the name kept for the record, the folder resolved
    with pytest.raises(ConfigError) as e:
        settings("no-such-base", data)
    assert e.value.field == "base" and "LINKSIM_CHECKPOINTS" in str(e.value)

    out = tmp_path / "spatial"
    rc = main(["train", "diffjscc-control", "--deepjscc", DEEPJSCC, "--base", base.name, "--data", data,
               "--snr-range", "0", "10", "--size", str(SIZE), "--steps", "2", "--batch", "2", "--no-snr",
               "--out", out, "--quiet"])
    assert rc == 0, capsys.readouterr().err
    record = json.loads((out / TRAINING_JSON).read_text())
    assert record["settings"]["snr_embedding"] is False and record["settings"]["base"] == base.name
    assert record["base_folder"] is None    # a name is its own record: no machine path in a card that may ship
    assert json.loads((out / "config.json").read_text())["snr_embedding"] is False
    assert not any(k.startswith("snr_embedding.") for k in control_state(out))
    assert "spatial only" in (out / "MODEL_CARD.md").read_text()
    pipe = DiffJSCCPipeline.from_pretrained(base, out, device="cpu")
    assert pipe.controlled.control.snr_embedding is None
    full = DiffJSCCPipeline.from_pretrained(base, device="cpu").controlled.control
    assert record["parameters"] == (sum(p.numel() for p in full.parameters())
                                    - sum(p.numel() for p in full.snr_embedding.parameters()))
