"""The restoration core against theory: operators, the sampling loop on Gaussian data, DDNM.

Gaussian data make every piece exact. For x₀ ~ N(μ, Σ) the denoiser is closed form,
``E[x₀ | x_t] = μ + √ᾱ Σ (ᾱΣ + (1−ᾱ)I)⁻¹ (x_t − √ᾱ μ)``, and the whole sampler is a
linear-Gaussian recursion, so the law of its output is known exactly (:func:`sampler_law`).
The Monte-Carlo samples of the core must match that law within sampling error, and the
law itself must be close to N(μ, Σ) where theory says so (DDPM over all 1000 steps).

Respaced samplers are *not* exact even with an exact denoiser: DDPM's "fixed_small"
reverse variance leaves out Cov[x₀ | x_t] (Bao et al. 2022, Analytic-DPM), which shrinks
low-variance directions (here by ≈ 5 % at 1000 steps, ≈ 25–40 % at 50), and deterministic
DDIM (η = 0) has its own discretization bias. So the respaced runs are compared with their
own exact law, not with Σ; only the full-length DDPM is also compared with Σ.

"Images" are 3×4×4 tiles (D = 48) laid side by side: one image of width 4·T holds T i.i.d.
draws, so a few thousand draws need only a hundred generators (the core draws noise per
image, and a generator call per draw would dominate the run time).
"""

from __future__ import annotations

import itertools
import math

import pytest
import torch
from diffusers import DDIMScheduler, DDPMScheduler, UNet2DModel

from linksim.errors import ConfigError
from linksim.restore import (
    DDNMHook,
    DDNMRestorer,
    RestorationCore,
    load_prior,
    make_operator,
)
from linksim.restore.core import travel_schedule
from linksim.restore.ddnm import sigma_y_from_snr
from linksim.restore.operators import AvgPool, Compose, Grayscale, Identity

C, H, W = 3, 4, 4
D = C * H * W
TILES, IMAGES = 40, 100  # 4000 draws
F64 = torch.float64


# --------------------------------------------------------------------------- helpers

def to_draws(x: torch.Tensor) -> torch.Tensor:
    """[B, 3, 4, 4·T] images → [B·T, 48] draws."""
    b, t = x.shape[0], x.shape[-1] // W
    return x.reshape(b, C, H, t, W).permute(0, 3, 1, 2, 4).reshape(b * t, D)


def to_images(f: torch.Tensor, b: int) -> torch.Tensor:
    """[B·T, 48] draws → [B, 3, 4, 4·T] images."""
    t = f.shape[0] // b
    return f.reshape(b, t, C, H, W).permute(0, 2, 3, 1, 4).reshape(b, C, H, t * W)


class GaussianDenoiser:
    """The exact ε-model of x₀ ~ N(μ, Q diag(d) Qᵀ) per tile, for a scheduler's ᾱ."""

    def __init__(self, scheduler, mu: torch.Tensor, d: torch.Tensor, Q: torch.Tensor):
        self.ab = scheduler.alphas_cumprod.to(F64)
        self.mu, self.d, self.Q = mu, d, Q

    def __call__(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        a = float(self.ab[int(t[0])])
        f = to_draws(x.to(F64))
        K = self.Q @ torch.diag(self.d * math.sqrt(a) / (a * self.d + 1 - a)) @ self.Q.T
        x0 = self.mu + (f - math.sqrt(a) * self.mu) @ K
        return to_images((f - math.sqrt(a) * x0) / math.sqrt(1 - a), x.shape[0]).to(x.dtype)


def sampler_law(core: RestorationCore, steps, eta, positions, mu, d, Q):
    """Exact mean and covariance of the core's output for the Gaussian prior (per tile).

    In the eigenbasis of Σ every coordinate evolves alone: x̂₀ = m + k (x − √ᾱ_t m) with
    k = d√ᾱ_t/(ᾱ_t d + 1 − ᾱ_t), x' = √ᾱ' x̂₀ + c (x − √ᾱ_t x̂₀)/√(1−ᾱ_t) + σ z, so
    mean M and variance V follow M' = A M + B, V' = A² V + σ²; time travel re-noises:
    M' = √r M, V' = r V + 1 − r with r = ᾱ_back/ᾱ_t. Start: M = 0, V = 1 (x_T ~ N(0, I)).
    """
    ts = core.timesteps(steps)
    abar = [float(core.alphas_cumprod[t]) for t in ts] + [1.0]
    m = Q.T @ mu
    M, V = torch.zeros(D, dtype=F64), torch.ones(D, dtype=F64)
    for k, k2 in itertools.pairwise(positions):
        at, ap = abar[k], abar[k2]
        if k2 == k + 1:
            kk = d * math.sqrt(at) / (at * d + 1 - at)
            s = eta * math.sqrt(max((1 - ap) / (1 - at) * (1 - at / ap), 0.0))
            c = math.sqrt(max(1 - ap - s * s, 0.0))
            A = math.sqrt(ap) * kk + c * (1 - math.sqrt(at) * kk) / math.sqrt(1 - at)
            M = A * M + (math.sqrt(ap) - c * math.sqrt(at) / math.sqrt(1 - at)) * (1 - kk * math.sqrt(at)) * m
            V = A * A * V + s * s
        else:
            r = ap / at
            M, V = math.sqrt(r) * M, r * V + 1 - r
    return Q @ M, Q @ torch.diag(V) @ Q.T


def gaussian_fit(X: torch.Tensor, mean: torch.Tensor, cov: torch.Tensor) -> dict:
    """Statistics of N draws X [N, D] against N(mean, cov), each ≈ N(0, 1)-scaled under H0.

    - ``hotelling``: N (x̄ − m)ᵀ C⁻¹ (x̄ − m) ~ χ²_D → reported as (value − D)/√(2D);
    - ``zmax``: max over entries of (Ĉ_ij − C_ij)/√((C_ii C_jj + C_ij²)/N);
    - ``trace``: (tr(C^{-1/2} Ĉ C^{-1/2})/D − 1)/√(2/(N D)) — the sensitive one for a
      global variance error (SE of 0.3 % with N = 4000, D = 48).
    """
    n, dim = X.shape
    L_inv = torch.linalg.inv(torch.linalg.cholesky(cov))
    xm, Xc = X.mean(0), torch.cov(X.T)
    dm = L_inv @ (xm - mean)
    S = L_inv @ Xc @ L_inv.T
    se = torch.sqrt((torch.outer(cov.diagonal(), cov.diagonal()) + cov ** 2) / n)
    return {"hotelling": (n * float(dm @ dm) - dim) / math.sqrt(2 * dim),
            "zmax": float(((Xc - cov) / se).abs().max()),
            "trace": (float(S.trace()) / dim - 1) / math.sqrt(2 / (n * dim))}


def fits(stats: dict, z: float = 5.0) -> bool:
    """All statistics within z standard errors (z = 5: the seeded runs sit far inside)."""
    return abs(stats["hotelling"]) < z and stats["zmax"] < z + 1 and abs(stats["trace"]) < z


def generators(n: int, offset: int = 0) -> list[torch.Generator]:
    return [torch.Generator().manual_seed(1000 + offset + i) for i in range(n)]


@pytest.fixture(scope="module")
def prior():
    """μ in [−0.5, 0.5], Σ = low rank + diagonal (eigenvalues ≈ 0.03 … 0.9) on the [−1, 1] scale."""
    g = torch.Generator().manual_seed(0)
    U = 0.12 * torch.randn(D, 2, generator=g, dtype=F64)
    sigma = U @ U.T + torch.diag(0.03 + 0.07 * torch.rand(D, generator=g, dtype=F64))
    mu = 0.5 * torch.sin(torch.arange(D, dtype=F64))
    d, Q = torch.linalg.eigh(sigma)
    return mu, sigma, d, Q


def tiny_unet(sample_size: int = 8, in_channels: int = 3, seed: int = 0) -> UNet2DModel:
    """A tiny randomly initialized UNet2DModel (loading paths and determinism only)."""
    torch.manual_seed(seed)
    return UNet2DModel(sample_size=sample_size, in_channels=in_channels, out_channels=in_channels,
                       layers_per_block=1, block_out_channels=(8, 16), norm_num_groups=4,
                       down_block_types=("DownBlock2D", "DownBlock2D"), up_block_types=("UpBlock2D", "UpBlock2D"),
                       attention_head_dim=None).eval()


# --------------------------------------------------------------------------- operators

OPERATORS = ["identity", "gray", "avgpool2", "avgpool4", "avgpool8", "gray+avgpool4", "avgpool2+gray"]


def matrix(op, shape=(3, 8, 8)) -> torch.Tensor:
    """The explicit matrix of A on flattened images (columns: A applied to basis images)."""
    n = math.prod(shape)
    return op.A(torch.eye(n, dtype=F64).reshape(n, *shape)).reshape(n, -1).T


@pytest.mark.parametrize("name", OPERATORS)
def test_operator_is_moore_penrose(name):
    op = make_operator(name)
    g = torch.Generator().manual_seed(1)
    x = torch.randn(2, 3, 16, 16, generator=g, dtype=F64)
    y = torch.randn(2, *op.out_shape((3, 16, 16)), generator=g, dtype=F64)
    # the four Penrose conditions: A A⁺ A = A, A⁺ A A⁺ = A⁺, (A A⁺)ᵀ = A A⁺ (here = I), (A⁺A)ᵀ = A⁺A
    torch.testing.assert_close(op.A(op.A_pinv(op.A(x))), op.A(x), rtol=0, atol=1e-12)
    torch.testing.assert_close(op.A_pinv(op.A(op.A_pinv(y))), op.A_pinv(y), rtol=0, atol=1e-12)
    torch.testing.assert_close(op.A(op.A_pinv(y)), y, rtol=0, atol=1e-12)  # A A⁺ = I on the measurements
    u, v = x[:1], x[1:]
    assert abs(float((op.project_range(u) * v).sum() - (u * op.project_range(v)).sum())) < 1e-10
    # against the explicit matrix: A⁺ is numpy-style pinv, and all non-zero singular values are s
    Am = matrix(op)
    n_out = Am.shape[0]
    Apinv = op.A_pinv(torch.eye(n_out, dtype=F64).reshape(n_out, *op.out_shape((3, 8, 8)))).reshape(n_out, -1).T
    torch.testing.assert_close(Apinv, torch.linalg.pinv(Am), rtol=0, atol=1e-10)
    sv = torch.linalg.svdvals(Am)
    torch.testing.assert_close(sv, torch.full_like(sv, op.singular_value), rtol=0, atol=1e-12)


def test_operator_singular_values_are_stated():
    assert AvgPool(4).singular_value == 0.25 and Identity().singular_value == 1.0
    assert Grayscale().singular_value == pytest.approx(1 / math.sqrt(3))
    assert Compose(Grayscale(), AvgPool(8)).singular_value == pytest.approx(1 / (8 * math.sqrt(3)))


@pytest.mark.parametrize("spec", ["avgpool3", "avgpool16", "blur", "", "gray+", "avgpool", 4])
def test_unknown_operator_names(spec):
    with pytest.raises(ConfigError) as err:
        make_operator(spec)
    assert err.value.field == "operator"


def test_image_size_must_fit_the_pooling_factor():
    with pytest.raises(ConfigError) as err:
        make_operator("gray+avgpool8", image_shape=(3, 64, 60))
    assert err.value.field == "image_size" and "8" in str(err.value)
    with pytest.raises(ConfigError) as err:
        AvgPool(4)(torch.zeros(1, 3, 10, 12))
    assert err.value.field == "image_size"
    assert make_operator("avgpool4", image_shape=(64, 64)).name == "avgpool4"


# --------------------------------------------------------------------------- the loop

def test_travel_schedule_matches_repaint():
    """Positions k = n − 1 − τ of RePaint's time list τ (restated from its algorithm)."""
    def repaint_times(n, length, repeats):
        jumps = {j: repeats - 1 for j in range(0, n - length, length)}
        t, out = n, []
        while t >= 1:
            t -= 1
            out.append(t)
            if jumps.get(t, 0) > 0:
                jumps[t] -= 1
                for _ in range(length):
                    t += 1
                    out.append(t)
        return out + [-1]

    for n, length, repeats in [(10, 1, 2), (20, 5, 3), (50, 10, 10), (7, 3, 2)]:
        expected = [n - 1 - tau for tau in repaint_times(n, length, repeats)]
        collapsed = [expected[0]]  # RePaint goes back one step at a time; the core jumps at once
        for p in expected[1:]:
            if p < collapsed[-1] and len(collapsed) > 1 and collapsed[-1] < collapsed[-2]:
                collapsed[-1] = p
            else:
                collapsed.append(p)
        assert travel_schedule(n, length, repeats) == collapsed
    assert travel_schedule(5) == [0, 1, 2, 3, 4, 5]
    with pytest.raises(ConfigError):
        travel_schedule(5, 5, 2)


@pytest.mark.parametrize("case", [
    ("DDPM, all 1000 steps", DDPMScheduler, None, None, 0, 1),
    ("DDPM, 50 of 1000", DDPMScheduler, 50, None, 0, 1),
    ("DDIM eta=1, 50 of 1000", DDIMScheduler, 50, 1.0, 0, 1),
    ("DDIM eta=0, 50 of 1000", DDIMScheduler, 50, 0.0, 0, 1),
    ("DDPM, 50 of 1000, time travel 5x3", DDPMScheduler, 50, None, 5, 3),
], ids=lambda c: c[0])
def test_unconditional_samples_have_the_theoretical_law(prior, case):
    _, kind, steps, eta, length, repeats = case
    mu, sigma, d, Q = prior
    scheduler = kind(clip_sample=False)
    core = RestorationCore(GaussianDenoiser(scheduler, mu, d, Q), scheduler, device="cpu")
    x = core.sample(generators(IMAGES), (C, H, W * TILES), num_inference_steps=steps, eta=eta,
                    jump_length=length, jump_n_sample=repeats, dtype=F64, progress=False)
    X = to_draws(x)
    n = steps or 1000
    mean, cov = sampler_law(core, steps, core.resolve_eta(eta), travel_schedule(n, length, repeats), mu, d, Q)
    stats = gaussian_fit(X, mean, cov)
    assert fits(stats), stats
    # the check can fail: a 3 % variance error is far outside it
    assert not fits(gaussian_fit(X, mean, 1.03 * cov))
    if steps is None:
        # all 1000 DDPM steps: the law itself is N(μ, Σ) up to the fixed-small variance
        # bias (total variance −2.3 % here, the smallest eigenvalue −5 %): compare with the
        # data law directly, mean within MC error, covariance within 5 % + MC error
        truth = gaussian_fit(X, mu, sigma)
        assert abs(truth["hotelling"]) < 5 and truth["zmax"] < 6, truth
        S = torch.linalg.solve(sigma, torch.cov(X.T))
        assert abs(float(S.trace()) / D - 1) < 0.05
    else:
        # respaced: the exact law is biased (module docstring) but not far off
        assert float((mean - mu).abs().max()) < 0.01
        ratio = torch.linalg.eigvalsh(torch.linalg.solve(torch.linalg.cholesky(sigma),
                                                         torch.linalg.solve(torch.linalg.cholesky(sigma), cov).T))
        assert 0.5 < float(ratio.min()) and float(ratio.max()) <= 1.0 + 1e-9


def test_eta_and_scheduler_checks():
    model = lambda x, t: torch.zeros_like(x)
    with pytest.raises(ConfigError) as err:
        RestorationCore(model, DDPMScheduler(), device="cpu").sample(generators(1), (3, 4, 4), eta=0.0, progress=False)
    assert err.value.field == "eta"
    from diffusers import EulerDiscreteScheduler
    with pytest.raises(ConfigError) as err:
        RestorationCore(model, EulerDiscreteScheduler(), device="cpu")
    assert err.value.field == "scheduler"
    with pytest.raises(ConfigError) as err:
        RestorationCore(model, DDIMScheduler(), device="cpu").sample(generators(1), (3, 4, 4), num_inference_steps=0)
    assert err.value.field == "steps"


@pytest.mark.parametrize("kind,eta", [(DDIMScheduler, 0.0), (DDPMScheduler, None)])
def test_fixed_seed_is_deterministic_and_batch_equals_one_by_one(kind, eta):
    unet = tiny_unet()
    core = RestorationCore(unet, kind(), device="cpu")
    run = {"num_inference_steps": 8, "eta": eta, "progress": False}
    batch = core.sample(generators(3), **run)
    assert torch.equal(batch, core.sample(generators(3), **run))  # same inputs, seeds and batch: same kernels
    assert not torch.allclose(batch, core.sample(generators(3, offset=7), **run))
    # A batch of 3 and three batches of 1 run other conv/GEMM kernels (which ones depends on the CPU):
    # in float32 they agree only to rounding × steps (up to ~1e-5 here). In float64 that rounding is
    # ~1e-14 on these [-1, 1] values, so 1e-9 is safe by orders of magnitude, while a batching bug
    # (noise from another image's generator, images mixed up) differs by O(1).
    core64 = RestorationCore(tiny_unet().double(), kind(), device="cpu")
    run64 = {**run, "dtype": F64}
    batch64 = core64.sample(generators(3), **run64)
    assert batch64.dtype == F64
    # the same sampler as the float32 run: equal up to that run's rounding (~1e-5), not O(1)
    torch.testing.assert_close(batch64.float(), batch, rtol=0, atol=1e-3)
    singles = torch.cat([core64.sample([g], **run64) for g in generators(3)])
    torch.testing.assert_close(batch64, singles, rtol=0, atol=1e-9)


# --------------------------------------------------------------------------- DDNM

def isotropic(s2: float):
    mu = 0.5 * torch.sin(torch.arange(D, dtype=F64))
    return mu, torch.full((D,), s2, dtype=F64), torch.eye(D, dtype=F64)


def null_basis(op) -> torch.Tensor:
    """Orthonormal basis [48, D_null] of the null space of A on one tile."""
    Am = matrix(op, (C, H, W))
    P = torch.eye(D, dtype=F64) - torch.linalg.pinv(Am) @ Am
    evals, evecs = torch.linalg.eigh(P)
    return evecs[:, evals > 0.5]


@pytest.mark.parametrize("name", ["avgpool2", "gray+avgpool2"])
def test_ddnm_is_consistent_and_samples_the_gaussian_posterior(name):
    """y = A x noiseless, prior N(μ, s²I): the exact posterior is A⁺y + N(P_N μ, s² P_N).

    With an isotropic prior the null-space part is independent of the range part, so the
    null coordinates of DDNM's samples follow the unconditional sampler's law projected
    (exact law from :func:`sampler_law`; it is ≈ N(P_N μ, s² P_N) up to the DDPM bias),
    and the range part must equal A⁺y to float precision.
    """
    s2 = 0.1
    mu, d, Q = isotropic(s2)
    op = make_operator(name)
    scheduler = DDPMScheduler(clip_sample=False)
    core = RestorationCore(GaussianDenoiser(scheduler, mu, d, Q), scheduler, device="cpu")
    g = torch.Generator().manual_seed(7)
    truth = to_images(mu + math.sqrt(s2) * torch.randn(IMAGES * TILES, D, generator=g, dtype=F64), IMAGES)
    y = op.A(truth)
    x = core.sample(generators(IMAGES), (C, H, W * TILES), DDNMHook(op, y), num_inference_steps=100,
                    dtype=F64, progress=False)
    assert float((op.A(x) - y).abs().max()) < 1e-12  # A x̃ = y
    N = null_basis(op)
    Z = to_draws(x) @ N
    mean, cov = sampler_law(core, 100, 1.0, list(range(101)), mu, d, Q)
    stats = gaussian_fit(Z, N.T @ mean, N.T @ cov @ N)
    assert fits(stats), stats
    assert not fits(gaussian_fit(Z, N.T @ mean, 1.03 * N.T @ cov @ N))
    # the 100-step DDPM law vs the posterior's s² = 0.1: 0.083, the fixed-small bias (module docstring)
    assert 0.8 < float(cov[0, 0]) / s2 < 1.0


@pytest.mark.parametrize("sigma_y", [0.2, 0.02])
def test_ddnm_plus_range_space_follows_its_formulas(sigma_y):
    """Noisy y = A x + σ_y n: in each range coordinate r = (A x)_i / s DDNM+ is a scalar
    linear-Gaussian recursion given ȳ = y_i / s (λ, d₁ of the DDNM+ formulas), so
    r_final = α m + β ȳ + N(0, V) with α, β, V computed here; the null space is untouched.
    σ_y = 0.2 exercises mostly the λ < 1 branch, σ_y = 0.02 the λ = 1 branch (its d₁ is
    what the final variance remembers). (DDNM+ is not the Bayes posterior: at σ_y = 0.2,
    β ≈ 0.61 and V ≈ 0.008 where Bayes has 0.38 and 0.062 — it trusts y more than the
    noise level warrants.)
    """
    s2, steps = 0.1, 100
    mu, d, Q = isotropic(s2)
    op = make_operator("avgpool2")
    sv = op.singular_value
    scheduler = DDPMScheduler(clip_sample=False)
    core = RestorationCore(GaussianDenoiser(scheduler, mu, d, Q), scheduler, device="cpu")
    g = torch.Generator().manual_seed(5)
    mu_img = to_images(mu.expand(IMAGES * TILES, D), IMAGES)
    clean = op.A(mu_img + math.sqrt(s2) * torch.randn(mu_img.shape, generator=g, dtype=F64))
    y = clean + sigma_y * torch.randn(clean.shape, generator=g, dtype=F64)
    x = core.sample(generators(IMAGES), (C, H, W * TILES), DDNMHook(op, y, sigma_y), num_inference_steps=steps,
                    dtype=F64, progress=False)
    ts = core.timesteps(steps)
    abar = [float(core.alphas_cumprod[t]) for t in ts] + [1.0]
    alpha, beta, V = 0.0, 0.0, 1.0
    for k in range(steps):
        at, ap = abar[k], abar[k + 1]
        kk = s2 * math.sqrt(at) / (at * s2 + 1 - at)
        sig = math.sqrt(max((1 - ap) / (1 - at) * (1 - at / ap), 0.0))
        a, st = math.sqrt(ap), math.sqrt(1 - ap)
        eta_r = sig / st if st > 0 else 0.0
        thr = a * sigma_y / sv
        lam, d1 = (1.0, math.sqrt(max(st ** 2 - thr ** 2, 0.0))) if st >= thr else (st * math.sqrt(1 - eta_r ** 2) / thr, st * eta_r)
        alpha = a * (1 - lam) * (kk * alpha + 1 - kk * math.sqrt(at))
        beta = a * ((1 - lam) * kk * beta + lam)
        V = a * a * (1 - lam) ** 2 * kk * kk * V + d1 * d1
    resid = (op.A(x) / sv - alpha * op.A(mu_img) / sv - beta * y / sv).flatten()
    n = resid.numel()
    assert abs(float(resid.mean())) < 5 * math.sqrt(V / n)
    assert abs(float(resid.var()) / V - 1) < 5 * math.sqrt(2 / n)
    # null space: plain DDPM on the null coordinates, mean P_N μ
    assert float((op.project_null(x) - op.project_null(mu_img)).mean().abs()) < 5 * math.sqrt(s2 / x.numel())


def test_restorer_output_is_consistent_with_the_measurement():
    """σ_y = 0: A x̃ = A x̂ to float32 precision (the last step returns the projected x̂₀)."""
    unet = tiny_unet()
    x_hat = torch.rand(2, 3, 8, 8, generator=torch.Generator().manual_seed(3))
    for op_name in ("avgpool4", "gray+avgpool2"):
        restorer = DDNMRestorer(unet, DDPMScheduler(), op_name, steps=6, progress=False)
        x_tilde = restorer.restore(x_hat, generator=generators(2))
        op = make_operator(op_name)
        assert x_tilde.shape == x_hat.shape and x_tilde.dtype == torch.float32
        # float32: A sums ≤ 16 pixels of |x̂₀| ≤ 1, three times (DDNM's A x̂₀, then both sides here):
        # worst case 3·16·eps ≈ 6e-6 (1.2e-7 seen)
        assert float((op.A(x_tilde) - op.A(x_hat)).abs().max()) < 1e-5
        assert float((op.project_null(x_tilde) - op.project_null(x_hat)).abs().max()) > 1e-2  # the prior did act
    # noisy (SNR known): DDNM+ relaxes the constraint at the end
    noisy = DDNMRestorer(unet, DDPMScheduler(), "avgpool4", steps=6, sigma_y_rule=sigma_y_from_snr, progress=False)
    out = noisy.restore(x_hat, snr_db=[0.0, 20.0], generator=generators(2))
    assert float((make_operator("avgpool4").A(out) - make_operator("avgpool4").A(x_hat)).abs().max()) > 1e-3
    torch.testing.assert_close(noisy.measurement_sigma([0.0, 20.0], 2), sigma_y_from_snr(torch.tensor([0.0, 20.0])))
    assert torch.equal(DDNMRestorer(unet, DDPMScheduler(), sigma_y=0.02, progress=False).measurement_sigma(3.0, 2),
                       torch.full((2,), 0.02, dtype=F64))
    # no rule: plain DDNM even where the SNR is known (a scenario's sigma_y: null)
    assert torch.equal(DDNMRestorer(unet, DDPMScheduler(), progress=False).measurement_sigma(3.0, 2), torch.zeros(2, dtype=F64))


# --------------------------------------------------------------------------- priors

def test_load_prior_and_its_errors(tmp_path):
    with pytest.raises(ConfigError) as err:
        load_prior(tmp_path / "nowhere", device="cpu")
    assert err.value.field == "prior" and "no such folder" in str(err.value)

    folder = tmp_path / "prior"
    tiny_unet().save_pretrained(folder)
    prior = load_prior(folder, device="cpu")
    assert prior.image_shape == (3, 8, 8) and prior.unet.dtype == torch.float32
    assert prior.scheduler.config.num_train_timesteps == 1000 and prior.scheduler.config.beta_end == 0.02
    DDPMScheduler(num_train_timesteps=500, beta_schedule="squaredcos_cap_v2").save_pretrained(folder)
    assert load_prior(folder, device="cpu").scheduler.config.num_train_timesteps == 500

    with pytest.raises(ConfigError) as err:  # wrong resolution
        load_prior(folder, device="cpu", image_shape=(3, 16, 16))
    assert err.value.field == "image_size" and "8x8" in str(err.value)
    gray = tmp_path / "gray"
    tiny_unet(in_channels=1).save_pretrained(gray)
    with pytest.raises(ConfigError) as err:  # wrong channel count
        DDNMRestorer.from_prior(gray, "avgpool2", device="cpu", progress=False).restore(torch.rand(1, 3, 8, 8))
    assert err.value.field == "image_size" and "in_channels 1" in str(err.value)

    pickled = tmp_path / "pickled"
    pickled.mkdir()
    (pickled / "config.json").write_text((folder / "config.json").read_text())
    torch.save(tiny_unet().state_dict(), pickled / "diffusion_pytorch_model.bin")
    with pytest.raises(ConfigError) as err:
        load_prior(pickled, device="cpu")
    assert err.value.field == "prior" and "pickled" in str(err.value)

    with pytest.raises(ConfigError) as err:
        load_prior(folder, device="cpu", dtype=torch.float16)
    assert err.value.field == "dtype"
