"""The ``diffjscc`` restorer type in scenarios: registry validation, the runner end to end, control.

A tiny untrained DeepJSCC (downsampling 16) on 16×16 crops of a photograph and a tiny random
latent diffusion base (VAE factor 2 → 8×8 latents, as in test_diffjscc_pipeline.py); 3 steps.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch

pytest.importorskip("diffusers")
from diffjscc_tiny import save_tiny_base  # noqa: E402
from diffusers import UNet2DConditionModel  # noqa: E402

from linksim.channel import make_channel  # noqa: E402
from linksim.data import load_images, to_tensor  # noqa: E402
from linksim.errors import ConfigError  # noqa: E402
from linksim.jscc import DeepJSCCScheme  # noqa: E402
from linksim.link import Bandwidth  # noqa: E402
from linksim.metrics import psnr  # noqa: E402
from linksim.restore import make_restorer  # noqa: E402
from linksim.restore.diffjscc_control import ControlModule  # noqa: E402
from linksim.restore.specs import validate_spec, weights_digest  # noqa: E402
from linksim.restore.specs import TYPES  # noqa: E402
from linksim.results import COLUMNS, read_results  # noqa: E402
from linksim.runner import restore_points  # noqa: E402
from linksim.scenario import parse_scenario  # noqa: E402
from linksim.seeding import point_generator  # noqa: E402
from restorer_scenarios import assert_restorer_rows_recompute, ckpt, images, quiet_run  # noqa: E402,F401 (fixtures)

STEPS = 3


@pytest.fixture()
def base(tmp_path) -> Path:
    """A tiny diffusers base folder: vae/ (factor 2), unet/, scheduler/."""
    return save_tiny_base(tmp_path / "base")


@pytest.fixture()
def control(tmp_path, base) -> Path:
    """A control module whose zero convs (and SNR embedding's last layer) are non-zero, saved."""
    module = ControlModule.from_unet(UNet2DConditionModel.from_pretrained(base / "unet"))
    g = torch.Generator().manual_seed(3)
    with torch.no_grad():
        for m in list(module.zero_convs_down) + [module.zero_conv_mid, module.snr_embedding.mlp.linear_2]:
            for p in m.parameters():
                p.copy_(0.1 * torch.randn(p.shape, generator=g))
    module.save(tmp_path / "ctrl")
    return tmp_path / "ctrl"


def scenario_dict(ckpt, images, out, base_folder, **restorer) -> dict:
    return {"name": "tiny-diffjscc", "seed": 4, "images": str(images), "channel": "awgn", "snr_db": [0, 5],
            "trials": 1, "bandwidth": {"bcr": "1/48"},
            "schemes": [{"name": "DeepJSCC", "type": "deepjscc", "model": str(ckpt)}],
            "restorers": [{"type": "diffjscc", "base": str(base_folder), "steps": STEPS, **restorer}],
            "metrics": ["psnr"], "grid": {"snr_db": [0], "images": 1}, "output": str(out)}


def x_hat_of(ckpt, images, snr: float = 5.0) -> tuple[torch.Tensor, torch.Tensor]:
    x = to_tensor(load_images(str(images), limit=1))
    scheme = DeepJSCCScheme("DeepJSCC", Bandwidth(bcr=1 / 48), ckpt)
    return x, scheme.run(x, snr, make_channel("awgn"), point_generator(4, "DeepJSCC", "a", snr, 0)).x_hat


# ----------------------------------------------------------------------------- end to end

def test_diffjscc_rows_end_to_end_and_reproducible(tmp_path, ckpt, images, base):
    assert "diffjscc" in TYPES
    scenario = parse_scenario(scenario_dict(ckpt, images, tmp_path / "out", base))
    spec = scenario.restorers[0]
    assert spec == {"name": "DiffJSCC", "type": "diffjscc", "base": str(base), "control": None, "steps": STEPS,
                    "color_fix": True, "captions": None, "batch": 8, "after": ["DeepJSCC"]}
    assert set(scenario.fingerprint()["priors"]) == {"DiffJSCC"}
    result = quiet_run(scenario, plots=False)
    rows = read_results(result.results_csv)
    assert list(rows[0]) == COLUMNS and len(rows) == 2 * 2 * 2  # images × SNRs × (x̂, x̃)
    assert sorted({r["restorer"] or "" for r in rows}) == ["", "DiffJSCC"]
    raw = {(r["image"], r["snr_db"]): r for r in rows if r["restorer"] is None}
    for r in (r for r in rows if r["restorer"] == "DiffJSCC"):
        assert r["psnr"] is not None and r["psnr"] != raw[(r["image"], r["snr_db"])]["psnr"]
    assert (result.out / "images" / "DeepJSCC+DiffJSCC" / "a__snr+0.png").exists()

    # the runner's point, recomputed by a direct call twice: identical, and the row's PSNR
    x, x_hat = x_hat_of(ckpt, images)
    restorer = make_restorer({k: v for k, v in spec.items() if k != "after"}, progress=False)
    assert restorer.label == "DiffJSCC" and restorer.batch == 8 and restorer.device == torch.device(restorer.device)
    first = restore_points(restorer, 4, "DeepJSCC", "a", 5.0, [0], x_hat)
    assert first.shape == x_hat.shape and 0 <= float(first.min()) and float(first.max()) <= 1
    assert torch.equal(first, restore_points(restorer, 4, "DeepJSCC", "a", 5.0, [0], x_hat))
    row = next(r for r in rows if (r["image"], r["snr_db"], r["restorer"]) == ("a", 5.0, "DiffJSCC"))
    # the same point in a batch of one both times (same kernels); results.csv keeps 6 decimals
    assert row["psnr"] == pytest.approx(float(psnr(x, first.clamp(0, 1))[0]), abs=1e-4)

    # resume: nothing to do; restored rows removed → recomputed with identical numbers
    assert_restorer_rows_recompute(scenario, result.results_csv, "DiffJSCC", 4)


def test_image_sizes_the_vae_cannot_take_are_refused(base):
    restorer = make_restorer({"type": "diffjscc", "base": str(base), "steps": 1, "device": "cpu"}, progress=False)
    restorer.check((3, 16, 32))
    for shape in ((3, 15, 16), (1, 16, 16)):
        with pytest.raises(ConfigError) as caught:
            restorer.check(shape)
        assert caught.value.field == "image_size" and "DiffJSCC" in str(caught.value)
    with pytest.raises(ConfigError) as caught:
        restorer.restore(torch.rand(1, 3, 15, 16), [0.0], [torch.Generator().manual_seed(0)])
    assert caught.value.field == "image_size" and "multiples of 2" in str(caught.value)


# ----------------------------------------------------------------------------- validation

def test_bad_diffjscc_fields_are_refused_at_load(tmp_path, ckpt, images, base):
    no_weights = tmp_path / "ctrl-no-weights"
    no_weights.mkdir()
    (no_weights / "config.json").write_text("{}")
    cases = [
        ({"base": str(tmp_path / "nowhere")}, "restorers[0].base", ["no such folder"]),
        ({"base": None}, "restorers[0].base", ["vae/"]),
        ({"control": str(no_weights)}, "restorers[0].control", ["model.safetensors"]),
        ({"control": str(tmp_path / "no-ctrl")}, "restorers[0].control", ["no such folder"]),
        ({"steps": 0}, "restorers[0].steps", ["≤ 1000"]),
        ({"steps": 1001}, "restorers[0].steps", ["≤ 1000"]),
        ({"color_fix": "yes"}, "restorers[0].color_fix", ["true"]),
        ({"captions": 3}, "restorers[0].captions", ["string"]),
        ({"captions": "a photo"}, "restorers[0].captions", ["text_encoder"]),
        ({"batch": 0}, "restorers[0].batch", ["≥ 1"]),
        ({"latent_guidance": 2}, "restorers[0].latent_guidance", ["[0, 1]"]),
        ({"latent_guidance": "on"}, "restorers[0].latent_guidance", ["[0, 1]"]),
        ({"device": "tpu"}, "restorers[0].device", ["cuda"]),
        ({"prior": "x"}, "restorers[0]", ["prior", "base"]),
    ]
    for change, field, words in cases:
        with pytest.raises(ConfigError) as caught:
            parse_scenario(scenario_dict(ckpt, images, tmp_path / "out", base, **change))
        message = str(caught.value)
        assert message.startswith(field + ":") and "\n" not in message, (change, message)
        for word in words:
            assert word in message, (change, message)
    # a missing component or weights file of the base: refused, naming base (no weights loaded)
    (base / "unet" / "diffusion_pytorch_model.safetensors").unlink()
    with pytest.raises(ConfigError, match=r"^restorers\[0\]\.base:.*safetensors"):
        parse_scenario(scenario_dict(ckpt, images, tmp_path / "out", base))
    shutil.rmtree(base / "scheduler")
    with pytest.raises(ConfigError, match=r"^restorers\[0\]\.base:.*scheduler/"):
        parse_scenario(scenario_dict(ckpt, images, tmp_path / "out", base))
    assert not (tmp_path / "out").exists()


def test_control_folder_steers_the_restoration_and_the_fingerprint(tmp_path, ckpt, images, base, control):
    _, x_hat = x_hat_of(ckpt, images)
    plain_spec = {"type": "diffjscc", "base": str(base), "steps": STEPS, "color_fix": False, "device": "cpu"}
    steered_spec = {**plain_spec, "control": str(control)}
    assert validate_spec(steered_spec)["control"] == str(control)
    plain = restore_points(make_restorer(plain_spec, progress=False), 4, "DeepJSCC", "a", 5.0, [0], x_hat)
    steered = restore_points(make_restorer(steered_spec, progress=False), 4, "DeepJSCC", "a", 5.0, [0], x_hat)
    assert not torch.allclose(plain, steered, atol=1e-4)
    assert weights_digest(plain_spec) != weights_digest(steered_spec)
    # an unreadable model.safetensors passes the cheap checks but is refused at build time, naming control
    other = tmp_path / "other-ctrl"
    shutil.copytree(control, other)
    (other / "model.safetensors").write_bytes(b"not safetensors")
    with pytest.raises(ConfigError) as caught:
        make_restorer({**steered_spec, "control": str(other)}, progress=False, where="restorers[0]")
    assert str(caught.value).startswith("restorers[0].control:")


def test_base_and_control_may_be_shipped_names(tmp_path, ckpt, images, base, control, monkeypatch):
    zoo_dir = tmp_path / "zoo"
    save_tiny_base(zoo_dir / "tiny-sd-base")
    monkeypatch.setenv("LINKSIM_CHECKPOINTS", str(zoo_dir))
    parse_scenario(scenario_dict(ckpt, images, tmp_path / "out", "tiny-sd-base", control=str(control)))
    # unknown names: the field, the value and what is allowed (a shipped name among it, the names it knows)
    for value in ("no-such-base", "tiny-sd-bas"):
        with pytest.raises(ConfigError) as caught:
            parse_scenario(scenario_dict(ckpt, images, tmp_path / "out", value))
        message = str(caught.value)
        assert message.startswith("restorers[0].base:") and repr(value) in message, message
        assert "LINKSIM_CHECKPOINTS" in message and "'tiny-sd-base'" in message and "no such folder" in message
    # a name is looked up only without a path separator
    with pytest.raises(ConfigError, match=r"^restorers\[0\]\.base:"):
        parse_scenario(scenario_dict(ckpt, images, tmp_path / "out", "sub/tiny-sd-base"))
    assert not (tmp_path / "out").exists()

    # a shipped control module too. (Not through parse_scenario here: zoo.available("deepjscc"), which the
    # deepjscc scheme calls, reads every config.json under $LINKSIM_CHECKPOINTS and refuses a control
    # module's, which has no "kind".)
    shutil.copytree(control, zoo_dir / "tiny-diffjscc-ctrl")
    named = {"type": "diffjscc", "base": "tiny-sd-base", "control": "tiny-diffjscc-ctrl", "steps": STEPS,
             "device": "cpu"}
    by_path = {**named, "base": str(zoo_dir / "tiny-sd-base"), "control": str(zoo_dir / "tiny-diffjscc-ctrl")}
    spec = validate_spec(named)
    assert spec["base"] == "tiny-sd-base" and spec["control"] == "tiny-diffjscc-ctrl"  # kept as written
    # the resolved folders are what is hashed and what is loaded
    assert weights_digest(named) == weights_digest(by_path)
    assert weights_digest({**named, "control": None}) != weights_digest(named)
    restorer = make_restorer(named, progress=False)
    state = restorer.pipeline.controlled.control.state_dict()
    saved = ControlModule.load(control, restorer.pipeline.controlled.unet).state_dict()
    assert state.keys() == saved.keys() and all(torch.equal(v, saved[k]) for k, v in state.items())
    with pytest.raises(ConfigError) as caught:
        validate_spec({**named, "control": "no-such-ctrl"}, "restorers[0]")
    message = str(caught.value)
    assert message.startswith("restorers[0].control:") and "'no-such-ctrl'" in message, message
    assert "LINKSIM_CHECKPOINTS" in message and "'tiny-diffjscc-ctrl'" in message
