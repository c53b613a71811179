"""The separate and capacity schemes against theory: Shannon bounds every code, the cliff
sits where the published LDPC waterfall says, the failure rule is the documented one."""

from __future__ import annotations

import itertools

import pytest
import torch

from linksim import units
from linksim.channel import make_channel
from linksim.digital.capacity import CapacityScheme
from linksim.digital.mcs import MCS
from linksim.digital.separate import LadderCache, SeparateScheme, image_tensor
from linksim.link import Bandwidth
from linksim.metrics import psnr
from linksim.seeding import point_generator

# Published 20-iteration sum-product thresholds (FER 1e-2, Eb/N0 dB) of the 802.11n n=1944 codes.
PUBLISHED_EBNO = {"wifi-1944-1/2": 1.71, "wifi-1944-2/3": 2.32}


@pytest.fixture(scope="module")
def ladders(tmp_path_factory):
    return LadderCache(tmp_path_factory.mktemp("codec-cache"))


@pytest.fixture(scope="module")
def image(photo):
    return image_tensor(photo).unsqueeze(0)  # [1, 3, 128, 192]


def separate(ladders, code="wifi-1944-1/2", modulation="bpsk", cpp=1.0, fill=0.5):
    return SeparateScheme("sep", Bandwidth(cpp=cpp), {"name": "bpg", "chroma": "420"}, [1], ladders,
                          mcs=[MCS(code, modulation)], decoder={"backend": "sionna", "iterations": 20}, failure_fill=fill)


def test_capacity_bounds_separate_at_every_snr(ladders, image):
    awgn = make_channel("awgn")
    cap = CapacityScheme("cap", Bandwidth(cpp=1.0), {"name": "bpg", "chroma": "420"}, [1], ladders)
    schemes = [separate(ladders, code, mod) for code, mod in
               [("wifi-1944-1/2", "bpsk"), ("wifi-1944-2/3", "bpsk"), ("wifi-1944-2/3", "qpsk"), ("wifi-1944-5/6", "16qam")]]
    for snr in [-4.0, 0.0, 3.0, 6.0, 12.0]:
        bound = cap.run(image, snr, awgn, point_generator(0, "cap", snr))
        assert int(bound.bits[0]) <= units.capacity_bits(bound.k, snr)
        for scheme in schemes:
            out = scheme.run(image, snr, awgn, point_generator(0, scheme.name, snr))
            assert int(out.bits[0]) <= bound.k * scheme.mcs[0].spectral_efficiency
            if bool(out.decoded[0]):  # a code that works is below capacity, so its image is no better
                assert int(out.bits[0]) <= units.capacity_bits(out.k, snr)
            assert psnr(image, out.x_hat)[0] <= psnr(image, bound.x_hat)[0] + 1e-6, (scheme.mcs[0].label, snr)


@pytest.mark.parametrize("code", sorted(PUBLISHED_EBNO))
def test_cliff_falls_within_one_db_below_the_published_threshold(ladders, image, code):
    scheme = separate(ladders, code)
    awgn = make_channel("awgn")
    rate = scheme.mcs[0].code.rate
    threshold = units.snr_db_from_ebno(PUBLISHED_EBNO[code], 1, rate)
    below = [scheme.run(image, threshold - 1.0, awgn, point_generator(1, t)) for t in range(3)]
    above = [scheme.run(image, threshold + 1.0, awgn, point_generator(2, t)) for t in range(3)]
    assert below[0].extras["codewords"][0] >= 10  # enough codewords for the image-level cliff to be sharp
    assert not any(bool(o.decoded[0]) for o in below)
    assert all(bool(o.decoded[0]) for o in above)
    # the failure rule: mid-gray output, reported as not decoded
    assert torch.all(below[0].x_hat == 0.5)
    assert below[0].extras["codeword_errors"][0] > 0


def test_failure_fill_is_configurable_and_success_is_the_codec_image(ladders, image):
    scheme = separate(ladders, fill=0.0)
    awgn = make_channel("awgn")
    lost = scheme.run(image, -10.0, awgn, point_generator(3))
    assert torch.all(lost.x_hat == 0.0) and not bool(lost.decoded[0])
    clean = scheme.run(image, 20.0, awgn, point_generator(4))
    assert bool(clean.decoded[0])
    psnr_db = float(psnr(image, clean.x_hat)[0])
    assert psnr_db == pytest.approx(clean.extras["codec_psnr"][0], abs=0.01)


def test_nothing_fits_is_reported_not_hidden(ladders, image):
    tiny = separate(ladders, cpp=1 / 64)  # k = 384 uses: not one n=1944 codeword fits
    out = tiny.run(image, 30.0, make_channel("awgn"), point_generator(5))
    assert out.extras["fits"] == [False] and not bool(out.decoded[0]) and int(out.bits[0]) == 0


def test_rayleigh_block_fading_gives_outages_at_high_average_snr(ladders, image):
    # One coefficient per image: at 6 dB average SNR (≈ 7 dB above the BPSK R=1/2 threshold)
    # the outage probability is P(|h|² < 10^(-0.7)) = 1 − exp(−0.2) ≈ 0.18.
    scheme = separate(ladders)
    block = make_channel("rayleigh-block")
    decoded = [bool(scheme.run(image, 6.0, block, point_generator(6, t)).decoded[0]) for t in range(40)]
    lost = 40 - sum(decoded)
    assert 1 <= lost <= 18


def test_ladder_is_reused_for_the_same_tensor_and_rebuilt_after_an_in_place_change(ladders, image):
    cap = CapacityScheme("cap", Bandwidth(cpp=1.0), {"name": "bpg", "chroma": "420"}, [1], ladders)
    x = image[0].clone()                                # [3, H, W], as schemes call it
    first = cap.ladder(x)
    assert cap.ladder(x) is first and cap.ladder(x.view(x.shape)) is first   # a view of the same pixels
    x.mul_(0.5)                                         # new pixels, same storage: the version changes
    second = cap.ladder(x)
    assert second is not first and second.best_fitting(1e9).psnr_db != first.best_fitting(1e9).psnr_db
    assert cap.ladder(image[0].clone()) is first        # other storage, same pixels: found by content


def test_content_ids_match_content(ladders, image):
    """Equal x_hat_ids ⇔ equal images: the runner reuses metrics by id instead of hashing."""
    sep, cap = separate(ladders, cpp=1.0), CapacityScheme("cap", Bandwidth(cpp=1.0), {"name": "bpg", "chroma": "420"}, [1], ladders)
    channel = make_channel("awgn")
    outputs = [scheme.run(image, snr, channel, point_generator(1, scheme.name, "img", snr, trial))
               for scheme in (sep, cap) for snr in (-10.0, 20.0) for trial in (0, 1)]
    assert all(out.x_hat_ids is not None and len(out.x_hat_ids) == 1 for out in outputs)
    ids = [out.x_hat_ids[0] for out in outputs]
    assert len(set(ids)) >= 2                            # the failure fill and at least one codec point
    for a, b in itertools.combinations(range(len(outputs)), 2):
        same = torch.equal(outputs[a].x_hat, outputs[b].x_hat)
        assert (ids[a] == ids[b]) == same, (ids[a], ids[b])


def test_defaults_of_a_scheme_made_by_hand(monkeypatch, tmp_path):
    """Without a shared cache the scheme keeps its codec tables under $LINKSIM_CACHE; the codec
    defaults to BPG (4:4:4) at full size only; one MCS needs no list; the stages are the public blocks."""
    monkeypatch.setenv("LINKSIM_CACHE", str(tmp_path))
    scheme = SeparateScheme("sep", Bandwidth(cpp=1.0), mcs=MCS("wifi-648-1/2", "qpsk"))
    assert scheme.ladders.cache_dir == tmp_path
    assert (scheme.codec, scheme.downscale, scheme.failure_fill) == ({"name": "bpg"}, [1], 0.5)
    assert scheme.mcs == [MCS("wifi-648-1/2", "qpsk")]
    from linksim.channel import equalize
    from linksim.digital.ldpc import LDPCDecoder, LDPCEncoder
    from linksim.digital.modulation import Demapper, Mapper

    stages = scheme.stages(scheme.mcs[0])
    assert isinstance(stages.encoder, LDPCEncoder) and stages.encoder.code.name == "wifi-648-1/2"
    assert isinstance(stages.decoder, LDPCDecoder) and stages.decoder.backend == "numba" and stages.decoder.iterations == 20
    assert isinstance(stages.mapper, Mapper) and isinstance(stages.demapper, Demapper) and stages.demapper.method == "app"
    assert stages.mapper.modulation is stages.demapper.modulation is scheme.mcs[0].modulation
    assert stages.equalizer is equalize
    assert scheme.stages(scheme.mcs[0]).decoder is stages.decoder        # built once, kept
    options = SeparateScheme("sep", Bandwidth(cpp=1.0), mcs=MCS("wifi-648-1/2", "qpsk"),
                             decoder={"backend": "sionna", "iterations": 7}).stages(scheme.mcs[0]).decoder
    assert (options.backend, options.iterations) == ("sionna", 7)
