"""Relative paths inside a scenario file resolve from the file's folder, not from the working folder."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image

from linksim.scenario import load_scenario, parse_scenario

REPO = Path(__file__).resolve().parents[1]
SCENARIOS = sorted((REPO / "scenarios").glob("*.yaml"))


def _write_scenario(folder: Path, images) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    raw = {"name": "paths", "images": images, "snr_db": [10], "bandwidth": {"cpp": "1/8"}, "metrics": ["psnr"],
           "schemes": [{"name": "bound", "type": "capacity", "codec": "jpeg"}]}
    path = folder / "scenario.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


@pytest.fixture()
def photos(tmp_path) -> Path:
    """``tmp/exp/photos/a.png``: a folder beside a scenario file ``tmp/exp/scenario.yaml``."""
    folder = tmp_path / "exp" / "photos"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)).save(folder / "a.png")
    return folder


def test_a_relative_images_folder_is_read_from_the_yaml_folder_whatever_the_working_folder(photos, tmp_path, monkeypatch):
    path = _write_scenario(photos.parent, "photos")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    for cwd in (tmp_path, elsewhere, photos):  # none of them holds a "photos" folder of its own
        monkeypatch.chdir(cwd)
        scenario = load_scenario(Path(path).resolve().relative_to(tmp_path) if cwd == tmp_path else path)
        assert Path(scenario.images).resolve() == photos.resolve()


def test_a_list_of_files_resolves_each_and_absolute_paths_and_samples_stay(photos, tmp_path, monkeypatch):
    path = _write_scenario(photos.parent, ["photos/a.png", str(photos / "a.png")])
    monkeypatch.chdir(tmp_path)
    first, second = load_scenario(path).images
    assert Path(first).resolve() == Path(second) == photos / "a.png"
    assert load_scenario(_write_scenario(tmp_path / "s", "samples")).images == "samples"
    # a mapping with no file behind it keeps its paths as written (relative to the working folder)
    assert parse_scenario(yaml.safe_load(path.read_text())).images[0] == "photos/a.png"


def test_a_scenario_runs_from_another_folder_with_the_same_rows(photos, tmp_path, monkeypatch):
    from linksim.runner import run_scenario

    path = _write_scenario(photos.parent, "photos")
    rows = []
    for cwd in (photos.parent, tmp_path):
        monkeypatch.chdir(cwd)
        out = tmp_path / f"run-{len(rows)}"
        run_scenario(load_scenario(path), out=out, progress=False)
        rows.append((out / "results.csv").read_text())
    assert rows[0] == rows[1] and "a," in rows[0]


@pytest.mark.parametrize("scenario", SCENARIOS, ids=[p.name for p in SCENARIOS])
def test_every_shipped_scenario_names_the_same_images_from_the_repository_and_from_elsewhere(scenario, tmp_path,
                                                                                            monkeypatch):
    monkeypatch.chdir(REPO)
    here = load_scenario(scenario.relative_to(REPO)).images
    monkeypatch.chdir(tmp_path)
    there = load_scenario(scenario).images
    if here == "samples":
        assert there == "samples"
        return
    assert Path(there).resolve() == (REPO / here).resolve()
    # the development data sits beside the repository (../shared/data), as the README says; the
    # path is normalized without resolving links (../shared may be a link to the data elsewhere)
    assert (REPO.parent / "shared" / "data") in Path(os.path.normpath(there)).parents
