"""What the restorer-in-scenario tests share: a tiny untrained DeepJSCC checkpoint (downsampling
16), 16×16 crops of a photograph, a quiet runner, and the resume check of restorer rows."""

from __future__ import annotations

import warnings
from pathlib import Path

import pytest
import torch
from PIL import Image

from linksim import zoo
from linksim.jscc.models import DeepJSCC, DeepJSCCConfig
from linksim.results import read_results
from linksim.runner import run_scenario


@pytest.fixture()
def ckpt(tmp_path) -> Path:
    torch.manual_seed(0)
    config = DeepJSCCConfig(latent_channels=6 * 16 ** 2 // 48, widths=(4, 4, 4, 4), same_layers=0)
    return zoo.save_checkpoint(DeepJSCC(config), tmp_path / "tiny-awgn-r1_48", "deepjscc", config.to_dict())


def crops(folder: Path, photo, size: int = 16) -> Path:
    folder.mkdir()
    Image.fromarray(photo[:size, :size]).save(folder / "a.png")
    Image.fromarray(photo[40:40 + size, 60:60 + size]).save(folder / "b.png")
    return folder


@pytest.fixture()
def images(tmp_path, photo) -> Path:
    return crops(tmp_path / "imgs", photo)


def quiet_run(scenario, **kwargs):
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*LPIPS.*")
        return run_scenario(scenario, progress=False, **kwargs)


def assert_restorer_rows_recompute(scenario, results_csv: Path, label: str, rows: int) -> None:
    """Resume: a finished run has nothing to do; with ``label``'s rows removed from results.csv
    only those ``rows`` are recomputed (the others skipped), with identical numbers."""
    assert quiet_run(scenario, plots=False).computed == 0
    before = {tuple(sorted(r.items())) for r in read_results(results_csv)}
    with results_csv.open() as handle:
        lines = handle.readlines()
    results_csv.write_text("".join(line for line in lines if f",{label}," not in line))
    again = quiet_run(scenario, plots=False)
    assert (again.computed, again.skipped) == (rows, len(before) - rows)
    assert {tuple(sorted(r.items())) for r in read_results(results_csv)} == before
