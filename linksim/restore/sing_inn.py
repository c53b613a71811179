"""SING-INN and CommIN: diffusion restoration guided by a learned, invertible degradation model.

SING-Zero (:mod:`linksim.restore.ddnm`) reads the DeepJSCC output x̂ as ``A x`` for a linear
A = avgpool_s and pins ``A x̃`` to ``A x̂``. A learned decoder's block means are *not*
those of x (they are biased towards colour blobs), so pinning them pins the error too. The
INN :class:`~linksim.restore.inn.ConditionalINN` has learned the non-linear version: its
coarse part ``c(x, snr)`` predicts ``avgpool_s(x̂)`` from x (SING eq. 16). SING's Algorithm 2
uses it at every step of the restoration core, on the prior's clean estimate x̂₀:

1. the DDNM update of SING-Zero (optional here: ``ddnm=False`` skips it);
2. split ``(c, d) = F(x̂₀, snr)``, replace the coarse part by the received one,
   ``x̂₀^INN = F⁻¹(avgpool_s(x̂), d, snr)``: the image whose INN coarse part is what was
   received and whose details are the prior's;
3. a gradient step ``x̂₀ ← x̂₀ − ζ ∇_{x̂₀} ‖x̂₀ − x̂₀^INN‖² = x̂₀ − 2ζ (x̂₀ − x̂₀^INN)`` (per image,
   in the prior's [−1, 1] scale), the gradient taken with x̂₀^INN held fixed. x̂₀^INN is
   clipped to the image range first: F⁻¹ undoes a contraction (DeepJSCC blurs and pulls
   colours to the mean), so it amplifies the received coarse part's noise — unclipped, the
   shipped r1_192 INN's x̂₀^INN reached −1.2…1.8 in [0, 1] units.

Scale of ζ: **ζ = ½ replaces x̂₀ by x̂₀^INN**; ζ = 0 is no guidance. With an untrained INN (the
Haar split) x̂₀^INN is DDNM's projection ``x̂₀ − A⁺(A x̂₀ − A x̂)`` for A = avgpool_s, so ζ = ½
is then exactly SING-Zero; the papers' 0.3 / 0.4 / 0.5 are fractions of that move.

*Choices.* (i) x̂₀^INN is held fixed in the gradient. Differentiating it too (through d and
F⁻¹) is the literal gradient of the loss, but for a trained INN that map's Jacobian is far
from a projection: measured on the shipped r1_192 INN at 0 dB, one ζ = ½ step of the full
gradient *raised* the gap from 1.2e3 to 3.1e4 (the sample diverges within a few steps; the
restored faces came out at 5–8 dB PSNR). For the Haar INN both gradients coincide. (ii) The
gradient is with respect to x̂₀, not to x_t through the denoiser (DPS-style): that would
triple the cost of a step (a backward pass through the UNet) for a consistency correction
of x̂₀. The corrected x̂₀ enters the core's posterior step as DDNM's does.

ζ on the shipped r1_192 INN (8 test faces, one draw, 50 steps, PSNR change vs. DeepJSCC alone at
−5 / +5 dB): with the DDNM+ update first, ζ = 0.05 → −0.03 / −0.12 dB, ζ = 0.1 → −0.95 / −0.53 dB;
without it, ζ = 0.1 → −1.9 / −2.9 dB, ζ = 0.2 → −2.3 / −2.4 dB; unclipped ζ = 0.3–0.5 lost
2.7–5.6 dB. The INN predicts avgpool(x̂) well (half the linear A's error) but the received
x̂ carries channel noise the INN cannot predict, and F⁻¹ amplifies it.

CommIN: the same loop with an unconditioned INN trained at one SNR (``conditional=False``);
it ignores the SNR at test time, so it is only as good as its training SNR is close.

Nothing here imports ``linksim.channel``, ``linksim.digital`` or ``linksim.jscc``.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable

import torch
import torch.nn.functional as F

from linksim.errors import ConfigError
from linksim.restore.core import Correction, StepInfo
from linksim.restore.ddnm import DDNMHook, DDNMRestorer
from linksim.restore.inn import ConditionalINN

__all__ = ["INNGuidanceHook", "SINGINNRestorer", "inn_guidance_step"]


def inn_guidance_step(inn: ConditionalINN, x0: torch.Tensor, coarse: torch.Tensor, snr_db, zeta: torch.Tensor,
                      clip: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
    """One SING-INN guidance step on a clean estimate.

    :param inn: the INN, on [0, 1] images.
    :param x0: x̂₀, float [B, C, H, W] in the prior's [−1, 1] scale.
    :param coarse: the received coarse part ``avgpool_s(x̂)``, float [B, C, H/s, W/s] in [0, 1].
    :param snr_db: the SNR per image (ignored by an unconditioned INN).
    :param zeta: step size per image, float [B] (or a 0-d tensor).
    :param clip: clip x̂₀^INN to the image range (see the module docstring).
    :returns: ``(x̂₀ − 2ζ (x̂₀ − x̂₀^INN), ‖x̂₀ − x̂₀^INN‖² per image before the step)``.
    """
    _, details = inn((x0 + 1.0) / 2.0, snr_db)
    target = inn.inverse(coarse.to(x0.dtype), details, snr_db)
    target = (target.clamp(0.0, 1.0) if clip else target) * 2.0 - 1.0
    residual = x0 - target
    gap = residual.pow(2).flatten(1).sum(1)
    zeta = torch.as_tensor(zeta, dtype=x0.dtype, device=x0.device).reshape(-1)
    return x0 - zeta.view(-1, *([1] * (x0.dim() - 1))) * 2.0 * residual, gap


class INNGuidanceHook:
    """The core hook of SING-INN: (optional) DDNM update, then :func:`inn_guidance_step`.

    :param inn: the INN (on the core's device).
    :param coarse: ``avgpool_s(x̂)`` in [0, 1], float [B, C, H/s, W/s].
    :param snr_db: float [B] (dB).
    :param zeta: float [B], ζ per image.
    :param ddnm: the DDNM hook to apply first, or None.
    :param clip: clip x̂₀^INN to the image range.
    """

    def __init__(self, inn: ConditionalINN, coarse: torch.Tensor, snr_db: torch.Tensor, zeta: torch.Tensor,
                 ddnm: DDNMHook | None = None, clip: bool = True):
        self.inn, self.coarse, self.snr_db, self.zeta, self.ddnm, self.clip = inn, coarse, snr_db, zeta, ddnm, clip
        #: ‖x̂₀ − x̂₀^INN‖² per image of the last step (before its guidance): for tests and plots
        self.last_gap: torch.Tensor | None = None

    def __call__(self, x0: torch.Tensor, t: int, info: StepInfo) -> torch.Tensor | Correction:
        out = self.ddnm(x0, t, info) if self.ddnm is not None else x0
        noise = out.noise if isinstance(out, Correction) else None
        x0 = out.x0 if isinstance(out, Correction) else out
        x0, self.last_gap = inn_guidance_step(self.inn, x0, self.coarse, self.snr_db, self.zeta, self.clip)
        return x0 if noise is None else Correction(x0, noise)


class SINGINNRestorer(DDNMRestorer):
    """SING-INN (or CommIN with an unconditioned INN): ``restore(x_hat, snr_db, generator)``.

    Takes every argument of :class:`~linksim.restore.ddnm.DDNMRestorer` (prior, operator of
    the DDNM update, σ_y, steps, sampler, …) plus:

    :param inn: a :class:`ConditionalINN` (e.g. :func:`linksim.zoo.load_inn`).
    :param zeta: the guidance step ζ: a number, or ``snr_db float[B] -> ζ float[B]``
        (e.g. a :class:`~linksim.restore.ddnm.SNRTable`); ½ is a full projection (see the
        module docstring).
    :param ddnm: apply SING-Zero's DDNM update before the INN step (Algorithm 2); False
        leaves the INN alone in charge of consistency.
    :param clip_target: clip x̂₀^INN to [0, 1] before the step (default; False is the bare
        algorithm, with which an untrained INN and ζ = ½ reproduce plain DDNM exactly).

    The SNR is required when the INN is conditioned on it.
    """

    name = "sing-inn"

    def __init__(self, model, scheduler, inn: ConditionalINN, operator="avgpool4", *,
                 zeta: float | Callable[[torch.Tensor], torch.Tensor] = 0.5, ddnm: bool = True, clip_target: bool = True,
                 **kwargs):
        super().__init__(model, scheduler, operator, **kwargs)
        if not isinstance(inn, ConditionalINN):
            raise ConfigError("inn", type(inn).__name__, "a ConditionalINN (linksim.zoo.load_inn)")
        if not callable(zeta) and (isinstance(zeta, bool) or not isinstance(zeta, (int, float)) or not 0 <= zeta <= 1):
            raise ConfigError("zeta", zeta, "a step size in [0, 1] (½ = a full projection) or an SNR table")
        self.inn = inn.to(self.device).eval().requires_grad_(False)
        self.zeta, self.ddnm, self.clip_target = zeta, bool(ddnm), bool(clip_target)

    @classmethod
    def from_prior(cls, path, inn: ConditionalINN, operator="avgpool4", *, device=None, dtype=None, **kwargs):
        """A restorer over the diffusers prior folder at ``path`` and the INN ``inn``."""
        from linksim.restore.priors import load_prior

        prior = load_prior(path, device=device, dtype=dtype)
        return cls(prior.unet, prior.scheduler, inn, operator, device=prior.device, **kwargs)

    def check(self, image_shape) -> None:
        """As :meth:`DDNMRestorer.check`, and H, W must be multiples of the INN's scale."""
        super().check(image_shape)
        s = self.inn.config.scale
        c, h, w = (int(v) for v in image_shape)
        if h % s or w % s or c != self.inn.config.channels:
            raise ConfigError("image_size", (c, h, w), f"{self.inn.config.channels} channels and H, W multiples of "
                                                       f"{s} (the INN's {self.inn.config.levels} Haar levels)")

    def zeta_for(self, snr_db, batch: int) -> torch.Tensor:
        """ζ per image, float [B]."""
        if not callable(self.zeta):
            return torch.full((batch,), float(self.zeta))
        if snr_db is None:
            raise ConfigError("snr_db", None, "the channel SNR (ζ is given per SNR)")
        snr = torch.as_tensor(snr_db, dtype=torch.float64).reshape(-1).expand(batch)
        return torch.as_tensor(self.zeta(snr), dtype=torch.float32).reshape(-1).expand(batch).clone()

    def hook(self, x: torch.Tensor, snr_db) -> INNGuidanceHook:
        b = x.shape[0]
        if snr_db is None and self.inn.config.conditional:
            raise ConfigError("snr_db", None, "the channel SNR: this INN is conditioned on it")
        snr = None if snr_db is None else torch.as_tensor(snr_db, dtype=torch.float32).reshape(-1).expand(b).clone()
        if snr is not None and not self.inn.config.conditional:
            lo, hi = self.inn.config.snr_range_db
            off = snr[(snr < lo - 0.5) | (snr > hi + 0.5)]
            if off.numel():  # CommIN has one model per SNR: say so when it is used at another one
                warnings.warn(f"CommIN INN trained at {lo:g}…{hi:g} dB used at {sorted(set(off.tolist()))} dB",
                              UserWarning, stacklevel=3)
        coarse = F.avg_pool2d((x + 1.0) / 2.0, self.inn.config.scale)
        ddnm = super().hook(x, snr_db) if self.ddnm else None
        return INNGuidanceHook(self.inn, coarse, snr, self.zeta_for(snr_db, b).to(x.device), ddnm,
                               self.clip_target)
