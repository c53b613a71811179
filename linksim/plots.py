"""Pictures of a run: PSNR-vs-SNR curves with confidence bands, PSNR-vs-cpp curves of a rate
sweep, and image grids.

Figures are built as ``matplotlib.figure.Figure`` objects and saved directly, without
pyplot: they render on a headless machine and never switch the global backend (a notebook
that runs a scenario keeps its inline plots).
"""

from __future__ import annotations

import textwrap
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure
from PIL import Image


#: Line colours per scheme kind: DeepJSCC in warm, unmistakable colours; separate schemes
#: in cool ones; the capacity bound in greys.
_COLORS = {"deepjscc": ["#d62728", "#9467bd", "#8c564b", "#e377c2"],
           "separate": ["#1f77b4", "#2ca02c", "#17becf", "#bcbd22", "#ff7f0e", "#7f7f7f"],
           "capacity": ["#333333", "#888888", "#555555"],
           "linear": ["#e6550d", "#fd8d3c", "#a63603"],
           "restored": ["#ff7f0e", "#1b9e77", "#e6ab02", "#7570b3", "#66a61e"]}


def _guess_kind(scheme: str) -> str:
    name = scheme.lower()
    return "capacity" if "capacity" in name else "deepjscc" if "jscc" in name else "separate"


def _style(kind: str, index: int) -> dict:
    """Matplotlib keywords of one curve: separate = thin steps with markers (the cliff),
    capacity = dashed, deepjscc = thick solid (the smooth curve), a restorer's output =
    dash-dotted with square markers."""
    palette = _COLORS.get(kind, _COLORS["separate"])
    color = palette[index % len(palette)]
    if kind == "restored":
        return dict(color=color, linestyle="-.", linewidth=2.2, marker="s", ms=3.5, zorder=6)
    if kind == "deepjscc":
        return dict(color=color, linestyle="-", linewidth=2.8, marker="o", ms=3.5, zorder=5)
    if kind == "linear":  # the other analog (smooth) curve: solid, thinner than DeepJSCC
        return dict(color=color, linestyle="-", linewidth=1.8, marker="^", ms=3.5, zorder=5)
    if kind == "capacity":
        return dict(color=color, linestyle="--", linewidth=1.6, marker=None, zorder=3)
    return dict(color=color, linestyle="-", linewidth=1.3, marker="o", ms=3, drawstyle="steps-mid", zorder=4)


def _fail_regions(summary: list[dict], separate: list[str]) -> tuple[float | None, float | None]:
    """(lowest, highest) cliff SNR of the separate schemes, as region edges halfway to the
    previous grid SNR; ``None`` for a cliff that never happens (a scheme never decoded)."""
    from linksim.results import cliff_snr

    snrs = sorted({r["snr_db"] for r in summary})
    if not separate or not snrs:
        return None, None

    def edge(cliff):
        if cliff is None:  # never decoded on this grid: it fails everywhere
            return snrs[-1] + (snrs[-1] - snrs[-2] if len(snrs) > 1 else 1) / 2
        lower = [s for s in snrs if s < cliff]
        return (cliff + lower[-1]) / 2 if lower else None  # decoded from the first SNR on: no failure region

    edges = [edge(cliff_snr(summary, scheme)) for scheme in separate]
    present = [e for e in edges if e is not None]
    if not present:
        return None, None
    return (min(edges) if all(e is not None for e in edges) else None), max(present)


def _psnr_curve(rows: list[dict], x: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """x values, mean PSNR (NaN where not measured) and 95 % half-width (0 where unknown) of summary rows."""
    return (np.array([r[x] for r in rows]), np.array([np.nan if r["psnr"] is None else r["psnr"] for r in rows]),
            np.array([0.0 if r["psnr_ci95"] is None else r["psnr_ci95"] for r in rows]))


def _legend_and_band(kind: str, scheme: str, restorer: str | None) -> tuple[str, float]:
    """A curve's legend label and the opacity of its 95 % band (light for the digital schemes,
    whose bands are wide across the cliff)."""
    from linksim.results import series_label

    label = {"capacity": f"{scheme} (bound)", "deepjscc": f"{scheme} (analog)",
             "linear": f"{scheme} (analog, linear)"}.get(kind, series_label(scheme, restorer))
    return label, 0.2 if kind in ("deepjscc", "linear", "restored") else 0.08


def psnr_vs_snr(summary: list[dict], path: Path, title: str = "", kinds: dict[str, str] | None = None) -> Path:
    """:func:`psnr_figure` saved to ``path`` (PNG, 130 dpi)."""
    path = Path(path)
    psnr_figure(summary, title, kinds).savefig(path, dpi=130)
    return path


def psnr_figure(summary: list[dict], title: str = "", kinds: dict[str, str] | None = None) -> Figure:
    """Mean PSNR per scheme (and per scheme + restorer) vs. SNR with a 95 % band, and below
    it the decode rate — or, when no scheme can lose the image (analog schemes, restorers),
    the mean MS-SSIM, where a restorer's gain often shows when PSNR hardly moves.

    ``kinds`` maps scheme names to ``separate`` | ``capacity`` | ``deepjscc`` | ``linear`` (the runner
    passes them; otherwise they are guessed from the names). Separate schemes are thin step
    lines — flat where their codec point is fixed, a vertical drop at the cliff —, the
    capacity bound is dashed, DeepJSCC a thick solid line. The SNRs where the separate
    schemes are lost (decoded in < 50 % of the points) are shaded: dark where every one of
    them fails, light where some do. The lower panel shows the decode rate: separate schemes
    drop from 100 % to 0 % within about a dB on AWGN, the capacity bound and the analog
    schemes stay at 100 %. Summary rows with a ``restorer`` are one more curve each,
    labeled "scheme + restorer" (dash-dotted); the decode rate is the scheme's, drawn once.
    """
    kinds = dict(kinds or {})
    series = list(dict.fromkeys((r["scheme"], r.get("restorer") or None) for r in summary))
    schemes = [scheme for scheme, restorer in series if restorer is None]
    kind_of = {scheme: kinds.get(scheme) or _guess_kind(scheme) for scheme, _ in series}
    fig = Figure(figsize=(8, 6.8))
    top, bottom = fig.subplots(2, 1, sharex=True, gridspec_kw={"height_ratios": [3, 1.2]})
    counters: dict[str, int] = {}
    all_snr = sorted({r["snr_db"] for r in summary})
    own = [r for r in summary if not r.get("restorer")]  # the failure regions are the schemes' own
    # the lower panel: the decode rate where a scheme can lose the image, else MS-SSIM (if measured)
    show_ms_ssim = all((r["decoded_rate"] or 0) >= 1 for r in own) and any(r.get("ms_ssim") is not None for r in summary)
    for scheme, restorer in series:
        kind = "restored" if restorer else kind_of[scheme]
        index = counters[kind] = counters.get(kind, -1) + 1
        style = _style(kind, index)
        rows = sorted((r for r in summary if r["scheme"] == scheme and (r.get("restorer") or None) == restorer),
                      key=lambda r: r["snr_db"])
        snr, psnr, ci = _psnr_curve(rows, "snr_db")
        label, alpha = _legend_and_band(kind, scheme, restorer)
        top.plot(snr, psnr, label=label, **style)
        band = dict(color=style["color"], alpha=alpha, linewidth=0)
        if style.get("drawstyle") == "steps-mid":
            band["step"] = "mid"
        top.fill_between(snr, psnr - ci, psnr + ci, **band)
        if show_ms_ssim:
            bottom.plot(snr, [np.nan if r.get("ms_ssim") is None else r["ms_ssim"] for r in rows], **style)
        elif not restorer:  # the decode rate is the scheme's own
            bottom.plot(snr, [100 * (r["decoded_rate"] or 0.0) for r in rows], **style)

    # Where the separate schemes are lost: shade it in both panels.
    _shade_lost(top, bottom, all_snr, *_fail_regions(own, [s for s in schemes if kind_of[s] == "separate"]))
    top.set_ylabel("PSNR (dB)")
    top.grid(alpha=0.3)
    top.legend(loc="lower right", fontsize=8, framealpha=0.9)
    if title:
        top.set_title(title, fontsize=9)
    if show_ms_ssim:
        bottom.set_ylabel("MS-SSIM")
    else:
        bottom.set_ylabel("decoded (%)")
        bottom.set_ylim(-5, 105)
    bottom.set_xlabel("SNR (dB)")
    bottom.grid(alpha=0.3)
    fig.tight_layout()
    return fig


def _shade_lost(top, bottom, all_snr: list[float], all_fail: float | None, some_fail: float | None) -> None:
    """Shade the SNRs where every separate scheme is lost (dark) or some are (light), in both
    panels, and fit the x range to the SNR grid (half a step of margin each side)."""
    if not all_snr:
        return
    step = (all_snr[1] - all_snr[0]) if len(all_snr) > 1 else 1.0
    left, right = all_snr[0] - step / 2, all_snr[-1] + step / 2
    top.set_xlim(left, right)
    if all_fail is not None and all_fail > left:
        for ax in (top, bottom):
            ax.axvspan(left, all_fail, color="#f2b8b5", alpha=0.45, linewidth=0, zorder=0)
        top.text((left + all_fail) / 2, 0.97, "every digital\nscheme lost", transform=top.get_xaxis_transform(),
                 ha="center", va="top", fontsize=8, color="#8b1a1a")
    if some_fail is not None and some_fail > (all_fail if all_fail is not None else left):
        start = all_fail if all_fail is not None else left
        for ax in (top, bottom):
            ax.axvspan(start, some_fail, color="#f2b8b5", alpha=0.2, linewidth=0, zorder=0)
        if some_fail - start >= 0.9 * step:
            top.text((start + some_fail) / 2, 0.97, "some\nlost", transform=top.get_xaxis_transform(),
                     ha="center", va="top", fontsize=8, color="#8b1a1a")


def psnr_vs_cpp(summary: list[dict], path: Path, snrs: list[float], title: str = "",
                kinds: dict[str, str] | None = None) -> Path:
    """:func:`rate_figure` saved to ``path`` (PNG, 130 dpi)."""
    path = Path(path)
    rate_figure(summary, snrs, title, kinds).savefig(path, dpi=130)
    return path


def rate_figure(summary: list[dict], snrs: list[float], title: str = "", kinds: dict[str, str] | None = None) -> Figure:
    """A rate sweep's summary (rows with ``cpp``) as PSNR vs cpp, one column of panels per SNR of
    ``snrs``: mean PSNR with a 95 % band above, the decode rate below.

    The x axis is log2 with ticks at the swept cpps, labelled as fractions (1/128 … 1/16), as
    in the DiffJSCC paper's rate comparison. One line per scheme (and per scheme + restorer),
    styled as in :func:`psnr_figure`. A separate scheme's points are markers labelled with
    their decode rate when it is below 100 %; a point decoded in < 50 % of the trials (lost:
    its PSNR is mostly the failure fill's) is a red ×. ``kinds`` as in :func:`psnr_figure`.
    """
    kinds = dict(kinds or {})
    series = list(dict.fromkeys((r["scheme"], r.get("restorer") or None) for r in summary))
    kind_of = {scheme: kinds.get(scheme) or _guess_kind(scheme) for scheme, _ in series}
    cpps = sorted({r["cpp"] for r in summary})
    fig = Figure(figsize=(1.0 + 5.2 * len(snrs), 6.8))
    axes = fig.subplots(2, len(snrs), sharex=True, squeeze=False, gridspec_kw={"height_ratios": [3, 1.2]})
    for column, snr in enumerate(snrs):
        top, bottom = axes[0, column], axes[1, column]
        counters: dict[str, int] = {}
        for scheme, restorer in series:
            kind = "restored" if restorer else kind_of[scheme]
            index = counters[kind] = counters.get(kind, -1) + 1
            style = {k: v for k, v in _style(kind, index).items() if k != "drawstyle"}  # no steps over cpp
            rows = sorted((r for r in summary if r["scheme"] == scheme and (r.get("restorer") or None) == restorer
                           and r["snr_db"] == snr), key=lambda r: r["cpp"])
            if not rows:
                continue
            cpp, psnr, ci = _psnr_curve(rows, "cpp")
            label, alpha = _legend_and_band(kind, scheme, restorer)
            top.plot(cpp, psnr, label=label, **style)
            top.fill_between(cpp, psnr - ci, psnr + ci, color=style["color"], alpha=alpha, linewidth=0)
            if restorer:
                continue
            decoded = np.array([r["decoded_rate"] or 0.0 for r in rows])
            bottom.plot(cpp, 100 * decoded, **style)
            if kind == "separate":
                lost = decoded < 0.5
                top.plot(cpp[lost], psnr[lost], linestyle="none", marker="x", ms=9, mew=2, color="#b2182b", zorder=7)
                for c, p, d in zip(cpp, psnr, decoded):
                    if d < 1 and np.isfinite(p):
                        top.annotate(f"{d:.0%}", (c, p), textcoords="offset points", xytext=(4, 4), fontsize=7,
                                     color=style["color"])
        for ax in (top, bottom):
            ax.set_xscale("log", base=2)
            ax.set_xticks(cpps)
            ax.set_xticklabels([_fraction_label(c) for c in cpps])
            ax.minorticks_off()
            ax.grid(alpha=0.3)
        top.set_title(f"SNR {snr:+g} dB" + (f" — {title}" if title and len(snrs) == 1 else ""), fontsize=9)
        top.set_ylabel("PSNR (dB)")
        bottom.set_ylabel("decoded (%)")
        bottom.set_ylim(-5, 105)
        bottom.set_xlabel("channel uses per pixel (cpp)")
    axes[0, 0].legend(loc="lower right", fontsize=8, framealpha=0.9)
    if title and len(snrs) > 1:
        fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    return fig


def _fraction_label(x: float) -> str:
    """``1/128`` for a cpp that is such a fraction, else 4 significant digits."""
    from fractions import Fraction

    fraction = Fraction(x).limit_denominator(100000)
    return str(fraction) if abs(float(fraction) - x) <= 1e-9 * x else f"{x:.4g}"


def image_grid(item, schemes: list[str], snrs: list[float], images_dir: Path, path: Path, slug,
               captions: dict[tuple[str, float], str] | None = None, folders: dict[str, str] | None = None) -> Path | None:
    """One row per scheme (and per scheme + restorer), one column per SNR (trial 0), with the
    original on the left.

    ``schemes`` are the row labels; ``captions[(label, snr)]`` (e.g. ``"24.4 dB"`` or
    ``"lost"``) is printed under each cell.

    Reads the images saved by the runner under ``images_dir/<folder>/<image>__snr±X.png``,
    ``folder = folders[label]`` (default ``slug(label)``); missing cells (e.g. a grid SNR
    added after the run) are left blank.
    """
    rows, cols = len(schemes), len(snrs) + 1
    height, width = item.pixels.shape[:2]
    cell = 2.4
    fig = Figure(figsize=(cell * cols, cell * rows * height / width + 0.3))
    axes = fig.subplots(rows, cols, squeeze=False)
    for r, scheme in enumerate(schemes):
        if r == 0:  # the original once, top left; the first column of the other rows holds their labels
            axes[r, 0].imshow(item.pixels)
            axes[r, 0].set_title("original", fontsize=8)
            axes[r, 0].set_ylabel(textwrap.fill(scheme, 26), fontsize=8)
        else:  # the empty first cell holds the label, wrapped: long "scheme + restorer" labels fit
            for side in axes[r, 0].spines.values():
                side.set_visible(False)
            axes[r, 0].text(0.5, 0.5, textwrap.fill(scheme, 22), ha="center", va="center", fontsize=8,
                            transform=axes[r, 0].transAxes)
        for c, snr in enumerate(snrs, start=1):
            folder = (folders or {}).get(scheme) or slug(scheme)
            file = Path(images_dir) / folder / f"{slug(item.id)}__snr{float(snr):+g}.png"
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
    return path


#: summary columns drawn by :func:`perceptual_figure`, with their axis labels (↑ / ↓: better)
PERCEPTUAL = {"lpips": "LPIPS (AlexNet) ↓", "lpips_vgg": "LPIPS (VGG) ↓", "haarpsi": "HaarPSI ↑", "vsi": "VSI ↑",
              "fid": "FID (256² patches) ↓", "kid": "KID (256² patches) ↓"}


def perceptual_metrics(summary: list[dict]) -> list[str]:
    """The perceptual columns of ``summary`` with at least one value (empty ones — weights absent — are not drawn)."""
    return [m for m in PERCEPTUAL if any(r.get(m) is not None for r in summary)]


def perceptual_vs_snr(summary: list[dict], path: Path, title: str = "", kinds: dict[str, str] | None = None) -> Path | None:
    """:func:`perceptual_figure` saved to ``path`` (PNG, 130 dpi); None (nothing written) when
    the summary has no perceptual values."""
    if not perceptual_metrics(summary):
        return None
    path = Path(path)
    perceptual_figure(summary, title, kinds).savefig(path, dpi=130)
    return path


def perceptual_figure(summary: list[dict], title: str = "", kinds: dict[str, str] | None = None) -> Figure:
    """One panel per perceptual metric with values (:data:`PERCEPTUAL`: per-image means, and the
    group metrics FID/KID of each (scheme, restorer, SNR)) against the SNR, one curve per
    scheme and per scheme + restorer, styled as in :func:`psnr_figure`. A rate sweep's summary
    gets one curve per bandwidth too ("… cpp 1/64")."""
    from linksim.scenario import bandwidth_label

    kinds = dict(kinds or {})
    names = perceptual_metrics(summary)
    series = list(dict.fromkeys((r["scheme"], r.get("restorer") or None, r.get("cpp")) for r in summary))
    fig = Figure(figsize=(5.2 * min(len(names), 3), 3.8 * ((len(names) + 2) // 3)))
    axes = np.atleast_1d(fig.subplots((len(names) + 2) // 3, min(len(names), 3), squeeze=False)).ravel()
    counters: dict[str, int] = {}
    for scheme, restorer, cpp in series:
        kind = "restored" if restorer else (kinds.get(scheme) or _guess_kind(scheme))
        index = counters[kind] = counters.get(kind, -1) + 1
        style = {k: v for k, v in _style(kind, index).items() if k != "drawstyle"}
        rows = sorted((r for r in summary if (r["scheme"], r.get("restorer") or None, r.get("cpp")) == (scheme, restorer, cpp)),
                      key=lambda r: r["snr_db"])
        label = _legend_and_band(kind, scheme, restorer)[0] + (f", cpp {bandwidth_label({'cpp': cpp})}" if cpp else "")
        for axis, name in zip(axes, names):
            axis.plot([r["snr_db"] for r in rows], [np.nan if r.get(name) is None else r[name] for r in rows],
                      label=label, **style)
    for axis, name in zip(axes, names):
        axis.set_ylabel(PERCEPTUAL[name])
        axis.set_xlabel("SNR (dB)")
        axis.grid(alpha=0.3)
    for axis in axes[len(names):]:
        axis.set_visible(False)
    axes[0].legend(fontsize=7, framealpha=0.9)
    if title:
        fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    return fig
