"""LPIPS: the learned perceptual distance of Zhang et al. (2018), with a real ImageNet backbone or nothing.

:class:`LPIPS` / :func:`lpips` (``lpips`` package, lower = more similar) compute only when the
real ImageNet backbone weights are already in the torch hub cache
(``torch.hub.get_dir()/checkpoints/alexnet-owt-7be5be79.pth`` for ``net="alex"``, the default;
``vgg16-397923af.pth`` for ``net="vgg"``, SING's choice); the linear-layer weights ship inside
the ``lpips`` package. Nothing is downloaded: without the file the metric returns ``None`` and
one :class:`~linksim.metrics.weights.MissingWeightsWarning` per file and process says where to
put it. (With the installed torchvision, ``lpips``' own ``pretrained=True`` path would
silently build a *random* backbone or try to download, so linksim builds the trunk itself
and loads the checkpoint file into it, checking every parameter was loaded.)

Inputs: x (reference), y float [B, 3, H, W] in [0, 1]; output float32 [B] or ``None``.
"""

from __future__ import annotations

import os
import warnings

import torch

from linksim.errors import ConfigError
from linksim.metrics.distortion import check_pair
from linksim.metrics.weights import hub_checkpoint, reset_warnings, warn_missing

#: lpips net -> torchvision ImageNet checkpoint (``<Model>_Weights.IMAGENET1K_V1.url``).
_BACKBONES = {
    "alex": "https://download.pytorch.org/models/alexnet-owt-7be5be79.pth",
    "vgg": "https://download.pytorch.org/models/vgg16-397923af.pth",
    "squeeze": "https://download.pytorch.org/models/squeezenet1_1-b8a52dc0.pth",
}
_MODELS: dict[tuple[str, str], "LPIPS"] = {}


def backbone_weights_path(net: str = "alex") -> tuple[str, str]:
    """``(path, url)``: where the backbone checkpoint of an LPIPS ``net`` must be, and its source."""
    if net not in _BACKBONES:
        raise ConfigError("lpips.net", net, f"one of {sorted(_BACKBONES)}")
    url = _BACKBONES[net]
    return hub_checkpoint(url), url


class LPIPS:
    """LPIPS distance (v0.1) with a real ImageNet backbone, or nothing.

    Parameters
    ----------
    net : ``"alex"`` | ``"vgg"`` | ``"squeeze"``
    device : torch.device | str

    Attributes
    ----------
    available : bool
        False when the backbone checkpoint is not in the torch hub cache; then
        calling returns ``None`` (one warning per process).

    Call: ``lpips(x, y)`` with x, y float [B, 3, H, W] in [0, 1] -> Tensor float32 [B]
    (spatial mean) or ``None``.
    """

    def __init__(self, net: str = "alex", device: torch.device | str = "cpu"):
        self.net_name = net
        self.path, self.url = backbone_weights_path(net)
        self.device = torch.device(device)
        self.model = None
        self.available = os.path.isfile(self.path)
        if not self.available:
            warn_missing("LPIPS", self.path, self.url)
            return
        self.model = self._build().to(self.device)

    def _build(self):
        import contextlib
        import io as _io

        import lpips as _lpips
        # pnet_rand=True: no torchvision download; the trunk is overwritten just below.
        with contextlib.redirect_stdout(_io.StringIO()), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model = _lpips.LPIPS(net=self.net_name, pretrained=True, pnet_rand=True, verbose=False)
        state = torch.load(self.path, map_location="cpu", weights_only=True)
        features = {k[len("features."):]: v for k, v in state.items() if k.startswith("features.")}
        loaded, total = 0, sum(1 for _ in model.net.parameters())
        for slice_ in model.net.children():
            for idx, module in slice_.named_children():
                sub = {name: features[f"{idx}.{name}"] for name, _ in module.named_parameters()}
                if sub:
                    module.load_state_dict(sub, strict=True)
                    loaded += len(sub)
        if loaded != total:
            raise RuntimeError(f"LPIPS backbone: loaded {loaded} of {total} parameters from {self.path}")
        model.eval()
        for p in model.parameters():
            p.requires_grad_(False)
        return model

    def __call__(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor | None:
        if self.model is None:
            warn_missing("LPIPS", self.path, self.url)
            return None
        check_pair(x, y, "lpips", channels=3)
        with torch.no_grad():
            d = self.model(x.to(self.device, torch.float32), y.to(self.device, torch.float32), normalize=True)
        return d.flatten().float().to(x.device)


def lpips(x: torch.Tensor, y: torch.Tensor, net: str = "alex") -> torch.Tensor | None:
    """LPIPS per image (Tensor float32 [B]) with a cached model on ``x``'s device, or None.

    See :class:`LPIPS`.
    """
    key = (net, str(x.device))
    model = _MODELS.get(key)
    if model is None or (not model.available and os.path.isfile(model.path)):
        model = LPIPS(net, device=x.device)
        _MODELS[key] = model
    return model(x, y)


def _reset_lpips_state() -> None:
    """Forget cached LPIPS models and the warned-once flag (for tests)."""
    reset_warnings()
    _MODELS.clear()
