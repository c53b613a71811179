"""The restoration core: one diffusion sampling loop with one consistency hook per step.

The loop runs a noise-prediction model — a diffusers ``UNet2DModel`` or any callable
``eps_model(x_t, t) -> eps`` — over the timestep grid of a diffusers scheduler
(``DDPMScheduler`` or ``DDIMScheduler``; model and scheduler are kept apart, as in
diffusers). Every denoising step does, per batch element:

1. ``x̂₀ = (x_t − √(1−ᾱ_t) ε_θ(x_t, t)) / √ᾱ_t``  (or the ``sample`` / ``v_prediction``
   equivalents of the scheduler's ``prediction_type``), clipped to ±``clip_sample_range``
   when the scheduler's ``clip_sample`` is set;
2. ``x̂₀ ← hook(x̂₀, t, info)`` — the one consistency hook (DDNM's range–null-space
   projection, SING-INN's guidance, …);
3. ``x_{t'} = √ᾱ_{t'} x̂₀ + √(1 − ᾱ_{t'} − σ²) ε̂ + σ z`` with ``ε̂ = (x_t − √ᾱ_t x̂₀)/√(1−ᾱ_t)``
   and ``σ = η √((1−ᾱ_{t'})/(1−ᾱ_t) · (1 − ᾱ_t/ᾱ_{t'}))``, t' the next grid time.

Step 3 is the generalized posterior ``q_σ(x_{t'} | x_t, x̂₀)`` of DDIM (Song et al. 2021,
Eq. 7), computed here from the scheduler's ``alphas_cumprod`` rather than through
``scheduler.step``: with η = 1 it is exactly DDPM's posterior ``q(x_{t'} | x_t, x₀)`` with
the "fixed_small" variance (diffusers' ``DDPMScheduler.step`` on a respaced grid computes
the same numbers), with η = 0 it is deterministic DDIM. Computing it ourselves keeps the
*corrected* x̂₀ in both places where x₀ enters — the mean and ε̂ — which is DDNM's
Algorithm 1 (sample from ``p(x_{t−1} | x_t, x̂₀)`` with the corrected x̂₀), whereas
``scheduler.step`` takes the model output and would have to be fed a re-derived ε and
then second-guessed for its clipping and thresholding. The last step goes to ᾱ = 1, so
the returned sample *is* the last corrected x̂₀ (a hook that makes ``A x̂₀ = y`` makes
the output satisfy it exactly).

A hook may also return a :class:`Correction` carrying its own noise term, which then
replaces ``√(1 − ᾱ_{t'} − σ²) ε̂ + σ z`` (DDNM+ shapes the noise per singular value).
It gets the step's fresh Gaussian ``z`` in ``info.z`` so every draw still comes from the
per-image generators.

Respacing uses the scheduler's own ``set_timesteps(num_inference_steps)`` grid (its
``timestep_spacing``); optional RePaint time travel (Lugmayr et al. 2022) jumps back
``jump_length`` grid steps by forward diffusion ``q(x_{t_back} | x_t)``,
``jump_n_sample − 1`` times at every ``jump_length``-th grid point.

Randomness: one ``torch.Generator`` per batch element; x_T and every z of image i are
drawn from generator i (on the generator's device, then moved), so a batch gives the
same images as one-by-one runs, on any device. The loop arithmetic runs in float32 (or
the requested ``dtype``); a float16 model (CUDA only) gets its input cast to float16.

Example
-------
>>> import torch
>>> from diffusers import DDIMScheduler
>>> core = RestorationCore(lambda x, t: torch.zeros_like(x), DDIMScheduler(), device="cpu")
>>> gens = [torch.Generator().manual_seed(i) for i in range(2)]
>>> x = core.sample(gens, shape=(3, 8, 8), num_inference_steps=10, progress=False)
>>> x.shape, x.dtype
(torch.Size([2, 3, 8, 8]), torch.float32)
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from tqdm.auto import tqdm

from linksim.errors import ConfigError

__all__ = [
    "Correction",
    "Hook",
    "RestorationCore",
    "StepInfo",
    "default_device",
    "per_image_generators",
    "randn",
    "travel_schedule",
]


@dataclass(frozen=True)
class StepInfo:
    """What a hook may read at one denoising step (tensors are float [B, C, H, W]).

    :ivar index: the step's grid position k (0 = the first, noisiest step).
    :ivar t: the model timestep t (an int in [0, num_train_timesteps)).
    :ivar t_prev: the timestep t' the step goes to (−1 = clean, ᾱ = 1).
    :ivar alpha_bar: ᾱ_t.
    :ivar alpha_bar_prev: ᾱ_{t'}.
    :ivar sigma: σ, the std of the fresh noise the core adds (η-scaled posterior std).
    :ivar eta: η of this run (1 for DDPM).
    :ivar x_t: the current sample.
    :ivar eps: the model's noise prediction ε_θ(x_t, t).
    :ivar z: this step's standard Gaussian draw (from the per-image generators).
    """

    index: int
    t: int
    t_prev: int
    alpha_bar: float
    alpha_bar_prev: float
    sigma: float
    eta: float
    x_t: torch.Tensor
    eps: torch.Tensor
    z: torch.Tensor

    @property
    def eps_coef(self) -> float:
        """√(1 − ᾱ_{t'} − σ²): the weight of ε̂ in the core's update."""
        return math.sqrt(max(1.0 - self.alpha_bar_prev - self.sigma ** 2, 0.0))


@dataclass(frozen=True)
class Correction:
    """A hook's answer when it also sets the noise: ``x_{t'} = √ᾱ_{t'} x0 + noise``.

    :ivar x0: the corrected x̂₀, float [B, C, H, W].
    :ivar noise: float [B, C, H, W], replaces the core's ``√(1−ᾱ_{t'}−σ²) ε̂ + σ z``.
    """

    x0: torch.Tensor
    noise: torch.Tensor


Hook = Callable[[torch.Tensor, int, StepInfo], torch.Tensor | Correction]


def default_device() -> torch.device:
    """CUDA when present, the CPU otherwise."""
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def per_image_generators(generator: torch.Generator | Sequence[torch.Generator] | None, batch: int,
                         ) -> list[torch.Generator]:
    """One generator per image from a list (returned as is), a single generator, or None.

    A single generator serves a batch of one as is; for a larger batch it seeds ``batch``
    fresh generators from its first draws (reproducible, but not the same images as
    one-by-one runs with that generator). None gives unseeded generators.

    :raises ConfigError: field ``generator`` — a list whose length is not the batch size.
    """
    if generator is None:
        return [torch.Generator().manual_seed(int(torch.randint(0, 2 ** 62, ()).item())) for _ in range(batch)]
    if isinstance(generator, torch.Generator):
        if batch == 1:
            return [generator]
        seeds = torch.randint(0, 2 ** 62, (batch,), generator=generator, device=generator.device)
        return [torch.Generator().manual_seed(int(s)) for s in seeds]
    gens = list(generator)
    if len(gens) != batch or not all(isinstance(g, torch.Generator) for g in gens):
        raise ConfigError("generator", f"{len(gens)} items", f"one torch.Generator per image ({batch})")
    return gens


def randn(generators: Sequence[torch.Generator], shape: Sequence[int], device: torch.device,
          dtype: torch.dtype) -> torch.Tensor:
    """Standard Gaussian float [len(generators), *shape]: image i from generator i.

    Drawn in float32 on each generator's device and then moved to ``device`` and cast to
    ``dtype``, so the numbers depend neither on the batch, nor the device, nor the dtype.
    """
    return torch.stack([torch.randn(tuple(shape), generator=g, device=g.device, dtype=torch.float32)
                        for g in generators]).to(device=device, dtype=dtype)


def travel_schedule(n: int, jump_length: int = 0, jump_n_sample: int = 1) -> list[int]:
    """Grid positions visited by a sampler with RePaint time travel.

    Position k ∈ {0, …, n} is the state at grid time ``timesteps[k]`` (k = n: the clean
    output). A step k → k+1 denoises; a step k → k − ``jump_length`` re-noises. After
    arriving at positions ``n − 1 − j·L`` (j = 0, 1, … while j·L < n − L) the sampler
    jumps back L positions, ``jump_n_sample − 1`` times each (RePaint's ``jump_length``
    and ``jump_n_sample``; the same jump points as RePaint's and DDNM's
    ``get_schedule_jump`` with T_sampling = n).

    >>> travel_schedule(4)
    [0, 1, 2, 3, 4]
    >>> travel_schedule(4, jump_length=1, jump_n_sample=2)
    [0, 1, 0, 1, 2, 1, 2, 3, 2, 3, 4]

    :raises ConfigError: fields ``jump_length`` / ``jump_n_sample`` out of range.
    """
    if isinstance(jump_length, bool) or not isinstance(jump_length, int) or not 0 <= jump_length < max(n, 1):
        raise ConfigError("jump_length", jump_length, f"an integer in [0, {max(n - 1, 0)}] (0 = no time travel)")
    if isinstance(jump_n_sample, bool) or not isinstance(jump_n_sample, int) or jump_n_sample < 1:
        raise ConfigError("jump_n_sample", jump_n_sample, "an integer ≥ 1 (1 = no time travel)")
    if jump_length == 0 or jump_n_sample == 1:
        return list(range(n + 1))
    remaining = {n - 1 - j: jump_n_sample - 1 for j in range(0, n - jump_length, jump_length)}
    positions, k = [0], 0
    while k < n:
        k += 1
        positions.append(k)
        if remaining.get(k, 0) > 0:
            remaining[k] -= 1
            k -= jump_length
            positions.append(k)
    return positions


class RestorationCore:
    """The sampling loop over a noise-prediction model and a DDPM/DDIM scheduler.

    :param model: a diffusers ``UNet2DModel`` (its ``.sample`` output is used; a learned-
        variance output with 2C channels keeps the first C) or any callable
        ``model(x_t: float[B, C, H, W], t: long[B]) -> float[B, C, H, W]``.
    :param scheduler: a diffusers ``DDPMScheduler`` or ``DDIMScheduler``; its
        ``alphas_cumprod``, ``prediction_type``, ``clip_sample`` and ``set_timesteps``
        grid are used (not its ``step``); its ``variance_type`` is not: the reverse variance
        is always the η-scaled posterior variance ("fixed_small" for DDPM).
    :param device: where the loop runs; default the model's device (a model with parameters
        must already be there), else CUDA when present.
    :raises ConfigError: field ``scheduler`` (another kind, or thresholding), ``dtype``
        (a float16 model off CUDA).
    """

    def __init__(self, model, scheduler, *, device: str | torch.device | None = None):
        kind = type(scheduler).__name__
        if kind not in ("DDPMScheduler", "DDIMScheduler"):
            raise ConfigError("scheduler", kind, "a diffusers DDPMScheduler or DDIMScheduler")
        if getattr(scheduler.config, "thresholding", False):
            raise ConfigError("scheduler", "thresholding=True", "a scheduler without dynamic thresholding")
        if scheduler.config.prediction_type not in ("epsilon", "sample", "v_prediction"):
            raise ConfigError("scheduler", scheduler.config.prediction_type, "prediction_type epsilon, sample or v_prediction")
        self.model, self.scheduler, self.kind = model, scheduler, kind
        params = list(model.parameters()) if isinstance(model, torch.nn.Module) else []
        self.device = torch.device(device) if device is not None else (params[0].device if params else default_device())
        if params and self.device != params[0].device and not (self.device.type == params[0].device.type == "cuda"
                                                                and self.device.index is None):
            raise ConfigError("device", str(self.device), f"the model's device {params[0].device} "
                                                          "(move the model first, e.g. unet.to(device))")
        self.model_dtype = params[0].dtype if params else None
        if self.model_dtype == torch.float16 and self.device.type != "cuda":
            raise ConfigError("dtype", "float16", "float32 on the CPU (float16 models run on CUDA only)")
        #: ᾱ_t for t = 0 … num_train_timesteps − 1, float64 on the CPU
        self.alphas_cumprod = scheduler.alphas_cumprod.detach().to("cpu", torch.float64)

    @property
    def num_train_timesteps(self) -> int:
        return int(self.scheduler.config.num_train_timesteps)

    def timesteps(self, num_inference_steps: int | None = None) -> list[int]:
        """The grid, noisiest first: the scheduler's ``set_timesteps`` (all steps when None)."""
        n = self.num_train_timesteps if num_inference_steps is None else num_inference_steps
        if isinstance(n, bool) or not isinstance(n, int) or not 1 <= n <= self.num_train_timesteps:
            raise ConfigError("steps", num_inference_steps, f"an integer in [1, {self.num_train_timesteps}]")
        self.scheduler.set_timesteps(n)
        return [int(t) for t in self.scheduler.timesteps]

    def resolve_eta(self, eta: float | None) -> float:
        """η of a run: 1 for DDPM (only), 0 by default for DDIM."""
        if self.kind == "DDPMScheduler":
            if eta is not None and float(eta) != 1.0:
                raise ConfigError("eta", eta, "1.0 (or nothing) with DDPMScheduler; use DDIMScheduler for other η")
            return 1.0
        eta = 0.0 if eta is None else float(eta)
        if not 0.0 <= eta <= 1.0:
            raise ConfigError("eta", eta, "a number in [0, 1]")
        return eta

    def _model_x0(self, x: torch.Tensor, t: int, a_t: float) -> tuple[torch.Tensor, torch.Tensor]:
        """(x̂₀, ε) from the model at timestep t, in the loop's dtype."""
        tt = torch.full((x.shape[0],), t, device=self.device, dtype=torch.long)
        x_in = x if self.model_dtype is None else x.to(self.model_dtype)
        out = self.model(x_in, tt)
        out = getattr(out, "sample", out)
        if out.shape[1] == 2 * x.shape[1]:  # learned variance (improved DDPM): keep the mean part
            out = out[:, : x.shape[1]]
        out = out.to(x.dtype)
        kind = self.scheduler.config.prediction_type
        sa, sb = math.sqrt(a_t), math.sqrt(1.0 - a_t)
        if kind == "epsilon":
            eps = out
            x0 = (x - sb * eps) / sa
        elif kind == "sample":
            x0 = out
            eps = (x - sa * x0) / sb
        else:  # v_prediction: v = √ᾱ ε − √(1−ᾱ) x₀
            x0 = sa * x - sb * out
            eps = sb * x + sa * out
        if self.scheduler.config.clip_sample:
            r = float(self.scheduler.config.clip_sample_range)
            x0 = x0.clamp(-r, r)
        return x0, eps

    @torch.no_grad()
    def sample(self, generators: Sequence[torch.Generator], shape: Sequence[int] | None = None,
               hook: Hook | None = None, *, num_inference_steps: int | None = None, eta: float | None = None,
               jump_length: int = 0, jump_n_sample: int = 1, dtype: torch.dtype = torch.float32,
               progress: bool = True) -> torch.Tensor:
        """Draw one sample per generator.

        :param generators: one ``torch.Generator`` per image (batch size = their number).
        :param shape: the per-image (C, H, W); default the model config's
            (in_channels, sample_size, sample_size).
        :param hook: ``hook(x0_pred, t, info) -> x0_corrected`` (or a :class:`Correction`),
            called once per denoising step; None for the bare prior.
        :param num_inference_steps: grid size (respacing); None = every training timestep.
        :param eta: DDIM's η in [0, 1] (default 0); must be 1 or None for DDPM.
        :param jump_length: RePaint time-travel length in grid steps (0 = none).
        :param jump_n_sample: RePaint repeats per jump point (1 = none).
        :param dtype: the loop's float dtype (float32; float64 for exact tests).
        :param progress: show a tqdm progress bar.
        :returns: float [B, C, H, W] on ``self.device``, in the model's data range
            (x̂₀ of the last step, not clipped beyond what the scheduler asks for).
        """
        gens = list(generators)
        if not gens:
            raise ConfigError("generator", "[]", "one torch.Generator per image (at least one)")
        shape = tuple(shape) if shape is not None else self._config_shape()
        eta = self.resolve_eta(eta)
        ts = self.timesteps(num_inference_steps)
        n = len(ts)
        positions = travel_schedule(n, jump_length, jump_n_sample)
        abar = [float(self.alphas_cumprod[t]) for t in ts] + [1.0]

        x = randn(gens, shape, self.device, dtype)
        bar = tqdm(total=len(positions) - 1, desc="diffusion", disable=not progress, leave=False)
        for k, k_next in itertools.pairwise(positions):
            z = randn(gens, shape, self.device, dtype)
            a_t, a_p = abar[k], abar[k_next]
            if k_next == k + 1:
                x0, eps = self._model_x0(x, ts[k], a_t)
                sigma = eta * math.sqrt(max((1.0 - a_p) / (1.0 - a_t) * (1.0 - a_t / a_p), 0.0))
                info = StepInfo(k, ts[k], ts[k_next] if k_next < n else -1, a_t, a_p, sigma, eta, x, eps, z)
                out = hook(x0, ts[k], info) if hook is not None else x0
                if isinstance(out, Correction):
                    x0, noise = out.x0, out.noise
                else:
                    x0 = out
                    eps_hat = (x - math.sqrt(a_t) * x0) / math.sqrt(1.0 - a_t)
                    noise = info.eps_coef * eps_hat + sigma * z
                x = math.sqrt(a_p) * x0 + noise
            else:  # time travel: forward diffusion q(x_{t_back} | x_t), ᾱ_back / ᾱ_t = Π α
                ratio = a_p / a_t
                x = math.sqrt(ratio) * x + math.sqrt(1.0 - ratio) * z
            bar.update(1)
        bar.close()
        return x

    def _config_shape(self) -> tuple[int, int, int]:
        cfg = getattr(self.model, "config", None)
        if cfg is None or getattr(cfg, "sample_size", None) is None:
            raise ConfigError("shape", None, "a per-image (C, H, W) for a model without a config sample_size")
        size = cfg.sample_size
        h, w = (size, size) if isinstance(size, int) else tuple(size)
        return (int(cfg.in_channels), int(h), int(w))
