"""Image quality metrics: distortion (PSNR, MS-SSIM), learned (LPIPS), weight-free perceptual
(HaarPSI, VSI) and distribution-level (FID, KID over patches) — one module per concept:

- :mod:`.distortion` — :func:`psnr`, :func:`ms_ssim`
- :mod:`.learned` — :class:`LPIPS`, :func:`lpips` (real ImageNet backbones from the local cache only)
- :mod:`.offline` — :func:`haarpsi`, :func:`vsi` (piq; no weights)
- :mod:`.patches` — the half-overlapping 256×256 patch protocol of FID/KID
- :mod:`.inception` — :class:`InceptionFeatures` (torch-fidelity's FID network, cached weights only)
- :mod:`.distribution` — :func:`frechet_distance`, :func:`kernel_distance`
- :mod:`.group` — per-point features on disk, pooled per group (:class:`GroupMetrics`, :func:`pool`)
- :mod:`.weights` — where weights must be; :class:`MissingWeightsWarning`
- :mod:`.suite` — every metric name, :func:`catalogue`, :class:`MetricSuite`

Per-image metrics take x (reference), y float [B, C, H, W] in [0, 1] and return float32 [B].
"""

from __future__ import annotations

from linksim.metrics.distortion import MS_SSIM_WEIGHTS, _ms_ssim_scales, check_pair, ms_ssim, psnr
from linksim.metrics.distribution import frechet_distance, kernel_distance
from linksim.metrics.group import GROUP_METRICS, GroupMetrics, point_fields, pool, write_point, write_reference
from linksim.metrics.inception import InceptionFeatures, inception_weights_path
from linksim.metrics.learned import LPIPS, _reset_lpips_state, backbone_weights_path, lpips
from linksim.metrics.offline import haarpsi, vsi
from linksim.metrics.patches import half_overlapping_patches, patch_origins
from linksim.metrics.suite import ALL_METRICS, METRIC_NAMES, MetricInfo, MetricSuite, catalogue, check_metric_names
from linksim.metrics.weights import MissingWeightsWarning

__all__ = ["ALL_METRICS", "GROUP_METRICS", "LPIPS", "METRIC_NAMES", "MS_SSIM_WEIGHTS", "GroupMetrics", "InceptionFeatures",
           "MetricInfo", "MetricSuite", "MissingWeightsWarning", "backbone_weights_path", "catalogue", "check_metric_names",
           "check_pair", "frechet_distance", "half_overlapping_patches", "haarpsi", "inception_weights_path",
           "kernel_distance", "lpips", "ms_ssim", "patch_origins", "point_fields", "pool", "psnr", "vsi",
           "write_point", "write_reference"]
