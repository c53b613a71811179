"""Wall time of a whole cliff sweep and where it goes, per LDPC decoder backend, in one process.

Runs ``scenarios/cliff.yaml`` (BPG + 802.11n LDPC R = 1/2, 2/3, link adaptation, BPG + capacity;
AWGN, cpp 1/16) on a folder of images (default: Kodak from ``../shared/data/kodak``; the
benchmark says so and exits 0 when it is absent) with the sweep of issue 3 — 15 SNR points
(−4…10 dB) × 10 trials — once per decoder backend, each into its own temporary output folder,
and times every stage by wrapping the functions that do it:

- ``codec``: BPG rate–quality tables (built once per image, then read from the disk cache
  ``$LINKSIM_CACHE``) and the receiver's codec decode / resize of the chosen rung;
- ``ldpc decode``: :meth:`linksim.digital.ldpc.LDPCDecoder.decode`;
- ``ldpc encode``, ``modulation`` (Sionna mapper / APP demapper), ``channel``;
- ``metrics``: PSNR, MS-SSIM, LPIPS (distinct reconstructions only, as the runner caches);
- ``plots``: the PSNR-vs-SNR figure and image grids;
- ``rest``: everything else (the runner's loop, result rows, CSV writes).

Before the timed runs, one untimed-for-the-table pass with 1 trial fills the codec cache (its wall
time is reported as ``warm-up``), so every timed run reads the same tables from disk.
Only the outermost timed call counts, so the stages add up to the wall time. A slow backend can
run on the first ``--slow-images`` images only; its per-image time is then scaled to the full
image count (the table says ``scaled``): the sweep is the same work for every image up to the
image's bit budget, so this is an estimate, not a measurement.

Usage::

    python benchmarks/cliff_sweep.py                                  # numba and sionna on Kodak
    python benchmarks/cliff_sweep.py --decoders numba --images DIR    # one backend, other images
    python benchmarks/cliff_sweep.py --json out.json                  # also write the figures
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

import yaml

from linksim import plots
from linksim.channel.base import Channel
from linksim.digital.codecs import table as codec_table
from linksim.digital.ldpc import LDPCDecoder
from linksim.digital.ldpc.code import LDPCCode
from linksim.digital.modulation import Modulation
from linksim.digital.source import SourceLadder
from linksim.metrics import MetricSuite
from linksim.runner import run_scenario
from linksim.scenario import parse_scenario

ROOT = Path(__file__).resolve().parents[1]
KODAK = ROOT.parent / "shared" / "data" / "kodak"
STAGES = ("codec", "ldpc decode", "ldpc encode", "modulation", "channel", "metrics", "plots")


# (owner, attribute, stage): the functions whose time is a stage's
TIMED = ((codec_table, "rate_quality_table", "codec"), (SourceLadder, "__init__", "codec"),
         (SourceLadder, "best_fitting", "codec"), (SourceLadder, "reconstruction", "codec"),
         (LDPCDecoder, "decode", "ldpc decode"), (LDPCCode, "encode", "ldpc encode"),
         (Modulation, "map", "modulation"), (Modulation, "demap", "modulation"), (Channel, "__call__", "channel"),
         (MetricSuite, "__call__", "metrics"), (plots, "psnr_vs_snr", "plots"), (plots, "image_grid", "plots"))


class StageClock:
    """Seconds per stage; only the outermost timed call counts (stages never overlap)."""

    def __init__(self):
        self.seconds = {stage: 0.0 for stage in STAGES}
        self.calls = {stage: 0 for stage in STAGES}
        self._depth = 0
        self._patched: list[tuple[object, str, object]] = []

    def wrap(self, owner, name: str, stage: str) -> None:
        original = getattr(owner, name)
        clock = self

        def timed(*args, **kwargs):
            if clock._depth:
                return original(*args, **kwargs)
            clock._depth += 1
            t0 = time.perf_counter()
            try:
                return original(*args, **kwargs)
            finally:
                clock.seconds[stage] += time.perf_counter() - t0
                clock.calls[stage] += 1
                clock._depth -= 1

        self._patched.append((owner, name, original))
        setattr(owner, name, timed)

    @contextmanager
    def installed(self):
        for owner, name, stage in TIMED:
            self.wrap(owner, name, stage)
        try:
            yield self
        finally:
            for owner, name, original in reversed(self._patched):
                setattr(owner, name, original)
            self._patched.clear()


def sweep_scenario(path: Path, backend: str, trials: int, snr: tuple[float, float, float]):
    """The scenario with every separate scheme on ``backend`` and the issue's SNR × trial grid."""
    raw = yaml.safe_load(path.read_text())
    raw["trials"] = trials
    raw["snr_db"] = {"start": snr[0], "stop": snr[1], "step": snr[2]}
    raw["grid"] = {**raw.get("grid", {}), "snr_db": [snr[0], snr[1]]}   # grid SNRs must be on the sweep
    for scheme in raw["schemes"]:
        if scheme.get("type") == "separate":
            scheme["decoder"] = {**scheme.get("decoder", {}), "backend": backend}
    return parse_scenario(raw, source=path)


def time_sweep(scenario, images: Path, limit: int | None, progress: bool) -> dict:
    clock = StageClock()
    with tempfile.TemporaryDirectory() as out, clock.installed():
        t0 = time.perf_counter()
        result = run_scenario(scenario, images=str(images), limit=limit, out=Path(out) / "run", progress=progress)
        wall = time.perf_counter() - t0
    stages = dict(clock.seconds)
    stages["rest"] = wall - sum(stages.values())
    return {"wall_s": wall, "points": result.computed, "stages_s": stages, "calls": clock.calls}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scenario", type=Path, default=ROOT / "scenarios" / "cliff.yaml")
    parser.add_argument("--images", type=Path, default=KODAK)
    parser.add_argument("--limit", type=int, default=None, help="first N images only")
    parser.add_argument("--decoders", nargs="+", default=["numba", "sionna"], choices=["numba", "sionna", "pyldpc"])
    parser.add_argument("--slow-images", type=int, default=2,
                        help="images for the sionna / pyldpc runs (scaled to the full count)")
    parser.add_argument("--trials", type=int, default=10)
    parser.add_argument("--snr", type=float, nargs=3, default=(-4.0, 10.0, 1.0), metavar=("START", "STOP", "STEP"))
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument("--quiet", action="store_true")
    args = parser.parse_args(argv)
    if not args.images.exists():
        print(f"cliff_sweep: no images at {args.images} (Kodak is development data); nothing to measure")
        return 0
    n_images = len([p for p in args.images.iterdir() if p.suffix.lower() in (".png", ".jpg", ".jpeg", ".tif", ".tiff")]) \
        if args.images.is_dir() else 1
    n_images = min(n_images, args.limit or n_images)

    t0 = time.perf_counter()
    warm = sweep_scenario(args.scenario, "numba", 1, tuple(args.snr))
    print(f"[warm-up] codec tables of {n_images} image(s), 1 trial", file=sys.stderr)
    with tempfile.TemporaryDirectory() as out:
        run_scenario(warm, images=str(args.images), limit=args.limit, out=Path(out) / "run", progress=not args.quiet,
                     plots=False)
    warm_s = time.perf_counter() - t0

    runs = {}
    for backend in args.decoders:
        slow = backend != "numba" and args.slow_images < n_images
        limit = args.slow_images if slow else args.limit
        scenario = sweep_scenario(args.scenario, backend, args.trials, tuple(args.snr))
        print(f"[{backend}] {limit or n_images} image(s) × {len(scenario.snr_db)} SNR × {scenario.trials} trials",
              file=sys.stderr)
        run = time_sweep(scenario, args.images, limit, progress=not args.quiet)
        used = limit or n_images
        run.update(images=used, scaled_to=n_images if slow else None)
        run["wall_s_full"] = run["wall_s"] * n_images / used
        runs[backend] = run

    out = {"images": str(args.images), "n_images": n_images, "trials": args.trials, "snr_db": list(args.snr),
           "threads": os.cpu_count(), "warm_up_s": warm_s, "runs": runs}
    print(f"\ncliff sweep ({args.scenario.name}, {n_images} images × {len(warm.snr_db)} SNR "
          f"× {args.trials} trials; s, share of the wall time)")
    header = f"{'decoder':<8} {'images':>6} {'points':>6} {'wall':>7} {'all':>7} " + " ".join(f"{s:>13}" for s in (*STAGES, "rest"))
    print(header)
    for backend, run in runs.items():
        cells = " ".join(f"{run['stages_s'][s]:6.1f} ({100 * run['stages_s'][s] / run['wall_s']:3.0f}%)"
                         for s in (*STAGES, "rest"))
        full = f"{run['wall_s_full']:6.0f}" + ("*" if run["scaled_to"] else " ")
        print(f"{backend:<8} {run['images']:>6} {run['points']:>6} {run['wall_s']:7.1f} {full} {cells}")
    print(f"warm-up (codec cache filled, 1 trial, no plots): {warm_s:.0f} s")
    if any(run["scaled_to"] for run in runs.values()):
        print("* scaled from the images it ran to all of them (an estimate)")
    if "numba" in runs and len(runs) > 1:
        for backend, run in runs.items():
            if backend != "numba":
                ratio = run["wall_s_full"] / runs["numba"]["wall_s_full"]
                out[f"sweep_speedup_vs_{backend}"] = ratio
                print(f"whole sweep: numba {ratio:.1f}x faster than {backend}")
    if args.json:
        args.json.write_text(json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
