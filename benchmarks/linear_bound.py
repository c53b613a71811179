"""A linear reference for DeepJSCC checkpoints: PCA of 16×16 patches, noiseless.

A DeepJSCC model with 4 stride-2 stages sends c real numbers per 16×16×3 block (ρ = c/1536).
Keeping the c leading principal components of 16×16 patches is the best *linear* code with
the same number of real values per block; without channel noise its PSNR is a floor that a
trained non-linear model should clear. Prints a table: ρ, c, PSNR of the PCA code on Kodak,
and the PSNR of the shipped checkpoint at that ρ at 15 dB (the top of its trained SNR range)
and at 100 dB (practically noiseless, but outside the range its SNR conditioning was trained on).

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


def patches(pixels: np.ndarray) -> np.ndarray:
    """[N, 16·16·3] float64 in [0, 1]: the image cut into non-overlapping 16×16 blocks."""
    h, w = (pixels.shape[0] // PATCH) * PATCH, (pixels.shape[1] // PATCH) * PATCH
    a = pixels[:h, :w].astype(np.float64) / 255
    return a.reshape(h // PATCH, PATCH, w // PATCH, PATCH, 3).transpose(0, 2, 1, 3, 4).reshape(-1, PATCH * PATCH * 3)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fit-images", type=int, default=60)
    args = parser.parse_args()
    if not (DATA / "kodak").is_dir() or not (DATA / "train_natural" / "bsd200").is_dir():
        print(f"skipped: {DATA} (kodak/, train_natural/bsd200/) is not here")
        return 0
    import torch

    from linksim.data import load_images
    from linksim.jscc.training import evaluate
    from linksim.zoo import available, load_deepjscc

    fit = np.concatenate([patches(it.pixels) for it in load_images(DATA / "train_natural" / "bsd200", limit=args.fit_images)])
    mean = fit.mean(0)
    _, _, vt = np.linalg.svd(fit - mean, full_matrices=False)
    kodak = load_images(DATA / "kodak")
    print("| ρ | c | PCA code, noiseless (dB) | shipped checkpoint at 15 dB / 100 dB SNR (dB) |\n|---|---|---|---|")
    for denominator in (12, 48, 192, 768):
        c = 1536 // denominator
        basis = vt[:c]
        psnrs = []
        for item in kodak:
            p = patches(item.pixels)
            r = np.clip((p - mean) @ basis.T @ basis + mean, 0, 1)
            psnrs.append(10 * np.log10(1 / np.mean((r - p) ** 2)))
        name = f"deepjscc-awgn-r1_{denominator}"
        model_psnr = "—"
        if name in available("deepjscc"):
            with warnings.catch_warnings(), torch.no_grad():
                warnings.simplefilter("ignore")
                model_psnr = " / ".join(f"{p:.2f}" for p in evaluate(load_deepjscc(name), kodak, [15.0, 100.0])["psnr"])
        print(f"| 1/{denominator} | {c} | {np.mean(psnrs):.2f} | {model_psnr} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
