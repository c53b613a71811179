"""Cross-check the 802.11n base matrices against the development copy in ../shared/data/ldpc/.

The development tables were transcribed independently (see shared/data/README.md); they
never enter the repository. The test skips cleanly when the folder is absent.
"""

from pathlib import Path

import numpy as np
import pytest

from linksim.digital.ldpc.wifi import WIFI_LIFTING, WIFI_RATES, expand_base_matrix, wifi_base_matrix

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "ldpc"
CODES = [(n, r) for n in sorted(WIFI_LIFTING) for r in WIFI_RATES]


def _path(n: int, rate: str) -> Path:
    a, b = rate.split("/")
    return DATA / f"wifi_n{n}_r{a}_{b}.txt"


@pytest.mark.parametrize("n,rate", CODES, ids=[f"{n}-{r}" for n, r in CODES])
def test_base_matrix_matches_reference(n, rate):
    if not DATA.is_dir():
        pytest.skip(f"{DATA} not present (development data only)")
    ref = np.loadtxt(_path(n, rate), dtype=int, comments="#")
    ours = wifi_base_matrix(n, rate)
    assert ours.shape == ref.shape
    diff = np.argwhere(ours != ref)
    assert diff.size == 0, f"n={n} R={rate}: differs at [row, col] {diff.tolist()}"


def test_expansion_matches_reference_alist():
    """The expansion convention (shift right) matches the reference alist of one code."""
    path = DATA / "wifi_n648_r5_6.alist"
    if not path.is_file():
        pytest.skip(f"{path} not present (development data only)")
    lines = [ln.split() for ln in path.read_text().split("\n") if ln.strip()]
    N, M = int(lines[0][0]), int(lines[0][1])
    col_lists = lines[4:4 + N]
    H = expand_base_matrix(wifi_base_matrix(648, "5/6"), 27).toarray()
    assert H.shape == (M, N)
    for j, rows in enumerate(col_lists):
        want = sorted(int(r) - 1 for r in rows if int(r) > 0)
        assert np.flatnonzero(H[:, j]).tolist() == want, f"column {j}"
