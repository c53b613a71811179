"""Rate sweeps: scenarios with several bandwidths (validation, runner, summary, resume, plot).

Tiny untrained DeepJSCC models at ρ = 1/48 (cpp 1/16) and ρ = 1/12 (cpp 1/4) saved into
tmp_path; one 64×96 photograph, so k = cpp·H·W is 384 and 1,536 channel uses, a multiple of 16
for every scheme.
"""

from __future__ import annotations

import csv
import warnings
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from linksim import plots, runner
from linksim.errors import ConfigError
from linksim.results import COLUMNS, RATE_COLUMNS, read_results
from linksim.runner import format_summary, run_scenario
from linksim.scenario import bandwidth_label, parse_scenario
# a sibling module, not `tests.…`: torch-fidelity installs a top-level `tests` package that would win
from test_deepjscc_scheme import tiny_checkpoint

HEIGHT, WIDTH = 64, 96
CPPS = {"1/16": 1 / 16, "1/4": 1 / 4}


@pytest.fixture()
def models(tmp_path) -> dict[str, str]:
    """Checkpoint folders by the cpp they serve."""
    return {"1/16": str(tiny_checkpoint(tmp_path / "ckpt" / "tiny-r1_48", bcr_denominator=48)),
            "1/4": str(tiny_checkpoint(tmp_path / "ckpt" / "tiny-r1_12", bcr_denominator=12))}


@pytest.fixture()
def images(tmp_path, photo) -> Path:
    folder = tmp_path / "imgs"
    folder.mkdir()
    Image.fromarray(np.ascontiguousarray(photo[:HEIGHT, :WIDTH])).save(folder / "a.png")
    return folder


def sweep(models: dict, images: Path, out: Path, **changes) -> dict:
    raw = {
        "name": "tiny-rates", "seed": 5, "images": str(images), "channel": "awgn",
        "snr_db": [0, 6], "trials": 2,
        "bandwidth": [{"cpp": "1/16"}, {"cpp": "1/4"}],
        "schemes": [
            # the checkpoints listed in the other order than the bandwidths: each is picked by its ρ
            {"name": "DeepJSCC", "type": "deepjscc", "model": [models["1/4"], models["1/16"]]},
            {"name": "BPG + LDPC", "type": "separate", "codec": {"name": "bpg", "chroma": "420"},
             "downscale": [1, 2], "mcs": {"code": "wifi-648-1/2", "modulation": "bpsk"}},
            {"name": "BPG + capacity", "type": "capacity", "codec": {"name": "bpg", "chroma": "420"}, "downscale": [1, 2]},
        ],
        "metrics": ["psnr"], "grid": {"snr_db": [6], "images": 1}, "output": str(out),
    }
    raw.update(changes)
    return raw


def run(raw: dict, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)  # equal k everywhere, SNRs inside the range: no warnings
        return run_scenario(parse_scenario(raw), progress=False, **kwargs)


def config_error(raw: dict) -> str:
    with pytest.raises(ConfigError) as caught:
        parse_scenario(raw)
    return str(caught.value)


# ----------------------------------------------------------------------------- validation

@pytest.mark.parametrize("bandwidth, field, words", [
    ([{"cpp": "1/16"}, {"cpp": "1/4"}, {"cpp": 5}], "bandwidth[2].cpp", "> 0 and ≤ 3"),
    ([{"cpp": "1/16"}, {"bcr": "1/48"}], "bandwidth[1]", "bandwidth[0]"),          # the same bandwidth twice
    ([{"cpp": "1/16"}, {"cpp": 0.0625}], "bandwidth[1]", "each bandwidth once"),
    ([{"cpp": "1/16"}, "1/4"], "bandwidth[1]", "{cpp:"),
    ([{"cpp": "1/16", "bcr": "1/48"}], "bandwidth[0]", "{cpp:"),
    ([], "bandwidth", "non-empty list"),
])
def test_bad_bandwidth_lists_name_the_entry(models, images, tmp_path, bandwidth, field, words):
    message = config_error(sweep(models, images, tmp_path / "out", bandwidth=bandwidth,
                                 schemes=[{"type": "capacity"}]))
    assert message.startswith(f"{field}: got ") and words in message


def test_a_bandwidth_list_is_validated_into_mappings_and_fingerprinted(models, images, tmp_path):
    scenario = parse_scenario(sweep(models, images, tmp_path / "out"))
    assert scenario.bandwidths == [{"cpp": 1 / 16}, {"cpp": 1 / 4}] and scenario.several_bandwidths
    assert scenario.fingerprint()["bandwidth"] == [{"cpp": 1 / 16}, {"cpp": 1 / 4}]
    assert [bandwidth_label(b) for b in scenario.bandwidths] == ["1/16", "1/4"]
    assert bandwidth_label({"bcr": 1 / 384}) == "1/128"  # labels are cpp = 3ρ
    # a single mapping stays the mapping of a one-bandwidth scenario, in the fingerprint too
    single = parse_scenario(sweep(models, images, tmp_path / "out", bandwidth={"cpp": "1/16"},
                                  schemes=[{"type": "capacity"}]))
    assert single.bandwidths == [{"cpp": 1 / 16}] and not single.several_bandwidths
    assert single.fingerprint()["bandwidth"] == {"cpp": 1 / 16} == single.bandwidth


def test_a_checkpoint_list_must_cover_every_bandwidth_once(models, images, tmp_path):
    def deepjscc(model, bandwidth=None):
        changes = {"schemes": [{"name": "DeepJSCC", "type": "deepjscc", "model": model}]}
        if bandwidth is not None:
            changes["bandwidth"] = bandwidth
        return sweep(models, images, tmp_path / "out", **changes)

    # cpp 1/4 (ρ = 1/12) has no checkpoint: the error names the ρ and the checkpoints given with theirs
    message = config_error(deepjscc([models["1/16"]]))
    assert message.startswith("schemes[0].model: got ") and "none covers cpp 1/4 (ρ = 1/12)" in message
    assert f"{models['1/16']} (ρ = 1/48)" in message
    # two checkpoints at one ρ
    twice = tiny_checkpoint(tmp_path / "ckpt" / "other-r1_48", bcr_denominator=48, seed=1)
    message = config_error(deepjscc([models["1/16"], str(twice), models["1/4"]]))
    assert "2 cover cpp 1/16 (ρ = 1/48)" in message
    # a checkpoint at a ρ of no bandwidth
    extra = tiny_checkpoint(tmp_path / "ckpt" / "tiny-r1_192", bcr_denominator=192)
    message = config_error(deepjscc([models["1/16"], models["1/4"], str(extra)]))
    assert message.startswith("schemes[0].model[2]: got ") and "ρ = 1/192" in message
    # a missing checkpoint is named by its index
    assert config_error(deepjscc([models["1/16"], str(tmp_path / "nowhere")])).startswith("schemes[0].model[1]: got ")
    assert config_error(deepjscc([])).startswith("schemes[0].model: got []")
    # one name for several bandwidths cannot match them all
    message = config_error(deepjscc(models["1/16"]))
    assert message.startswith("schemes[0].model: got ") and "ρ = 1/12" in message
    # a list of one checkpoint for a single bandwidth is fine
    assert parse_scenario(deepjscc([models["1/16"]], {"cpp": "1/16"})).schemes[0]["model"] == [models["1/16"]]


# ----------------------------------------------------------------------------- running

def test_a_two_bandwidth_sweep_runs_every_scheme_at_each_budget(models, images, tmp_path):
    result = run(sweep(models, images, tmp_path / "out"), plots=True)
    with result.results_csv.open(newline="") as handle:
        assert next(csv.reader(handle)) == RATE_COLUMNS
    rows = read_results(result.results_csv)
    assert len(rows) == 2 * 3 * 2 * 2  # bandwidths × schemes × SNRs × trials
    # image → bandwidth → scheme → SNR → trial
    assert [r["bandwidth"] for r in rows] == ["1/16"] * 12 + ["1/4"] * 12
    for r in rows:
        cpp = CPPS[r["bandwidth"]]
        k = round(cpp * HEIGHT * WIDTH)  # 384 and 1,536: a DeepJSCC at another ρ would spend another k
        assert r["k"] == k and r["cpp"] == pytest.approx(cpp)
        if r["scheme"] == "BPG + LDPC":  # whole codewords of 648 bits, BPSK: 0 at cpp 1/16, 2 × 324 at 1/4
            assert r["budget_bits"] == (k // 648) * 324
        if r["scheme"] == "BPG + capacity":
            assert r["budget_bits"] == int(np.floor(k * np.log2(1 + 10 ** (r["snr_db"] / 10))))
    assert {r["decoded"] for r in rows if r["scheme"] == "BPG + LDPC" and r["bandwidth"] == "1/16"} == {False}

    summary = result.summary
    assert list(summary[0])[:5] == ["scheme", "restorer", "cpp", "bcr", "snr_db"]
    assert [(r["scheme"], r["cpp"], r["snr_db"]) for r in summary[:4]] == [
        ("DeepJSCC", 1 / 16, 0), ("DeepJSCC", 1 / 16, 6), ("DeepJSCC", 1 / 4, 0), ("DeepJSCC", 1 / 4, 6)]
    assert all(r["n"] == 2 and r["bcr"] == pytest.approx(r["cpp"] / 3) for r in summary)
    assert len(summary) == 3 * 2 * 2
    with (result.out / "summary.csv").open(newline="") as handle:
        assert next(csv.reader(handle))[:5] == ["scheme", "restorer", "cpp", "bcr", "snr_db"]
    table = format_summary(summary)
    assert "cliff of BPG + LDPC at cpp 1/16: never decoded" in table
    for name in ("psnr_vs_cpp.png", "psnr_vs_snr_cpp1_16.png", "psnr_vs_snr_cpp1_4.png", "grid.png"):
        assert (result.out / name).exists(), name
    assert not (result.out / "psnr_vs_snr.png").exists()
    assert run(sweep(models, images, tmp_path / "out"), plots=False).computed == 0  # resume: nothing left


def test_each_bandwidth_gives_the_rows_of_that_bandwidth_alone(models, images, tmp_path):
    """The bandwidth is not part of a point's generator: the sweep's rows at cpp b are those
    of the same scenario with b alone (which is what a single-bandwidth run always wrote)."""
    rows = read_results(run(sweep(models, images, tmp_path / "both"), plots=False).results_csv)
    for label, model in models.items():
        alone = sweep(models, images, tmp_path / label.replace("/", "_"), bandwidth={"cpp": label})
        alone["schemes"][0]["model"] = model
        single = run(alone, plots=False)
        with single.results_csv.open(newline="") as handle:
            assert next(csv.reader(handle)) == COLUMNS  # no bandwidth column
        assert "cpp" not in single.summary[0]
        expected = read_results(single.results_csv)
        assert [{k: v for k, v in r.items() if k != "bandwidth"} for r in rows if r["bandwidth"] == label] == expected


def test_point_generators_have_the_single_bandwidth_arguments(models, images, tmp_path, monkeypatch):
    calls = []
    original = runner.point_generator
    monkeypatch.setattr(runner, "point_generator", lambda *args: calls.append(args) or original(*args))
    run(sweep(models, images, tmp_path / "out", snr_db=[6], trials=1, schemes=[{"name": "cap", "type": "capacity"}]),
        plots=False)
    # (seed, scheme, image id, SNR, trial), once per bandwidth: no bandwidth among them
    assert calls == [(5, "cap", "a", 6.0, 0)] * 2


def test_an_interrupted_sweep_resumes_to_the_same_file(models, images, tmp_path):
    full = run(sweep(models, images, tmp_path / "full", schemes=[{"name": "cap", "type": "capacity"}]), plots=False)
    lines = full.results_csv.read_bytes().splitlines(keepends=True)
    (tmp_path / "cut").mkdir()
    (tmp_path / "cut" / "scenario.json").write_bytes((full.out / "scenario.json").read_bytes())
    (tmp_path / "cut" / "results.csv").write_bytes(b"".join(lines[:6]))  # the header and five of eight rows
    resumed = run(sweep(models, images, tmp_path / "cut", schemes=[{"name": "cap", "type": "capacity"}]), plots=False)
    assert (resumed.computed, resumed.skipped) == (3, 5)
    assert resumed.results_csv.read_bytes() == full.results_csv.read_bytes()


def test_a_single_bandwidth_folder_is_not_resumed_as_a_sweep(models, images, tmp_path):
    capacity = {"schemes": [{"name": "cap", "type": "capacity"}], "snr_db": [6], "trials": 1}
    run(sweep(models, images, tmp_path / "out", bandwidth={"cpp": "1/16"}, **capacity), plots=False)
    with pytest.raises(ConfigError, match="bandwidth differ"):
        run(sweep(models, images, tmp_path / "out", **capacity), plots=False)


# ----------------------------------------------------------------------------- the rate plot

def test_the_rate_plot_draws_one_line_per_scheme_over_the_swept_cpps():
    def row(scheme, cpp, psnr, decoded, restorer=None):
        return {"scheme": scheme, "restorer": restorer, "cpp": cpp, "bcr": cpp / 3, "snr_db": 1.0, "n": 2, "psnr": psnr,
                "psnr_ci95": 0.5, "ms_ssim": None, "lpips": None, "decoded_rate": decoded, "bpp": 0.1}

    cpps = [1 / 128, 1 / 64, 1 / 32, 1 / 16]
    summary = ([row("DeepJSCC", c, 20 + i, 1.0) for i, c in enumerate(cpps)]
               + [row("BPG + LDPC", c, p, d) for c, p, d in zip(cpps, [11, 11, 24, 26], [0.0, 0.0, 0.5, 1.0])]
               + [row("BPG + capacity", c, 22 + i, 1.0) for i, c in enumerate(cpps)])
    fig = plots.rate_figure(summary, [1.0], kinds={"DeepJSCC": "deepjscc", "BPG + LDPC": "separate",
                                                   "BPG + capacity": "capacity"})
    top = fig.axes[0]
    labelled = [line for line in top.get_lines() if not line.get_label().startswith("_")]
    assert [line.get_label() for line in labelled] == ["DeepJSCC (analog)", "BPG + LDPC", "BPG + capacity (bound)"]
    for line in labelled:
        assert list(line.get_xdata()) == cpps
    assert list(labelled[1].get_ydata()) == [11, 11, 24, 26]
    # the lost points (decoded < 50 %) are marked, and the decode rates below 100 % written next to them
    lost = [line for line in top.get_lines() if line.get_marker() == "x"]
    assert len(lost) == 1 and list(lost[0].get_xdata()) == cpps[:2]
    assert sorted(text.get_text() for text in top.texts) == ["0%", "0%", "50%"]
    bottom = fig.axes[1]  # the decode rates, on the x axis the panels share
    assert top.get_xscale() == "log" and [t.get_text() for t in bottom.get_xticklabels()] == ["1/128", "1/64", "1/32", "1/16"]
    assert [list(line.get_ydata()) for line in bottom.get_lines()][1] == [0, 0, 50, 100]
    # one column of panels per SNR asked for
    assert len(plots.rate_figure(summary + [{**r, "snr_db": 4.0} for r in summary], [1.0, 4.0]).axes) == 4


def test_restorer_rows_of_a_sweep_keep_their_bandwidth_and_resume(tmp_path, photo, tiny_prior):
    from restorer_scenarios import assert_restorer_rows_recompute, crops, quiet_run

    raw = {"name": "tiny-rates-restored", "seed": 4, "images": str(crops(tmp_path / "imgs", photo)), "limit": 1,
           "channel": "awgn", "snr_db": [5], "trials": 1, "bandwidth": [{"cpp": "1/4"}, {"cpp": 1}],
           "schemes": [{"name": "cap", "type": "capacity", "codec": {"name": "bpg", "chroma": "420"}}],
           "restorers": [{"type": "sing-zero", "prior": str(tiny_prior), "operator": "avgpool2", "steps": 2}],
           "metrics": ["psnr"], "grid": {"snr_db": [5], "images": 1}, "output": str(tmp_path / "out")}
    scenario = parse_scenario(raw)
    result = quiet_run(scenario, plots=False)
    rows = read_results(result.results_csv)
    assert [(r["bandwidth"], r["restorer"], r["k"]) for r in rows] == [
        ("1/4", None, 64), ("1/4", "SING-Zero", 64), ("1", None, 256), ("1", "SING-Zero", 256)]  # k = cpp·16·16
    assert [(s["restorer"], s["cpp"]) for s in result.summary] == [(None, 0.25), (None, 1.0), ("SING-Zero", 0.25),
                                                                    ("SING-Zero", 1.0)]
    assert_restorer_rows_recompute(scenario, result.results_csv, "SING-Zero", 2)
