"""SING-INN / CommIN (linksim.restore.inn): exact invertibility, the Haar start, conditioning."""

from __future__ import annotations

import warnings

import pytest
import torch
import torch.nn.functional as F

from linksim.errors import ConfigError
from linksim.restore.inn import (
    CondBlock,
    ConditionalINN,
    ConditionalINNConfig,
    HaarSplit,
    SNREmbedding,
)

SMALL = dict(width=8, blocks=2, pairs=4, emb_dim=16)
EPS32 = torch.finfo(torch.float32).eps


def randomize(inn: ConditionalINN, seed: int = 0) -> ConditionalINN:
    """Re-draw every weight (the zero-initialized last convs included) so P and U are non-trivial."""
    torch.manual_seed(seed)
    for m in inn.modules():
        if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear)):
            m.reset_parameters()
    for level in inn.lifting:
        for pair in level:
            assert pair.P.out.weight.abs().sum() > 0 and pair.U.out.weight.abs().sum() > 0
    return inn


# ----------------------------------------------------------------------------------- Haar

@pytest.mark.parametrize("levels,shape", [(1, (2, 3, 8, 6)), (2, (2, 3, 16, 16)), (3, (1, 1, 32, 48))])
def test_haar_coarse_is_average_pooling_and_inverse_is_exact(levels, shape):
    g = torch.Generator().manual_seed(1)
    x = torch.rand(shape, generator=g) * 4 - 2
    haar = HaarSplit(levels)
    coarse, details = haar(x)
    s = 2 ** levels
    assert coarse.shape == (shape[0], shape[1], shape[2] // s, shape[3] // s)
    assert [tuple(d.shape) for d in details] == [
        (shape[0], 3 * shape[1], shape[2] // 2 ** (i + 1), shape[3] // 2 ** (i + 1)) for i in range(levels)]
    # avg_pool2d sums the s² values in its own (CPU-dependent) order: at most s²·eps·max|x| apart
    assert (coarse - F.avg_pool2d(x, s)).abs().max() < s * s * EPS32 * 2
    # lifting inverted step by step: a few roundings per level on values ≤ 2·max|x|
    assert (haar.inverse(coarse, details) - x).abs().max() < 4 * levels * EPS32 * 2


def test_haar_bands_on_one_block():
    # a b / c d = 1 2 / 3 5 → LL = 11/4, V = (1+2−3−5)/2, H = (1−2+3−5)/2, D = 1−2−3+5 (documented bands).
    x = torch.tensor([[1.0, 2.0], [3.0, 5.0]]).reshape(1, 1, 2, 2)
    ll, (d,) = HaarSplit(1)(x)
    assert ll.item() == pytest.approx(11 / 4)
    assert d.flatten().tolist() == pytest.approx([-2.5, -1.5, 1.0])


def test_haar_rejects_bad_sizes_and_levels():
    with pytest.raises(ConfigError) as err:
        HaarSplit(2)(torch.rand(1, 3, 16, 18))
    assert err.value.field == "x"
    with pytest.raises(ConfigError) as err:
        HaarSplit(0)
    assert err.value.field == "levels"


# ------------------------------------------------------------------------------ the INN

@pytest.mark.parametrize("conditional", [True, False])
@pytest.mark.parametrize("shape", [(2, 3, 16, 16), (3, 3, 32, 48)])
def test_inverse_undoes_forward_with_random_weights(conditional, shape):
    inn = randomize(ConditionalINN(ConditionalINNConfig(conditional=conditional, **SMALL)), seed=shape[3])
    g = torch.Generator().manual_seed(shape[2])
    x = torch.rand(shape, generator=g)
    snr = torch.rand(shape[0], generator=g) * 10 - 5
    with torch.no_grad():
        coarse, details = inn(x, snr)
        # The lifting really did something: the coarse part is far from plain average pooling.
        assert (coarse - F.avg_pool2d(x, 4)).abs().max() > 1e-2
        x_back = inn.inverse(coarse, details, snr)
    assert x_back.dtype == torch.float32
    # float32 round trip through 2 levels × 4 lifting pairs (≤ 1.2e-6 seen on [0, 1] images); 1e-5 ≈ 80 eps
    assert (x_back - x).abs().max() < 1e-5


def test_inverse_with_a_replaced_coarse_part_keeps_it():
    # What the SING restorer does: swap in the received coarse part, invert, and the result's
    # coarse part is exactly the one swapped in (the map is a bijection).
    inn = randomize(ConditionalINN(ConditionalINNConfig(**SMALL)), seed=3)
    g = torch.Generator().manual_seed(3)
    x, y = torch.rand(2, 3, 16, 16, generator=g), torch.rand(2, 3, 4, 4, generator=g)
    with torch.no_grad():
        _, details = inn(x, 2.0)
        x_new = inn.inverse(y, details, 2.0)
        assert (inn.coarse(x_new, 2.0) - y).abs().max() < 1e-5  # float32 round trip, as above (≤ 5e-7 seen)


def test_fresh_inn_is_the_haar_split():
    inn = ConditionalINN(ConditionalINNConfig(**SMALL))
    x = torch.rand(2, 3, 32, 48, generator=torch.Generator().manual_seed(5))
    with torch.no_grad():
        coarse, details = inn(x, torch.tensor([-5.0, 5.0]))
        ref_coarse, ref_details = HaarSplit(2)(x)
    assert (coarse - F.avg_pool2d(x, 4)).abs().max() < 4 * 4 * EPS32  # avg_pool2d's own summation order, x in [0, 1]
    # zero lifting outputs: the very same Haar arithmetic, bit for bit
    assert all(torch.equal(d, r) for d, r in zip(details, ref_details))
    assert torch.equal(coarse, ref_coarse)


def test_coarse_depends_on_snr_only_when_conditional():
    x = torch.rand(2, 3, 16, 16, generator=torch.Generator().manual_seed(6))
    cond = randomize(ConditionalINN(ConditionalINNConfig(conditional=True, **SMALL)), seed=6)
    plain = randomize(ConditionalINN(ConditionalINNConfig(conditional=False, **SMALL)), seed=6)
    with torch.no_grad():
        a, b = cond.coarse(x, -4.0), cond.coarse(x, 4.0)
        assert (a - b).abs().max() > 1e-3
        # Per-image SNRs: each image gets its own conditioning. The embedding of one SNR and of two
        # go through GEMMs of other shapes (float32: up to 5e-7 apart on these O(1) values), so this
        # is compared in float64, where 1e-12 is far above rounding and far below a wrong SNR (> 1e-3).
        cond64, x64 = cond.double(), x.double()
        a64, b64 = cond64.coarse(x64, -4.0), cond64.coarse(x64, 4.0)
        mixed = cond64.coarse(x64, torch.tensor([-4.0, 4.0], dtype=torch.float64))
        assert (mixed[0] - a64[0]).abs().max() < 1e-12 and (mixed[1] - b64[1]).abs().max() < 1e-12
        assert plain.embedding is None
        p = plain.coarse(x, None)
        assert torch.equal(p, plain.coarse(x, -4.0)) and torch.equal(p, plain.coarse(x, 4.0))


def test_gradients_reach_every_lifting_parameter():
    inn = randomize(ConditionalINN(ConditionalINNConfig(**SMALL)), seed=7)
    g = torch.Generator().manual_seed(7)
    x, target = torch.rand(2, 3, 16, 16, generator=g), torch.rand(2, 3, 4, 4, generator=g)
    loss = (inn.coarse(x, torch.tensor([0.0, 3.0])) - target).square().mean()   # SING eq. 16
    loss.backward()
    for name, p in inn.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name


def test_fresh_inn_trains_its_update_nets_first():
    # Zero-initialized outputs: the U output convs get a gradient from a coarse loss at step 0.
    inn = ConditionalINN(ConditionalINNConfig(**SMALL))
    x = torch.rand(1, 3, 8, 8, generator=torch.Generator().manual_seed(8))
    (inn.coarse(x, 0.0) - 0.5).square().mean().backward()
    assert all(pair.U.out.weight.grad.abs().sum() > 0 for level in inn.lifting for pair in level)


def test_out_of_range_snr_warns_and_in_range_does_not():
    inn = ConditionalINN(ConditionalINNConfig(snr_range_db=(-5.0, 5.0), **SMALL))
    x = torch.rand(2, 3, 8, 8)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        inn(x, torch.tensor([0.0, 5.0]))
    assert not caught
    with pytest.warns(UserWarning) as record:
        inn.coarse(x, torch.tensor([12.0, 20.0]))
    assert len(record) == 1
    message = str(record[0].message)
    assert "12.0" in message and "20.0" in message and "[-5.0, 5.0]" in message
    with pytest.warns(UserWarning, match=r"-7\.5"):
        coarse, details = inn(x, -7.5)
    with pytest.warns(UserWarning):
        inn.inverse(coarse, details, -7.5)


def test_bad_inputs_raise_config_errors():
    inn = ConditionalINN(ConditionalINNConfig(**SMALL))
    for bad in (torch.rand(1, 3, 16, 18), torch.rand(1, 3, 6, 8), torch.rand(1, 1, 16, 16), torch.rand(3, 16, 16)):
        with pytest.raises(ConfigError) as err:
            inn(bad, 0.0)
        assert err.value.field == "x"
    with pytest.raises(ConfigError) as err:
        inn(torch.rand(2, 3, 8, 8), None)
    assert err.value.field == "snr_db"
    with pytest.raises(ConfigError) as err:
        inn(torch.rand(2, 3, 8, 8), torch.tensor([0.0, 1.0, 2.0]))
    assert err.value.field == "snr_db"
    with pytest.raises(ConfigError) as err:
        inn(torch.rand(2, 3, 8, 8), float("nan"))
    assert err.value.field == "snr_db"
    coarse, details = inn(torch.rand(2, 3, 8, 8), 0.0)
    with pytest.raises(ConfigError) as err:
        inn.inverse(coarse, details[:1], 0.0)
    assert err.value.field == "details"


@pytest.mark.parametrize("field,value", [
    ("channels", 0), ("levels", 0), ("levels", 1.5), ("pairs", 0), ("width", 0), ("blocks", -1),
    ("conditional", "yes"), ("emb_dim", 0), ("snr_range_db", (5.0, -5.0)), ("snr_range_db", (0.0,)),
    ("width", True),
])
def test_bad_config_fields_raise_naming_the_field(field, value):
    with pytest.raises(ConfigError) as err:
        ConditionalINNConfig(**{field: value})
    assert err.value.field == field and field in str(err.value)


def test_config_round_trips_and_rejects_unknown_fields():
    cfg = ConditionalINNConfig(levels=3, pairs=2, conditional=False, snr_range_db=(0, 10))
    d = cfg.to_dict()
    assert d["snr_range_db"] == [0.0, 10.0]
    assert ConditionalINNConfig.from_dict(d) == cfg
    assert ConditionalINNConfig.from_dict({}) == ConditionalINNConfig()
    with pytest.raises(ConfigError) as err:
        ConditionalINNConfig.from_dict({**d, "depth": 3})
    assert err.value.field == "config" and err.value.value == "depth"
    with pytest.raises(ConfigError):
        ConditionalINN("not a config")


def test_snr_embedding_and_cond_block_shapes():
    emb = SNREmbedding(16)
    assert emb(3.0).shape == (1, 16) and emb(torch.tensor([0.0, 1.0, 2.0])).shape == (3, 16)
    assert not torch.allclose(emb(0.0), emb(1.0))
    block = CondBlock(8, 16)
    h = torch.rand(3, 8, 5, 7)
    assert block(h, emb(torch.tensor([0.0, 1.0, 2.0]))).shape == h.shape
    plain = CondBlock(8, None)
    assert plain.film is None and plain(h).shape == h.shape
