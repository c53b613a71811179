"""LDPC layer: 802.11n codes, encoder, decoders (Sionna, pyldpc), 5G NR, errors. Fast (< 60 s)."""

import numpy as np
import pytest
import torch

from linksim.errors import ConfigError
from linksim.digital.ldpc import LDPCCode, LDPCDecoder, LDPCEncoder, available_codes, get_code, simulate_fer
from linksim.digital.ldpc.gf2 import gf2_rank
from linksim.digital.ldpc.thresholds import bpsk_awgn_llr, ebno_at_fer

WIFI = available_codes()


def _gen(seed=0):
    return torch.Generator().manual_seed(seed)


def test_available_codes_lists_the_12_wifi_codes():
    assert len(WIFI) == 12 and len(set(WIFI)) == 12
    assert "wifi-1944-2/3" in WIFI and "wifi-648-5/6" in WIFI


@pytest.mark.parametrize("name", WIFI)
def test_wifi_code_shape_rank_and_encoding(name):
    code = get_code(name)
    n, a, b = int(name.split("-")[1]), *map(int, name.split("-")[2].split("/"))
    assert isinstance(code, LDPCCode) and code.name == name
    assert code.n == n and code.k == n * a // b and code.rate == pytest.approx(a / b)
    H = code.H
    assert H.shape == (n - code.k, n) and H.dtype == np.uint8 and H.format == "csr"
    dense = H.toarray()
    assert gf2_rank(dense) == n - code.k
    assert gf2_rank(dense[:, code.k:]) == n - code.k      # parity part invertible
    u = torch.randint(0, 2, (16, code.k), generator=_gen(1)).float()
    c = code.encode(u)
    assert c.shape == (16, n) and c.dtype == torch.float32
    assert set(c.unique().tolist()) <= {0.0, 1.0}
    assert torch.equal(c[:, :code.k], u)                  # systematic
    syn = (dense.astype(np.int64) @ c.numpy().astype(np.int64).T) % 2
    assert not syn.any()                                  # H c^T = 0 mod 2


def test_encoder_and_decoder_blocks_are_the_code_and_its_decoder():
    code = get_code("wifi-1296-2/3")
    u = torch.randint(0, 2, (5, code.k), generator=_gen(3)).float()
    for encoder in (LDPCEncoder(code), LDPCEncoder("wifi-1296-2/3")):
        assert encoder.code is code and (encoder.k, encoder.n) == (864, 1296)
        c = encoder(u)
        assert torch.equal(c, code.encode(u)) and torch.equal(c[:, :code.k], u)
        assert not ((code.H.toarray().astype(np.int64) @ c.numpy().astype(np.int64).T) % 2).any()
    dec = LDPCDecoder(code, iterations=20)
    llr = 8.0 * (2.0 * code.encode(u) - 1.0)
    llr[:, :12] = -llr[:, :12]                          # 12 wrong (correctable) bits per word
    (bits_call, ok_call), (bits, ok) = dec(llr), dec.decode(llr)
    assert torch.equal(bits_call, bits) and torch.equal(ok_call, ok) and torch.equal(bits, u)
    with pytest.raises(ConfigError) as e:
        LDPCEncoder("wifi-1000-1/2")
    assert e.value.field == "code"


def test_get_code_is_cached():
    assert get_code("wifi-648-1/2") is get_code("wifi-648-1/2")


@pytest.mark.parametrize("name", WIFI)
def test_noiseless_strong_llrs_decode(name):
    code = get_code(name)
    dec = LDPCDecoder(code, iterations=5)
    u = torch.randint(0, 2, (3, code.k), generator=_gen(2)).float()
    llr = 15.0 * (2.0 * code.encode(u) - 1.0)
    u_hat, ok = dec.decode(llr)
    assert u_hat.shape == (3, code.k) and u_hat.dtype == torch.float32
    assert ok.dtype == torch.bool and ok.shape == (3,)
    assert torch.equal(u_hat, u) and bool(ok.all())


def test_noisy_decoding_corrects_channel_errors_and_flags_failures():
    code = get_code("wifi-1944-1/2")
    dec = LDPCDecoder(code)
    u = torch.randint(0, 2, (8, code.k), generator=_gen(3)).float()
    c = code.encode(u)
    llr = bpsk_awgn_llr(c, 3.0, code.rate, _gen(4))
    raw_errors = ((llr > 0).float() != c).sum()
    assert raw_errors > 100                                # the channel did flip bits
    u_hat, ok = dec.decode(llr)
    assert torch.equal(u_hat, u) and bool(ok.all())
    # Pure noise: no codeword found, parity check fails.
    _, ok = dec.decode(torch.randn(4, code.n, generator=_gen(5)))
    assert not bool(ok.any())


def test_llr_sign_convention_positive_means_one():
    code = get_code("wifi-648-1/2")
    dec = LDPCDecoder(code, iterations=3)
    ones = torch.ones(1, code.k)
    llr = 10.0 * (2.0 * code.encode(ones) - 1.0)
    u_hat, ok = dec.decode(llr)
    assert torch.equal(u_hat, ones) and bool(ok.all())


def test_sionna_and_pyldpc_agree_on_moderate_noise():
    code = get_code("wifi-648-1/2")
    u = torch.randint(0, 2, (6, code.k), generator=_gen(6)).float()
    c = code.encode(u)
    llr = bpsk_awgn_llr(c, 2.5, code.rate, _gen(7))
    assert ((llr > 0).float() != c).sum() > 50            # many raw errors to correct
    u_s, ok_s = LDPCDecoder(code, backend="sionna", iterations=20).decode(llr)
    u_p, ok_p = LDPCDecoder(code, backend="pyldpc", iterations=20).decode(llr)
    assert u_p.shape == u_s.shape and u_p.dtype == torch.float32
    both = ok_s & ok_p
    assert int(both.sum()) >= 5
    assert torch.equal(u_s[both], u_p[both])
    assert torch.equal(u_s[both], u[both])


def test_pyldpc_single_word():
    code = get_code("wifi-648-5/6")
    u = torch.randint(0, 2, (1, code.k), generator=_gen(8)).float()
    u_hat, ok = LDPCDecoder(code, backend="pyldpc", iterations=5).decode(12.0 * (2 * code.encode(u) - 1))
    assert u_hat.shape == (1, code.k) and torch.equal(u_hat, u) and bool(ok.all())


@pytest.mark.parametrize("name,k,n", [("nr-500-1000", 500, 1000), ("nr-k100-n300", 100, 300)])
def test_nr_roundtrip(name, k, n):
    code = get_code(name)
    assert (code.k, code.n, code.H, code.family) == (k, n, None, "nr")
    assert code.name == f"nr-{k}-{n}"
    u = torch.randint(0, 2, (4, k), generator=_gen(9)).float()
    c = code.encode(u)
    assert c.shape == (4, n) and c.dtype == torch.float32 and set(c.unique().tolist()) <= {0.0, 1.0}
    dec = LDPCDecoder(code, iterations=10)
    u_hat, ok = dec.decode(15.0 * (2.0 * c - 1.0))
    assert torch.equal(u_hat, u) and bool(ok.all())
    llr = bpsk_awgn_llr(c, 4.0, code.rate, _gen(10))
    u_hat, ok = dec.decode(llr)
    assert torch.equal(u_hat, u) and bool(ok.all())
    _, ok = dec.decode(torch.randn(2, n, generator=_gen(11)))
    assert not bool(ok.any())


def test_simulate_fer_is_reproducible_and_sane():
    code = get_code("wifi-648-1/2")
    r1 = simulate_fer(code, 1.0, 40, _gen(12), batch_size=20)
    r2 = simulate_fer(code, 1.0, 40, _gen(12), batch_size=20)
    assert r1 == r2 and r1[1] == 40 and r1[0] > 0          # 1 dB: well above threshold
    assert simulate_fer(code, 5.0, 40, _gen(13))[0] == 0    # 5 dB: clean


def test_ebno_at_fer_interpolates_on_log_scale():
    assert ebno_at_fer([(1.0, 1e-1), (2.0, 1e-3)], 1e-2) == pytest.approx(1.5)
    with pytest.raises(ValueError):
        ebno_at_fer([(1.0, 1e-1), (2.0, 5e-2)], 1e-2)


@pytest.mark.parametrize("bad", ["wifi-1000-1/2", "wifi-648-4/5", "wifi-648", "ldpc", "nr-5-10",
                                 "nr-500-400", "nr-9000-18000", ""])
def test_bad_code_names(bad):
    with pytest.raises(ConfigError) as e:
        get_code(bad)
    assert e.value.field == "code" and str(e.value).startswith("code:")
    assert "wifi-" in e.value.allowed


def test_bad_backend_and_options():
    code = get_code("wifi-648-1/2")
    with pytest.raises(ConfigError, match="^backend:"):
        LDPCDecoder(code, backend="aff3ct")
    with pytest.raises(ConfigError, match="^check_update:"):
        LDPCDecoder(code, check_update="tanh")
    with pytest.raises(ConfigError, match="^iterations:"):
        LDPCDecoder(code, iterations=0)
    with pytest.raises(ConfigError, match="^backend:"):
        LDPCDecoder(get_code("nr-100-200"), backend="pyldpc")


@pytest.mark.parametrize("backend", ["numba", "sionna", "pyldpc"])
def test_bad_llr(backend):
    code = get_code("wifi-648-1/2")
    dec = LDPCDecoder(code, backend=backend)
    for bad in (torch.zeros(2, code.n + 1), torch.zeros(code.n), torch.zeros(1, 2, code.n),
                torch.zeros(2, code.n, dtype=torch.float64), torch.zeros(0, code.n),
                np.zeros((2, code.n), dtype=np.float32)):
        with pytest.raises(ConfigError) as e:
            dec.decode(bad)
        assert e.value.field == "llr" and "llr" in str(e.value)


def test_bad_info():
    code = get_code("wifi-648-1/2")
    with pytest.raises(ConfigError, match="^info:"):
        code.encode(torch.zeros(2, code.k + 1))
    with pytest.raises(ConfigError, match="^info:"):
        code.encode(torch.zeros(2, code.k, dtype=torch.int64))
