"""The shipped DiffJSCC instance: ``diffjscc-base-natural`` with its control modules.

Checked against what each part is defined to do, not against stored outputs: the VAE's scaling
factor makes the latents of real photographs about unit variance, the VAE reconstructs them, a
trained control module carries x̂ into the sample (an unsteered base sample does not), the SNR
reaches the "+ SNR" module and provably cannot reach the spatial-only one, and the folders hold
what their training records say. 64×64 crops of the bundled photographs, a few sampling steps.
"""

from __future__ import annotations

import json

import pytest
import torch

pytest.importorskip("diffusers")
from linksim.channel import make_channel  # noqa: E402
from linksim.data import load_images, to_tensor  # noqa: E402
from linksim.metrics import psnr  # noqa: E402
from linksim.restore.diffjscc import DiffJSCCPipeline  # noqa: E402
from linksim.restore.diffjscc_control import ControlModule  # noqa: E402
from linksim.seeding import point_generator  # noqa: E402
from linksim.zoo import available, load_deepjscc, locate  # noqa: E402

BASE, CONTROL, SPATIAL = "diffjscc-base-natural", "diffjscc-control-r1_192", "diffjscc-control-r1_192-spatial"
STEPS = 8
SIZE = 64  # a multiple of 16: DeepJSCC's downsampling and the VAE's factor 4


@pytest.fixture(scope="module")
def photos() -> torch.Tensor:
    """Centre 64×64 crops of the five bundled photographs, float [5, 3, 64, 64] in [0, 1]."""
    crops = []
    for item in load_images("samples"):
        h, w = item.pixels.shape[:2]
        top, left = (h - SIZE) // 2, (w - SIZE) // 2
        crops.append(item.pixels[top:top + SIZE, left:left + SIZE])
    return to_tensor(crops)


@pytest.fixture(scope="module")
def pipes() -> dict[str, DiffJSCCPipeline]:
    base = locate(BASE)
    assert base is not None, f"{BASE} is not shipped"
    return {"fresh": DiffJSCCPipeline.from_pretrained(base, None, device="cpu"),
            "snr": DiffJSCCPipeline.from_pretrained(base, locate(CONTROL), device="cpu"),
            "spatial": DiffJSCCPipeline.from_pretrained(base, locate(SPATIAL), device="cpu")}


@pytest.fixture(scope="module")
def x_hat(photos) -> torch.Tensor:
    """DeepJSCC (the checkpoint the controls were trained behind) at 13 dB on AWGN."""
    with torch.no_grad():
        return load_deepjscc("deepjscc-awgn-r1_192")(photos, 13.0, make_channel("awgn"),
                                                     point_generator(0, "shipped-diffjscc")).clamp(0, 1)


def generators(n: int, seed: int = 0) -> list[torch.Generator]:
    return [point_generator(seed, "shipped-diffjscc", i) for i in range(n)]


def test_scaling_factor_makes_photo_latents_about_unit_variance(pipes, photos):
    # linksim train diffjscc-base sets scaling_factor = 1 / std of its training crops' latents;
    # on other photographs the scaled latents must still be of order one (SD's 0.18215 plays this role)
    with torch.no_grad():
        z = pipes["fresh"].encode(photos)
    assert z.shape == (5, pipes["fresh"].latent_channels, SIZE // 4, SIZE // 4)
    assert 0.6 < float(z.std()) < 1.6


def test_vae_reconstructs_the_photographs(pipes, photos):
    # every DiffJSCC output passes through this decoder: its reconstruction is the quality ceiling
    with torch.no_grad():
        ceiling = psnr(pipes["fresh"].decode(pipes["fresh"].encode(photos)), photos)
    assert float(ceiling.mean()) > 20.0          # MODEL_CARD: 22.2 dB on its 64² training crops
    assert float(ceiling.min()) > 15.0


def test_trained_control_carries_x_hat_into_the_sample(pipes, x_hat, photos):
    # the fresh (zero) control is an unconditional base sample: x̂ cannot reach it; the trained one must follow x̂
    with torch.no_grad():
        steered = pipes["snr"].restore(x_hat, 13.0, generators(5), steps=STEPS, color_fix=False)
        unsteered = pipes["fresh"].restore(x_hat, 13.0, generators(5), steps=STEPS, color_fix=False)
    gain = psnr(steered, photos) - psnr(unsteered, photos)
    # measured +1.6 … +7.5 dB (mean +5.1) over the five crops: weakly trained, but it steers every one
    assert float(gain.mean()) > 3.0 and float(gain.min()) > 1.0, gain


def test_the_snr_reaches_only_the_snr_module(pipes, x_hat):
    control = {name: pipes[name].controlled.control for name in ("snr", "spatial")}
    assert control["spatial"].snr_embedding is None
    with torch.no_grad():
        told = {name: [pipes[name].restore(x_hat[:2], snr, generators(2), steps=3, color_fix=False)
                       for snr in (1.0, 13.0)] for name in control}
        # trained: the embedding's last layer (zero at init) has moved and tells 1 dB from 13 dB
        e1, e13 = (control["snr"].snr_embedding(torch.tensor([s])) for s in (1.0, 13.0))
    assert float((e1 - e13).norm()) > 1e-3
    assert not torch.equal(*told["snr"])
    assert torch.equal(*told["spatial"])


@pytest.mark.parametrize("name", available("diffjscc-control"))
def test_control_folders_hold_what_their_records_say(pipes, name):
    folder = locate(name)
    record = json.loads((folder / "training.json").read_text())
    control = ControlModule.load(folder, pipes["fresh"].controlled.unet)
    assert sum(p.numel() for p in control.parameters()) == record["parameters"]
    # each module serves the DeepJSCC of its own ρ: diffjscc-control-r1_384 ↔ deepjscc-awgn-r1_384
    bcr = name.removeprefix("diffjscc-control-").removesuffix("-spatial")
    assert record["base"] == BASE and record["deepjscc"] == f"deepjscc-awgn-{bcr}"
    assert record["settings"]["snr_embedding"] is (not name.endswith("-spatial"))
    assert record["step"] == record["settings"]["steps"]      # finished runs, not a snapshot
    # trained: the zero convs into the frozen UNet are no longer zero
    assert max(float(p.detach().abs().max()) for m in [*control.zero_convs_down, control.zero_conv_mid]
               for p in m.parameters()) > 1e-3
    assert record["base_folder"] is None                     # a shipped base is recorded by name, not by a path


def test_every_bandwidth_of_the_scenarios_has_its_control_module():
    assert {CONTROL, SPATIAL, "diffjscc-control-r1_96", "diffjscc-control-r1_384"} <= set(available("diffjscc-control"))
