"""SING-Zero: DDNM's range–null-space restoration with an unconditional diffusion prior.

A receiver output ``x̂`` (e.g. a blurry DeepJSCC image) is read as a *linear* measurement
``y = A x̂ ≈ A x + n`` of the transmitted image x, with A a known operator whose range
the link preserves (e.g. 8×8 average pooling: the low frequencies). At every step of the
restoration core, DDNM (Wang, Yu & Zhang, ICLR 2023) replaces the range-space part of the
prior's clean estimate by the measurement's:

    x̂₀ ← A⁺y + (I − A⁺A) x̂₀                                          (σ_y = 0)

so the output satisfies ``A x̃ = y`` exactly, and the prior fills in only the null space.

DDNM+ (noisy y = A x + σ_y n) follows the official SVD path (``functions/svd_ddnm.py``
``ddnm_plus_diffusion`` and the ``Lambda`` / ``Lambda_noise`` methods of
``functions/svd_operators.py`` in github.com/wyhuai/DDNM; paper Eqs. 17–19, 51). For a
range coordinate with singular value s, with ``a = √ᾱ_{t'}``, ``σ_t = √(1 − ᾱ_{t'})`` (the
noise level of the step's target) and ``η_r`` the step's fraction of fresh noise:

    if σ_t ≥ a σ_y / s:  λ = 1,                          fresh noise d₁ = √(σ_t² − a²σ_y²/s²)
    else:                λ = s σ_t √(1 − η_r²) / (a σ_y), fresh noise d₁ = σ_t η_r

    x̂₀ ← x̂₀ − λ A⁺(A x̂₀ − y)
    x_{t'} = a x̂₀ + d₁ · (range part of z) + (null part of the core's own noise term)

so that the noise the measurement brings into the range coordinates (a λ σ_y / s) plus
the fresh noise adds up to exactly the level σ_t the next step expects; the null space
is sampled as in plain DDPM/DDIM. Here ``η_r = σ/σ_t`` with σ the core's fresh-noise std,
which makes the null-space update the official ``(σ_t η, σ_t √(1−η²))`` split exactly.
All our operators have a single non-zero singular value (``A Aᵀ = s² I``, see
:mod:`linksim.restore.operators`), so λ and d₁ are one number per image and step, and
"range part" is ``A⁺A``. The official *simplified* DDNM+ (no SVD) mishandles the noise and
is not used. At the last step (σ_t = 0) DDNM+ sets λ = 0: with noisy y the output is the
prior's last x̂₀, which need not satisfy A x̃ = y.

σ_y: the restorer works on images in [0, 1] and the prior in [−1, 1], so a σ_y given in
image units is doubled (as DDNM does). It is the caller's ``sigma_y=`` when given;
otherwise, where the receiver knows the SNR and a ``sigma_y_rule`` is given,
``sigma_y_rule(snr_db)`` — a :class:`SigmaYTable` *measured* on (x, x̂) pairs (``linksim
calibrate``, :mod:`linksim.train.sigma_y`), or :func:`sigma_y_from_snr`, a *heuristic* for
DeepJSCC outputs (their error is not additive white noise; measured errors are 2–4× it);
without either, σ_y = 0 (plain DDNM) — the default, as in a scenario's ``sigma_y: null``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import torch

from linksim.errors import ConfigError
from linksim.restore.core import (
    Correction,
    RestorationCore,
    StepInfo,
    per_image_generators,
    travel_schedule,
)
from linksim.restore.operators import LinearOperator, make_operator
from linksim.restore.priors import check_prior_fits

__all__ = ["SIGMA_Y_SCALE", "DDNMHook", "DDNMRestorer", "SNRTable", "SigmaYTable", "sigma_y_from_snr"]

#: default σ_y (image units, [0, 1]) of :func:`sigma_y_from_snr` at 0 dB
SIGMA_Y_SCALE = 0.05


def sigma_y_from_snr(snr_db: torch.Tensor | float, scale: float = SIGMA_Y_SCALE) -> torch.Tensor:
    """The heuristic σ_y rule: ``scale · 10^(−SNR/20)`` in image units ([0, 1] scale).

    The channel noise amplitude relative to the signal (1/√SNR) times ``scale``, the
    assumed std of the measurement error ``A x̂ − A x`` at 0 dB (0.05 ≈ 13/255 on the
    block means). A guess for DeepJSCC outputs — a measured :class:`SigmaYTable` is better; pass
    it as ``sigma_y_rule=`` to :class:`DDNMRestorer` (or ``sigma_y: snr`` in a scenario).

    >>> [round(float(v), 4) for v in sigma_y_from_snr(torch.tensor([-5.0, 0.0, 5.0]))]
    [0.0889, 0.05, 0.0281]
    """
    return scale * torch.pow(10.0, -torch.as_tensor(snr_db, dtype=torch.float64) / 20.0)


class SNRTable:
    """A per-SNR setting measured or tuned at a few SNRs, interpolated linearly in between.

    ``points`` maps SNR (dB) → a value ≥ 0 (σ_y of DDNM+, ζ of SING-INN, …). Between
    points the value is interpolated linearly in SNR; outside them it is held at the
    nearest end (no extrapolation). ``field`` names the setting in error messages.

    >>> rule = SNRTable({-5: 0.2, 5: 0.1})
    >>> [round(float(v), 3) for v in rule(torch.tensor([-10.0, 0.0, 2.5, 9.0]))]
    [0.2, 0.15, 0.125, 0.1]
    """

    def __init__(self, points: dict, field: str = "value", what: str = "value"):
        if not isinstance(points, dict) or not points:
            raise ConfigError(field, points, f"a non-empty mapping SNR (dB) → {what} ≥ 0")
        pairs = []
        for snr, value in points.items():
            try:
                pair = (float(snr), float(value))
            except (TypeError, ValueError):
                raise ConfigError(field, {snr: value}, f"SNR (dB) → {what} pairs of numbers") from None
            if not (math.isfinite(pair[0]) and math.isfinite(pair[1]) and pair[1] >= 0):
                raise ConfigError(field, {snr: value}, f"a finite SNR (dB) → a finite {what} ≥ 0")
            pairs.append(pair)
        pairs.sort()
        if len({snr for snr, _ in pairs}) < len(pairs):  # e.g. 0 and "0": one SNR, two values
            raise ConfigError(field, points, f"one {what} per SNR (each SNR once)")
        self.snr_db = torch.tensor([p[0] for p in pairs], dtype=torch.float64)
        self.sigma = torch.tensor([p[1] for p in pairs], dtype=torch.float64)

    def __call__(self, snr_db: torch.Tensor | float) -> torch.Tensor:
        snr = torch.as_tensor(snr_db, dtype=torch.float64).clamp(self.snr_db[0], self.snr_db[-1])
        if len(self.snr_db) == 1:
            return self.sigma[0].expand(snr.shape).clone()
        upper = torch.searchsorted(self.snr_db, snr.contiguous()).clamp(1, len(self.snr_db) - 1)
        lo, hi = self.snr_db[upper - 1], self.snr_db[upper]
        weight = (snr - lo) / (hi - lo)
        return self.sigma[upper - 1] + weight * (self.sigma[upper] - self.sigma[upper - 1])

    def as_dict(self) -> dict[float, float]:
        return dict(zip(self.snr_db.tolist(), self.sigma.tolist()))


class SigmaYTable(SNRTable):
    """A measured σ_y rule for DDNM+: σ_y(SNR) in image units, e.g. the RMS of A(x̂ − x) that
    ``linksim calibrate`` measured for one DeepJSCC checkpoint and operator (the error of a
    learned decoder saturates: no extrapolation beyond the calibrated SNRs).

    >>> rule = SigmaYTable({-5: 0.2, 5: 0.1})
    >>> [round(float(v), 3) for v in rule(torch.tensor([-10.0, 0.0, 2.5, 9.0]))]
    [0.2, 0.15, 0.125, 0.1]
    """

    def __init__(self, points: dict):
        super().__init__(points, field="sigma_y", what="σ_y")


class DDNMHook:
    """The core hook of DDNM (σ_y = 0) and DDNM+ (σ_y > 0), per image.

    :param operator: the linear operator A.
    :param y: the measurement, in the prior's scale: float ``operator.out_shape`` [B, …].
    :param sigma_y: the noise std on y in the prior's scale, a float or float [B]
        (0 → plain DDNM for that image).
    """

    def __init__(self, operator: LinearOperator, y: torch.Tensor, sigma_y: float | torch.Tensor = 0.0):
        self.op, self.y = operator, y
        sy = torch.as_tensor(sigma_y, dtype=torch.float64).reshape(-1).expand(y.shape[0]).clone()
        if not bool(torch.isfinite(sy).all()) or bool((sy < 0).any()):
            raise ConfigError("sigma_y", sy.tolist(), "finite values ≥ 0")
        self.sigma_y = sy

    def __call__(self, x0: torch.Tensor, t: int, info: StepInfo) -> torch.Tensor | Correction:
        residual = self.op.A_pinv(self.op.A(x0) - self.y)
        if not bool((self.sigma_y > 0).any()):
            return x0 - residual  # A⁺y + (I − A⁺A) x̂₀
        b = x0.shape[0]
        a, st = math.sqrt(info.alpha_bar_prev), math.sqrt(max(1.0 - info.alpha_bar_prev, 0.0))
        eta_r = info.sigma / st if st > 0 else 0.0
        thr = a * self.sigma_y / self.op.singular_value  # a σ_y / s, per image
        full = st >= thr
        lam = torch.where(full, torch.ones_like(thr), st * math.sqrt(1.0 - eta_r ** 2) / thr.clamp_min(1e-300))
        d1 = torch.where(full, (st ** 2 - thr ** 2).clamp_min(0.0).sqrt(), torch.full_like(thr, st * eta_r))
        view = (b,) + (1,) * (x0.dim() - 1)
        lam_t = lam.to(x0.device, x0.dtype).view(view)
        x0c = x0 - lam_t * residual
        eps_hat = (info.x_t - math.sqrt(info.alpha_bar) * x0c) / math.sqrt(1.0 - info.alpha_bar)
        core_noise = info.eps_coef * eps_hat + info.sigma * info.z
        plus_noise = self.op.project_null(core_noise) + d1.to(x0.device, x0.dtype).view(view) * self.op.project_range(info.z)
        noisy = (self.sigma_y > 0).to(x0.device).view(view)
        return Correction(x0c, torch.where(noisy, plus_noise, core_noise))


class DDNMRestorer:
    """SING-Zero: ``restore(x_hat, snr_db, generator) -> x_tilde`` with a DDNM-guided prior.

    :param model: the prior, a diffusers ``UNet2DModel`` on [−1, 1] images (or any
        ``eps_model(x_t, t)`` callable; then ``shape`` checks are skipped).
    :param scheduler: the prior's noise schedule (a diffusers DDPM or DDIM scheduler).
    :param operator: the linear approximation A of the degradation: a name
        (:func:`~linksim.restore.operators.make_operator`) or an operator.
    :param steps: sampling steps (respaced from the training schedule).
    :param sampler: ``"ddpm"`` (η = 1) or ``"ddim"`` (η = ``eta``, default 0).
    :param eta: DDIM's η.
    :param sigma_y: a fixed σ_y in image units ([0, 1] scale), overriding the SNR rule.
    :param sigma_y_rule: ``snr_db float[B] -> σ_y float[B]`` (image units) when the SNR is
        known and ``sigma_y`` is None (a :class:`SigmaYTable`, :func:`sigma_y_from_snr`);
        default None: σ_y = 0, plain DDNM, whether the SNR is known or not.
    :param jump_length: RePaint time-travel length (0 = none).
    :param jump_n_sample: RePaint repeats (1 = none).
    :param clamp: clip the output to [0, 1]. Off by default: clipping would break
        ``A x̃ = A x̂`` wherever the sample leaves [0, 1].
    :param device: default the model's device.
    :param progress: tqdm progress bar.
    """

    name = "sing-zero"

    def __init__(self, model, scheduler, operator: str | LinearOperator = "avgpool4", *, steps: int = 100,
                 sampler: str = "ddpm", eta: float | None = None, sigma_y: float | None = None,
                 sigma_y_rule: Callable[[torch.Tensor], torch.Tensor] | None = None, jump_length: int = 0,
                 jump_n_sample: int = 1, clamp: bool = False, device: str | torch.device | None = None,
                 progress: bool = True):
        from diffusers import DDIMScheduler, DDPMScheduler

        if sampler not in ("ddpm", "ddim"):
            raise ConfigError("sampler", sampler, "'ddpm' or 'ddim'")
        if sigma_y is not None and (not isinstance(sigma_y, (int, float)) or not 0 <= sigma_y < math.inf):
            raise ConfigError("sigma_y", sigma_y, "a number ≥ 0 in image units ([0, 1] scale), or nothing")
        cls = DDPMScheduler if sampler == "ddpm" else DDIMScheduler
        sched = scheduler if type(scheduler) is cls else cls.from_config(scheduler.config)
        self.core = RestorationCore(model, sched, device=device)
        self.operator = make_operator(operator)
        self.steps, self.sampler = steps, sampler
        self.eta = self.core.resolve_eta(eta)
        self.core.timesteps(steps)  # validates steps now
        travel_schedule(steps, jump_length, jump_n_sample)  # validates the time-travel settings now
        self.sigma_y, self.sigma_y_rule = sigma_y, sigma_y_rule
        self.jump_length, self.jump_n_sample = jump_length, jump_n_sample
        self.clamp, self.progress = clamp, progress

    @classmethod
    def from_prior(cls, path, operator: str | LinearOperator = "avgpool4", *, device=None, dtype=None, **kwargs):
        """A restorer over the diffusers prior folder at ``path`` (see :func:`load_prior`)."""
        from linksim.restore.priors import load_prior

        prior = load_prior(path, device=device, dtype=dtype)
        return cls(prior.unet, prior.scheduler, operator, device=prior.device, **kwargs)

    @property
    def device(self) -> torch.device:
        return self.core.device

    def check(self, image_shape) -> None:
        """Refuse images of per-image shape (C, H, W) that the operator or the prior cannot take.

        :raises ConfigError: field ``image_size`` — H or W not divisible by a pooling factor,
            or another resolution or channel count than the prior's.
        """
        shape = tuple(int(v) for v in image_shape)
        self.operator.out_shape(shape)
        check_prior_fits(self.core.model, shape)

    def measurement_sigma(self, snr_db, batch: int) -> torch.Tensor:
        """σ_y per image in image units: ``sigma_y``, else ``sigma_y_rule(snr_db)``, else 0."""
        if self.sigma_y is not None:
            return torch.full((batch,), float(self.sigma_y), dtype=torch.float64)
        if snr_db is None or self.sigma_y_rule is None:
            return torch.zeros(batch, dtype=torch.float64)
        snr = torch.as_tensor(snr_db, dtype=torch.float64).reshape(-1).expand(batch)
        return torch.as_tensor(self.sigma_y_rule(snr), dtype=torch.float64).reshape(-1).expand(batch).clone()

    def hook(self, x: torch.Tensor, snr_db) -> DDNMHook:
        """The per-step hook for receiver outputs ``x`` (float [B, 3, H, W], the prior's [−1, 1] scale)."""
        return DDNMHook(self.operator, self.operator.A(x), 2.0 * self.measurement_sigma(snr_db, x.shape[0]))

    def restore(self, x_hat: torch.Tensor, snr_db: float | Sequence[float] | torch.Tensor | None = None,
                generator: torch.Generator | Sequence[torch.Generator] | None = None) -> torch.Tensor:
        """Restore a batch of receiver outputs.

        :param x_hat: float [B, 3, H, W] in [0, 1] (H, W = the prior's resolution).
        :param snr_db: the channel SNR per image (float or float [B]) where the receiver
            knows it, else None.
        :param generator: one ``torch.Generator`` per image (or one for a batch of one).
        :returns: x̃, float32 [B, 3, H, W] on ``x_hat``'s device, ≈ [0, 1] (see ``clamp``).
        :raises ConfigError: ``image_size`` for images the operator or the prior cannot take.
        """
        if x_hat.dim() != 4:
            raise ConfigError("x_hat", tuple(x_hat.shape), "a float tensor [B, 3, H, W]")
        shape = tuple(x_hat.shape[1:])
        self.check(shape)
        b = x_hat.shape[0]
        gens = per_image_generators(generator, b)
        x = x_hat.to(self.device, torch.float32) * 2.0 - 1.0
        hook = self.hook(x, snr_db)
        out = self.core.sample(gens, shape, hook, num_inference_steps=self.steps, eta=self.eta,
                               jump_length=self.jump_length, jump_n_sample=self.jump_n_sample, progress=self.progress)
        out = (out + 1.0) / 2.0
        if self.clamp:
            out = out.clamp(0.0, 1.0)
        return out.to(x_hat.device)
