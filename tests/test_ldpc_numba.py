"""The numba LDPC decoder (linksim/digital/ldpc/numba_decoder.py): correctness, agreement
with Sionna, errors. Fast (< 60 s); the waterfall checks are marked slow (`pytest -m slow`)."""

import math
import subprocess
import sys
from pathlib import Path

import numba
import numpy as np
import pytest
import scipy.sparse as sp
import torch

from linksim.errors import ConfigError
from linksim.digital.ldpc import LDPCDecoder, get_code
from linksim.digital.ldpc.numba_decoder import NUMBA_CHECK_UPDATES, NumbaBPDecoder, check_parity_matrix
from linksim.digital.ldpc.thresholds import bpsk_awgn_llr
from linksim.seeding import point_generator

RULES = ["normalized-minsum", "offset-minsum", "boxplus-phi"]


def _frames(name, ebno_db, frames, seed=0):
    code = get_code(name)
    g = point_generator(seed, "test_ldpc_numba", name, ebno_db)
    u = torch.randint(0, 2, (frames, code.k), generator=g).float()
    c = code.encode(u)
    return code, u, c, bpsk_awgn_llr(c, ebno_db, code.rate, g)


def _syndrome(H, bits):
    return (H.astype(np.int64) @ np.asarray(bits, dtype=np.int64).T) % 2     # [m, B]


@pytest.mark.parametrize("schedule", ["layered", "flooding"])
@pytest.mark.parametrize("rule", RULES)
def test_success_means_every_parity_check_holds(rule, schedule):
    code, u, c, llr = _frames("wifi-648-2/3", 2.0, 160)
    dec = NumbaBPDecoder(code.H, iterations=8, check_update=rule, schedule=schedule)
    bits, ok, iters = dec.decode(llr.numpy())
    syn = _syndrome(code.H, bits)
    assert ok.any() and (~ok).any()                       # a noise level with both outcomes
    assert not syn[:, ok].any()                           # success -> every check satisfied
    assert syn[:, ~ok].any(axis=0).all()                  # failure is reported exactly
    assert ((iters >= 0) & (iters <= 8)).all() and (iters[~ok] == 8).all()


@pytest.mark.parametrize("rule", NUMBA_CHECK_UPDATES)
def test_noiseless_llrs_give_the_word_in_one_iteration(rule):
    code = get_code("wifi-1944-1/2")
    u = torch.randint(0, 2, (40, code.k), generator=point_generator(1, "noiseless")).float()
    c = code.encode(u)
    llr = (6.0 * (2.0 * c - 1.0)).numpy()
    # one iteration, no early stop: the word after exactly one iteration
    bits, ok, iters = NumbaBPDecoder(code.H, iterations=1, check_update=rule, early_stop=False).decode(llr)
    assert np.array_equal(bits, c.numpy().astype(np.uint8)) and ok.all() and (iters == 1).all()
    # early stop: the channel decision already is the codeword, so no iteration at all
    bits, ok, iters = NumbaBPDecoder(code.H, iterations=20, check_update=rule).decode(llr)
    assert np.array_equal(bits, c.numpy().astype(np.uint8)) and ok.all() and (iters == 0).all()
    # weak noiseless LLRs through LDPCDecoder (any positive scale)
    u_hat, ok = LDPCDecoder(code, iterations=1).decode(0.1 * (2.0 * c - 1.0))
    assert torch.equal(u_hat, u) and ok.all()


@pytest.mark.parametrize("rule", RULES)
def test_early_termination_never_changes_a_decoded_word(rule):
    code, u, c, llr = _frames("wifi-1944-2/3", 2.3, 192, seed=2)
    x = llr.numpy()
    b_et, ok_et, it_et = NumbaBPDecoder(code.H, iterations=20, check_update=rule).decode(x)
    b_all, ok_all, it_all = NumbaBPDecoder(code.H, iterations=20, check_update=rule, early_stop=False).decode(x)
    assert (it_all == 20).all() and it_et.mean() < 12
    assert ok_et.sum() > 150
    # every word that early termination accepted is the word that 20 full iterations give
    assert np.array_equal(b_et[ok_et], b_all[ok_et]) and ok_all[ok_et].all()


def test_threads_and_batch_split_do_not_change_results():
    code, u, c, llr = _frames("wifi-648-1/2", 1.5, 100, seed=3)
    x = llr.numpy()
    ref = NumbaBPDecoder(code.H, threads=1).decode(x)
    # numba offers as many threads as the CPUs this process may use (one under `taskset -c 0`, where
    # only the batch split is compared): 2 and all of them where there are more
    most = numba.config.NUMBA_NUM_THREADS
    threads = sorted({t for t in (2, most) if 1 < t <= most})
    for out in (*(NumbaBPDecoder(code.H, threads=t).decode(x) for t in threads),
                tuple(np.concatenate(p) for p in zip(*(NumbaBPDecoder(code.H).decode(x[i:i + 7])
                                                       for i in range(0, 100, 7))))):
        for a, b in zip(ref, out):
            assert np.array_equal(a, b)


def test_decoding_leaves_pytorchs_thread_count_as_it_was():
    """numba's OpenMP layer shares the OpenMP runtime with PyTorch: the first decode of a process,
    which starts numba's threads, once left PyTorch on numba's thread count, and every DeepJSCC
    point after an LDPC point in the same process summed its convolutions in another order than
    a fresh process (the 7th digit of the PSNR), so a one-process sweep and a pool of workers
    wrote different bytes. Run in a fresh interpreter: numba's threads start once per process."""
    if numba.config.NUMBA_NUM_THREADS < 2:
        pytest.skip("one CPU: numba cannot run 2 threads")
    script = ("import numpy as np, torch\n"
              "from linksim.digital.ldpc import get_code\n"
              "from linksim.digital.ldpc.numba_decoder import NumbaBPDecoder\n"
              "torch.set_num_threads(1)\n"
              "torch.nn.functional.conv2d(torch.ones(1, 3, 64, 64), torch.ones(8, 3, 3, 3))  # as DeepJSCC\n"
              "code = get_code('wifi-648-1/2')\n"
              "NumbaBPDecoder(code.H, threads=2).decode(np.ones((8, code.n), np.float32))\n"
              "print(torch.get_num_threads())\n")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True,
                          cwd=Path(__file__).resolve().parents[1])
    assert done.stdout.split() == ["1"]


@pytest.fixture(scope="module")
def sionna_run():
    """600 frames of wifi-648-1/2 at 1.75 dB Eb/N0 (FER a few %) through Sionna's flooding BP."""
    code, u, c, llr = _frames("wifi-648-1/2", 1.75, 600, seed=4)
    u_s, ok_s = LDPCDecoder(code, backend="sionna", iterations=20).decode(llr)
    return code, u, llr, u_s, ok_s


def test_flooding_sum_product_agrees_with_sionna(sionna_run):
    """Same LLRs, same schedule, rule, clipping and iterations: the same decisions up to float ties."""
    code, u, llr, u_s, ok_s = sionna_run
    dec = LDPCDecoder(code, backend="numba", iterations=20, check_update="boxplus-phi",
                      schedule="flooding", early_stop=False)
    u_n, ok_n = dec.decode(llr)
    assert (~ok_s).sum() >= 10                            # moderate noise: some frames fail
    same = (u_s == u_n).all(dim=1)
    assert bool(same[ok_s & ok_n].all())                  # every frame both decode: identical
    assert float(same.float().mean()) >= 0.97             # the rest: ties in failing frames only
    assert abs(int(ok_s.sum()) - int(ok_n.sum())) <= 3


def _ci_half(p, frames, z=3.29):
    """Half width of the 99.9 % normal interval of a binomial proportion (floored at 1 error)."""
    p = max(p, 1.0 / frames)
    return z * math.sqrt(p * (1 - p) / frames)


def test_minsum_fer_within_monte_carlo_interval_of_sum_product(sionna_run):
    code, u, llr, u_s, ok_s = sionna_run
    frames = u.shape[0]
    fer = {"sionna": float((u_s != u).any(dim=1).float().mean())}
    for rule in ("normalized-minsum", "offset-minsum", "boxplus-phi"):
        u_hat, _ = LDPCDecoder(code, iterations=20, check_update=rule).decode(llr)
        fer[rule] = float((u_hat != u).any(dim=1).float().mean())
    assert 0.01 < fer["sionna"] < 0.3, fer
    # min-sum (layered, default factor) vs Sionna's flooding sum-product on the same LLRs:
    # within the Monte-Carlo interval of the difference of two FERs over these frames
    for rule in ("normalized-minsum", "offset-minsum"):
        half = math.hypot(_ci_half(fer[rule], frames), _ci_half(fer["sionna"], frames))
        assert abs(fer[rule] - fer["sionna"]) <= half, (rule, fer)
    # layered sum-product converges faster: no worse than flooding at the same iterations
    assert fer["boxplus-phi"] <= fer["sionna"] + _ci_half(fer["sionna"], frames), fer


def test_any_sparse_matrix_not_only_quasi_cyclic():
    rng = np.random.default_rng(0)
    n, m = 96, 48                                       # random (3, 6)-regular-ish matrix
    H = np.zeros((m, n), np.uint8)
    for v in range(n):
        H[rng.choice(m, 3, replace=False), v] = 1
    H[H.sum(axis=1) < 2, :2] = 1
    dec = NumbaBPDecoder(sp.csr_matrix(H), iterations=10, check_update="boxplus-phi")
    zero = np.full((4, n), -5.0, np.float32)           # the all-zero word is in every code
    bits, ok, iters = dec.decode(zero)
    assert not bits.any() and ok.all() and (iters == 0).all()
    noisy = zero.copy()
    noisy[:, :3] = 1.0                                  # three weakly wrong bits get corrected
    bits, ok, _ = dec.decode(noisy)
    assert not bits.any() and ok.all()
    assert check_parity_matrix(H).format == "csr"


def test_packed_syndrome_check_matches_the_parity_definition():
    """The kernel's bit-packed check (all lanes at once) against H c mod 2 of each lane's
    hard decision (bit 1 where L < 0), including signed zeros, which decide 0."""
    from linksim.digital.ldpc import numba_decoder as nd

    code = get_code("wifi-648-1/2")
    H = check_parity_matrix(code.H)
    n, W = H.shape[1], nd.W
    rng = np.random.default_rng(3)
    words = code.encode(torch.randint(0, 2, (W, code.k), generator=torch.Generator().manual_seed(3)).float()).numpy()
    L = np.where(words.T == 1, -1.0, 1.0).astype(np.float32) * rng.uniform(0.5, 3, (n, W)).astype(np.float32)
    L[(rng.random((n, W)) < 0.1) & (words.T == 0)] = -0.0   # still a codeword only if -0.0 decides 0
    flip = np.arange(W) % 3 == 0                        # every third lane: one wrong bit
    L[rng.integers(0, n, W)[flip], np.flatnonzero(flip)] *= -1
    decisions = (L < 0).astype(np.int64)                # [n, W]
    expected = ((H @ decisions) % 2).any(axis=0)
    st = np.zeros((nd._Q + 1) * W, np.float32)
    L_flat = np.ascontiguousarray(L).reshape(-1)
    nd._lanes_fail(L_flat.view(np.uint32), H.indptr.astype(np.int32), H.indices.astype(np.int32),
                   np.zeros(n, np.uint32), st)
    assert expected.any() and not expected.all()
    np.testing.assert_array_equal(st[nd._FAIL * W:(nd._FAIL + 1) * W] == 1, expected)


@pytest.mark.parametrize("bad", [
    np.array([[1, 2, 0, 1], [0, 1, 1, 1]]),             # non-binary
    np.array([[1, 1, 0], [0, 1, 1], [1, 0, 1]]),        # m >= n
    np.ones(8),                                          # 1-D
    np.array([[1, 1, 0, 0], [0, 0, 0, 1]]),              # a check on one bit
    "H",                                                 # not a matrix
    [[1, 1, 0], [0, 1]],                                 # ragged
    np.array([[None, 1, 1], [1, 1, 0]], dtype=object),  # not numeric
])
def test_malformed_parity_check_matrix(bad):
    with pytest.raises(ConfigError) as e:
        NumbaBPDecoder(bad)
    assert e.value.field == "H" and str(e.value).startswith("H:")


def test_bad_llr_arrays():
    code = get_code("wifi-648-1/2")
    dec = NumbaBPDecoder(code.H)
    for bad in (np.zeros((2, code.n), np.float64), np.zeros((2, code.n + 1), np.float32),
                np.zeros(code.n, np.float32), np.zeros((0, code.n), np.float32), torch.zeros(2, code.n)):
        with pytest.raises(ConfigError) as e:
            dec.decode(bad)
        assert e.value.field == "llr"
    with pytest.raises(ConfigError) as e:
        LDPCDecoder(code).decode(torch.zeros(2, code.n, dtype=torch.float16))
    assert e.value.field == "llr"


@pytest.mark.parametrize("kwargs, field", [
    ({"check_update": "tanh"}, "check_update"),
    ({"schedule": "random"}, "schedule"),
    ({"normalization": 1.5}, "normalization"),
    ({"normalization": 0.8, "check_update": "offset-minsum"}, "normalization"),
    ({"offset": -1.0, "check_update": "offset-minsum"}, "offset"),
    ({"threads": 0}, "threads"),
    ({"threads": 1000}, "threads"),
    ({"early_stop": "yes"}, "early_stop"),
    ({"iterations": 0}, "iterations"),
    ({"backend": "sionna", "threads": 2}, "threads"),
    ({"backend": "sionna", "check_update": "normalized-minsum"}, "check_update"),
])
def test_bad_decoder_options(kwargs, field):
    with pytest.raises(ConfigError) as e:
        LDPCDecoder(get_code("wifi-648-1/2"), **kwargs)
    assert e.value.field == field, e.value


def test_defaults_and_nr_codes():
    dec = LDPCDecoder(get_code("wifi-1944-2/3"))
    assert dec.backend == "numba" and dec.check_update == "offset-minsum"
    assert dec.options["schedule"] == "layered" and dec.options["early_stop"] is True
    nr = get_code("nr-100-200")
    assert LDPCDecoder(nr).backend == "sionna"          # 5G NR: H is None, Sionna only
    with pytest.raises(ConfigError) as e:
        LDPCDecoder(nr, backend="numba")
    assert e.value.field == "backend"


def test_average_iterations_are_reported():
    code, u, c, llr = _frames("wifi-648-1/2", 3.0, 64, seed=6)
    dec = LDPCDecoder(code)
    dec.decode(llr)
    assert dec.last_iterations.shape == (64,) and 0 < dec.last_iterations.mean() < 10


SCENARIO = {
    "name": "t", "seed": 1, "images": "samples", "channel": "awgn", "snr_db": [0, 2], "trials": 1,
    "bandwidth": {"cpp": "1/16"}, "metrics": ["psnr"],
    "schemes": [{"name": "ldpc", "type": "separate", "codec": {"name": "bpg", "chroma": "420"},
                 "mcs": {"code": "wifi-648-1/2", "modulation": "bpsk"}}],
}


@pytest.mark.parametrize("decoder, field", [
    ({"check_update": "nope"}, "schemes[0].decoder.check_update"),
    ({"threads": 0}, "schemes[0].decoder.threads"),
    ({"schedule": "random"}, "schemes[0].decoder.schedule"),
    ({"colour": 1}, "schemes[0].decoder"),
    ({"backend": "sionna", "normalization": 0.7}, "schemes[0].decoder.normalization"),
    ({"backend": "gpu"}, "schemes[0].decoder.backend"),
])
def test_scenario_decoder_options_are_validated(decoder, field):
    from linksim.scenario import parse_scenario

    raw = {**SCENARIO, "schemes": [{**SCENARIO["schemes"][0], "decoder": decoder}]}
    with pytest.raises(ConfigError) as e:
        parse_scenario(raw)
    assert e.value.field == field, e.value


def test_scenario_decoder_defaults():
    from linksim.scenario import parse_scenario

    assert parse_scenario(SCENARIO).schemes[0]["decoder"] == {"backend": "numba", "iterations": 20}
    ok = {"backend": "numba", "iterations": 30, "check_update": "offset-minsum", "offset": 0.4, "threads": 1}
    raw = {**SCENARIO, "schemes": [{**SCENARIO["schemes"][0], "decoder": ok}]}
    assert parse_scenario(raw).schemes[0]["decoder"] == ok
    nr = {**SCENARIO, "schemes": [{**SCENARIO["schemes"][0], "mcs": {"code": "nr-100-200", "modulation": "bpsk"}}]}
    assert parse_scenario(nr).schemes[0]["decoder"]["backend"] == "sionna"
