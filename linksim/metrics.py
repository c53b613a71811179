"""Image quality metrics: PSNR, MS-SSIM and LPIPS.

All functions take two float tensors ``x`` (reference) and ``y`` (test) of shape
[B, C, H, W] (C = 3 for MS-SSIM/LPIPS) with values in [0, 1] (``data_range`` = 1) and
return one value per image, a float32 tensor of shape [B] on the inputs' device.

- :func:`psnr` — ``10·log10(data_range² / MSE)`` in dB, MSE over C, H, W of each image.
  Identical images give ``+inf`` (no cap: a cap would bias averages; average MSEs or
  report the count of perfect images instead).
- :func:`ms_ssim` — multi-scale SSIM through ``pytorch_msssim`` (Gaussian window 11,
  σ = 1.5, K = (0.01, 0.03), the 5 standard weights). Five scales need the smaller
  side > 160 px; for smaller images the number of scales ``n`` is the largest with
  ``min(H, W) > 10·2^(n−1)`` and the first ``n`` weights are renormalized to sum to 1
  (``n = 1`` is plain SSIM). Images smaller than 11 px per side are refused.
- :class:`MetricSuite` — several of these at once (what the sweep runner records).
- :class:`LPIPS` / :func:`lpips` — learned perceptual distance (``lpips`` package, lower
  = more similar) **only when the real ImageNet backbone weights are already in the
  torch hub cache** (``torch.hub.get_dir()/checkpoints/alexnet-owt-7be5be79.pth`` for
  ``net="alex"``); the linear-layer weights ship inside the ``lpips`` package. Nothing
  is downloaded: without the file the metric returns ``None`` and one
  :class:`MissingWeightsWarning` per process says where to put it. (With the installed
  torchvision, ``lpips``' own ``pretrained=True`` path would silently build a
  *random* backbone or try to download, so linksim builds the trunk itself and loads
  the checkpoint file into it, checking every parameter was loaded.)

Example
-------
>>> x = torch.rand(2, 3, 64, 64); y = (x + 0.01).clamp(0, 1)
>>> psnr(x, y)                      # tensor([~40.x, ~40.x])
>>> ms_ssim(x, x)                   # tensor([1., 1.])
>>> lpips(x, y)                     # tensor([...]) or None when the weights are absent
"""

from __future__ import annotations

import os
import warnings

import torch

from linksim.errors import ConfigError, ImageError

MS_SSIM_WEIGHTS = (0.0448, 0.2856, 0.3001, 0.2363, 0.1333)


class MissingWeightsWarning(UserWarning):
    """A metric's pretrained weights are not on this machine; the metric is skipped."""


def _check_pair(x: torch.Tensor, y: torch.Tensor, name: str, channels: int | None = None) -> None:
    if not (isinstance(x, torch.Tensor) and isinstance(y, torch.Tensor)):
        raise ImageError(f"{name}: got {type(x).__name__} and {type(y).__name__} — expected two torch tensors")
    if x.shape != y.shape or x.ndim != 4 or (channels is not None and x.shape[1] != channels):
        want = f"[B, {channels}, H, W]" if channels else "[B, C, H, W]"
        raise ImageError(f"{name}: got shapes {tuple(x.shape)} and {tuple(y.shape)} — expected two "
                         f"tensors of the same shape {want}")


def psnr(x: torch.Tensor, y: torch.Tensor, data_range: float = 1.0) -> torch.Tensor:
    """Peak signal-to-noise ratio per image.

    Parameters
    ----------
    x, y : Tensor, float, [B, C, H, W]
        Images in [0, ``data_range``].
    data_range : float
        Peak value (1.0 for [0, 1] images, 255 for 8-bit values).

    Returns
    -------
    Tensor, float32, [B]
        PSNR in dB; ``+inf`` where x == y.
    """
    _check_pair(x, y, "psnr")
    mse = (x.double() - y.double()).pow(2).flatten(1).mean(1)
    with torch.no_grad():
        out = 10.0 * torch.log10(torch.as_tensor(float(data_range) ** 2, dtype=torch.float64) / mse)
    return out.float()


def _ms_ssim_scales(side: int) -> int:
    n = 0
    while n < 5 and side > 10 * 2 ** n:
        n += 1
    return n


def ms_ssim(x: torch.Tensor, y: torch.Tensor, data_range: float = 1.0) -> torch.Tensor:
    """Multi-scale SSIM per image (1 = identical).

    Parameters
    ----------
    x, y : Tensor, float, [B, 3, H, W]
        Images in [0, ``data_range``]; ``min(H, W) >= 11``.

    Returns
    -------
    Tensor, float32, [B]
        Five scales when ``min(H, W) > 160``, fewer (weights renormalized) otherwise.
    """
    from pytorch_msssim import ms_ssim as _lib_ms_ssim
    from pytorch_msssim.ssim import _fspecial_gauss_1d, _ssim
    import torch.nn.functional as F

    _check_pair(x, y, "ms_ssim", channels=3)
    side = min(x.shape[-2:])
    n = _ms_ssim_scales(side)
    if n == 0:
        raise ImageError(f"ms_ssim: got images of size {tuple(x.shape[-2:])} — expected at least 11 px per side")
    x, y = x.float(), y.float()
    with torch.no_grad():
        if n == 5:
            return _lib_ms_ssim(x, y, data_range=data_range, size_average=False).float()
        w = torch.tensor(MS_SSIM_WEIGHTS[:n], dtype=x.dtype, device=x.device)
        w = w / w.sum()
        win = _fspecial_gauss_1d(11, 1.5).to(x).repeat([3, 1, 1, 1])
        mcs = []
        for i in range(n):
            ssim_pc, cs = _ssim(x, y, data_range=data_range, win=win, size_average=False, K=(0.01, 0.03))
            if i < n - 1:
                mcs.append(torch.relu(cs))
                pad = [s % 2 for s in x.shape[2:]]
                x = F.avg_pool2d(x, kernel_size=2, padding=pad)
                y = F.avg_pool2d(y, kernel_size=2, padding=pad)
        vals = torch.stack(mcs + [torch.relu(ssim_pc)], dim=0)
        return torch.prod(vals ** w.view(-1, 1, 1), dim=0).mean(1).float()


# ----------------------------------------------------------------------------- LPIPS

#: lpips net -> torchvision ImageNet checkpoint (``<Model>_Weights.IMAGENET1K_V1.url``).
_BACKBONES = {
    "alex": "https://download.pytorch.org/models/alexnet-owt-7be5be79.pth",
    "vgg": "https://download.pytorch.org/models/vgg16-397923af.pth",
    "squeeze": "https://download.pytorch.org/models/squeezenet1_1-b8a52dc0.pth",
}
_WARNED = False
_MODELS: dict[tuple[str, str], "LPIPS"] = {}


def backbone_weights_path(net: str = "alex") -> tuple[str, str]:
    """``(path, url)``: where the backbone checkpoint of an LPIPS ``net`` must be, and its source."""
    if net not in _BACKBONES:
        raise ConfigError("lpips.net", net, f"one of {sorted(_BACKBONES)}")
    url = _BACKBONES[net]
    return os.path.join(torch.hub.get_dir(), "checkpoints", os.path.basename(url)), url


def _warn_missing(path: str, url: str) -> None:
    global _WARNED
    if not _WARNED:
        _WARNED = True
        warnings.warn(f"LPIPS skipped (reported as None): backbone weights {os.path.basename(path)} not found at "
                      f"{path}. To enable LPIPS, download {url} and save it at that path (the folder is "
                      f"torch.hub.get_dir()/checkpoints; set TORCH_HOME to move it).",
                      MissingWeightsWarning, stacklevel=3)


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
            _warn_missing(self.path, self.url)
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
            _warn_missing(self.path, self.url)
            return None
        _check_pair(x, y, "lpips", channels=3)
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
    global _WARNED
    _WARNED = False
    _MODELS.clear()


# ----------------------------------------------------------------------------- suite

METRIC_NAMES = ("psnr", "ms_ssim", "lpips")


class MetricSuite:
    """Several metrics at once, as the sweep runner records them.

    Parameters
    ----------
    names : list[str]
        From :data:`METRIC_NAMES`.

    Call: ``suite(x, y)`` with x (reference), y float [B, 3, H, W] in [0, 1] ->
    ``{name: list of B Python floats}``; LPIPS gives ``[None] * B`` when its weights are
    absent (one warning per process), and MS-SSIM gives ``[None] * B`` for images smaller
    than 11 px per side.

    Example
    -------
    >>> MetricSuite(["psnr", "ms_ssim"])(x, x_hat)
    {'psnr': [31.2, 28.9], 'ms_ssim': [0.97, 0.95]}
    """

    def __init__(self, names):
        names = list(names)
        if not names or any(n not in METRIC_NAMES for n in names):
            raise ConfigError("metrics", names, f"a non-empty list from {list(METRIC_NAMES)}")
        self.names = names

    def __call__(self, x: torch.Tensor, y: torch.Tensor) -> dict[str, list[float | None]]:
        y = y.to(x.device)
        out: dict[str, list[float | None]] = {}
        for name in self.names:
            if name == "psnr":
                vals = psnr(x, y)
            elif name == "ms_ssim":
                vals = ms_ssim(x, y) if min(x.shape[-2:]) >= 11 else None
            else:
                vals = lpips(x, y)
            out[name] = [None] * x.shape[0] if vals is None else [float(v) for v in vals.cpu()]
        return out

    def __repr__(self) -> str:
        return f"MetricSuite({self.names})"
