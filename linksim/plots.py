"""Pictures of a run: PSNR-vs-SNR curves with confidence bands, and image grids.

Matplotlib with the non-interactive Agg backend, so plots render on a headless machine;
figures are closed after saving.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from PIL import Image  # noqa: E402


def psnr_vs_snr(summary: list[dict], path: Path, title: str = "") -> Path:
    """Mean PSNR per scheme vs. SNR with a 95 % band, and below it the decode rate.

    The lower panel makes the cliff obvious: separate schemes drop from 100 % to 0 %
    decoded within about a dB, while the capacity bound (and analog schemes) stay at 100 %.
    """
    schemes = list(dict.fromkeys(r["scheme"] for r in summary))
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(7.5, 6.5), sharex=True, gridspec_kw={"height_ratios": [3, 1.2]})
    for index, scheme in enumerate(schemes):
        rows = sorted((r for r in summary if r["scheme"] == scheme), key=lambda r: r["snr_db"])
        snr = np.array([r["snr_db"] for r in rows])
        psnr = np.array([np.nan if r["psnr"] is None else r["psnr"] for r in rows])
        ci = np.array([0.0 if r["psnr_ci95"] is None else r["psnr_ci95"] for r in rows])
        style = "--" if "capacity" in scheme.lower() else "-"
        color = f"C{index}"
        top.plot(snr, psnr, style, marker="o", ms=3.5, color=color, label=scheme)
        top.fill_between(snr, psnr - ci, psnr + ci, color=color, alpha=0.18, linewidth=0)
        bottom.plot(snr, [100 * (r["decoded_rate"] or 0.0) for r in rows], style, marker="o", ms=3.5, color=color)
    top.set_ylabel("PSNR (dB)")
    top.grid(alpha=0.3)
    top.legend(loc="lower right", fontsize=8)
    if title:
        top.set_title(title, fontsize=9)
    bottom.set_ylabel("decoded (%)")
    bottom.set_ylim(-5, 105)
    bottom.set_xlabel("SNR (dB)")
    bottom.grid(alpha=0.3)
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=130)
    plt.close(fig)
    return path


def image_grid(item, schemes: list[str], snrs: list[float], images_dir: Path, path: Path, slug,
               captions: dict[tuple[str, float], str] | None = None) -> Path | None:
    """One row per scheme, one column per SNR (trial 0), with the original on the left.

    ``captions[(scheme, snr)]`` (e.g. ``"24.4 dB"`` or ``"lost"``) is printed under each cell.

    Reads the receiver outputs saved by the runner under ``images_dir/<scheme>/<image>__snr±X.png``;
    missing cells (e.g. a grid SNR added after the run) are left blank.
    """
    rows, cols = len(schemes), len(snrs) + 1
    height, width = item.pixels.shape[:2]
    cell = 2.4
    fig, axes = plt.subplots(rows, cols, figsize=(cell * cols, cell * rows * height / width + 0.3), squeeze=False)
    for r, scheme in enumerate(schemes):
        if r == 0:  # the original once, top left; the first column of the other rows holds their labels
            axes[r, 0].imshow(item.pixels)
            axes[r, 0].set_title("original", fontsize=8)
        else:
            for side in axes[r, 0].spines.values():
                side.set_visible(False)
        axes[r, 0].set_ylabel(scheme, fontsize=8)
        for c, snr in enumerate(snrs, start=1):
            file = Path(images_dir) / slug(scheme) / f"{slug(item.id)}__snr{float(snr):+g}.png"
            if file.exists():
                axes[r, c].imshow(np.asarray(Image.open(file)))
            if captions and (scheme, float(snr)) in captions:
                axes[r, c].set_xlabel(captions[(scheme, float(snr))], fontsize=8)
            if r == 0:
                axes[r, c].set_title(f"SNR {snr:+g} dB", fontsize=8)
    for ax in axes.ravel():
        ax.set_xticks([])
        ax.set_yticks([])
    fig.suptitle(item.id, fontsize=9)
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
