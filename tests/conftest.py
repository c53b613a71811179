"""Shared fixtures: small images, a temporary codec cache, the shared dev data when present."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

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


def shared_data(*parts: str) -> Path:
    """A path under ../shared/data, or skip the test when that folder is absent."""
    path = SHARED_DATA.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"development data {path} not present")
    return path
