"""FER waterfall of the n=1944 802.11n codes vs. published thresholds (slow: `pytest -m slow`).

BPSK on real AWGN, Sionna flooding sum-product (boxplus-phi), 20 iterations. The Eb/N0
at FER 1e-2 is interpolated on a log-FER scale between the two measured points that
bracket it and must lie within 0.2 dB of the commonly published values for these codes
(about 1.71 dB at R = 1/2 and 2.32 dB at R = 2/3). Each code takes a few minutes on 2 CPU
cores (about 100 frames/s when the machine is otherwise idle).
"""

import pytest

from linksim.digital.ldpc import get_code
from linksim.digital.ldpc.thresholds import measure_fer_threshold

PUBLISHED = {"wifi-1944-1/2": 1.71, "wifi-1944-2/3": 2.32}


@pytest.mark.slow
@pytest.mark.parametrize("name", list(PUBLISHED))
def test_fer_1e2_threshold_matches_published(name):
    published = PUBLISHED[name]
    points_seen = []
    x, points = measure_fer_threshold(get_code(name), start_db=published - 0.1, step_db=0.2,
                                      max_errors=50, max_frames=4000, seed=7, batch_size=200,
                                      max_points=6, log=points_seen.append)
    frames = sum(p["frames"] for p in points)
    print(f"{name}: Eb/N0 at FER 1e-2 = {x:.3f} dB (published {published}), {frames} frames, points {points}")
    assert abs(x - published) <= 0.2, (x, points)
