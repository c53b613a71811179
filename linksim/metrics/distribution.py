"""Distances between two sets of features: the Fréchet distance (FID) and the kernel distance (KID).

Both come from torch-fidelity, so the numbers are the ones its ``calculate_metrics`` (and
the papers that use it) report:

- :func:`frechet_distance` — ‖μ₁ − μ₂‖² + tr(Σ₁ + Σ₂ − 2(Σ₁Σ₂)^½) between the Gaussians
  fitted to the two sets (Heusel et al., NeurIPS 2017); Σ with the n − 1 normalization. With
  fewer samples than feature dimensions (2048) Σ is singular and the estimate is biased
  upwards: compare FIDs only at the same sample count.
- :func:`kernel_distance` — the unbiased estimate of MMD² with the cubic polynomial kernel
  k(a, b) = (a·b / d + 1)³ (Bińkowski et al., ICLR 2018), averaged over random subsets;
  unbiased at any sample count (its expectation is 0 for two sets of one distribution).

Inputs: Tensor [N₁, d] and [N₂, d] (float; computed in float64); outputs Python floats.
"""

from __future__ import annotations

import torch

from linksim.errors import ConfigError

KID_SUBSETS = 100        # torch-fidelity's defaults
KID_SUBSET_SIZE = 1000
KID_SEED = 2020


def _check(a: torch.Tensor, b: torch.Tensor, name: str, minimum: int) -> tuple[torch.Tensor, torch.Tensor]:
    if a.ndim != 2 or b.ndim != 2 or a.shape[1] != b.shape[1] or len(a) < minimum or len(b) < minimum:
        raise ConfigError(name, f"{tuple(a.shape)} and {tuple(b.shape)}",
                          f"two feature sets [N, d] of the same d with N ≥ {minimum}")
    return a.detach().to("cpu", torch.float64), b.detach().to("cpu", torch.float64)


def frechet_distance(a: torch.Tensor, b: torch.Tensor) -> float:
    """Fréchet distance between Gaussians fitted to feature sets ``a`` [N₁, d], ``b`` [N₂, d] (N ≥ 2)."""
    from torch_fidelity.metric_fid import KEY_METRIC_FID, fid_features_to_statistics, fid_statistics_to_metric

    a, b = _check(a, b, "fid", 2)
    return fid_statistics_to_metric(fid_features_to_statistics(a), fid_features_to_statistics(b),
                                    verbose=False)[KEY_METRIC_FID]


def kernel_distance(a: torch.Tensor, b: torch.Tensor, subsets: int = KID_SUBSETS,
                    subset_size: int = KID_SUBSET_SIZE, seed: int = KID_SEED) -> tuple[float, float]:
    """KID (mean, std over ``subsets`` random subsets of ``min(subset_size, N₁, N₂)`` samples,
    drawn from a generator seeded with ``seed``) between ``a`` [N₁, d] and ``b`` [N₂, d] (N ≥ 2)."""
    from torch_fidelity.metric_kid import KEY_METRIC_KID_MEAN, KEY_METRIC_KID_STD, kid_features_to_metric

    a, b = _check(a, b, "kid", 2)
    size = min(subset_size, len(a), len(b))
    out = kid_features_to_metric(a, b, kid_subsets=subsets, kid_subset_size=size, rng_seed=seed, verbose=False)
    return out[KEY_METRIC_KID_MEAN], out[KEY_METRIC_KID_STD]
