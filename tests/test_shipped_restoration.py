"""The shipped face prior, the ρ = 1/768 checkpoint and the SING-Zero scenarios built on them."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from linksim import zoo
from linksim.channel import make_channel
from linksim.data import load_images, square_resize, to_tensor
from linksim.restore import DDNMRestorer, inspect_prior, load_prior, make_operator
from linksim.scenario import load_scenario
from linksim.seeding import point_generator

ROOT = Path(__file__).resolve().parents[1]
PRIOR = "ddpm-faces-64"


def _needs(*names: str) -> None:
    for name in names:
        if name not in zoo.available():
            pytest.skip(f"checkpoint {name} not installed (not trained yet)")


def test_the_face_prior_loads_offline_by_name_and_says_what_it_is():
    _needs(PRIOR)
    files = inspect_prior(zoo.resolve_prior(PRIOR))
    assert files.image_shape == (3, 64, 64) and files.num_train_timesteps == 1000
    assert files.weights.suffix == ".safetensors" and files.weights.stat().st_size <= 30 * 2**20
    card = (files.root / "MODEL_CARD.md").read_text()
    assert "non-commercial" in card and "cannot" in card and "linksim train prior" in card


def test_ddnm_with_the_shipped_prior_keeps_the_block_means_of_a_deepjscc_output():
    # σ_y = 0: A x̃ = A x̂ to float precision, whatever the prior draws in the null space
    _needs(PRIOR, "deepjscc-awgn-r1_192")
    astronaut = next(item for item in load_images("samples") if item.id == "astronaut")
    x = to_tensor([square_resize(astronaut, 64)])
    model = zoo.load_deepjscc("deepjscc-awgn-r1_192")
    assert model.channel_uses(64, 64) == 64  # ρ = 64 / (3·64·64) = 1/192
    with torch.no_grad():
        x_hat = model(x, 0.0, make_channel("awgn"), point_generator(0, "test", 0.0)).clamp(0, 1)
    prior = load_prior(zoo.resolve_prior(PRIOR))
    restorer = DDNMRestorer(prior.unet, prior.scheduler, "avgpool8", steps=5, sampler="ddim", sigma_y=0.0)
    x_tilde = restorer.restore(x_hat, 0.0, [point_generator(0, "ddnm")])
    A = make_operator("avgpool8")
    assert x_tilde.shape == x.shape
    # float32: A sums 64 pixels of values ≤ 1, three times (DDNM's A x̂₀, then both sides here), in an order
    # that depends on the CPU's avg_pool2d kernel: worst case 3·64·eps ≈ 2.3e-5 (≤ 3e-7 seen)
    assert (A.A(x_tilde) - A.A(x_hat)).abs().max() < 3 * 64 * torch.finfo(torch.float32).eps
    assert (x_tilde - x_hat).abs().max() > 1e-2  # the null space did change


@pytest.mark.parametrize("file, model, bcr, uses", [("sing_zero.yaml", "deepjscc-awgn-r1_192", 1 / 192, 64),
                                                     ("sing_zero_r1_768.yaml", "deepjscc-awgn-r1_768", 1 / 768, 16)])
def test_sing_zero_scenarios_compare_deepjscc_with_and_without_restoration(file, model, bcr, uses):
    _needs(PRIOR, model)
    scenario = load_scenario(ROOT / "scenarios" / file)
    assert scenario.resize == 64 and scenario.bandwidth == {"bcr": pytest.approx(bcr)}
    assert scenario.snr_db == [float(s) for s in range(-5, 6)] and scenario.channel["type"] == "awgn"
    assert [s["model"] for s in scenario.schemes] == [model]
    assert zoo.load_deepjscc(model).channel_uses(64, 64) == uses
    measured, plain = scenario.restorers
    assert measured["prior"] == plain["prior"] == PRIOR
    assert isinstance(measured["sigma_y"], dict) and plain["sigma_y"] is None
    assert set(scenario.grid["snr_db"]) <= set(scenario.snr_db)
