"""Every scheme over the OFDM channel: the unit flat channel reproduces AWGN, the per-RE capacity
is the ergodic Rayleigh capacity, DeepJSCC's SNR input is the post-equalization SINR, and a
scenario over OFDM is reproducible and reports its overheads."""

from __future__ import annotations

import math

import pytest
import torch
import yaml
from PIL import Image
from scipy.special import exp1

from linksim.channel import OFDMChannel, OFDMConfig, make_channel
from linksim.cli import main
from linksim.data import to_tensor
from linksim.digital.capacity import CapacityScheme
from linksim.digital.mcs import MCS
from linksim.digital.separate import SeparateScheme
from linksim.jscc.linear import LinearScheme
from linksim.jscc.scheme import DeepJSCCScheme
from linksim.link import Bandwidth
from linksim.metrics import psnr
from linksim.results import COLUMNS, read_results
from linksim.units import normalize_power

RHO = Bandwidth(bcr=1 / 48)
FLAT = {"type": "ofdm", "model": "flat", "csi": "perfect", "pilots": {"pattern": "none"}, "equalizer": "zf"}


def _gen(seed):
    return torch.Generator().manual_seed(seed)


@pytest.fixture(scope="module")
def image(photo):
    return to_tensor([photo])       # [1, 3, 128, 192]: k = 1536 data REs at ρ = 1/48


def _psnrs(scheme, image, channel, snr, trials):
    return [float(psnr(scheme.run(image, snr, channel, _gen(100 + t)).x_hat, image)[0]) for t in range(trials)]


@pytest.mark.parametrize("kind", ["deepjscc", "linear"])
def test_analog_schemes_on_the_flat_unit_ofdm_channel_match_awgn(kind, image):
    """Same SNR per data RE, unitary OFDM: the PSNR distribution is the AWGN one (other draws)."""
    scheme = DeepJSCCScheme("d", RHO, "deepjscc-awgn-r1_48") if kind == "deepjscc" else LinearScheme("l", RHO)
    trials, snr = 6, 2.0
    with pytest.warns(UserWarning) if kind == "deepjscc" else _nothing():
        ofdm = torch.tensor(_psnrs(scheme, image, make_channel(FLAT), snr, trials))
    awgn = torch.tensor(_psnrs(scheme, image, make_channel("awgn"), snr, trials))
    se = math.sqrt(ofdm.var() / trials + awgn.var() / trials)
    assert abs(ofdm.mean() - awgn.mean()) < 4.5 * se + 0.01, (ofdm, awgn)


class _nothing:
    def __enter__(self):
        return self

    def __exit__(self, *a):
        return False


def test_coded_schemes_on_the_flat_unit_ofdm_channel_match_awgn(image):
    """Capacity: k·log2(1 + SNR) on both; separate coding: the same rung arrives well above the
    code's threshold, and the image is lost well below it, on both channels."""
    flat, awgn = make_channel(FLAT), make_channel("awgn")
    cap = CapacityScheme("c", RHO, "bpg")
    for snr in (0.0, 6.0):
        a, b = cap.run(image, snr, flat, _gen(1)), cap.run(image, snr, awgn, _gen(1))
        assert abs(a.extras["budget_bits"][0] - b.extras["budget_bits"][0]) <= 1
        assert a.extras["mcs"] == ["capacity-per-re"] and b.extras["mcs"] == ["capacity"]
    sep = SeparateScheme("s", RHO, "bpg", downscale=[1, 2, 4], mcs=MCS("wifi-648-1/2", "qpsk"))
    for snr, ok in ((6.0, True), (-4.0, False)):
        a, b = sep.run(image, snr, flat, _gen(2)), sep.run(image, snr, awgn, _gen(2))
        assert bool(a.decoded[0]) is ok and bool(b.decoded[0]) is ok
        assert torch.equal(a.x_hat, b.x_hat)


def test_per_re_capacity_over_tdl_is_the_ergodic_rayleigh_capacity(image):
    """Σ_RE log2(1 + SNR·|H|²)/k averages to E log2(1 + γ|h|²), h ~ CN(0, 1):
    log2(e)·e^{1/γ}·E1(1/γ) (Rayleigh ergodic capacity), not log2(1 + γ)."""
    ch = make_channel({"type": "ofdm", "fft_size": 64, "cp_length": 14, "csi": "ls"})
    snr, k, draws = 10.0, 10_000, 6
    gamma = 10 ** (snr / 10)
    per_re = [float(ch.capacity_bits(torch.ones(1, k, dtype=torch.complex64), snr, _gen(s))[0]) / k
              for s in range(draws)]
    mean, se = sum(per_re) / draws, torch.tensor(per_re).std().item() / math.sqrt(draws)
    theory = math.log2(math.e) * math.exp(1 / gamma) * exp1(1 / gamma)
    assert abs(mean - theory) < 4.5 * se + 0.01 * theory, (mean, se, theory)
    assert theory < math.log2(1 + gamma) - 0.3
    out = CapacityScheme("c", RHO, "bpg").run(image, snr, ch, _gen(3))
    assert out.extras["mcs"] == ["capacity-per-re"] and out.extras["budget_bits"][0] < 1536 * math.log2(1 + gamma)


def test_deepjscc_snr_input_is_the_estimated_post_equalization_sinr():
    """The model conditions on SNR + 10·log10(mean|h|²) (jscc.models.DeepJSCC.forward); over OFDM
    that is 10·log10 of the mean over the image's REs of 1/σ²_eff, the receiver's own SINR estimate."""
    ch = OFDMChannel(OFDMConfig.from_spec({"fft_size": 64, "cp_length": 14, "csi": "ls"}))
    x = normalize_power(torch.randn(2, 3000, dtype=torch.complex64, generator=_gen(4)))
    out = ch(x, 4.0, _gen(5))
    t = ch.transmit(x, 4.0, _gen(5))
    model_input = 4.0 + 10 * torch.log10((out.h.abs() ** 2).mean(dim=1))
    sinr = 10 * torch.log10((1 / t.no_eff).mean(dim=1))
    assert torch.allclose(model_input, sinr, atol=1e-3)


# ----------------------------------------------------------------------------- scenarios
def _scenario(tmp_path, folder, channel) -> str:
    spec = {"name": "tiny-ofdm", "seed": 5, "images": str(folder), "channel": channel, "snr_db": [0, 8],
            "trials": 1, "bandwidth": {"bcr": "1/48"}, "crop_multiple": 16,
            "schemes": [{"name": "Linear", "type": "linear"},
                        {"name": "BPG + capacity", "type": "capacity", "codec": {"name": "bpg", "chroma": "420"},
                         "downscale": [1, 2, 4]}],
            "metrics": ["psnr"], "grid": {"snr_db": [0], "images": 1}, "output": str(tmp_path / "never")}
    path = tmp_path / f"s{abs(hash(str(channel)))}.yaml"
    path.write_text(yaml.safe_dump(spec))
    return str(path)


@pytest.fixture()
def folder(tmp_path, photo):
    f = tmp_path / "imgs"
    f.mkdir()
    Image.fromarray(photo).save(f / "astro.png")
    return f


def test_ofdm_scenario_same_seed_same_bytes_and_overhead_columns(tmp_path, folder):
    channel = {"type": "ofdm", "fft_size": 64, "cp_length": 14, "csi": "ls", "guard_carriers": [2, 1],
               "dc_null": True}
    path = _scenario(tmp_path, folder, channel)
    assert main(["run", path, "--out", str(tmp_path / "a"), "--quiet"]) == 0
    assert main(["run", path, "--out", str(tmp_path / "b"), "--quiet"]) == 0
    a, b = (tmp_path / "a" / "results.csv").read_bytes(), (tmp_path / "b" / "results.csv").read_bytes()
    assert a == b
    rows = read_results(tmp_path / "a" / "results.csv")
    cfg = OFDMConfig.from_spec(channel)
    for row in rows:
        used = int(row["channel_uses_used"])
        # every RE of every slot is data, pilot or null; the CP is its own fraction of the air time
        assert used + row["pilot_res"] + row["null_res"] == row["ofdm_grids"] * 14 * 64
        assert row["pilot_res"] == row["ofdm_grids"] * 2 * (64 - 3 - 1)
        assert row["cp_overhead"] == pytest.approx(14 / 78, abs=1e-6)
        assert row["csi"] == "ls" and row["channel"] == "ofdm-tdl-a"
    assert cfg.data_res_per_grid == 12 * 60


def test_non_ofdm_scenarios_keep_their_columns(tmp_path, folder):
    path = _scenario(tmp_path, folder, "awgn")
    assert main(["run", path, "--out", str(tmp_path / "a"), "--quiet"]) == 0
    header = (tmp_path / "a" / "results.csv").read_text().splitlines()[0].split(",")
    assert header == COLUMNS
