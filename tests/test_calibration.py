"""σ_y calibration (linksim.train.sigma_y) and the measured σ_y table (SigmaYTable)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from linksim.train.sigma_y import format_sigma_y, measure_sigma_y
from linksim.errors import ConfigError
from linksim.restore.ddnm import SigmaYTable


class NoisyCopy(torch.nn.Module):
    """A stand-in 'scheme' whose output is x + N(0, (std·10^(−SNR/20))²) i.i.d. per pixel."""

    def __init__(self, std: float):
        super().__init__()
        self.std = torch.nn.Parameter(torch.tensor(std), requires_grad=False)

    def forward(self, x, snr_db, channel, generator):
        noise = torch.randn(x.shape, generator=generator, dtype=x.dtype)
        return x + self.std * 10 ** (-snr_db / 20) * noise


@pytest.mark.parametrize("operator, factor", [("identity", 1), ("avgpool4", 4), ("avgpool8", 8)])
def test_measured_sigma_y_matches_white_noise_theory(operator, factor):
    # s×s average pooling of i.i.d. noise of std σ leaves std σ/s: the measured RMS must say so
    images = torch.full((4, 3, 64, 64), 0.5)
    table = measure_sigma_y(NoisyCopy(0.02), operator, images, [0.0, 6.0], trials=2, seed=1)
    samples = 2 * 4 * 3 * (64 // factor) ** 2
    for snr, sigma in table.items():
        expected = 0.02 * 10 ** (-snr / 20) / factor
        assert sigma == pytest.approx(expected, rel=4 / np.sqrt(2 * samples)), (operator, snr)
    assert format_sigma_y(table).startswith("sigma_y: {0: ") and ", 6: " in format_sigma_y(table)


def test_measured_sigma_y_is_reproducible():
    images = torch.rand(2, 3, 16, 16, generator=torch.Generator().manual_seed(0))
    first = measure_sigma_y(NoisyCopy(0.05), "avgpool2", images, [0.0], seed=7)
    assert first == measure_sigma_y(NoisyCopy(0.05), "avgpool2", images, [0.0], seed=7)
    assert first != measure_sigma_y(NoisyCopy(0.05), "avgpool2", images, [0.0], seed=8)


def test_sigma_y_table_interpolates_like_numpy_and_holds_its_ends():
    points = {-5: 0.19, 0: 0.13, 2.5: 0.11, 10: 0.07}
    rule = SigmaYTable(points)
    snr = np.linspace(-12, 14, 53)
    expected = np.interp(snr, sorted(points), [points[k] for k in sorted(points)])
    assert rule(torch.tensor(snr)).numpy() == pytest.approx(expected, abs=1e-12)
    assert float(SigmaYTable({3: 0.2})(torch.tensor(-40.0))) == pytest.approx(0.2)


@pytest.mark.parametrize("points, words", [({}, "non-empty"), ([0.1], "non-empty"), ({0: -1}, "σ_y ≥ 0"),
                                           ({0: float("nan")}, "finite"), ({"x": 0.1}, "pairs of numbers"),
                                           ({0: 0.1, "0": 0.2}, "each SNR once")])
def test_sigma_y_table_refuses_bad_points(points, words):
    with pytest.raises(ConfigError, match="sigma_y") as caught:
        SigmaYTable(points)
    assert words in str(caught.value)


def test_bad_trials_or_no_snr_are_refused():
    images = torch.full((1, 3, 8, 8), 0.5)
    with pytest.raises(ConfigError, match="trials"):
        measure_sigma_y(NoisyCopy(0.1), "avgpool2", images, [0.0], trials=0)
    with pytest.raises(ConfigError, match="snr"):
        measure_sigma_y(NoisyCopy(0.1), "avgpool2", images, [])


def test_cli_prints_a_table_to_paste_and_names_bad_fields(tmp_path, photo, capsys):
    from PIL import Image

    from linksim import zoo
    from linksim.cli import main
    from linksim.jscc.models import DeepJSCC, DeepJSCCConfig

    config = DeepJSCCConfig(latent_channels=8, widths=(4, 4, 4, 4), same_layers=0)
    ckpt = zoo.save_checkpoint(DeepJSCC(config), tmp_path / "tiny", "deepjscc", config.to_dict())
    folder = tmp_path / "faces"
    folder.mkdir()
    Image.fromarray(photo[:40, :50]).save(folder / "a.png")
    Image.fromarray(photo[50:90, 10:70]).save(folder / "b.png")
    args = ["calibrate", "sigma-y", str(ckpt), "--data", str(folder), "--resize", "32", "--snr", "-5", "5",
            "--trials", "1", "--quiet"]
    assert main(args + ["--operator", "avgpool4"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[-1].startswith("sigma_y: {-5: ") and ", 5: " in lines[-1] and "2 images × 1 trials" in lines[0]
    assert main(args + ["--operator", "avgpool3"]) == 2
    assert "operator" in capsys.readouterr().err
    no_resize = [a for a in args if a not in ("--resize", "32")]
    assert main(no_resize + ["--operator", "avgpool4"]) == 2  # the two images differ in size
    assert "--resize" in capsys.readouterr().err
