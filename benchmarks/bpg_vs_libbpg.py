"""The ``bpg`` codec against libbpg 0.9.8 on Kodak: rate–PSNR and the PSNR gap at equal rate.

For every Kodak image (24 PNGs, 768×512 and 512×768) and every QP of a ladder, the codec
(:class:`linksim.digital.codecs.BPGCodec`, chroma 4:4:4 and 4:2:0) encodes the image, the
payload (HEVC Annex-B stream, what crosses the link) is decoded, and the RGB PSNR (8 bit,
peak 255, all three channels) is measured. Rate = payload bits / pixels. Like CompressAI's
benchmark, the curve point of a QP is the *mean over the images* of bpp and of PSNR.

Reference: libbpg 0.9.8, ``bpgenc -q Q -f 444 -e x265 -c ycbcr -b 8`` (default ``-m 8``,
x265 preset placebo, tune ssim, CQP), as run by CompressAI's ``compressai.utils.bench bpg``;
its Kodak points are hard-coded below from CompressAI's
``results/image/kodak/bpg_444_x265_ycbcr.json`` ("BPG 8b 444 x265 ycbcr", "BPG version
b'0.9.8'"; the older ``results/kodak/`` copy adds the last two points). Its rate counts the
whole ``.bpg`` file (a header of a few bytes more than our payload).

Gap at equal rate: our mean-PSNR curve is interpolated linearly in log(rate) at each libbpg
rate that lies inside our measured range (the QP ladder is dense, steps of 2), ``gap = ours −
libbpg`` in dB (positive: ours better). ``bd_psnr`` is the Bjøntegaard delta PSNR (cubic fits
of PSNR over log10(rate), integrated over the overlapping rate range; the libbpg points
inside our range and our points inside the libbpg range, each extended by one neighbour).
The 4:2:0 curve is compared with the same 4:4:4 libbpg points (there is no published 4:2:0
libbpg Kodak curve): its gap includes the chroma subsampling loss.

Usage::

    .venv/bin/python benchmarks/bpg_vs_libbpg.py              # 24 images, QP 48…10 step 2, ≈ 15 min on 2 cores
    .venv/bin/python benchmarks/bpg_vs_libbpg.py --quick      # 4 images, QP step 6 (a smoke run)
    .venv/bin/python benchmarks/bpg_vs_libbpg.py --set x265:psy-rd=1.0 --set x265:psy-rdoq=1.0 --json /tmp/psy.json

``--set KEY=VALUE`` overrides one of the codec's encoder settings
(:data:`linksim.digital.codecs.bpg.ENCODER_SETTINGS`) for an experiment. The JSON
(default ``benchmarks/bpg_vs_libbpg.json``, written only by a default run unless ``--json`` is
given) holds the curves, the gaps, the settings, library versions and the CPU model.
Without ``../shared/data/kodak`` (or ``--kodak DIR``) the script prints a message and exits 0.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
KODAK = ROOT.parent / "shared" / "data" / "kodak"
JSON_OUT = Path(__file__).with_suffix(".json")

#: libbpg 0.9.8, 4:4:4, x265, YCbCr, 8 bit on Kodak: mean bpp and mean RGB PSNR (dB) per
#: ``-q`` (CompressAI, github.com/InterDigitalInc/CompressAI, results/kodak/bpg_444_x265_ycbcr.json
#: and results/image/kodak/bpg_444_x265_ycbcr.json).
LIBBPG_444 = {
    "source": "CompressAI results/kodak/bpg_444_x265_ycbcr.json (BPG 8b 444 x265 ycbcr, BPG version 0.9.8)",
    "bpp": [0.06776767306857638, 0.1610234578450521, 0.35155402289496523, 0.6846966213650174,
            1.1996654934353295, 1.9297120836046002, 3.0578757392035594, 4.703142801920573,
            7.39045715332031, 9.682867262098526],
    "psnr": [26.19512806390954, 28.68154930675666, 31.5946565907943, 34.857473813062924,
             38.259886899666974, 41.47887283561703, 44.70311031066196, 47.63251604714922,
             50.80684600812918, 52.906579175254215],
}


def cpu_model() -> str:
    """``lscpu``'s model name (falls back to /proc/cpuinfo, then platform)."""
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, timeout=10).stdout
        for line in out.splitlines():
            if line.startswith("Model name:"):
                return line.split(":", 1)[1].strip()
    except (OSError, subprocess.SubprocessError):
        pass
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def gaps_at(rates: list[float], psnrs: list[float], ref_rates: list[float], ref_psnrs: list[float]):
    """Our PSNR minus the reference's at each reference rate inside our range (log-rate interpolation)."""
    lr, p = np.log(rates), np.asarray(psnrs)
    order = np.argsort(lr)
    out = []
    for r, q in zip(ref_rates, ref_psnrs):
        if lr.min() <= np.log(r) <= lr.max():
            ours = float(np.interp(np.log(r), lr[order], p[order]))
            out.append({"bpp": r, "libbpg_psnr": q, "psnr": round(ours, 3), "gap_db": round(ours - q, 3)})
    return out


def bd_psnr(rates, psnrs, ref_rates, ref_psnrs) -> float | None:
    """Bjøntegaard delta PSNR (ours − reference) over the overlapping log10-rate range."""
    a, pa = np.log10(rates), np.asarray(psnrs, dtype=float)
    b, pb = np.log10(ref_rates), np.asarray(ref_psnrs, dtype=float)
    lo, hi = max(a.min(), b.min()), min(a.max(), b.max())
    if hi <= lo:
        return None

    def window(x, y):
        order = np.argsort(x)
        x, y = x[order], y[order]
        inside = np.nonzero((x >= lo) & (x <= hi))[0]
        first, last = max(inside.min() - 1, 0), min(inside.max() + 1, len(x) - 1)
        return x[first:last + 1], y[first:last + 1]

    xa, ya = window(a, pa)
    xb, yb = window(b, pb)
    if len(xa) < 4 or len(xb) < 4:
        return None
    ia, ib = np.polyint(np.polyfit(xa, ya, 3)), np.polyint(np.polyfit(xb, yb, 3))
    area = (np.polyval(ia, hi) - np.polyval(ia, lo)) - (np.polyval(ib, hi) - np.polyval(ib, lo))
    return round(float(area / (hi - lo)), 3)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--kodak", type=Path, default=KODAK, help="folder of the Kodak PNGs (default: %(default)s)")
    parser.add_argument("--quick", action="store_true", help="4 images, QP 46…10 step 6")
    parser.add_argument("--qps", type=str, default=None, help="comma-separated QPs (default 48,46,…,10)")
    parser.add_argument("--chroma", nargs="+", default=["444", "420"], choices=["444", "420"])
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="override an encoder setting (pillow-heif enc_params key, e.g. x265:psy-rd=1.0)")
    parser.add_argument("--json", type=Path, default=None, help=f"output JSON (default {JSON_OUT.name} beside "
                                                                 "this script, for a default run)")
    args = parser.parse_args(argv)

    if not args.kodak.is_dir():
        print(f"skipped: no Kodak folder at {args.kodak} (give --kodak DIR)")
        return 0
    import pillow_heif

    from linksim.data import load_images
    from linksim.digital.codecs import BPGCodec
    from linksim.digital.codecs.bpg import ENCODER_SETTINGS
    from linksim.digital.codecs.table import psnr_uint8

    images = load_images(args.kodak, limit=4 if args.quick else None)
    qps = ([int(q) for q in args.qps.split(",")] if args.qps
           else list(range(46, 9, -6)) if args.quick else list(range(48, 9, -2)))
    overrides = {}
    for item in args.set:
        key, sep, value = item.partition("=")
        if not sep or not key:
            parser.error(f"--set expects KEY=VALUE, got {item!r}")
        overrides[key] = value
    settings = {**ENCODER_SETTINGS, **overrides}
    default_run = not (args.quick or args.qps or overrides or args.chroma != ["444", "420"]
                       or args.kodak.resolve() != KODAK.resolve())
    out_path = args.json if args.json is not None else (JSON_OUT if default_run else None)

    cpu = cpu_model()
    info = pillow_heif.libheif_info()
    print(f"{len(images)} images from {args.kodak}, QPs {qps[0]}…{qps[-1]} ({len(qps)}), CPU: {cpu}")
    print(f"pillow-heif {pillow_heif.__version__}, libheif {info.get('libheif')}, {info.get('HEIF')}")
    print("encoder settings: " + ", ".join(f"{k}={v}" for k, v in settings.items())
          + (f"  (overridden: {', '.join(overrides)})" if overrides else ""))

    results = {}
    for chroma in args.chroma:
        codec = BPGCodec(chroma=chroma)
        codec.encoder_settings = dict(settings)
        curve, t0 = [], time.perf_counter()
        for qp in qps:
            bpp, psnr, seconds = [], [], 0.0
            for item in images:
                x = item.pixels
                t = time.perf_counter()
                payload, _ = codec.encode(x, qp)
                seconds += time.perf_counter() - t
                bpp.append(8 * len(payload) / (x.shape[0] * x.shape[1]))
                psnr.append(psnr_uint8(x, codec.decode(payload, x.shape[:2])))
            curve.append({"qp": qp, "bpp": round(float(np.mean(bpp)), 5), "psnr": round(float(np.mean(psnr)), 3),
                          "encode_s_per_image": round(seconds / len(images), 3)})
            print(f"  {chroma} QP {qp:2d}: {curve[-1]['bpp']:.4f} bpp  {curve[-1]['psnr']:.3f} dB", flush=True)
        rates, psnrs = [c["bpp"] for c in curve], [c["psnr"] for c in curve]
        gaps = gaps_at(rates, psnrs, LIBBPG_444["bpp"], LIBBPG_444["psnr"])
        results[chroma] = {"codec_key": codec.key, "curve": curve, "gaps_at_libbpg_rates": gaps,
                           "mean_gap_db": round(float(np.mean([g["gap_db"] for g in gaps])), 3) if gaps else None,
                           "bd_psnr_db": bd_psnr(rates, psnrs, LIBBPG_444["bpp"], LIBBPG_444["psnr"]),
                           "seconds": round(time.perf_counter() - t0, 1)}

    print()
    print("libbpg 0.9.8 4:4:4 (CompressAI) vs ours, PSNR at libbpg's rates (ours interpolated in log-rate):")
    header = f"{'bpp':>7} {'libbpg':>7}" + "".join(f" {'ours ' + c:>9} {'gap':>6}" for c in results)
    print(header)
    for r, q in zip(LIBBPG_444["bpp"], LIBBPG_444["psnr"]):
        row = f"{r:7.3f} {q:7.2f}"
        for c in results:
            g = next((g for g in results[c]["gaps_at_libbpg_rates"] if g["bpp"] == r), None)
            row += f" {g['psnr']:9.2f} {g['gap_db']:+6.2f}" if g else f" {'–':>9} {'':>6}"
        print(row)
    if len(images) < 24:
        print(f"(only {len(images)} images against libbpg's 24-image means: the gaps below are not comparable)")
    for c, res in results.items():
        print(f"{c}: mean gap {res['mean_gap_db']:+.3f} dB over {len(res['gaps_at_libbpg_rates'])} libbpg points, "
              f"BD-PSNR {res['bd_psnr_db']:+.3f} dB, {res['seconds']:.0f} s")

    if out_path is None:
        print("JSON not written (not a default run; give --json PATH)")
        return 0
    out = {
        "benchmark": "bpg codec vs libbpg 0.9.8 on Kodak (rate = payload bits/pixel, RGB PSNR, means over images)",
        "images": len(images), "kodak": os.path.relpath(args.kodak.resolve(), ROOT), "qps": qps,
        "encoder_settings": settings, "overridden": overrides,
        "cpu": cpu, "python": platform.python_version(), "pillow_heif": pillow_heif.__version__,
        "libheif": info.get("libheif"), "hevc_encoder": info.get("HEIF"),
        "libbpg_444": LIBBPG_444, "results": results,
    }
    out_path.write_text(json.dumps(out, indent=1) + "\n")
    print(f"wrote {out_path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
