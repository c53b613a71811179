"""Perceptual metrics in a run: per-image columns in results.csv, FID/KID pooled into
summary.csv from the features the runner stores per point, and a run without the Inception
weights that still finishes with the weight-free metrics filled."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from linksim import metrics as M
from linksim.metrics import group as G
from linksim.metrics import inception as I
from linksim.results import read_results, result_columns
from linksim.runner import format_summary, run_scenario
from linksim.scenario import parse_scenario

METRICS = ["psnr", "ms_ssim", "lpips", "haarpsi", "vsi", "fid", "kid"]


@pytest.fixture()
def images(tmp_path, photo) -> Path:
    folder = tmp_path / "imgs"
    folder.mkdir()
    Image.fromarray(np.ascontiguousarray(photo[:64, :96])).save(folder / "a.png")
    Image.fromarray(np.ascontiguousarray(photo[64:128, 96:192])).save(folder / "b.png")
    return folder


def scenario(images: Path, out: Path):
    return parse_scenario({"name": "perceptual", "seed": 3, "images": str(images), "channel": "awgn",
                           "snr_db": [0, 8], "trials": 2, "bandwidth": {"bcr": "1/48"},
                           "schemes": [{"name": "DeepJSCC", "type": "deepjscc", "model": "deepjscc-awgn-r1_48"}],
                           "metrics": METRICS, "grid": {"snr_db": [8], "images": 1}, "output": str(out)})


class ColourStatistics:
    """A cheap stand-in feature network for the runner's wiring (per-channel mean and std, float64
    [N, 6]); its FIDs are about these 6 numbers, not Inception's."""

    available = True

    def __call__(self, images):
        flat = images.double().flatten(2)
        return torch.cat([flat.mean(2), flat.std(2)], dim=1)


def test_features_per_point_pooled_per_group(images, tmp_path, monkeypatch):
    monkeypatch.setattr(G, "inception_features", lambda device="cpu": ColourStatistics())
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))  # no LPIPS weights
    M._reset_lpips_state()
    out = tmp_path / "out"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", M.MissingWeightsWarning)
        result = run_scenario(scenario(images, out), progress=False)
    header = (out / "results.csv").read_text().splitlines()[0].split(",")
    assert header == result_columns(False, METRICS) and "fid" not in header
    assert len(list((out / "features" / "points").glob("*.safetensors"))) == 8      # 2 images × 2 SNRs × 2 trials
    refs = sorted((out / "features" / "reference").glob("*.safetensors"))
    assert len(refs) == 2
    from linksim.data import load_images, to_tensor
    x = to_tensor([load_images(str(images))[0].pixels])
    assert torch.allclose(G._read(G.reference_path(out, "a"))[0], ColourStatistics()(x))  # the original's, not x̂'s
    by_snr = {r["snr_db"]: r for r in result.summary}
    assert all(r["fid"] is not None and r["fid"] >= 0 and r["kid"] is not None for r in result.summary)
    assert by_snr[8.0]["fid"] < by_snr[0.0]["fid"]  # closer colour statistics at the higher SNR
    assert all(0 < r["haarpsi"] < 1 and 0 < r["vsi"] < 1 and r["lpips"] is None for r in result.summary)
    assert (out / "perceptual_vs_snr.png").exists()
    assert "HAARPSI" in format_summary(result.summary) and "FID" in format_summary(result.summary)
    # resumed: nothing computed, the same summary from the stored features
    again = run_scenario(scenario(images, out), progress=False, plots=False)
    assert again.computed == 0 and again.summary == result.summary


def test_without_inception_weights_the_run_finishes_with_offline_metrics(images, tmp_path, monkeypatch):
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))
    M._reset_lpips_state()
    I._reset_extractors()
    out = tmp_path / "out"
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = run_scenario(scenario(images, out), progress=False, plots=False)
    missing = [str(w.message) for w in caught if issubclass(w.category, M.MissingWeightsWarning)]
    assert sum("weights-inception-2015-12-05-6726825d.pth" in m for m in missing) == 1
    assert not (out / "features").exists()
    assert all(r["fid"] is None and r["kid"] is None and 0 < r["haarpsi"] < 1 for r in result.summary)
    summary_header = (out / "summary.csv").read_text().splitlines()[0].split(",")
    assert summary_header[summary_header.index("lpips") + 1:][:4] == ["haarpsi", "vsi", "fid", "kid"]
    rows = read_results(out / "results.csv")
    assert all(r["haarpsi"] is not None and r["vsi"] is not None for r in rows)
    I._reset_extractors()
    M._reset_lpips_state()


class InProcessWorkers:
    """An executor that computes each unit as a worker process does (``SweepWorker.build`` from the
    recipe, ``compute`` returning one :class:`UnitResult`), here, so that the stand-in feature
    network patched above is the one used; results handed back in canonical order (computed with
    the recipe's PyTorch threads, as a worker process does)."""

    def run(self, recipe, units):
        from linksim.runner import SweepWorker, torch_threads

        with torch_threads(recipe.torch_threads):
            worker = SweepWorker.build(recipe)
            results = sorted((worker.compute(unit) for unit in reversed(units)), key=lambda r: r.index)
        yield from results

    def close(self):
        pass


def test_group_features_from_workers_give_the_serial_files_and_summary(images, tmp_path, monkeypatch):
    """The FID/KID payloads travel in the unit results; the writing process stores them: the
    same feature files, results.csv bytes and summary as a serial run."""
    from linksim.runner import Sweep

    monkeypatch.setattr(G, "inception_features", lambda device="cpu": ColourStatistics())
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))
    M._reset_lpips_state()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", M.MissingWeightsWarning)
        serial = run_scenario(scenario(images, tmp_path / "serial"), progress=False, plots=False)
        sweep = Sweep(scenario(images, tmp_path / "workers"), progress=False)
        try:
            sweep.run(InProcessWorkers())
            summary = sweep.finish(plots=False)
        finally:
            sweep.close()
    names = lambda out: sorted(p.relative_to(out).as_posix() for p in (out / "features").rglob("*.safetensors"))  # noqa: E731
    assert names(tmp_path / "workers") == names(tmp_path / "serial") and len(names(tmp_path / "serial")) == 10
    assert (tmp_path / "workers" / "results.csv").read_bytes() == (tmp_path / "serial" / "results.csv").read_bytes()
    assert summary == serial.summary and all(r["fid"] is not None for r in summary)
