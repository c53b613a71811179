"""FID and KID: the Fréchet distance against its closed form, KID's unbiased estimator on known
samples, the half-overlapping patch protocol, the cache-only loading of the Inception weights
(with a stand-in checkpoint: a loading test, never a reported number) and the pooling per group."""

from __future__ import annotations

import math
import warnings
from pathlib import Path

import pytest
import torch

from linksim import metrics as M
from linksim.errors import ConfigError
from linksim.metrics import group as G
from linksim.metrics import inception as I

REPO = Path(__file__).resolve().parents[1]


def _with_moments(mean: torch.Tensor, cov: torch.Tensor, n: int, seed: int = 0) -> torch.Tensor:
    """n samples [n, d] whose sample mean is exactly ``mean`` and whose (n − 1)-normalized
    sample covariance is exactly ``cov``: whiten a Gaussian draw, then colour it."""
    g = torch.Generator().manual_seed(seed)
    z = torch.randn(n, len(mean), generator=g, dtype=torch.float64)
    z = z - z.mean(0)
    z = z @ torch.linalg.inv(torch.linalg.cholesky(z.T @ z / (n - 1))).T  # sample covariance = I
    return mean + z @ torch.linalg.cholesky(cov).T


def test_frechet_distance_of_two_gaussians_is_the_closed_form():
    # diagonal covariances: ‖μ₁ − μ₂‖² + Σ (√a_i − √b_i)² = (1 + 4) + ((1 − 2)² + (2 − 1)² + 0) = 7
    a = _with_moments(torch.zeros(3, dtype=torch.float64), torch.diag(torch.tensor([1.0, 4.0, 9.0], dtype=torch.float64)), 50)
    b = _with_moments(torch.tensor([1.0, 2.0, 0.0], dtype=torch.float64),
                      torch.diag(torch.tensor([4.0, 1.0, 9.0], dtype=torch.float64)), 80, seed=1)
    assert M.frechet_distance(a, b) == pytest.approx(7.0, abs=1e-9)
    # full covariances: tr(Σ₁ + Σ₂ − 2 (Σ₁^½ Σ₂ Σ₁^½)^½), the symmetric form, by eigendecomposition
    g = torch.Generator().manual_seed(3)
    q1, q2 = torch.randn(4, 4, generator=g, dtype=torch.float64), torch.randn(4, 4, generator=g, dtype=torch.float64)
    s1, s2 = q1 @ q1.T + 0.5 * torch.eye(4, dtype=torch.float64), q2 @ q2.T + 0.5 * torch.eye(4, dtype=torch.float64)
    m1, m2 = torch.randn(4, generator=g, dtype=torch.float64), torch.randn(4, generator=g, dtype=torch.float64)

    def sqrtm(s):
        w, v = torch.linalg.eigh(s)
        return v @ torch.diag(w.clamp(min=0).sqrt()) @ v.T

    r1 = sqrtm(s1)
    expected = float((m1 - m2).pow(2).sum() + torch.trace(s1 + s2 - 2 * sqrtm(r1 @ s2 @ r1)))
    assert M.frechet_distance(_with_moments(m1, s1, 40), _with_moments(m2, s2, 40, seed=5)) == pytest.approx(expected, rel=1e-9)


@pytest.mark.parametrize("n", [300, 40])  # more samples than dimensions, and fewer (singular covariance)
def test_fid_of_a_set_against_itself_is_zero(n):
    f = torch.randn(n, 64, generator=torch.Generator().manual_seed(n), dtype=torch.float64) * 3 + 1
    scale = float(torch.cov(f.T).trace())  # the size of the terms that cancel (≈ 64 · 9)
    assert abs(M.frechet_distance(f, f)) < 1e-7 * scale  # a singular Σ leaves ~1e-8 relative round-off
    assert M.frechet_distance(f, f + 0.5) == pytest.approx(64 * 0.25, rel=1e-6)  # a shift: only ‖Δμ‖²


def test_kid_is_the_unbiased_mmd_with_the_cubic_kernel():
    # d = 1, k(a, b) = (a·b + 1)³; X = {0, 1}, Y = {1, 2}:
    # XX (i ≠ j): k(0,1) = 1 → 1; YY: k(1,2) = 27 → 27; XY mean: (1 + 1 + 8 + 27)/4 = 9.25 → 1 + 27 − 2·9.25 = 9.5
    x, y = torch.tensor([[0.0], [1.0]]), torch.tensor([[1.0], [2.0]])
    mean, std = M.kernel_distance(x, y, subsets=3)
    assert mean == pytest.approx(9.5) and std == pytest.approx(0.0)  # a subset of all samples: every draw the same

    # against the definition on random samples (d = 5, all samples in one subset)
    g = torch.Generator().manual_seed(7)
    a, b = torch.randn(6, 5, generator=g, dtype=torch.float64), torch.randn(6, 5, generator=g, dtype=torch.float64) + 0.3
    k = lambda u, v: (float(u @ v) / 5 + 1) ** 3  # noqa: E731
    m = len(a)
    xx = sum(k(a[i], a[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
    yy = sum(k(b[i], b[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
    xy = sum(k(a[i], b[j]) for i in range(m) for j in range(m)) / (m * m)
    assert M.kernel_distance(a, b, subsets=1)[0] == pytest.approx(xx + yy - 2 * xy, rel=1e-9)


def test_kid_is_unbiased_for_one_distribution():
    """The estimate is unbiased: over many pairs of sets from one distribution it averages to 0
    (within 4 standard errors), while sets of shifted distributions give clearly > 0."""
    g = torch.Generator().manual_seed(11)
    same = [M.kernel_distance(torch.randn(20, 8, generator=g), torch.randn(20, 8, generator=g), subsets=1)[0]
            for _ in range(200)]
    mean = sum(same) / len(same)
    se = math.sqrt(sum((v - mean) ** 2 for v in same) / (len(same) - 1) / len(same))
    assert abs(mean) < 4 * se
    assert min(v < 0 for v in same) is False and any(v < 0 for v in same)  # an unbiased estimate can be negative
    shifted = M.kernel_distance(torch.randn(20, 8, generator=g), torch.randn(20, 8, generator=g) + 1.0, subsets=5)[0]
    assert shifted > 10 * se


def test_distances_refuse_mismatched_feature_sets():
    with pytest.raises(ConfigError, match="fid"):
        M.frechet_distance(torch.zeros(5, 3), torch.zeros(5, 4))
    with pytest.raises(ConfigError, match="kid"):
        M.kernel_distance(torch.zeros(1, 3), torch.zeros(5, 3))


def test_patch_protocol_of_a_kodak_image():
    """768×512 (landscape Kodak): 3·2 non-overlapping patches, then 2·1 shifted by 128 px = 8."""
    origins = M.patch_origins(512, 768)
    assert origins == [(0, 0), (0, 256), (0, 512), (256, 0), (256, 256), (256, 512), (128, 128), (128, 384)]
    assert M.patch_origins(768, 512) == [(0, 0), (0, 256), (256, 0), (256, 256), (512, 0), (512, 256), (128, 128), (384, 128)]
    image = torch.arange(2 * 3 * 512 * 768, dtype=torch.float32).reshape(2, 3, 512, 768)
    patches = M.half_overlapping_patches(image)
    assert patches.shape == (16, 3, 256, 256)
    assert torch.equal(patches[7], image[0, :, 128:384, 384:640])   # image 0, last (shifted) patch
    assert torch.equal(patches[8], image[1, :, 0:256, 0:256])       # image 1 starts after 8 patches
    # exactly 256 px: one patch, no shifted one; smaller than 256 on a side: the whole image
    assert M.patch_origins(256, 256) == [(0, 0)]
    assert M.half_overlapping_patches(image[..., :64, :64]).shape == (2, 3, 64, 64)


def test_missing_inception_weights_warn_once_and_give_nothing(tmp_path, monkeypatch):
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path))
    I._reset_extractors()
    M._reset_lpips_state()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        group = M.GroupMetrics(["psnr", "fid", "kid"])
        assert group.names == ["fid", "kid"] and group.active and not group.available
        assert group.point_payload(torch.rand(1, 3, 32, 32)) is None
        assert M.GroupMetrics(["fid"]).point_payload(torch.rand(1, 3, 32, 32)) is None
    msgs = [w for w in caught if issubclass(w.category, M.MissingWeightsWarning)]
    assert len(msgs) == 1
    text = str(msgs[0].message)
    assert "weights-inception-2015-12-05-6726825d.pth" in text and str(tmp_path / "checkpoints") in text
    assert not M.GroupMetrics(["psnr"]).active
    I._reset_extractors()
    M._reset_lpips_state()


def _stand_in_checkpoint(folder: Path, monkeypatch) -> dict:
    """A checkpoint file with the Inception network's keys and shapes and random values,
    written where the real one belongs (built without any download: the loading is stubbed
    just for building it)."""
    import torch_fidelity.feature_extractor_inceptionv3 as tf

    with monkeypatch.context() as patch:
        patch.setattr(tf, "load_state_dict_from_url", lambda *a, **k: {})
        patch.setattr(tf.FeatureExtractorInceptionV3, "load_state_dict", lambda self, state: None)
        torch.manual_seed(0)
        network = tf.FeatureExtractorInceptionV3("inception-v3-compat", ["2048"])
    state = {k: v.clone() for k, v in network.state_dict().items()}
    (folder / "checkpoints").mkdir(parents=True, exist_ok=True)
    torch.save(state, folder / "checkpoints" / "weights-inception-2015-12-05-6726825d.pth")
    return state


def test_inception_loads_exactly_the_checkpoint_file(tmp_path, monkeypatch):
    """The loading path only: the features come from the stand-in's parameters. The numbers
    are not a metric and appear in no table."""
    state = _stand_in_checkpoint(tmp_path, monkeypatch)
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path))
    I._reset_extractors()
    extractor = M.InceptionFeatures()
    assert extractor.available
    loaded = extractor.model.state_dict()
    assert set(loaded) == set(state) and all(torch.equal(loaded[k], state[k]) for k in state)
    g = torch.Generator().manual_seed(1)
    images = torch.rand(3, 3, 64, 64, generator=g)
    features = extractor(images)
    assert features.shape == (3, 2048) and features.dtype == torch.float64
    assert torch.equal(extractor(images[:1]), features[:1])  # per image, whatever the batch
    stand_in_fid = M.frechet_distance(features[:2], features[1:])
    shipped = (REPO / "README.md").read_text() + "".join(p.read_text() for p in (REPO / "scenarios").glob("*.yaml"))
    assert f"{stand_in_fid:.6g}" not in shipped
    I._reset_extractors()


def test_group_metrics_are_pooled_only_over_complete_groups(tmp_path):
    """pool(): each group's output features against its images' reference features (each image
    once); a group whose reference is missing is reported with 0 points (the summary leaves it empty)."""
    g = torch.Generator().manual_seed(2)
    ref = {img: torch.randn(8, 16, generator=g, dtype=torch.float64) for img in ("a", "b")}
    for img, f in ref.items():
        M.write_reference(tmp_path, img, f)
    out = {}
    for img in ("a", "b"):
        for trial in (0, 1):
            out[img, trial] = ref[img] + 0.1 * torch.randn(8, 16, generator=g, dtype=torch.float64)
            M.write_point(tmp_path, M.point_fields("S", None, img, 1.0, trial, None), out[img, trial])
    M.write_point(tmp_path, M.point_fields("S", "R", "c", 1.0, 0, "1/64"), ref["a"])  # image c has no reference
    pooled = M.pool(tmp_path, ["fid", "kid"])
    assert set(pooled) == {("S", None, None, 1.0), ("S", "R", "1/64", 1.0)}
    entry = pooled["S", None, None, 1.0]
    fake = torch.cat([out[k] for k in sorted(out)])
    assert entry["points"] == 4
    assert entry["fid"] == pytest.approx(M.frechet_distance(torch.cat([ref["a"], ref["b"]]), fake), rel=1e-9)
    assert entry["kid"] == pytest.approx(M.kernel_distance(torch.cat([ref["a"], ref["b"]]), fake)[0], rel=1e-9)
    assert pooled["S", "R", "1/64", 1.0] == {"points": 0}
    assert not list((tmp_path / "features").rglob("*.tmp"))  # atomic writes leave no temporaries

    from linksim.results import summarize
    rows = [{"scheme": "S", "restorer": None, "snr_db": 1.0, "psnr": 20.0, "ms_ssim": None, "lpips": None,
             "decoded": True, "bpp": 0.1, "image": img, "trial": t} for img in ("a", "b") for t in (0, 1)]
    summary = summarize(rows, pooled, ["fid", "kid"])
    assert summary[0]["fid"] == pytest.approx(entry["fid"]) and summary[0]["kid"] == pytest.approx(entry["kid"])
    assert summarize(rows + [{**rows[0], "trial": 2}], pooled, ["fid"])[0]["fid"] is None  # a point without features
    assert "fid" not in summarize(rows)[0]
