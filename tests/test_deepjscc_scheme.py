"""The deepjscc scheme in scenarios: equal k, ρ checks at load time, crops, warnings, reproducibility.

Tiny untrained models (four stride-2 stages of width 4, so 2^d = 16 like the shipped ones)
saved into tmp_path; images of 32×48 pixels.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from linksim import zoo
from linksim.channel import make_channel
from linksim.data import ImageItem, center_crop
from linksim.errors import ConfigError
from linksim.jscc import DeepJSCCScheme
from linksim.jscc.models import DeepJSCC, DeepJSCCConfig
from linksim.link import Bandwidth
from linksim.results import read_results
from linksim.runner import run_scenario
from linksim.scenario import load_scenario, parse_scenario
from linksim.seeding import point_generator

SCENARIOS = Path(__file__).resolve().parents[1] / "scenarios"
WIDTHS = (4, 4, 4, 4)  # downsampling 16, like the shipped models


def tiny_checkpoint(folder: Path, bcr_denominator: int = 48, seed: int = 0, snr_range=(-5.0, 15.0)) -> Path:
    """An untrained DeepJSCC at ρ = 1/bcr_denominator saved as a checkpoint folder."""
    torch.manual_seed(seed)
    latent = 6 * 16 ** 2 // bcr_denominator  # c = 6·4^d·ρ
    config = DeepJSCCConfig(latent_channels=latent, widths=WIDTHS, same_layers=0, snr_range_db=snr_range)
    return zoo.save_checkpoint(DeepJSCC(config), folder, "deepjscc", config.to_dict())


@pytest.fixture()
def ckpt(tmp_path) -> Path:
    return tiny_checkpoint(tmp_path / "ckpt" / "tiny-awgn-r1_48")


@pytest.fixture()
def image_folder(tmp_path, photo) -> Path:
    folder = one_image_folder(tmp_path / "imgs", "a", photo[:32, :48])
    Image.fromarray(photo[40:72, 60:108]).save(folder / "b.png")
    return folder


def scenario_dict(ckpt: Path, folder: Path, out: Path, **changes) -> dict:
    raw = {
        "name": "tiny-jscc",
        "seed": 3,
        "images": str(folder),
        "channel": "awgn",
        "snr_db": [-2, 4],
        "trials": 2,
        "bandwidth": {"bcr": "1/48"},
        "schemes": [
            {"name": "DeepJSCC", "type": "deepjscc", "model": str(ckpt)},
            {"name": "BPG + capacity", "type": "capacity", "codec": {"name": "bpg", "chroma": "420"}},
        ],
        "metrics": ["psnr"],
        "grid": {"snr_db": [-2, 4], "images": 1},
        "output": str(out),
    }
    raw.update(changes)
    if "snr_db" in changes and "grid" not in changes:
        raw["grid"] = {"snr_db": changes["snr_db"][:1], "images": 1}
    return raw


def x_of(photo, height=32, width=48) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(photo[:height, :width])).permute(2, 0, 1)[None].float() / 255


# ----------------------------------------------------------------------------- the scheme

def test_k_is_the_models_and_equals_the_budget_on_multiples_of_16(ckpt, photo):
    bandwidth = Bandwidth(cpp=1 / 16)
    scheme = DeepJSCCScheme("DeepJSCC", bandwidth, ckpt)
    x = x_of(photo)
    out = scheme.run(x, 3.0, make_channel("awgn"), point_generator(0, "DeepJSCC", "a", 3.0, 0))
    assert out.k == scheme.model.channel_uses(32, 48) == bandwidth.channel_uses(32, 48) == 96
    assert out.x_hat.shape == x.shape and out.x_hat.dtype == torch.float32
    assert 0 <= float(out.x_hat.min()) and float(out.x_hat.max()) <= 1
    assert out.bits.tolist() == [0] and out.decoded.tolist() == [True]
    assert out.extras["model"] == [str(ckpt)]
    # sides that 16 does not divide: the model pads and spends more than the budget
    odd = x_of(photo, 33, 50)
    out = scheme.run(odd, 3.0, make_channel("awgn"), point_generator(0, "DeepJSCC", "a", 3.0, 0))
    assert out.k == scheme.model.channel_uses(33, 50) == 16 * 3 * 4 > bandwidth.channel_uses(33, 50)
    assert out.x_hat.shape == odd.shape


def test_same_point_twice_gives_identical_x_hat(ckpt, photo):
    scheme = DeepJSCCScheme("DeepJSCC", Bandwidth(bcr=1 / 48), ckpt)
    channel, x = make_channel("rayleigh-block"), x_of(photo)
    with pytest.warns(UserWarning, match="trained on 'awgn', run on 'rayleigh-block'"):  # once per scheme
        runs = [scheme.run(x, 2.0, channel, point_generator(5, "DeepJSCC", "a", 2.0, trial)).x_hat for trial in (0, 0, 1)]
    assert torch.equal(runs[0], runs[1])
    assert not torch.equal(runs[0], runs[2])  # another trial draws another fading and noise
    fresh = DeepJSCCScheme("DeepJSCC", Bandwidth(bcr=1 / 48), ckpt)  # a new scheme reloads the same weights
    with pytest.warns(UserWarning, match="mismatched channel"):
        assert torch.equal(fresh.run(x, 2.0, channel, point_generator(5, "DeepJSCC", "a", 2.0, 0)).x_hat, runs[0])


def test_model_is_loaded_once_and_in_eval_mode(ckpt):
    scheme = DeepJSCCScheme("DeepJSCC", Bandwidth(bcr=1 / 48), ckpt)
    assert scheme.model is scheme.model
    assert not scheme.model.training
    assert all(p.dtype == torch.float32 for p in scheme.model.parameters())


def test_snr_outside_the_trained_range_warns_once_per_snr(tmp_path, photo):
    scheme = DeepJSCCScheme("DeepJSCC", Bandwidth(bcr=1 / 48), tiny_checkpoint(tmp_path / "m", snr_range=(0.0, 10.0)))
    channel, x = make_channel("awgn"), x_of(photo)
    with pytest.warns(UserWarning, match="outside the trained range"):
        scheme.run(x, 20.0, channel, point_generator(0, "p", 0))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        scheme.run(x, 20.0, channel, point_generator(0, "p", 1))  # the same SNR again: no second warning
        scheme.run(x, 5.0, channel, point_generator(0, "p", 2))  # inside the range: none
    with pytest.warns(UserWarning, match="outside the trained range"):
        scheme.run(x, -3.0, channel, point_generator(0, "p", 3))


def test_rho_mismatch_is_refused_by_the_scheme(ckpt):
    with pytest.raises(ConfigError, match=r"model.*ρ = 1/12.*ρ = 1/48"):
        DeepJSCCScheme("DeepJSCC", Bandwidth(bcr=1 / 12), ckpt)


# ----------------------------------------------------------------------------- scenario validation

def test_scenario_refuses_a_checkpoint_at_another_rho_and_names_the_matching_ones(tmp_path, monkeypatch, image_folder):
    store = tmp_path / "store"
    tiny_checkpoint(store / "tiny-awgn-r1_48")
    tiny_checkpoint(store / "tiny-awgn-r1_12", bcr_denominator=12)
    monkeypatch.setenv("LINKSIM_CHECKPOINTS", str(store))
    raw = scenario_dict("tiny-awgn-r1_48", image_folder, tmp_path / "out", bandwidth={"cpp": "1/4"})  # ρ = 1/12
    with pytest.raises(ConfigError) as caught:
        parse_scenario(raw)
    message = str(caught.value)
    assert message.startswith("schemes[0].model: got 'tiny-awgn-r1_48'")
    assert "ρ = 1/12" in message and "ρ = 1/48" in message and "tiny-awgn-r1_12" in message
    assert "\n" not in message
    raw = scenario_dict("tiny-awgn-r1_12", image_folder, tmp_path / "out", bandwidth={"cpp": "1/4"})
    assert parse_scenario(raw).schemes[0] == {"name": "DeepJSCC", "type": "deepjscc", "model": "tiny-awgn-r1_12"}
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    "scheme, field, words",
    [
        ({"name": "J", "type": "deepjscc", "model": "no-such-checkpoint"}, "schemes[0].model", ["no-such-checkpoint", "deepjscc checkpoint"]),
        ({"name": "J", "type": "deepjscc"}, "schemes[0].model", ["None"]),
        ({"name": "J", "type": "deepjscc", "model": "CKPT", "codec": "bpg"}, "schemes[0]", ["codec"]),
        ({"name": "J", "type": "deepjscc", "model": "CKPT", "downscale": [1, 2]}, "schemes[0]", ["downscale"]),
        ({"name": "J", "type": "deepjscc", "model": "CKPT", "failure_fill": 0.5}, "schemes[0]", ["failure_fill"]),
        ({"name": "J", "type": "deepjscc", "model": "CKPT", "device": "tpu"}, "schemes[0].device", ["tpu"]),
    ],
)
def test_bad_deepjscc_entries_fail_at_load(tmp_path, ckpt, image_folder, scheme, field, words):
    scheme = {k: (str(ckpt) if v == "CKPT" else v) for k, v in scheme.items()}
    with pytest.raises(ConfigError) as caught:
        parse_scenario(scenario_dict(ckpt, image_folder, tmp_path / "out", schemes=[scheme]))
    message = str(caught.value)
    assert message.startswith(field + ":") and "expected" in message and "\n" not in message
    for word in words:
        assert word in message


def test_a_pickle_is_refused_with_the_reason(tmp_path, image_folder, ckpt):
    evil = tmp_path / "model.pt"
    evil.write_bytes(b"\x80\x02junk")
    with pytest.raises(ConfigError, match=r"schemes\[0\]\.model.*pickle"):
        parse_scenario(scenario_dict(evil, image_folder, tmp_path / "out"))


@pytest.mark.parametrize("value", [0, -16, 1.5, "sixteen", True])
def test_crop_multiple_must_be_a_positive_integer(tmp_path, ckpt, image_folder, value):
    with pytest.raises(ConfigError, match="crop_multiple"):
        parse_scenario(scenario_dict(ckpt, image_folder, tmp_path / "out", crop_multiple=value))


# ----------------------------------------------------------------------------- running scenarios

def test_deepjscc_and_capacity_run_end_to_end(tmp_path, ckpt, image_folder):
    scenario = parse_scenario(scenario_dict(ckpt, image_folder, tmp_path / "out"))
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)  # 32×48 images: equal k, SNRs inside the range: no warnings
        warnings.filterwarnings("ignore", message=".*LPIPS.*")
        result = run_scenario(scenario, limit=2, progress=False, plots=True)
    rows = read_results(result.results_csv)
    assert len(rows) == 2 * 2 * 2 * 2  # schemes × images × SNRs × trials
    jscc = [r for r in rows if r["scheme"] == "DeepJSCC"]
    assert len(jscc) == 8
    for r in jscc:
        assert r["kind"] == "deepjscc" and r["bits"] == 0 and r["bpp"] == 0 and r["decoded"] is True
        assert r["k"] == 96 and r["bcr"] == pytest.approx(1 / 48, abs=1e-6) and r["ebno_db"] is None
        assert r["psnr"] is not None and r["channel_uses_used"] == 96
    assert {r["k"] for r in rows} == {96}  # every scheme the same k
    for name in ("psnr_vs_snr.png", "grid.png", "summary.csv", "scenario.json"):
        assert (result.out / name).exists(), name
    assert (result.out / "images" / "DeepJSCC" / "a__snr-2.png").exists()
    # rerunning computes nothing; the same scenario elsewhere gives a byte-identical results.csv
    assert run_scenario(scenario, progress=False, plots=False).computed == 0
    again = run_scenario(scenario, out=tmp_path / "again", progress=False, plots=False)
    assert (tmp_path / "again" / "results.csv").read_bytes() == result.results_csv.read_bytes()
    assert again.computed == 16


def test_resume_refuses_retrained_weights(tmp_path, ckpt, image_folder):
    scenario = parse_scenario(scenario_dict(ckpt, image_folder, tmp_path / "out", snr_db=[0], trials=1))
    run_scenario(scenario, progress=False, plots=False)
    tiny_checkpoint(ckpt, seed=1)  # the same folder, other weights
    with pytest.raises(ConfigError, match="checkpoints"):
        run_scenario(parse_scenario(scenario_dict(ckpt, image_folder, tmp_path / "out", snr_db=[0], trials=1)), progress=False, plots=False)


def one_image_folder(folder: Path, name: str, pixels: np.ndarray) -> Path:
    """A new folder holding one PNG, ``name``.png."""
    folder.mkdir()
    Image.fromarray(pixels).save(folder / f"{name}.png")
    return folder


def run_one_point(ckpt: Path, folder: Path, out: Path, **changes):
    """Parse and run a scenario at one SNR and one trial (no plots; any warning but the LPIPS
    one fails the test); returns the scenario and its result rows."""
    scenario = parse_scenario(scenario_dict(ckpt, folder, out, snr_db=[0], trials=1, **changes))
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)
        warnings.filterwarnings("ignore", message=".*LPIPS.*")
        result = run_scenario(scenario, progress=False, plots=False)
    return scenario, read_results(result.results_csv)


def test_crop_multiple_center_crops_every_image_for_every_scheme(tmp_path, ckpt, photo):
    folder = one_image_folder(tmp_path / "odd", "odd", photo[:41, :61])
    scenario, rows = run_one_point(ckpt, folder, tmp_path / "out", crop_multiple=16)
    assert scenario.crop_multiple == 16 and scenario.fingerprint()["crop_multiple"] == 16
    assert {(r["height"], r["width"], r["k"]) for r in rows} == {(32.0, 48.0, 96.0)}
    # centre crop: (41 − 32) // 2 = 4 rows off the top, (61 − 48) // 2 = 6 columns off the left
    cropped = center_crop(ImageItem("odd", photo[:41, :61]), 16)
    assert np.array_equal(cropped.pixels, photo[4:36, 6:54])
    assert center_crop(ImageItem("x", photo[:32, :48]), 16).pixels.shape == (32, 48, 3)
    assert center_crop(ImageItem("x", photo[:41, :61]), None).pixels.shape == (41, 61, 3)


def test_resize_brings_every_image_to_one_square_size_before_the_schemes(tmp_path, ckpt, photo):
    folder = one_image_folder(tmp_path / "wide", "wide", photo[:40, :70])
    scenario, rows = run_one_point(ckpt, folder, tmp_path / "out", resize=32)
    assert scenario.resize == 32 and scenario.fingerprint()["resize"] == 32
    assert {(r["height"], r["width"]) for r in rows} == {(32.0, 32.0)}
    for value in (0, 2.5, "big"):
        with pytest.raises(ConfigError, match="resize"):
            parse_scenario(scenario_dict(ckpt, folder, tmp_path / "out", resize=value))


def test_an_image_smaller_than_crop_multiple_is_refused_before_any_output(tmp_path, ckpt, photo):
    folder = one_image_folder(tmp_path / "small", "sliver", photo[:12, :40])
    scenario = parse_scenario(scenario_dict(ckpt, folder, tmp_path / "out", crop_multiple=16))
    with pytest.raises(ConfigError) as caught:
        run_scenario(scenario, progress=False, plots=False)
    assert str(caught.value).startswith("crop_multiple: got 16") and "sliver" in str(caught.value)
    assert not (tmp_path / "out").exists()


def test_unequal_k_without_crop_warns_once_naming_image_and_both_k(tmp_path, ckpt, photo):
    folder = one_image_folder(tmp_path / "odd", "odd", photo[:40, :56])
    Image.fromarray(photo[1:41, :56]).save(folder / "odd2.png")
    scenario = parse_scenario(scenario_dict(ckpt, folder, tmp_path / "out", snr_db=[0], trials=1, metrics=["psnr"]))
    with pytest.warns(UserWarning) as record:
        result = run_scenario(scenario, progress=False, plots=False)
    messages = [str(w.message) for w in record if "channel uses" in str(w.message)]
    assert len(messages) == 1
    budget, spent = 40 * 56 // 16, 16 * 3 * 4
    assert "odd" in messages[0] and f"k = {spent}" in messages[0] and f"k = {budget}" in messages[0]
    assert "crop_multiple: 16" in messages[0]
    ks = {r["scheme"]: r["k"] for r in read_results(result.results_csv)}
    assert ks == {"DeepJSCC": spent, "BPG + capacity": budget}


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the refusal on a machine without CUDA")
def test_cuda_device_refused_without_cuda(tmp_path, ckpt, image_folder):
    raw = scenario_dict(ckpt, image_folder, tmp_path / "out")
    raw["schemes"][0]["device"] = "cuda"
    with pytest.raises(ConfigError, match=r"schemes\[0\]\.device"):
        parse_scenario(raw)


# ----------------------------------------------------------------------------- the shipped scenarios

def _needs(name: str) -> None:
    if name not in zoo.available("deepjscc"):
        pytest.skip(f"checkpoint {name} not installed (not trained yet)")


@pytest.mark.parametrize("file, channel, model, trials", [
    ("cliff_vs_smooth.yaml", "awgn", "deepjscc-awgn-r1_48", 2),
    ("cliff_vs_smooth_rayleigh.yaml", "rayleigh-block", "deepjscc-rayleigh-r1_48", 8),
])
def test_cliff_vs_smooth_scenarios_validate(file, channel, model, trials):
    _needs(model)
    scenario = load_scenario(SCENARIOS / file)
    assert scenario.channel["type"] == channel and scenario.trials == trials
    assert scenario.crop_multiple == 16 and scenario.bandwidth == {"bcr": pytest.approx(1 / 48)}
    assert scenario.snr_db == [float(s) for s in range(-5, 16)]
    assert [s["type"] for s in scenario.schemes] == ["deepjscc", "linear", "separate", "separate", "capacity"]
    assert scenario.schemes[0]["model"] == model
    assert [s["mcs"][0]["code"] for s in scenario.schemes[2:4]] == ["wifi-1944-1/2", "wifi-1944-2/3"]
    assert set(scenario.checkpoints) == {"DeepJSCC", "Linear (PCA + LMMSE)"}
    if channel == "awgn":  # the grid SNRs straddle the two LDPC thresholds (≈ −1.3 and +0.6 dB)
        low, mid, high = scenario.grid["snr_db"]
        assert low < -1.3 < mid < 0.6 < high
