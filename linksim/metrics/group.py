"""Group metrics (FID, KID): per-point Inception features on disk, pooled per group at the end.

FID and KID compare two *sets* of images, so they are not per-image columns of
``results.csv``: they are computed per (scheme, restorer, bandwidth, SNR) group over all its
images and trials (``summary.csv``). The work is split so that points can be computed
anywhere, in any order:

1. :meth:`GroupMetrics.point_payload` — a pure function of one output x̂ (or x̃): the
   Inception features of its half-overlapping 256×256 patches (:mod:`.patches`), float64
   [P, 2048]; :meth:`GroupMetrics.reference_payload` the same of the original x, once per image.
2. :func:`write_point` / :func:`write_reference` — the process that owns the run folder saves
   them atomically as ``features/points/<digest>.safetensors`` (the point's scheme, restorer,
   bandwidth, SNR, image and trial in the file's metadata) and ``features/reference/<digest>.safetensors``.
3. :func:`pool` — at the summary step, every group's output features against the reference
   features of the images in it (each image once): FID (:func:`.distribution.frechet_distance`)
   and KID (:func:`.distribution.kernel_distance`), and how many points had features (a group
   is reported only when all of its points have them).

Without the Inception weights nothing is extracted and nothing written; the group metrics are
empty (one warning, from :class:`~linksim.metrics.inception.InceptionFeatures`).
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import torch

from linksim.metrics.distribution import frechet_distance, kernel_distance
from linksim.metrics.inception import inception_features
from linksim.metrics.patches import half_overlapping_patches

#: group metric name → what it reports (KID: the mean over subsets)
GROUP_METRICS = {"fid": "Fréchet Inception distance of half-overlapping 256×256 patches (lower = better)",
                 "kid": "kernel Inception distance (unbiased MMD², cubic kernel) of the same patches (lower = better)"}
FEATURES = "features"
_TENSOR = "inception"


class GroupMetrics:
    """The group metrics a scenario names, and the per-point payload they need.

    Parameters
    ----------
    names : list[str]
        Any metric names; those in :data:`GROUP_METRICS` are kept (others are per-image).
    device : torch.device | str

    ``active``: some group metric was asked for. ``available``: its network can run here
    (checked, and the warning given, when an active object is built).
    """

    def __init__(self, names, device: torch.device | str = "cpu"):
        self.names = [n for n in names if n in GROUP_METRICS]
        self.device = device
        self.extractor = inception_features(device) if self.names else None

    @property
    def active(self) -> bool:
        return bool(self.names)

    @property
    def available(self) -> bool:
        return self.extractor is not None and self.extractor.available

    def point_payload(self, x_hat: torch.Tensor) -> list[torch.Tensor] | None:
        """Per image of ``x_hat`` [B, 3, H, W] in [0, 1]: its patches' features float64 [P, 2048];
        ``None`` when inactive or the weights are absent."""
        if not self.available:
            return None
        per_image = len(half_overlapping_patches(x_hat[:1]))
        features = self.extractor(half_overlapping_patches(x_hat.clamp(0, 1)))
        return list(features.split(per_image))

    reference_payload = point_payload  # the originals go through the same patches and network


def _digest(fields: dict) -> str:
    return hashlib.sha1(json.dumps(fields, sort_keys=True).encode()).hexdigest()[:20]


def point_fields(scheme: str, restorer: str | None, image: str, snr_db: float, trial: int,
                 bandwidth: str | None) -> dict:
    """The metadata identifying a point's features (strings, as safetensors metadata must be)."""
    return {"scheme": scheme, "restorer": restorer or "", "image": image, "snr_db": f"{float(snr_db):.6g}",
            "trial": str(int(trial)), "bandwidth": bandwidth or ""}


def _save(path: Path, features: torch.Tensor, metadata: dict) -> None:
    """Write atomically: a reader sees the whole file or none."""
    from safetensors.torch import save_file

    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    save_file({_TENSOR: features.detach().to("cpu", torch.float64).contiguous()}, str(tmp), metadata=metadata)
    os.replace(tmp, path)


def reference_path(folder: Path, image: str) -> Path:
    return Path(folder) / FEATURES / "reference" / f"{_digest({'image': image})}.safetensors"


def write_reference(folder: Path, image: str, features: torch.Tensor) -> None:
    """Save the features [P, 2048] of original image ``image`` under ``folder``/features/reference/."""
    _save(reference_path(folder, image), features, {"image": image})


def write_point(folder: Path, fields: dict, features: torch.Tensor) -> None:
    """Save a point's features [P, 2048] (``fields`` from :func:`point_fields`) under ``folder``/features/points/."""
    _save(Path(folder) / FEATURES / "points" / f"{_digest(fields)}.safetensors", features, fields)


def _read(path: Path) -> tuple[torch.Tensor, dict]:
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as handle:
        return handle.get_tensor(_TENSOR), handle.metadata()


def pool(folder: Path, names) -> dict[tuple, dict]:
    """Group metrics of every group with features under ``folder``/features.

    Returns
    -------
    {(scheme, restorer or None, bandwidth label or None, snr_db float): {"points": n, name: value, …}}
        for ``name`` in ``names`` ∩ {fid, kid}; a value is None when the group has fewer than
        2 patches on a side.
    """
    names = [n for n in names if n in GROUP_METRICS]
    root = Path(folder) / FEATURES
    groups: dict[tuple, list[tuple[str, torch.Tensor]]] = {}
    for path in sorted((root / "points").glob("*.safetensors")) if names else []:
        features, meta = _read(path)
        key = (meta["scheme"], meta["restorer"] or None, meta["bandwidth"] or None, float(meta["snr_db"]))
        groups.setdefault(key, []).append((meta["image"], int(meta["trial"]), features))
    out = {}
    for key, members in groups.items():
        # a canonical order (image, trial): KID's random subsets then do not depend on file names
        members = [(image, features) for image, _, features in sorted(members, key=lambda m: m[:2])]
        images = sorted({image for image, _ in members})
        refs = [reference_path(folder, image) for image in images]
        entry = {"points": len(members) if all(p.exists() for p in refs) else 0}
        if entry["points"]:
            fake = torch.cat([f for _, f in members])
            real = torch.cat([_read(p)[0] for p in refs])
            enough = min(len(fake), len(real)) >= 2
            if "fid" in names:
                entry["fid"] = frechet_distance(real, fake) if enough else None
            if "kid" in names:
                entry["kid"] = kernel_distance(real, fake)[0] if enough else None
        out[key] = entry
    return out
