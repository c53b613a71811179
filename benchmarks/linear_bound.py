"""Linear references for DeepJSCC checkpoints: PCA of 16×16 patches, noiseless and over AWGN.

A DeepJSCC model with 4 stride-2 stages sends c real numbers per 16×16×3 block (ρ = c/1536).
Keeping the c leading principal components of 16×16 patches is the best *linear* code with
the same number of real values per block; without channel noise its PSNR is a floor that a
trained non-linear model should clear. Prints a table: ρ, c, PSNR of the PCA code on Kodak,
and the PSNR of the shipped checkpoint at that ρ at 15 dB (the top of its trained SNR range)
and at 100 dB (practically noiseless, but outside the range its SNR conditioning was trained on).

A second table puts the same PCA code *on the channel* at ρ = 1/48: the best linear analog
scheme (SoftCast-like; Lee & Petersen 1976): coefficient j of variance λ_j gets power
p_j = max(0, √(λ_j·n/ν) − n) with Σ p_j = c/2 per block (n = σ²/2 per real dimension, ν by
bisection), each image is power-normalized exactly to ‖z‖² = k·P as DeepJSCC's symbols are,
AWGN is added, and the receiver takes the per-coefficient LMMSE estimate. Next to it, the
shipped checkpoint's Kodak PSNR at the same SNRs, as recorded in its model card. A learned
scheme that does not beat this curve has not learned more than a transform and a gain.

    python benchmarks/linear_bound.py [--fit-images 60]

Needs ../shared/data (bsd200 for the fit, kodak for the test); exits cleanly without it.
"""

from __future__ import annotations

import argparse
import sys
import warnings
from pathlib import Path

import numpy as np

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
PATCH = 16
ANALOG_SNRS_DB = (-5.0, 0.0, 1.0, 5.0, 10.0, 15.0)


def patches(pixels: np.ndarray) -> np.ndarray:
    """[N, 16·16·3] float64 in [0, 1]: the image cut into non-overlapping 16×16 blocks."""
    h, w = (pixels.shape[0] // PATCH) * PATCH, (pixels.shape[1] // PATCH) * PATCH
    a = pixels[:h, :w].astype(np.float64) / 255
    return a.reshape(h // PATCH, PATCH, w // PATCH, PATCH, 3).transpose(0, 2, 1, 3, 4).reshape(-1, PATCH * PATCH * 3)


def lee_petersen_powers(variances: np.ndarray, noise: float, total: float) -> np.ndarray:
    """Powers p_j ≥ 0, Σ p_j = ``total``, minimizing Σ λ_j·n/(p_j + n) (the LMMSE error).

    :param variances: λ_j [C]; ``noise``: n per real dimension; ``total``: power budget.
    :output: p [C] (the weakest coefficients get 0 at low SNR).
    """
    lo, hi = -80.0, 80.0  # log ν
    for _ in range(200):
        mid = (lo + hi) / 2
        p = np.maximum(0.0, np.sqrt(variances * noise / np.exp(mid)) - noise)
        lo, hi = (mid, hi) if p.sum() > total else (lo, mid)
    return p


def analog_psnr(blocks: np.ndarray, coefficients: np.ndarray, mean, basis, variances, gain, noise: float,
                rng) -> float:
    """PSNR (dB) of one image's blocks [N, 768] sent as a linear analog code over AWGN.

    ``coefficients`` [N, C]: the blocks projected on ``basis``; ``gain`` [C]: amplitude per
    coefficient (√(p_j/λ_j)); ``noise``: σ²/2 per real dimension.
    """
    c = len(variances)
    end_to_end = gain * np.sqrt(c / 2 * len(blocks) / np.sum((coefficients * gain) ** 2))  # ‖z‖² = k·P exactly
    received = coefficients * end_to_end + np.sqrt(noise) * rng.standard_normal(coefficients.shape)
    estimate = received * end_to_end * variances / (end_to_end ** 2 * variances + noise)
    restored = np.clip(estimate @ basis + mean, 0, 1)
    return float(10 * np.log10(1 / np.mean((restored - blocks) ** 2)))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fit-images", type=int, default=60)
    args = parser.parse_args()
    if not (DATA / "kodak").is_dir() or not (DATA / "train_natural" / "bsd200").is_dir():
        print(f"skipped: {DATA} (kodak/, train_natural/bsd200/) is not here")
        return 0
    import torch

    from linksim.data import load_images
    from linksim.train.deepjscc import evaluate
    from linksim.zoo import available, load_deepjscc

    fit = np.concatenate([patches(it.pixels) for it in load_images(DATA / "train_natural" / "bsd200", limit=args.fit_images)])
    mean = fit.mean(0)
    _, singular_values, vt = np.linalg.svd(fit - mean, full_matrices=False)
    kodak = load_images(DATA / "kodak")
    kodak_blocks = [patches(item.pixels) for item in kodak]
    print("| ρ | c | PCA code, noiseless (dB) | shipped checkpoint at 15 dB / 100 dB SNR (dB) |\n|---|---|---|---|")
    for denominator in (12, 48, 192, 768):
        c = 1536 // denominator
        basis = vt[:c]
        psnrs = []
        for p in kodak_blocks:
            r = np.clip((p - mean) @ basis.T @ basis + mean, 0, 1)
            psnrs.append(10 * np.log10(1 / np.mean((r - p) ** 2)))
        name = f"deepjscc-awgn-r1_{denominator}"
        model_psnr = "—"
        if name in available("deepjscc"):
            with warnings.catch_warnings(), torch.no_grad():
                warnings.simplefilter("ignore")
                model_psnr = " / ".join(f"{p:.2f}" for p in evaluate(load_deepjscc(name), kodak, [15.0, 100.0])["psnr"])
        print(f"| 1/{denominator} | {c} | {np.mean(psnrs):.2f} | {model_psnr} |", flush=True)

    c = 1536 // 48
    basis = vt[:c]
    variances = singular_values[:c] ** 2 / (len(fit) - 1)
    kodak_coefficients = [(blocks - mean) @ basis.T for blocks in kodak_blocks]
    recorded = {}
    if "deepjscc-awgn-r1_48" in available("deepjscc"):
        from linksim import zoo

        for entry in zoo.read_config(zoo.resolve("deepjscc-awgn-r1_48")).get("evaluation", []):
            if entry.get("channel") == "awgn" and entry.get("images") == 24:
                recorded = dict(zip(entry["snr_db"], entry["psnr"]))
    print("\nρ = 1/48 on AWGN, Kodak (24 images):\n")
    print("| SNR (dB) | linear analog PCA code (dB) | deepjscc-awgn-r1_48, model card (dB) |\n|---|---|---|")
    for snr in ANALOG_SNRS_DB:
        noise = 0.5 * 10 ** (-snr / 10)   # σ²/2 per real dimension, P = 1 per complex use
        gain = np.sqrt(lee_petersen_powers(variances, noise, c / 2) / variances)
        values = [analog_psnr(blocks, coefficients, mean, basis, variances, gain, noise, np.random.default_rng(i))
                  for i, (blocks, coefficients) in enumerate(zip(kodak_blocks, kodak_coefficients))]
        shipped = f"{recorded[snr]:.2f}" if snr in recorded else "—"
        print(f"| {snr:g} | {np.mean(values):.2f} | {shipped} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
