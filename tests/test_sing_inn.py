"""SING-INN / CommIN: the guidance step, the restorer, its registry entries, INN training and
the shipped INN checkpoints."""

from __future__ import annotations

import json

import pytest
import torch
import torch.nn.functional as F

from conftest import shared_data
from linksim import zoo
from linksim.data import load_images, square_resize, to_tensor
from linksim.errors import ConfigError
from linksim.train.inn import INNSettings, evaluate_inn, train_inn
from linksim.restore import DDNMRestorer
from linksim.restore.inn import ConditionalINN, ConditionalINNConfig
from linksim.restore.specs import validate_spec
from linksim.restore.sing_inn import SINGINNRestorer, inn_guidance_step
from linksim.seeding import point_generator

SHIPPED = {"inn-awgn-r1_192-faces": ("deepjscc-awgn-r1_192", 4), "inn-awgn-r1_768-faces": ("deepjscc-awgn-r1_768", 8),
           "commin-awgn-r1_192-faces-1dB": ("deepjscc-awgn-r1_192", 4)}


def _random_inn(conditional=True, levels=2, seed=0, scale=0.05) -> ConditionalINN:
    """An INN whose lifting nets are all non-zero (a fresh one is exactly Haar)."""
    torch.manual_seed(seed)
    inn = ConditionalINN(ConditionalINNConfig(levels=levels, pairs=2, width=8, blocks=1, conditional=conditional))
    with torch.no_grad():
        for p in inn.parameters():
            p.add_(scale * torch.randn_like(p))
    return inn.eval().requires_grad_(False)


def _eps_zero(x, t):
    return torch.zeros_like(x)


# ----------------------------------------------------------------------------- the guidance step

@pytest.mark.parametrize("zeta", [0.05, 0.2, 0.4])
def test_the_guidance_step_lowers_the_gap_on_the_step_it_is_applied(zeta):
    inn = _random_inn()
    gen = torch.Generator().manual_seed(1)
    x0 = torch.rand(3, 3, 16, 16, generator=gen) * 2 - 1
    coarse = torch.rand(3, 3, 4, 4, generator=gen)
    snr = torch.tensor([-5.0, 0.0, 5.0])
    moved, before = inn_guidance_step(inn, x0, coarse, snr, torch.tensor(zeta))
    _, after = inn_guidance_step(inn, moved, coarse, snr, torch.tensor(0.0))
    assert bool((before > 0).all()) and bool((after < before).all()), (before, after)


def test_half_a_step_replaces_the_estimate_by_the_inns_consistent_image():
    # ζ = ½ lands on x̂₀^INN, whose coarse part is the received one (invertibility): the gap is then 0
    # (near-gray images keep x̂₀^INN inside [0, 1], where the restorer's clipping does nothing)
    inn = _random_inn(scale=0.01)
    gen = torch.Generator().manual_seed(2)
    x0 = torch.rand(2, 3, 16, 16, generator=gen) * 0.2 - 0.1
    coarse = 0.5 + 0.05 * torch.rand(2, 3, 4, 4, generator=gen)
    moved, before = inn_guidance_step(inn, x0, coarse, 1.0, torch.tensor(0.5))
    assert float(before.min()) > 1e-3 and float(moved.abs().max()) < 1.0
    # forward then inverse through the float32 lifting nets: ≲ 1e-6 seen on [0, 1] values; 1e-5 ≈ 80 eps
    assert torch.allclose(inn.coarse((moved + 1) / 2, 1.0), coarse, atol=1e-5)


def test_with_an_untrained_inn_sing_inn_is_plain_ddnm():
    # a fresh INN is the Haar split: x̂₀^INN is DDNM's projection onto A x = A x̂ for A = avgpool4,
    # so ζ = ½ without the DDNM update must reproduce SING-Zero (σ_y = 0) sample for sample
    from diffusers import DDPMScheduler

    inn = ConditionalINN(ConditionalINNConfig(levels=2, pairs=1, width=4, blocks=1))
    x_hat = torch.rand(2, 3, 16, 16, generator=torch.Generator().manual_seed(3))
    sched = DDPMScheduler()
    zero = DDNMRestorer(_eps_zero, sched, "avgpool4", steps=10, progress=False, device="cpu")
    guided = SINGINNRestorer(_eps_zero, sched, inn, "avgpool4", zeta=0.5, ddnm=False, clip_target=False, steps=10,
                             progress=False, device="cpu")
    gens = lambda: [point_generator(0, "t", i) for i in range(2)]  # noqa: E731
    a = zero.restore(x_hat, 0.0, gens())
    b = guided.restore(x_hat, 0.0, gens())
    # float32 Haar lifting vs DDNM's avgpool/pinv projection: other roundings, a few eps per step on
    # O(1) values over 10 steps (≤ 4e-7 seen); 2e-5 ≈ 17 eps per step
    assert torch.allclose(a, b, atol=2e-5), float((a - b).abs().max())
    assert not torch.allclose(a, x_hat, atol=1e-2)  # the null space was filled in


def test_the_restorer_needs_the_snr_for_a_conditional_inn_and_images_the_inn_can_split():
    from diffusers import DDPMScheduler

    restorer = SINGINNRestorer(_eps_zero, DDPMScheduler(), _random_inn(levels=3), "avgpool4", steps=2,
                               progress=False, device="cpu")
    with pytest.raises(ConfigError, match="snr_db"):
        restorer.restore(torch.rand(1, 3, 16, 16), None, [torch.Generator()])
    with pytest.raises(ConfigError, match="image_size"):
        restorer.check((3, 12, 12))
    with pytest.raises(ConfigError, match="zeta"):
        SINGINNRestorer(_eps_zero, DDPMScheduler(), _random_inn(), zeta=0.7 + 1, device="cpu")
    with pytest.raises(ConfigError, match="inn"):
        SINGINNRestorer(_eps_zero, DDPMScheduler(), "inn-awgn-r1_192-faces", device="cpu")


def test_an_snr_outside_the_inns_range_warns_during_restoration():
    from diffusers import DDPMScheduler

    restorer = SINGINNRestorer(_eps_zero, DDPMScheduler(), _random_inn(), steps=2, progress=False, device="cpu")
    with pytest.warns(UserWarning, match="outside the trained range"):
        restorer.restore(torch.rand(1, 3, 16, 16), 12.0, [torch.Generator()])


def test_a_commin_inn_used_away_from_its_training_snr_warns():
    from diffusers import DDPMScheduler

    inn = ConditionalINN(ConditionalINNConfig(pairs=1, width=4, blocks=1, conditional=False, snr_range_db=(1.0, 1.0)))
    restorer = SINGINNRestorer(_eps_zero, DDPMScheduler(), inn, steps=2, progress=False, device="cpu")
    with pytest.warns(UserWarning, match="trained at 1…1 dB used at"):
        restorer.restore(torch.rand(1, 3, 16, 16), -5.0, [torch.Generator()])


# ----------------------------------------------------------------------------- registry

def _needs(*names: str) -> None:
    for name in names:
        if name not in zoo.available():
            pytest.skip(f"checkpoint {name} not installed")


@pytest.mark.parametrize("entry, field, words", [
    ({"type": "sing-inn", "inn": "commin-awgn-r1_192-faces-1dB"}, "restorers[0].inn", "SNR-conditioned"),
    ({"type": "commin", "inn": "inn-awgn-r1_192-faces"}, "restorers[0].inn", "unconditioned"),
    ({"type": "sing-inn", "inn": "no-such-inn"}, "restorers[0].inn", "names"),
    ({"type": "sing-inn", "inn": "inn-awgn-r1_192-faces", "zeta": 1.5}, "restorers[0].zeta", "[0, 1]"),
    ({"type": "sing-inn", "inn": "inn-awgn-r1_192-faces", "zeta": {0: -1}}, "restorers[0].zeta", "ζ ≥ 0"),
    ({"type": "sing-inn", "inn": "inn-awgn-r1_192-faces", "ddnm": "yes"}, "restorers[0].ddnm", "true"),
])
def test_registry_refuses_bad_sing_inn_entries_naming_the_field(entry, field, words):
    _needs("ddpm-faces-64", *SHIPPED)
    with pytest.raises(ConfigError) as caught:
        validate_spec({"prior": "ddpm-faces-64", **entry}, "restorers[0]")
    assert caught.value.field == field and words in str(caught.value)


def test_registry_builds_sing_inn_with_a_zeta_table():
    _needs("ddpm-faces-64", "inn-awgn-r1_192-faces")
    from linksim.restore.registry import make_restorer
    from linksim.restore.specs import weights_digest

    spec = {"type": "sing-inn", "prior": "ddpm-faces-64", "inn": "inn-awgn-r1_192-faces", "zeta": {-5: 0.1, 5: 0.3}}
    restorer = make_restorer(spec, progress=False)
    assert isinstance(restorer, SINGINNRestorer) and restorer.label == "SING-INN"
    assert [round(float(v), 3) for v in restorer.zeta_for(torch.tensor([-9.0, 0.0, 5.0]), 3)] == [0.1, 0.2, 0.3]
    plain = {"type": "sing-zero", "prior": "ddpm-faces-64"}
    assert weights_digest(spec) != weights_digest(plain)  # the INN's weights are part of a run's fingerprint


# ----------------------------------------------------------------------------- training

@pytest.fixture(scope="module")
def small_run(tmp_path_factory, prior_images):
    _needs("deepjscc-awgn-r1_192")
    settings = INNSettings(deepjscc="deepjscc-awgn-r1_192", data=[str(prior_images)], val_data=[str(prior_images)],
                           size=16, pairs=1, width=8, blocks=1, emb_dim=8, steps=12, batch=4, lr=3e-3,
                           save_every=4, val_snr=(-5.0, 5.0))
    out = tmp_path_factory.mktemp("inn") / "tiny-inn"
    meta = train_inn(settings, out, command="(tests)", progress=False)
    return settings, out, meta


def test_training_writes_a_checkpoint_that_beats_the_linear_a_it_starts_from(small_run):
    settings, out, meta = small_run
    assert sorted(p.name for p in out.iterdir()) == ["MODEL_CARD.md", "config.json", "model.safetensors"]
    rows = meta["evaluation"]["rows"]
    assert [r["snr_db"] for r in rows] == [-5.0, 5.0]
    assert all(r["inn_mse"] < r["linear_mse"] for r in rows), rows
    card = (out / "MODEL_CARD.md").read_text()
    assert "linear A MSE" in card and "(tests)" in card and "deepjscc-awgn-r1_192" in card
    inn = zoo.load_inn(out)
    assert inn.config.snr_range_db == (-5.0, 5.0) and not any(p.requires_grad for p in inn.parameters())


def test_an_interrupted_training_resumes_to_the_same_weights(small_run, tmp_path, same_threads):
    settings, out, _ = small_run
    split = tmp_path / "split"
    train_inn(settings, split, progress=False, stop_after=5)
    assert (split / "train_state.safetensors").exists()
    train_inn(settings, split, progress=False)
    a, b = zoo.load_state(out), zoo.load_state(split)
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_training_refuses_a_folder_of_other_settings_and_a_commin_range(small_run):
    settings, out, _ = small_run
    other = INNSettings(**{**settings.to_dict(), "steps": 13, "snr_range": tuple(settings.snr_range),
                           "val_snr": tuple(settings.val_snr)})
    with pytest.raises(ConfigError, match="out"):
        train_inn(other, out, progress=False)
    with pytest.raises(ConfigError, match="snr_range"):
        INNSettings(deepjscc="x", data=["y"], conditional=False, snr_range=(-5.0, 5.0))
    with pytest.raises(ConfigError, match="size"):
        INNSettings(deepjscc="x", data=["y"], size=20, levels=3)


def test_train_inn_cli(prior_images, tmp_path, capsys):
    _needs("deepjscc-awgn-r1_192")
    from linksim.cli import main

    out = tmp_path / "cli-inn"
    code = main(["train", "inn", "--deepjscc", "deepjscc-awgn-r1_192", "--data", prior_images, "--val-data",
                 prior_images, "--commin", "--snr-range", "1", "1", "--size", "16", "--pairs", "1", "--width", "4",
                 "--blocks", "1", "--steps", "3", "--batch", "2", "--out", out, "--quiet"])
    assert code == 0
    assert "linear A" in capsys.readouterr().out
    config = json.loads((out / "config.json").read_text())
    assert config["kind"] == "inn" and config["config"]["conditional"] is False


# ----------------------------------------------------------------------------- shipped INNs

@pytest.mark.parametrize("name", sorted(SHIPPED))
def test_shipped_inns_are_small_invertible_and_honest(name):
    _needs(name)
    folder = zoo.resolve(name)
    assert zoo.weights_path(folder).stat().st_size <= 8 * 2**20
    inn = zoo.load_inn(name)
    deepjscc, scale = SHIPPED[name]
    assert inn.meta["deepjscc"] == deepjscc and inn.config.scale == scale
    x = torch.rand(4, 3, 64, 64, generator=torch.Generator().manual_seed(5))
    snr = torch.tensor([-5.0, -1.0, 1.0, 5.0]) if inn.config.conditional else None
    with torch.no_grad():
        c, d = inn(x, snr)
        # float32 round trip through 2–3 levels × 4 lifting pairs on values ≤ ~2: ≤ 1.1e-6 seen; 1e-5 ≈ 80 eps
        assert float((inn.inverse(c, d, snr) - x).abs().max()) < 1e-5
    card = (folder / "MODEL_CARD.md").read_text()
    assert "linksim train inn" in card and "linear A MSE" in card


@pytest.mark.parametrize("name", sorted(SHIPPED))
def test_shipped_inns_predict_the_deepjscc_output_better_than_the_linear_a(name):
    # recomputed here on held-out faces (not read from the card): the reason SING-INN exists
    _needs(name)
    faces = shared_data("faces", "celebahq_stargan_v2_128")
    inn = zoo.load_inn(name)
    model = zoo.load_deepjscc(SHIPPED[name][0])
    x = to_tensor([square_resize(item, 64) for item in load_images(faces, limit=12)])
    snrs = (-5.0, 5.0) if inn.config.conditional else (1.0,)
    rows = evaluate_inn(inn, model, x, snrs, seed=11)
    assert all(r["inn_mse"] < 0.8 * r["linear_mse"] for r in rows), rows


def test_the_shipped_inn_beats_the_linear_a_on_the_bundled_photographs_too():
    # no dev data needed: the bundled photos (centre square → 64×64) are natural images, not faces
    _needs("inn-awgn-r1_192-faces")
    inn = zoo.load_inn("inn-awgn-r1_192-faces")
    model = zoo.load_deepjscc("deepjscc-awgn-r1_192")
    x = to_tensor([square_resize(item, 64) for item in load_images("samples")])
    rows = evaluate_inn(inn, model, x, (-5.0, 0.0, 5.0), trials=2, seed=3)
    assert all(r["inn_mse"] < r["linear_mse"] for r in rows), rows
    assert F.avg_pool2d(x, 4).shape[-1] == 16
