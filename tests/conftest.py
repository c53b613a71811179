"""Shared fixtures: small images, a temporary codec cache, the shared dev data when present."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path_factory, monkeypatch):
    """Codec tables go to a per-session temporary cache, never to the user's ~/.cache."""
    monkeypatch.setenv("LINKSIM_CACHE", str(tmp_path_factory.getbasetemp() / "linksim-cache"))


@pytest.fixture(scope="session")
def photo() -> np.ndarray:
    """A real photograph (uint8 [H, W, 3]) shipped with scikit-image, cropped to 128×192."""
    from skimage import data

    return np.ascontiguousarray(data.astronaut()[:128, 160:352])


@pytest.fixture()
def same_threads() -> int:
    """For tests that compare two runs in this process bit for bit (resumed vs uninterrupted
    training): both runs must use the same intra-op thread count, which decides how float32
    reductions are split. Pins torch's count for the test and fails if anything changed it."""
    threads = torch.get_num_threads()
    torch.set_num_threads(threads)
    yield threads
    now = torch.get_num_threads()
    torch.set_num_threads(threads)
    assert now == threads, f"torch's thread count changed during the test ({threads} → {now})"


def shared_data(*parts: str) -> Path:
    """A path under ../shared/data, or skip the test when that folder is absent."""
    path = SHARED_DATA.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"development data {path} not present")
    return path


@pytest.fixture(scope="session")
def image_dir(tmp_path_factory) -> Path:
    """Three 40×40 random RGB PNGs (a folder): training data for tiny DeepJSCC runs."""
    from PIL import Image

    folder = tmp_path_factory.mktemp("jscc-images")
    rng = np.random.default_rng(0)
    for i in range(3):
        Image.fromarray(rng.integers(0, 256, (40, 40, 3), dtype=np.uint8)).save(folder / f"img{i}.png")
    return folder


@pytest.fixture(scope="session")
def prior_images(tmp_path_factory, photo) -> Path:
    """Three small photographs of different sizes (a folder) to train tiny priors on."""
    from PIL import Image

    folder = tmp_path_factory.mktemp("prior-images")
    Image.fromarray(photo[:24, :32]).save(folder / "a.png")
    Image.fromarray(photo[30:50, 40:80]).save(folder / "b.png")
    Image.fromarray(photo[60:100, 100:120]).save(folder / "c.png")
    return folder


@pytest.fixture(scope="session")
def tiny_prior(tmp_path_factory, prior_images) -> Path:
    """A 16×16 diffusion prior (UNet 8/16 channels) trained for 2 steps by ``train_prior``."""
    from linksim.train.prior import PriorSettings, train_prior

    settings = PriorSettings(data=[str(prior_images)], size=16, channels=(8, 16), layers_per_block=1,
                             attention_res=0, steps=2, batch=2)
    folder = tmp_path_factory.mktemp("priors") / "tiny-prior-16"
    train_prior(settings, folder, command="(tests)", progress=False)
    return folder
