"""Restorers in scenarios: validation at load time, the restorer column, A·x̃ = A·x̂ on the
runner's own points, resume, old results.csv files, plots and grids.

A tiny untrained DeepJSCC (downsampling 16) and the session's tiny 16×16 prior (2 training
steps, conftest.py) on 16×16 crops of a photograph; 3 sampling steps.
"""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
import torch

from linksim.channel import make_channel
from linksim.data import load_images, to_tensor
from linksim.errors import ConfigError
from linksim.jscc import DeepJSCCScheme
from linksim.link import Bandwidth
from linksim.metrics import psnr
from linksim.restore import make_operator, make_restorer
from linksim.restore.specs import validate_spec
from linksim.results import COLUMNS, LEGACY_COLUMNS, read_results
from linksim.runner import format_summary, restore_points
from linksim.scenario import parse_scenario
from linksim.seeding import point_generator
from restorer_scenarios import assert_restorer_rows_recompute, ckpt, crops, images, quiet_run  # noqa: F401 (fixtures)


def scenario_dict(ckpt, images, out, prior, **changes) -> dict:
    raw = {"name": "tiny-restore", "seed": 4, "images": str(images), "channel": "awgn", "snr_db": [0, 5], "trials": 1,
           "bandwidth": {"bcr": "1/48"}, "schemes": [{"name": "DeepJSCC", "type": "deepjscc", "model": str(ckpt)}],
           "restorers": [{"type": "sing-zero", "prior": str(prior), "operator": "avgpool2", "steps": 3}],
           "metrics": ["psnr"], "grid": {"snr_db": [0], "images": 1}, "output": str(out)}
    raw.update(changes)
    return raw


# ----------------------------------------------------------------------------- end to end

def test_restorer_rows_end_to_end_and_consistency(tmp_path, ckpt, images, tiny_prior):
    scenario = parse_scenario(scenario_dict(ckpt, images, tmp_path / "out", tiny_prior))
    spec = scenario.restorers[0]
    assert spec["name"] == "SING-Zero" and spec["after"] == ["DeepJSCC"] and spec["sigma_y"] is None
    assert scenario.fingerprint()["restorers"] == scenario.restorers and set(scenario.fingerprint()["priors"]) == {"SING-Zero"}
    result = quiet_run(scenario, plots=True)
    rows = read_results(result.results_csv)
    assert list(rows[0]) == COLUMNS and len(rows) == 2 * 2 * 2  # images × SNRs × (x̂, x̃)
    assert sorted({r["restorer"] or "" for r in rows}) == ["", "SING-Zero"]
    raw = {(r["image"], r["snr_db"]): r for r in rows if r["restorer"] is None}
    for r in (r for r in rows if r["restorer"] == "SING-Zero"):
        base = raw[(r["image"], r["snr_db"])]
        assert {k: r[k] for k in ("kind", "k", "bits", "decoded")} == {k: base[k] for k in ("kind", "k", "bits", "decoded")}
        assert r["psnr"] != base["psnr"]

    # the runner's restored point, recomputed by a direct call: A·x̃ = A·x̂ (σ_y = 0), same PSNR
    x = to_tensor(load_images(str(images), limit=1))
    scheme = DeepJSCCScheme("DeepJSCC", Bandwidth(bcr=1 / 48), ckpt)
    x_hat = scheme.run(x, 5.0, make_channel("awgn"), point_generator(4, "DeepJSCC", "a", 5.0, 0)).x_hat
    restorer = make_restorer({k: v for k, v in spec.items() if k != "after"}, progress=False)
    x_tilde = restore_points(restorer, 4, "DeepJSCC", "a", 5.0, [0], x_hat)
    A = make_operator("avgpool2")
    # float32: A sums 4 pixels of values ≤ 1, three times (DDNM's A x̂₀, then both sides here): ≤ 3·4·eps ≈ 1.4e-6
    assert float((A(x_tilde) - A(x_hat)).abs().max()) < 1e-5
    assert float((A.project_null(x_tilde) - A.project_null(x_hat)).abs().max()) > 1e-3  # the prior did act
    row = next(r for r in rows if (r["image"], r["snr_db"], r["restorer"]) == ("a", 5.0, "SING-Zero"))
    # the same point in a batch of one both times (same kernels); results.csv keeps 6 decimals
    assert row["psnr"] == pytest.approx(float(psnr(x, x_tilde.clamp(0, 1))[0]), abs=1e-5)

    # summary, plots, grid
    assert [(s["scheme"], s["restorer"]) for s in result.summary] == [("DeepJSCC", None)] * 2 + [("DeepJSCC", "SING-Zero")] * 2
    assert "DeepJSCC + SING-Zero" in format_summary(result.summary)
    for name in ("psnr_vs_snr.png", "grid.png", "summary.csv", "images/DeepJSCC/a__snr+0.png",
                 "images/DeepJSCC+SING-Zero/a__snr+0.png"):
        assert (result.out / name).exists(), name

    # resume: nothing to do; restorer rows removed → only they are recomputed, identically
    assert_restorer_rows_recompute(scenario, result.results_csv, "SING-Zero", 4)

    # another restorer setting on the same folder is refused
    changed = scenario_dict(ckpt, images, tmp_path / "out", tiny_prior)
    changed["restorers"][0]["steps"] = 2
    with pytest.raises(ConfigError, match="restorers"):
        quiet_run(parse_scenario(changed), plots=False)


def test_after_limits_the_schemes_and_names_label_the_rows(tmp_path, ckpt, images, tiny_prior):
    raw = scenario_dict(ckpt, images, tmp_path / "out", tiny_prior, snr_db=[0], limit=1)
    raw["schemes"].append({"name": "J2", "type": "deepjscc", "model": str(ckpt)})
    raw["restorers"] = [{"name": "DDNM+", "type": "sing-zero", "prior": str(tiny_prior), "operator": "avgpool4",
                         "steps": 2, "sampler": "ddim", "sigma_y": "snr", "after": "J2"}]
    rows = read_results(quiet_run(parse_scenario(raw), plots=False).results_csv)
    assert sorted((r["scheme"], r["restorer"] or "") for r in rows) == [("DeepJSCC", ""), ("J2", ""), ("J2", "DDNM+")]


def test_old_results_csv_is_upgraded_in_place_and_resumes(tmp_path, ckpt, images):
    raw = {"name": "old", "seed": 1, "images": str(images), "channel": "awgn", "snr_db": [0, 3], "trials": 1,
           "bandwidth": {"bcr": "1/48"}, "schemes": [{"name": "DeepJSCC", "type": "deepjscc", "model": str(ckpt)}],
           "metrics": ["psnr"], "grid": {"snr_db": [0], "images": 1}, "output": str(tmp_path / "old")}
    scenario = parse_scenario(raw)
    assert "restorers" not in scenario.fingerprint() and "priors" not in scenario.fingerprint()
    result = quiet_run(scenario, plots=False)
    current = result.results_csv.read_bytes()
    with result.results_csv.open(newline="") as handle:  # the same rows as an earlier linksim wrote them
        old_rows = list(csv.DictReader(handle))
    with result.results_csv.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=LEGACY_COLUMNS, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(old_rows)
    with pytest.warns(UserWarning, match="upgraded in place"):
        again = quiet_run(scenario, plots=False)
    assert again.computed == 0 and result.results_csv.read_bytes() == current
    result.results_csv.write_text("scheme,image,psnr\n")  # any other header: refused
    with pytest.raises(ConfigError, match="new --out"):
        quiet_run(scenario, plots=False)


# ----------------------------------------------------------------------------- validation

@pytest.mark.parametrize("change, field, words", [
    ({"type": "magic"}, "restorers[0].type", ["sing-zero"]),
    ({"type": None}, "restorers[0].type", ["diffjscc", "sing-zero"]),
    ({"prior": None}, "restorers[0].prior", ["prior name"]),
    ({"prior": "/no/such/prior"}, "restorers[0].prior", ["/no/such/prior"]),
    ({"prior": "weights.ckpt"}, "restorers[0].prior", ["pickled"]),
    ({"operator": "avgpool3"}, "restorers[0].operator", ["avgpool3", "avgpool4"]),
    ({"steps": 0}, "restorers[0].steps", ["≤ 1000"]),
    ({"steps": 1001}, "restorers[0].steps", ["≤ 1000"]),
    ({"sampler": "euler"}, "restorers[0].sampler", ["ddim"]),
    ({"eta": 0.5}, "restorers[0].eta", ["ddim"]),
    ({"sampler": "ddim", "eta": 2}, "restorers[0].eta", ["[0, 1]"]),
    ({"sigma_y": -0.1}, "restorers[0].sigma_y", ["snr"]),
    ({"sigma_y": "loud"}, "restorers[0].sigma_y", ["snr"]),
    ({"sigma_y_scale": 0.1}, "restorers[0].sigma_y_scale", ["snr"]),
    ({"sigma_y": {0: -0.1}}, "restorers[0].sigma_y", ["σ_y ≥ 0"]),
    ({"sigma_y": {"low": 0.1}}, "restorers[0].sigma_y", ["pairs of numbers"]),
    ({"sigma_y": {}}, "restorers[0].sigma_y", ["non-empty"]),
    ({"jump_length": 3}, "restorers[0].jump_length", ["[0, 2]"]),
    ({"batch": 0}, "restorers[0].batch", ["≥ 1"]),
    ({"device": "tpu"}, "restorers[0].device", ["cuda"]),
    ({"after": ["Nope"]}, "restorers[0].after", ["DeepJSCC"]),
    ({"after": []}, "restorers[0].after", ["DeepJSCC"]),
    ({"guidance": 3}, "restorers[0]", ["guidance", "operator"]),
    ({"name": ""}, "restorers[0].name", ["non-empty"]),
])
def test_bad_restorer_fields_are_refused_at_load(tmp_path, ckpt, images, tiny_prior, change, field, words):
    raw = scenario_dict(ckpt, images, tmp_path / "out", tiny_prior)
    raw["restorers"][0].update(change)
    with pytest.raises(ConfigError) as caught:
        parse_scenario(raw)
    message = str(caught.value)
    assert message.startswith(field + ":") and "expected" in message and "\n" not in message, message
    for word in words:
        assert word in message, message


def test_bad_restorer_lists_are_refused(tmp_path, ckpt, images, tiny_prior):
    entry = {"type": "sing-zero", "prior": str(tiny_prior)}
    for restorers, field in [("sing-zero", "restorers"), ([entry, entry], "restorers"), (["sing-zero"], "restorers[0]")]:
        with pytest.raises(ConfigError) as caught:
            parse_scenario(scenario_dict(ckpt, images, tmp_path / "out", tiny_prior, restorers=restorers))
        assert str(caught.value).startswith(field + ":")


def test_images_the_restorer_cannot_take_are_refused_before_any_output(tmp_path, ckpt, photo, tiny_prior):
    from diffusers import UNet2DModel

    odd = crops(tmp_path / "odd", photo, size=20)
    raw = scenario_dict(ckpt, odd, tmp_path / "out", tiny_prior)
    raw["restorers"][0]["operator"] = "avgpool8"
    with pytest.raises(ConfigError) as caught:  # 20 is not a multiple of 8
        quiet_run(parse_scenario(raw))
    assert str(caught.value).startswith("restorers[0].image_size: got 'a: 20x20'") and "pooling factor 8" in str(caught.value)
    raw["restorers"][0]["operator"] = "avgpool2"
    with pytest.raises(ConfigError) as caught:  # a 16×16 prior for 20×20 images
        quiet_run(parse_scenario(raw))
    assert str(caught.value).startswith("restorers[0].image_size") and "3x16x16" in str(caught.value)
    gray = tmp_path / "gray-prior"
    UNet2DModel(sample_size=16, in_channels=1, out_channels=1, layers_per_block=1, block_out_channels=(8, 16),
                norm_num_groups=4, down_block_types=("DownBlock2D", "DownBlock2D"),
                up_block_types=("UpBlock2D", "UpBlock2D")).save_pretrained(gray)
    raw = scenario_dict(ckpt, crops(tmp_path / "sixteen", photo), tmp_path / "out", gray)
    with pytest.raises(ConfigError) as caught:  # a one-channel prior for RGB images
        quiet_run(parse_scenario(raw))
    assert str(caught.value).startswith("restorers[0].image_size") and "in_channels 1" in str(caught.value)
    assert not (tmp_path / "out").exists()


def test_registry_maps_sigma_y(tiny_prior):
    base = {"type": "sing-zero", "prior": str(tiny_prior), "steps": 2}
    plain = make_restorer(base, progress=False)
    assert plain.label == "SING-Zero" and plain.batch == 8 and plain.operator.name == "avgpool4"
    assert torch.equal(plain.measurement_sigma(0.0, 1), torch.zeros(1, dtype=torch.float64))
    snr = make_restorer({**base, "sigma_y": "snr", "sigma_y_scale": 0.1}, progress=False)
    assert float(snr.measurement_sigma(0.0, 1)[0]) == pytest.approx(0.1)
    fixed = make_restorer({**base, "sigma_y": 0.02, "sampler": "ddim", "eta": 0.5}, progress=False)
    assert float(fixed.measurement_sigma(10.0, 1)[0]) == pytest.approx(0.02) and fixed.eta == 0.5
    spec = validate_spec({**base, "sigma_y": {5: 0.1, -5: 0.3}}, "restorers[0]")
    assert spec["sigma_y"] == {-5.0: 0.3, 5.0: 0.1}  # sorted, numbers
    table = make_restorer({**base, "sigma_y": {5: 0.1, -5: 0.3}}, progress=False)
    assert table.measurement_sigma([-9.0, 0.0, 2.5], 3).tolist() == pytest.approx([0.3, 0.2, 0.15])


def test_restore_imports_nothing_from_the_physical_layer():
    """docs/ARCHITECTURE.md §3: linksim.restore sees images and an SNR, never symbols (the runner composes)."""
    import ast

    import linksim.restore

    imported = set()
    for file in Path(linksim.restore.__file__).parent.glob("*.py"):
        for node in ast.walk(ast.parse(file.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module:
                imported.add(node.module)
            elif isinstance(node, ast.Import):
                imported.update(alias.name for alias in node.names)
    assert not {m for m in imported if m.split(".")[:2] in (["linksim", "channel"], ["linksim", "digital"],
                                                            ["linksim", "jscc"])}
    assert "linksim.restore.registry" in imported  # the walk did see the package


def test_summary_table_never_cuts_a_restorer_label():
    # two restorers whose labels agree on their first 28 characters must stay distinguishable
    row = {"scheme": "DeepJSCC", "snr_db": 0.0, "n": 2, "psnr": 20.0, "psnr_ci95": 0.5, "ms_ssim": 0.9,
           "lpips": None, "decoded_rate": 1.0, "bpp": None}
    labels = ["SING-Zero (avgpool4, measured σ_y)", "SING-Zero (avgpool8, σ_y = 0)"]
    table = format_summary([{**row, "restorer": ""}] + [{**row, "restorer": label} for label in labels])
    lines = table.splitlines()
    for label in labels:
        assert f"DeepJSCC + {label}" in table
    assert len({len(line) for line in lines[:5]}) == 1  # header, rule and rows stay aligned


def test_psnr_figure_draws_every_restorer_curve_and_ms_ssim_when_nothing_can_be_lost():
    from linksim.plots import psnr_figure

    def row(scheme, restorer, snr, psnr, decoded=1.0):
        return {"scheme": scheme, "restorer": restorer, "snr_db": snr, "n": 2, "psnr": psnr, "psnr_ci95": 0.3,
                "ms_ssim": psnr / 40, "lpips": None, "decoded_rate": decoded, "bpp": None}

    analog = [row("DeepJSCC", r, snr, 15 + snr + i) for i, r in enumerate(["", "SING-Zero"]) for snr in (-5.0, 0.0, 5.0)]
    top, bottom = psnr_figure(analog, kinds={"DeepJSCC": "deepjscc"}).axes
    curves = {line.get_label(): line.get_ydata() for line in top.get_lines()}
    assert list(curves["DeepJSCC + SING-Zero"]) == [11.0, 16.0, 21.0]
    assert list(curves["DeepJSCC (analog)"]) == [10.0, 15.0, 20.0]
    assert bottom.get_ylabel() == "MS-SSIM" and len(bottom.get_lines()) == 2
    lossy = analog + [row("BPG + LDPC", "", snr, 30.0, decoded=float(snr > 0)) for snr in (-5.0, 0.0, 5.0)]
    top, bottom = psnr_figure(lossy, kinds={"DeepJSCC": "deepjscc", "BPG + LDPC": "separate"}).axes
    assert bottom.get_ylabel() == "decoded (%)" and len(bottom.get_lines()) == 2  # one per scheme, not per restorer
    assert "DeepJSCC + SING-Zero" in {line.get_label() for line in top.get_lines()}
