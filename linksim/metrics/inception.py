"""Inception-v3 pool features for FID/KID: torch-fidelity's network, its real weights from the local cache only.

torch-fidelity's ``FeatureExtractorInceptionV3`` is the TensorFlow FID network of Heusel et
al. (2017) ported bit-exactly (weights ``weights-inception-2015-12-05-6726825d.pth``, the
TF-1.x bilinear resize to 299×299 included), so its FID matches the original TF code and
torchmetrics (which wraps the same class). linksim builds it only when that checkpoint is
already at ``torch.hub.get_dir()/checkpoints/weights-inception-2015-12-05-6726825d.pth``
(where torch-fidelity itself would download it): the file is checked before anything is
constructed, read once with ``weights_only=True`` (tensors only, no pickled code) and loaded
strictly (every parameter, or an error). Without the file: ``available`` is False, features
are ``None`` and one :class:`~linksim.metrics.weights.MissingWeightsWarning` names the file,
the folder and the URL.
"""

from __future__ import annotations

import os

import torch

from linksim.metrics.weights import hub_checkpoint, warn_missing

#: torch-fidelity's release asset (``torch_fidelity.feature_extractor_inceptionv3.URL_INCEPTION_V3``)
INCEPTION_URL = ("https://github.com/toshas/torch-fidelity/releases/download/v0.2.0/"
                 "weights-inception-2015-12-05-6726825d.pth")
FEATURE = "2048"  # the pool3 features FID and KID are defined on
_EXTRACTORS: dict[str, "InceptionFeatures"] = {}


def inception_weights_path() -> tuple[str, str]:
    """``(path, url)``: where the Inception checkpoint must be, and where to get it."""
    return hub_checkpoint(INCEPTION_URL), INCEPTION_URL


class InceptionFeatures:
    """2048-d pool3 features of the FID Inception network, or nothing.

    Parameters
    ----------
    device : torch.device | str
    batch : int
        Patches per forward pass (memory: about 0.1 GB per patch on the CPU).

    Call: ``features(images)`` with images float [N, 3, H, W] in [0, 1] (quantized to 8 bits,
    as a saved PNG would be; resized to 299×299 inside) → Tensor float64 [N, 2048] on the CPU,
    or ``None`` when the weights are absent.
    """

    def __init__(self, device: torch.device | str = "cpu", batch: int = 16):
        self.path, self.url = inception_weights_path()
        self.device, self.batch = torch.device(device), batch
        self.model = None
        self.available = os.path.isfile(self.path)
        if not self.available:
            warn_missing("FID/KID", self.path, self.url)
            return
        self.model = self._build().to(self.device)

    def _build(self):
        from torch_fidelity.feature_extractor_inceptionv3 import FeatureExtractorInceptionV3

        # Tensors only (refuses a pickle with code); torch-fidelity then loads the same file strictly.
        state = torch.load(self.path, map_location="cpu", weights_only=True)
        if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
            raise RuntimeError(f"{self.path}: expected a state dict of tensors (torch-fidelity's Inception weights)")
        return FeatureExtractorInceptionV3("inception-v3-compat", [FEATURE], feature_extractor_weights_path=self.path)

    def __call__(self, images: torch.Tensor) -> torch.Tensor | None:
        if self.model is None:
            warn_missing("FID/KID", self.path, self.url)
            return None
        quantized = (images.detach().float().clamp(0, 1) * 255).round().to(torch.uint8)
        out = []
        with torch.no_grad():
            for start in range(0, len(quantized), self.batch):
                (features,) = self.model(quantized[start:start + self.batch].to(self.device))
                out.append(features.to("cpu", torch.float64))
        return torch.cat(out)


def inception_features(device: torch.device | str = "cpu") -> InceptionFeatures:
    """The process's extractor on ``device`` (built once; rebuilt when the file has appeared since)."""
    key = str(torch.device(device))
    extractor = _EXTRACTORS.get(key)
    if extractor is None or (not extractor.available and os.path.isfile(extractor.path)):
        extractor = _EXTRACTORS[key] = InceptionFeatures(device)
    return extractor


def _reset_extractors() -> None:
    """Forget the built extractors (for tests)."""
    _EXTRACTORS.clear()
