"""The weight-free perceptual metrics (HaarPSI, VSI) against their defining properties, and the
metric names of scenarios, results.csv and ``linksim metrics``."""

from __future__ import annotations

import warnings

import pytest
import torch

from linksim import metrics as M
from linksim.errors import ConfigError


@pytest.fixture()
def pair(photo):
    x = torch.from_numpy(photo[:96, :128]).permute(2, 0, 1).float().div(255).unsqueeze(0)
    return x.repeat(2, 1, 1, 1)


@pytest.mark.parametrize("metric", [M.haarpsi, M.vsi])
def test_one_for_equal_images_and_monotone_in_added_noise(metric, pair):
    g = torch.Generator().manual_seed(0)
    noise = torch.randn(pair.shape, generator=g)
    assert torch.allclose(metric(pair, pair), torch.ones(2), atol=1e-5)
    scores = [metric(pair, (pair + sigma * noise).clamp(0, 1)).mean().item() for sigma in (0.01, 0.03, 0.1, 0.3)]
    assert all(a > b for a, b in zip(scores, scores[1:])), scores
    assert 0 < scores[-1] < scores[0] < 1
    y = (pair + 0.05 * noise).clamp(0, 1)
    assert torch.allclose(metric(pair, y), metric(y, pair), atol=1e-5)  # both pool with max(weights): symmetric


def test_haarpsi_ranks_structure_above_equal_mse(pair):
    """What PSNR cannot see (Wang & Bovik, "Mean squared error: love it or leave it?", IEEE SPM
    2009, Fig. 2): at the *same* MSE, a contrast/brightness change keeps every edge and scores
    clearly higher than white noise, which destroys fine structure."""
    g = torch.Generator().manual_seed(1)
    noisy = (pair + 0.04 * torch.randn(pair.shape, generator=g)).clamp(0, 1)
    mse = (noisy - pair).pow(2).mean().sqrt().item()
    shifted = pair * (1 - 2 * mse) + mse  # inside [0, 1], shifted by ≈ mse on average
    scale = ((noisy - pair).pow(2).mean() / (shifted - pair).pow(2).mean()).sqrt()
    shifted = pair + (shifted - pair) * scale  # exactly the same MSE
    assert M.psnr(pair, shifted).mean().item() == pytest.approx(M.psnr(pair, noisy).mean().item(), abs=1e-3)
    assert M.haarpsi(pair, shifted).mean() > M.haarpsi(pair, noisy).mean() + 0.05


def test_metric_suite_with_the_new_names(pair, tmp_path, monkeypatch):
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path))
    M._reset_lpips_state()
    y = (pair + 0.05).clamp(0, 1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", M.MissingWeightsWarning)
        suite = M.MetricSuite(["haarpsi", "psnr", "fid", "lpips_vgg", "vsi", "kid"])
        scores = suite(pair, y)
    assert suite.names == ["haarpsi", "psnr", "lpips_vgg", "vsi"] and suite.group == ["fid", "kid"]
    assert list(scores) == suite.names
    assert scores["haarpsi"] == pytest.approx(M.haarpsi(pair, y).tolist())
    assert scores["vsi"] == pytest.approx(M.vsi(pair, y).tolist())
    assert scores["lpips_vgg"] == [None, None]  # no VGG weights in the (empty) cache
    M._reset_lpips_state()


@pytest.mark.parametrize("bad", [["psnr", "dists"], [], "psnr", ["psnr", "psnr"], [3]])
def test_scenarios_refuse_unknown_or_repeated_metric_names(bad):
    from linksim.scenario import parse_scenario

    raw = {"schemes": [{"name": "C", "type": "capacity", "codec": {"name": "jpeg"}}], "bandwidth": {"cpp": "1/16"},
           "metrics": bad}
    with pytest.raises(ConfigError, match="metrics") as error:
        parse_scenario(raw)
    assert "haarpsi" in str(error.value) and "fid" in str(error.value)


def test_results_columns_only_grow_for_the_named_metrics():
    from linksim.results import COLUMNS, RATE_COLUMNS, result_columns

    assert result_columns(False, ["psnr", "ms_ssim", "lpips"]) == COLUMNS  # an existing scenario: the same file
    assert result_columns(True, ["psnr", "fid", "kid"]) == RATE_COLUMNS    # group metrics are no columns
    cols = result_columns(False, ["vsi", "psnr", "haarpsi"])
    assert cols[cols.index("lpips") + 1: cols.index("lpips") + 3] == ["haarpsi", "vsi"]
    assert len(cols) == len(COLUMNS) + 2


def test_linksim_metrics_lists_every_metric_and_whether_it_runs(tmp_path, monkeypatch, capsys):
    from linksim.cli import main

    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path))
    assert main(["metrics"]) == 0
    out = capsys.readouterr().out
    for name in M.ALL_METRICS:
        assert any(line.startswith(name + " ") for line in out.splitlines()), name
    lines = out.splitlines()
    runs = {lines[i].split()[0]: lines[i + 2] for i in range(0, len(lines), 3)}
    assert all("runs here: yes" in runs[n] for n in ("psnr", "ms_ssim", "haarpsi", "vsi"))
    assert all("runs here: no" in runs[n] for n in ("lpips", "lpips_vgg", "fid", "kid"))
    assert str(tmp_path / "checkpoints" / "weights-inception-2015-12-05-6726825d.pth") in runs["fid"]
    (tmp_path / "checkpoints").mkdir()
    (tmp_path / "checkpoints" / "alexnet-owt-7be5be79.pth").write_bytes(b"")
    assert [i.available for i in M.catalogue() if i.name == "lpips"] == [True]
