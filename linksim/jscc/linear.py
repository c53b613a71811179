"""Linear analog coding (SoftCast; Lee & Petersen 1976): a block transform, a power per
coefficient, and the LMMSE receiver.

    x [B,3,H,W] ─ pad to 16·n ─► 16×16×3 blocks ─ − mean ─► PCA coefficients X [B, N, 768]
      ─► keep c per block ─► × g_j (Lee–Petersen) ─► pair into z ∈ ℂ^k ─► channel (y = h·z + w)
      ─► derotate by h*/|h| ─► LMMSE  X̂_j = |h| g_j λ_j / (|h|² g_j² λ_j + n) · r ─► + mean ─► x̂

No training, no bits, no decoding failure: the quality changes smoothly with the SNR, and
the expected error has a closed form (:meth:`LinearAnalogCode.expected_mse`), which the tests
check the simulation against.

**The transform.** The principal components of 16×16×3 blocks of natural photographs
(:func:`fit_pca`, shipped as ``linear-pca16-natural``). Measured on Kodak at ρ = 1/48
(``benchmarks/linear_bound.py``), PCA beats a per-channel 16×16 DCT by 1.0–1.7 dB at every
SNR: the PCA basis also decorrelates the three colours.

**What is sent.** With ``k`` complex uses for an image of N blocks, c = ⌊2k/N⌋ real
coefficients of every block (at most 768), ``k_used = ⌈c·N/2⌉ ≤ k`` complex uses; the
first half of the c·N values are the real parts, the second half the imaginary parts.

**Power allocation** (Lee & Petersen): coefficient j of second moment λ_j gets power
``p_j = max(0, √(λ_j·n/ν) − n)`` per block (n = σ²/2 per real dimension), ν chosen so that
Σ_j p_j = k_used·P/N; this minimizes the LMMSE error Σ_j λ_j·n/(p_j + n). The transmitter
knows the SNR (the same assumption as the SNR-adaptive DeepJSCC encoder).

**Side information** (``variances``):

* ``"image"`` (default, SoftCast): λ_j are the image's own second moments of its
  coefficients, and the c coefficients with the largest λ_j are kept. The receiver must know
  which c of the 768 and their λ_j: c × (10-bit index + 16-bit float) = 26·c bits per image
  (832 bits at ρ = 1/48), assumed delivered without error and *not* charged to k. With these
  λ_j the power is exactly k_used·P/N per block and the closed-form MSE is exact for each image.
* ``"prior"``: λ_j are the basis' population variances, the c leading components are kept,
  and the symbols are scaled by one factor to ‖z‖² = k_used·P (16 bits of side information).

:class:`LinearAnalogCode` is the transmitter–receiver pair; :class:`LinearScheme` puts it
in scenarios as ``{type: linear}``.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch
from torch import nn

from linksim import zoo
from linksim.errors import ConfigError
from linksim.link import Bandwidth, LinkOutput, Scheme

__all__ = ["BLOCK", "LINEAR_KIND", "LinearBasis", "LinearAnalogCode", "LinearScheme", "fit_pca", "to_blocks",
           "from_blocks", "lee_petersen_powers", "load_linear_basis", "DEFAULT_BASIS"]

BLOCK = 16
LINEAR_KIND = "linear-basis"
DEFAULT_BASIS = "linear-pca16-natural"
VARIANCE_MODES = ("image", "prior")
#: side information per kept coefficient in ``variances: image`` mode: a 10-bit index (of 768) + a 16-bit float
SIDE_BITS_PER_COEFFICIENT = 26
F64 = torch.float64


# ----------------------------------------------------------------------------- blocks

def to_blocks(x: torch.Tensor, block: int = BLOCK) -> torch.Tensor:
    """Cut images into non-overlapping blocks.

    :input x: [B, C, H, W] with H and W multiples of ``block``.
    :output: [B, N, C·block²], N = (H/block)·(W/block) blocks in raster order; each block
        flattened channel-major (c, row, column), the layout of a ``Conv2d`` weight.
    """
    b, c, h, w = x.shape
    if h % block or w % block:
        raise ConfigError("images", (h, w), f"sides that are multiples of {block}")
    t = x.reshape(b, c, h // block, block, w // block, block).permute(0, 2, 4, 1, 3, 5)
    return t.reshape(b, (h // block) * (w // block), c * block * block)


def from_blocks(blocks: torch.Tensor, height: int, width: int, block: int = BLOCK) -> torch.Tensor:
    """Inverse of :func:`to_blocks`: [B, N, C·block²] → [B, C, height, width]."""
    b, n, d = blocks.shape
    c = d // (block * block)
    t = blocks.reshape(b, height // block, width // block, c, block, block).permute(0, 3, 1, 4, 2, 5)
    return t.reshape(b, c, height, width)


def pad_to_blocks(x: torch.Tensor, block: int = BLOCK) -> torch.Tensor:
    """Edge-replicate the bottom and right of [B, 3, H, W] to multiples of ``block``."""
    h, w = x.shape[-2:]
    hp, wp = -(-h // block) * block, -(-w // block) * block
    return nn.functional.pad(x, (0, wp - w, 0, hp - h), mode="replicate") if (hp, wp) != (h, w) else x


# ----------------------------------------------------------------------------- power allocation

def lee_petersen_powers(variances: torch.Tensor, noise: torch.Tensor | float, total: torch.Tensor | float) -> torch.Tensor:
    """Powers p_j ≥ 0 with Σ_j p_j = ``total`` minimizing Σ_j λ_j·n/(p_j + n) (Lee & Petersen 1976).

    The optimum is ``p_j = max(0, √(λ_j·n)/μ − n)``: on the active set A (the |A| largest λ)
    μ = Σ_A √(λ_j·n) / (total + |A|·n). Computed exactly by sorting (no bisection): A is the
    largest prefix for which its weakest member still gets p > 0.

    :input variances: λ [..., C] ≥ 0; ``noise``: n per real dimension, float or [...];
        ``total``: power budget, float or [...].
    :output: p [..., C] (float64), the weakest coefficients get 0 at low SNR.
    """
    lam = torch.as_tensor(variances, dtype=F64).clamp_min(0)
    n = torch.as_tensor(noise, dtype=F64, device=lam.device)
    total = torch.as_tensor(total, dtype=F64, device=lam.device)
    n, total = n.reshape(n.shape + (1,) * (lam.dim() - n.dim())), total.reshape(total.shape + (1,) * (lam.dim() - total.dim()))
    root = torch.sqrt(lam * n)
    sorted_root, order = torch.sort(root, dim=-1, descending=True)
    count = torch.arange(1, lam.shape[-1] + 1, dtype=F64, device=lam.device)
    mu = torch.cumsum(sorted_root, dim=-1) / (total + count * n)          # μ if A = the first m
    active = sorted_root / mu - n > 0                                     # the m-th member gets p > 0
    m = active.to(torch.int64).cumprod(dim=-1).sum(dim=-1, keepdim=True).clamp_min(1)
    mu_a = torch.gather(mu, -1, m - 1)
    return (root / mu_a - n).clamp_min(0)


# ----------------------------------------------------------------------------- the basis (an artifact)

class LinearBasis(nn.Module):
    """An orthonormal block transform with its mean and per-component population variances.

    Buffers (float32 on disk, used in float64): ``mean`` [D], ``components`` [D, D] (rows
    orthonormal, sorted by decreasing variance), ``variances`` [D]; D = 3·block².
    A checkpoint folder of kind ``linear-basis`` (:func:`load_linear_basis`).
    """

    def __init__(self, block: int = BLOCK):
        super().__init__()
        d = 3 * block * block
        self.block = block
        self.register_buffer("mean", torch.zeros(d))
        self.register_buffer("components", torch.eye(d))
        self.register_buffer("variances", torch.ones(d))

    @property
    def dim(self) -> int:
        return self.mean.numel()

    def analyze(self, blocks: torch.Tensor) -> torch.Tensor:
        """[..., D] pixels in [0, 1] → [..., D] coefficients (float64)."""
        return (blocks.to(F64) - self.mean.to(F64)) @ self.components.to(F64).T

    def synthesize(self, coefficients: torch.Tensor) -> torch.Tensor:
        """[..., D] coefficients → [..., D] pixels (float64, not clipped)."""
        return coefficients.to(F64) @ self.components.to(F64) + self.mean.to(F64)

    def config(self) -> dict:
        return {"block": self.block, "dim": self.dim}

    def save_pretrained(self, folder: str | Path, card: str | None = None, extra: dict | None = None) -> Path:
        """Write ``model.safetensors`` + ``config.json`` (kind ``linear-basis``) into ``folder``
        (atomically; an existing ``MODEL_CARD.md`` stays unless ``card`` replaces it); ``extra``:
        more top-level ``config.json`` entries (data, energy). :returns: the folder."""
        return zoo.save_checkpoint(self, folder, LINEAR_KIND, self.config(), card=card, extra=extra)

    @classmethod
    def from_pretrained(cls, name_or_folder: str | Path = DEFAULT_BASIS) -> "LinearBasis":
        """A saved basis (checkpoint name or folder of kind ``linear-basis``; :func:`load_linear_basis`)."""
        return load_linear_basis(name_or_folder)


def fit_pca(pixels: list[np.ndarray], block: int = BLOCK) -> tuple[LinearBasis, int]:
    """Principal components of all non-overlapping ``block``×``block`` blocks of the images.

    :param pixels: uint8 [H, W, 3] arrays (blocks that do not fit at the right/bottom edge are left out).
    :returns: the basis and the number of blocks it was fitted on.
    """
    rows = []
    for p in pixels:
        h, w = (p.shape[0] // block) * block, (p.shape[1] // block) * block
        if h and w:
            x = torch.from_numpy(np.ascontiguousarray(p[:h, :w])).permute(2, 0, 1)[None].to(F64) / 255
            rows.append(to_blocks(x, block)[0])
    if not rows:
        raise ConfigError("data", len(pixels), f"images of at least {block}×{block} pixels")
    data = torch.cat(rows)
    mean = data.mean(0)
    cov = (data - mean).T @ (data - mean) / (len(data) - 1)
    evals, evecs = torch.linalg.eigh(cov)
    order = torch.argsort(evals, descending=True)
    basis = LinearBasis(block)
    basis.mean.copy_(mean.float())
    basis.components.copy_(evecs[:, order].T.contiguous().float())
    basis.variances.copy_(evals[order].clamp_min(0).float())
    return basis, len(data)


def load_linear_basis(name_or_folder: str | Path = DEFAULT_BASIS) -> LinearBasis:
    """A :class:`LinearBasis` from a checkpoint name or folder (kind ``linear-basis``)."""
    folder = zoo.resolve(name_or_folder)
    cfg = zoo.read_config(folder)
    if cfg["kind"] != LINEAR_KIND:
        raise ConfigError("basis", str(name_or_folder), f"a {LINEAR_KIND} checkpoint (this one is {cfg['kind']!r}); "
                                                        f"available: {zoo.available(LINEAR_KIND)}")
    return zoo.load(folder)


# ----------------------------------------------------------------------------- the code

class LinearAnalogCode:
    """Transmitter and LMMSE receiver of the linear analog code (module docstring).

    :param basis: a :class:`LinearBasis` (e.g. :func:`load_linear_basis`).
    :param variances: ``"image"`` (per-image second moments, sent as side information) or
        ``"prior"`` (the basis' population variances).
    :param power: P, average power per complex use.
    """

    def __init__(self, basis: LinearBasis, variances: str = "image", power: float = 1.0):
        if variances not in VARIANCE_MODES:
            raise ConfigError("variances", variances, f"one of {list(VARIANCE_MODES)}")
        self.basis, self.mode, self.power = basis, variances, float(power)

    def kept_per_block(self, k: int, height: int, width: int) -> int:
        """c = ⌊2k/N⌋ (≤ D) real coefficients per block for a k-use budget."""
        n_blocks = -(-height // self.basis.block) * -(-width // self.basis.block)
        c = min(2 * int(k) // n_blocks, self.basis.dim)
        if c < 1:
            raise ConfigError("bandwidth", k, f"at least {math.ceil(n_blocks / 2)} channel uses for a {height}×{width} "
                                              f"image ({n_blocks} blocks of {self.basis.block}² pixels, one real value each)")
        return c

    def encode(self, x: torch.Tensor, snr_db, k: int) -> tuple[torch.Tensor, dict]:
        """Images → symbols and what the receiver is told.

        :input x: float [B, 3, H, W] in [0, 1]; ``snr_db``: float or [B]; ``k``: the budget.
        :output: (z complex128 [B, k_used] with ‖z_b‖² = k_used·P, side) where ``side`` holds
            ``keep`` [B, c] (kept component indices), ``lam`` [B, c], ``gain`` [B, c],
            ``noise`` [B] (n per real dimension), ``size`` (H, W), ``coefficients`` [B, N, c].
        """
        height, width = x.shape[-2:]
        c = self.kept_per_block(k, height, width)
        coeffs = self.basis.analyze(to_blocks(pad_to_blocks(x.to(F64), self.basis.block), self.basis.block))
        batch, n_blocks = coeffs.shape[:2]
        k_used = -(-c * n_blocks // 2)
        snr = torch.as_tensor(snr_db, dtype=F64).reshape(-1).expand(batch)
        noise = self.power * 10 ** (-snr / 10) / 2
        if self.mode == "image":
            lam_all = coeffs.square().mean(dim=1)                               # [B, D]
            keep = torch.argsort(lam_all, dim=1, descending=True)[:, :c]
        else:
            lam_all = self.basis.variances.to(F64).expand(batch, -1)
            keep = torch.arange(c).expand(batch, -1)
        lam = torch.gather(lam_all, 1, keep)
        kept = torch.gather(coeffs, 2, keep[:, None, :].expand(-1, n_blocks, -1))   # [B, N, c]
        total = torch.full((batch,), k_used * self.power / n_blocks, dtype=F64)
        p = lee_petersen_powers(lam, noise, total)
        gain = torch.where(lam > 0, torch.sqrt(p / lam.clamp_min(1e-300)), torch.zeros_like(lam))
        real = (kept * gain[:, None, :]).reshape(batch, -1)
        if self.mode == "prior":  # population λ: scale to the exact power (one factor of side information)
            energy = real.square().sum(dim=1, keepdim=True).clamp_min(1e-300)
            scale = torch.sqrt(k_used * self.power / energy)
            real, gain = real * scale, gain * scale
        if real.shape[1] % 2:
            real = nn.functional.pad(real, (0, 1))
        z = torch.complex(real[:, :k_used], real[:, k_used:])
        side = {"keep": keep, "lam": lam, "gain": gain, "noise": noise, "size": (height, width),
                "coefficients": kept, "blocks": n_blocks}
        return z, side

    def decode(self, y: torch.Tensor, h: torch.Tensor, noise_var: torch.Tensor, side: dict,
               clip: bool = True) -> torch.Tensor:
        """LMMSE estimate of every kept coefficient, then the inverse transform.

        :input y, h: complex [B, k_used]; ``noise_var``: [B] (σ² per complex use); ``side``: from :meth:`encode`.
        :param clip: clip to [0, 1] and return float32 (the receiver output); False: float64, not
            clipped, over the padded image (what :meth:`expected_mse` describes).
        :output: [B, 3, H, W].
        """
        batch, n_blocks = y.shape[0], side["blocks"]
        c = side["keep"].shape[1]
        h_abs = h.abs().to(F64)
        r = (y.to(torch.complex128) * h.conj().to(torch.complex128) / h_abs.clamp_min(1e-300))
        n = noise_var.to(F64)[:, None] / 2
        r_real = torch.cat([r.real, r.imag], dim=1)[:, :c * n_blocks].reshape(batch, n_blocks, c)
        a_real = torch.cat([h_abs, h_abs], dim=1)[:, :c * n_blocks].reshape(batch, n_blocks, c)
        g, lam = side["gain"][:, None, :], side["lam"][:, None, :]
        estimate = a_real * g * lam / (a_real.square() * g.square() * lam + n[:, :, None]) * r_real
        full = torch.zeros(batch, n_blocks, self.basis.dim, dtype=F64)
        full.scatter_(2, side["keep"][:, None, :].expand(-1, n_blocks, -1), estimate)
        (height, width), block = side["size"], self.basis.block
        x_hat = from_blocks(self.basis.synthesize(full), -(-height // block) * block, -(-width // block) * block, block)
        return x_hat[..., :height, :width].clamp(0, 1).float() if clip else x_hat

    def expected_mse(self, x: torch.Tensor, side: dict, h: torch.Tensor | None = None) -> torch.Tensor:
        """Closed-form expected MSE per pixel over the noise, before clipping, for the
        transmitted images (uncropped, i.e. over the padded image):

            E‖X − X̂‖² = Σ_{kept j, blocks} λ̂·n/(|h|²·p + n) terms + the energy of the dropped coefficients,

        computed per real coefficient from its own value: with r = a·g·X + noise and the LMMSE
        weight w = a·g·λ/(a²g²λ + n), E(X − w r)² = (1 − w a g)²·X² + w²·n.

        :input x: the images given to :meth:`encode`; ``h``: the channel's coefficients
            [B, k_used] (None: AWGN, h = 1).
        :output: float64 [B], mean squared error per pixel value.
        """
        batch, n_blocks = x.shape[0], side["blocks"]
        c = side["keep"].shape[1]
        coeffs = self.basis.analyze(to_blocks(pad_to_blocks(x.to(F64), self.basis.block), self.basis.block))
        kept = side["coefficients"]
        if h is None:
            a = torch.ones(batch, n_blocks, c, dtype=F64)
        else:
            h_abs = h.abs().to(F64)
            a = torch.cat([h_abs, h_abs], dim=1)[:, :c * n_blocks].reshape(batch, n_blocks, c)
        g, lam = side["gain"][:, None, :], side["lam"][:, None, :]
        n = side["noise"][:, None, None]
        w = a * g * lam / (a.square() * g.square() * lam + n)
        kept_error = ((1 - w * a * g).square() * kept.square() + w.square() * n).sum(dim=(1, 2))
        dropped = coeffs.square().sum(dim=(1, 2)) - kept.square().sum(dim=(1, 2))
        return (kept_error + dropped) / (n_blocks * self.basis.dim)

    def side_information_bits(self, c: int) -> int:
        """Bits the receiver must be told per image (module docstring)."""
        return SIDE_BITS_PER_COEFFICIENT * c if self.mode == "image" else 16


class LinearScheme(Scheme):
    """The linear analog code as a scheme (``{type: linear, basis: NAME, variances: image|prior}``).

    ``bits = 0`` and ``decoded = True`` for every image (no bits, no failure); the receiver
    knows the SNR, the side information of ``variances`` and, on fading channels, the
    channel coefficients (perfect CSI, as for every linksim scheme).
    """

    kind = "linear"

    def __init__(self, name: str, bandwidth: Bandwidth, basis: str | Path = DEFAULT_BASIS, variances: str = "image"):
        super().__init__(name, bandwidth)
        self.basis_name = str(basis)
        self.code = LinearAnalogCode(load_linear_basis(basis), variances)

    def run(self, images: torch.Tensor, snr_db: float, channel, generator: torch.Generator) -> LinkOutput:
        """Send ``images`` (float32 [B,3,H,W] in [0,1]) at ``snr_db``; ``generator`` draws the channel."""
        height, width = images.shape[-2:]
        k = self.bandwidth.channel_uses(height, width)
        z, side = self.code.encode(images, snr_db, k)
        out = channel(z.to(torch.complex64), float(snr_db), generator)
        x_hat = self.code.decode(out.y, out.h, out.noise_var, side)
        batch, k_used = images.shape[0], z.shape[1]
        return LinkOutput(x_hat=x_hat, k=k, bits=torch.zeros(batch, dtype=torch.int64),
                          decoded=torch.ones(batch, dtype=torch.bool),
                          extras={"channel_uses_used": [k_used] * batch})


# ----------------------------------------------------------------------------- fitting (linksim train linear-basis)

def write_basis_card(name: str, meta: dict) -> str:
    """Markdown model card of a fitted basis from its ``config.json`` content."""
    cfg = meta["config"]
    return "\n".join([
        f"# {name}", "",
        f"Principal components of {cfg['block']}×{cfg['block']}×3 blocks (D = {cfg['dim']}) of natural photographs: "
        "the orthonormal transform of linksim's linear analog scheme (`{type: linear}`, SoftCast / Lee–Petersen).",
        "Buffers: `mean` [D], `components` [D, D] (rows, by decreasing variance), `variances` [D] (population "
        "variances of the coefficients), float32.", "",
        "## Fit", "",
        f"- command: `{meta.get('command') or '(python API)'}`",
        f"- data: {', '.join(meta.get('data', []))} — {meta.get('images', '?')} images, {meta.get('blocks', '?'):,} "
        "non-overlapping blocks (Kodak held out)",
        f"- share of the variance in the leading 8 / 32 / 128 components: {meta.get('energy', '?')}", "",
        "## Use", "", "```python", "from linksim.jscc.linear import LinearAnalogCode, load_linear_basis",
        f"code = LinearAnalogCode(load_linear_basis({name!r}))", "```", "",
        f"In a scenario: `{{type: linear, basis: {name}}}`.", ""])


def fit_linear_basis(data: list[str], out: str | Path, block: int = BLOCK, command: str = "") -> Path:
    """Fit :func:`fit_pca` on the images under ``data`` and save it as a ``linear-basis`` checkpoint folder."""
    from linksim.data import image_files, load_images

    items = load_images(image_files([str(d) for d in data]))
    basis, n_blocks = fit_pca([it.pixels for it in items], block)
    share = basis.variances.double().cumsum(0) / basis.variances.double().sum()
    meta = {"data": [str(d) for d in data], "images": len(items), "blocks": n_blocks, "command": command,
            "energy": " / ".join(f"{float(share[i - 1]):.3f}" for i in (8, 32, 128))}
    out = Path(out)
    return zoo.save_checkpoint(basis, out, LINEAR_KIND, basis.config(),
                               card=write_basis_card(out.name, {"config": basis.config(), **meta}), extra=meta)
