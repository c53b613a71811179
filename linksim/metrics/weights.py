"""Pretrained weights of the learned metrics: where they must be, and what happens without them.

linksim never downloads anything. A learned metric (LPIPS' ImageNet backbone, the Inception
network of FID/KID) is computed only when its checkpoint file already sits in the torch hub
cache, ``torch.hub.get_dir()/checkpoints/<file>`` (``$TORCH_HOME/hub/checkpoints``; the
folder torchvision, lpips and torch-fidelity themselves would download into). Without the
file the metric's values are empty (``None``) and one :class:`MissingWeightsWarning` per file
and process names the file, the folder and the URL to fetch it from. A network is never
built with other (random) weights and reported.
"""

from __future__ import annotations

import os
import warnings

import torch

_WARNED: set[str] = set()


class MissingWeightsWarning(UserWarning):
    """A metric's pretrained weights are not on this machine; the metric is skipped."""


def hub_checkpoint(url: str) -> str:
    """Where the checkpoint downloaded from ``url`` must be: ``torch.hub.get_dir()/checkpoints/<basename>``."""
    return os.path.join(torch.hub.get_dir(), "checkpoints", os.path.basename(url))


def warn_missing(metric: str, path: str, url: str, stacklevel: int = 3) -> None:
    """One :class:`MissingWeightsWarning` per checkpoint ``path`` and process: ``metric`` is
    skipped, and how to enable it."""
    if path in _WARNED:
        return
    _WARNED.add(path)
    warnings.warn(f"{metric} skipped (reported as None): weights {os.path.basename(path)} not found at {path}. "
                  f"To enable {metric}, download {url} and save it at that path (the folder is "
                  f"torch.hub.get_dir()/checkpoints; set TORCH_HOME to move it).",
                  MissingWeightsWarning, stacklevel=stacklevel)


def reset_warnings() -> None:
    """Forget which files were warned about (for tests)."""
    _WARNED.clear()
