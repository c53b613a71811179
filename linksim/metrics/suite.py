"""Every metric name a scenario may list, what each needs, and :class:`MetricSuite`.

Per-image metrics (one value per row of ``results.csv``; :class:`MetricSuite` computes them):

========== ====================================================== =========================
name       what                                                   needs
========== ====================================================== =========================
psnr       PSNR in dB (higher = better)                           nothing
ms_ssim    MS-SSIM (higher = better)                              nothing
lpips      LPIPS, AlexNet backbone (lower = better)               alexnet-owt-7be5be79.pth
lpips_vgg  LPIPS, VGG-16 backbone (SING's choice)                 vgg16-397923af.pth
haarpsi    HaarPSI (higher = better)                              nothing
vsi        VSI (higher = better)                                  nothing
========== ====================================================== =========================

Group metrics (one value per (scheme, restorer, bandwidth, SNR) in ``summary.csv``;
:mod:`linksim.metrics.group`): ``fid`` and ``kid``, both needing the Inception weights
``weights-inception-2015-12-05-6726825d.pth``. Weights are read from the torch hub cache
only (:mod:`linksim.metrics.weights`).
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch

from linksim.errors import ConfigError
from linksim.metrics.distortion import ms_ssim, psnr
from linksim.metrics.group import GROUP_METRICS
from linksim.metrics.inception import inception_weights_path
from linksim.metrics.learned import backbone_weights_path, lpips
from linksim.metrics.offline import haarpsi, vsi

#: per-image metrics, in the order of their columns
METRIC_NAMES = ("psnr", "ms_ssim", "lpips", "lpips_vgg", "haarpsi", "vsi")
#: every name a scenario's ``metrics:`` may hold
ALL_METRICS = METRIC_NAMES + tuple(GROUP_METRICS)


@dataclass(frozen=True)
class MetricInfo:
    """One line of ``linksim metrics``: ``weights`` is the checkpoint path it needs (None: none)."""

    name: str
    scope: str          # "image" (results.csv) or "group" (summary.csv)
    description: str
    weights: str | None
    url: str | None

    @property
    def available(self) -> bool:
        return self.weights is None or os.path.isfile(self.weights)


def catalogue() -> list[MetricInfo]:
    """Every metric, what it needs and (through ``available``) whether it can run on this machine."""
    alex, alex_url = backbone_weights_path("alex")
    vgg, vgg_url = backbone_weights_path("vgg")
    inception, inception_url = inception_weights_path()
    return [
        MetricInfo("psnr", "image", "PSNR in dB, higher = better", None, None),
        MetricInfo("ms_ssim", "image", "multi-scale SSIM, higher = better", None, None),
        MetricInfo("lpips", "image", "LPIPS v0.1, AlexNet (Zhang et al. 2018), lower = better", alex, alex_url),
        MetricInfo("lpips_vgg", "image", "LPIPS v0.1, VGG-16, lower = better", vgg, vgg_url),
        MetricInfo("haarpsi", "image", "HaarPSI (Reisenhofer et al. 2018), higher = better", None, None),
        MetricInfo("vsi", "image", "VSI (Zhang et al. 2014), higher = better", None, None),
        *[MetricInfo(name, "group", text, inception, inception_url) for name, text in GROUP_METRICS.items()],
    ]


def check_metric_names(names, field: str = "metrics") -> list[str]:
    """``names`` as a list when it is a non-empty list of distinct known metric names; else a
    :class:`ConfigError` naming ``field``."""
    if (not isinstance(names, list) or not names or any(not isinstance(n, str) or n not in ALL_METRICS for n in names)
            or len(set(names)) != len(names)):
        raise ConfigError(field, names, f"a non-empty list of distinct names from {list(ALL_METRICS)}")
    return list(names)


class MetricSuite:
    """The per-image metrics of a list of names, as the sweep runner records them.

    Parameters
    ----------
    names : list[str]
        From :data:`ALL_METRICS`; the group metrics among them (``fid``, ``kid``) are not
        computed here (see :mod:`linksim.metrics.group`) and kept in ``group``.

    Call: ``suite(x, y)`` with x (reference), y float [B, 3, H, W] in [0, 1] ->
    ``{name: list of B Python floats}`` for the per-image names, in their given order; LPIPS
    gives ``[None] * B`` when its weights are absent (one warning per file and process), and
    MS-SSIM gives ``[None] * B`` for images smaller than 11 px per side.

    Example
    -------
    >>> MetricSuite(["psnr", "ms_ssim", "haarpsi"])(x, x_hat)
    {'psnr': [31.2, 28.9], 'ms_ssim': [0.97, 0.95], 'haarpsi': [0.81, 0.77]}
    """

    def __init__(self, names):
        names = check_metric_names(list(names) if isinstance(names, (list, tuple)) else names)
        self.names = [n for n in names if n in METRIC_NAMES]
        self.group = [n for n in names if n in GROUP_METRICS]

    def __call__(self, x: torch.Tensor, y: torch.Tensor) -> dict[str, list[float | None]]:
        y = y.to(x.device)
        out: dict[str, list[float | None]] = {}
        for name in self.names:
            if name == "psnr":
                vals = psnr(x, y)
            elif name == "ms_ssim":
                vals = ms_ssim(x, y) if min(x.shape[-2:]) >= 11 else None
            elif name == "lpips":
                vals = lpips(x, y)
            elif name == "lpips_vgg":
                vals = lpips(x, y, net="vgg")
            elif name == "haarpsi":
                vals = haarpsi(x, y)
            else:
                vals = vsi(x, y)
            out[name] = [None] * x.shape[0] if vals is None else [float(v) for v in vals.cpu()]
        return out

    def __repr__(self) -> str:
        return f"MetricSuite({self.names + self.group})"
