"""The labs' explorer (linksim/labs.py): a precomputed sweep keeps the defining properties of
what it stores (the capacity bound, the flat digital curve, the whole-codeword bit budget), the
cache returns it exactly, and one slider move redraws within about a second."""

from __future__ import annotations

import time

import matplotlib
import numpy as np
import pytest

from linksim.labs import (CAPACITY, DEEPJSCC, LinkExplorer, LinkSweep, check_claims, frame_slider, lab_photo,
                          precompute_sweep, separate_label, sweep_cache_path, time_redraw)

matplotlib.use("Agg")
MCS = "wifi-1944-1/2 bpsk"


@pytest.fixture(scope="module")
def sweep() -> LinkSweep:
    return precompute_sweep(lab_photo(128), [-4, 0, 2, 8], cpps=["1/4"], mcs=[MCS], linear=False)


def test_no_separate_scheme_beats_the_capacity_bound(sweep):
    label = separate_label(MCS)
    for snr in sweep.snrs:
        assert sweep.psnr["awgn", "1/4", label, snr] <= sweep.psnr["awgn", "1/4", CAPACITY, snr] + 1e-9
        assert sweep.bits["awgn", "1/4", label, snr] <= sweep.bits["awgn", "1/4", CAPACITY, snr] or snr < 0


def test_the_digital_curve_is_a_cliff_fixed_bits_flat_quality_above_the_threshold(sweep):
    label = separate_label(MCS)
    k = 128 * 128 // 4
    budget = (k * 1 // 1944) * 972  # floor(k·m/n)·k_c: whole codewords only
    bits = {sweep.bits["awgn", "1/4", label, s] for s in sweep.snrs}
    assert len(bits) == 1 and 0 < bits.pop() <= budget
    decoded = [s for s in sweep.snrs if sweep.decoded["awgn", "1/4", label, s] == 1.0]
    lost = [s for s in sweep.snrs if sweep.decoded["awgn", "1/4", label, s] == 0.0]
    assert lost == [-4.0] and decoded == [0.0, 2.0, 8.0]  # R = 1/2 BPSK: threshold ≈ −1.3 dB (FER 1e-2)
    assert np.ptp([sweep.psnr["awgn", "1/4", label, s] for s in decoded]) < 1e-9
    # DeepJSCC has no threshold: it rises with the SNR
    assert np.all(np.diff(sweep.curve("awgn", "1/4", DEEPJSCC)[1]) > 0)


def test_the_cached_sweep_reads_back_exactly(sweep, tmp_path):
    back = LinkSweep.load(sweep.save(tmp_path / "sweep.npz"))
    assert back.psnr == sweep.psnr and back.decoded == sweep.decoded and back.bits == sweep.bits
    assert all(np.array_equal(back.images[k], sweep.images[k]) for k in sweep.images)


def test_a_retrained_checkpoint_gets_its_own_cached_sweep(tmp_path, monkeypatch):
    """The cache is named by the bytes of the models the sweep runs: a checkpoint retrained under
    the same name must not show the old model's curves."""
    import shutil

    from linksim import zoo

    monkeypatch.setenv("LINKSIM_CACHE", str(tmp_path / "cache"))
    shipped = sweep_cache_path("small", 256)
    retrained = tmp_path / "checkpoints" / "deepjscc-awgn-r1_48"
    shutil.copytree(zoo.resolve("deepjscc-awgn-r1_48"), retrained)
    with open(retrained / zoo.WEIGHTS, "r+b") as weights:  # one byte of the last tensor changed
        weights.seek(-1, 2)
        last = weights.read(1)
        weights.seek(-1, 2)
        weights.write(bytes([last[0] ^ 1]))
    monkeypatch.setenv("LINKSIM_CHECKPOINTS", str(tmp_path / "checkpoints"))
    assert sweep_cache_path("small", 256) != shipped
    assert sweep_cache_path("small", 256).parent == shipped.parent == tmp_path / "cache" / "labs"
    assert sweep_cache_path("small", 128) != sweep_cache_path("small", 256)


def test_a_slider_move_redraws_within_about_a_second_and_marks_the_chosen_point(sweep):
    explorer = LinkExplorer(sweep)
    moves = [dict(snr=s, cpp="1/4", mcs=separate_label(MCS), channel="awgn") for s in sweep.snrs]
    # CPU time: what a move costs the kernel, not inflated by other jobs on a shared machine
    seconds = time_redraw(explorer, moves, clock=time.process_time)
    print(f"slowest redraw: {seconds:.2f} s of CPU, {time_redraw(explorer, moves):.2f} s of wall time")
    assert seconds < 1.0
    figure = explorer.draw(snr=2.3, cpp="1/4", mcs=separate_label(MCS), channel="awgn")  # nearest grid SNR: 2
    marks = [line for line in figure.axes[0].lines if line.get_marker() == "o" and len(line.get_xdata()) == 1]
    assert {float(m.get_xdata()[0]) for m in marks} == {2.0}
    assert sorted(float(m.get_ydata()[0]) for m in marks) == sorted(
        sweep.psnr["awgn", "1/4", s, 2.0] for s in (separate_label(MCS), CAPACITY, DEEPJSCC))


def test_widgets_are_built_and_degrade_to_none_without_ipywidgets(sweep, monkeypatch):
    import builtins

    explorer = LinkExplorer(sweep)
    assert explorer.widget() is not None
    assert frame_slider({1: [("a", sweep.image)], 2: [("b", sweep.image)]}, "x") is not None
    real_import = builtins.__import__

    def no_ipywidgets(name, *args, **kwargs):
        if name == "ipywidgets":
            raise ImportError(name)
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_ipywidgets)
    assert explorer.widget() is None and frame_slider({1: []}, "x") is None


def test_a_claim_that_no_longer_holds_fails_the_lab(capsys):
    with pytest.raises(AssertionError, match="the cliff is sharp"):
        check_claims({"the bound rises": True, "the cliff is sharp": False})
    assert "✓ the bound rises" in capsys.readouterr().out
