"""Points per second of the Kodak cliff sweep on 1 and 2 local worker processes and on a local Ray instance.

The sweep is the one of ``benchmarks/cliff_sweep.py``: ``scenarios/cliff.yaml`` (BPG + 802.11n
LDPC R = 1/2, 2/3, link adaptation, BPG + capacity; AWGN, cpp 1/16, numba decoder) over
−4…10 dB in 1 dB steps × 10 trials, on Kodak (``../shared/data/kodak`` or ``--images DIR``;
without it the script says so and exits 0), ``--limit N`` images (default all 24).

One untimed warm-up run (1 trial) fills the codec-table cache, so every timed run reads the
same tables from disk. Then each configuration runs the whole sweep into its own temporary
folder — ``serial`` (one process, today's path, PyTorch's and numba's default thread counts),
``serial-1-thread`` (the same with one PyTorch and one numba thread), ``local-2``
(``--workers 2``), ``ray-2`` (a local Ray instance with 2 CPUs, started and stopped inside the
timed call, as ``linksim run --executor ray`` does) — and the timed call is
:func:`linksim.runner.run_scenario` without plots, start-up of the workers included. Every run's
``results.csv`` is compared with the serial one (``identical``: byte for byte).

speed-up = serial wall / wall; efficiency = speed-up / workers; ``speed_up_over_one_thread`` =
``serial-1-thread`` wall / wall. The one-process path is itself parallel: PyTorch's threads
(MS-SSIM's Gaussian filters, the demapper) and numba's parallel loop over LDPC codewords use
every core, so on a machine with as many cores as workers the workers can only add what those
threads leave idle; ``speed_up_over_one_thread`` is the scaling of the processes themselves,
which is what grows with the cores of a larger machine or a cluster.

What stays serial: the driver loads the images and reads the codec tables (the workers start
meanwhile: spawn, a fresh interpreter importing PyTorch and Sionna), writes every row and grid
picture, and each worker builds its schemes and compiles its first numba calls. A unit is one
image with all its schemes (they share the image's metric scores, as on one process), so with
N workers and I images the wall time is about start-up + ⌈I/N⌉·(one image's time on a worker).

Measured on this machine (``lscpu``: AMD EPYC, 2 cores), with every other process paused: an
image's four schemes take 4.8 s in one process with one thread, and on each of two workers
running side by side 5.5–6.1 s with one PyTorch thread and 7.2 s with the writing process's two
(which the bytes require). Two settings of the workers' environment
(:data:`linksim.execution.worker.WORKER_ENVIRONMENT`) matter: without ``OMP_WAIT_POLICY=PASSIVE``
their spinning OpenMP waiters made 8 units take 131 s instead of 17 s, and without the glibc
thresholds a process spent 0.9 s of an image's 5.4 s in page faults (0.1 s with them).

Usage::

    python benchmarks/scaling.py                       # 24 Kodak images
    python benchmarks/scaling.py --limit 6             # the first 6 (a loaded machine)
    python benchmarks/scaling.py --json out.json       # default: benchmarks/scaling.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from cliff_sweep import KODAK, ROOT, sweep_scenario  # noqa: E402

from linksim.runner import run_scenario  # noqa: E402

CONFIGURATIONS = {"serial": {"workers": 1}, "serial-1-thread": {"workers": 1, "threads": 1},
                  "local-2": {"workers": 2}, "ray-2": {"executor": "ray", "workers": 2}}


@contextmanager
def threads(count: int | None):
    """PyTorch's and numba's thread counts set to ``count`` in the block (None: unchanged)."""
    import numba
    import torch

    before = torch.get_num_threads(), numba.get_num_threads()
    if count is not None:
        torch.set_num_threads(count)
        numba.set_num_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(before[0])
        numba.set_num_threads(before[1])


def cpu_model() -> str:
    try:
        for line in subprocess.run(["lscpu"], capture_output=True, text=True).stdout.splitlines():
            if line.startswith("Model name:"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _torch_threads() -> int:
    import torch

    return torch.get_num_threads()


def write_report(args, warm_up: float, runs: dict) -> None:
    """speed-up and efficiency against the serial run; the JSON at ``args.json``."""
    serial, one_thread = runs.get("serial"), runs.get("serial-1-thread")
    for run in runs.values():
        if serial:
            run["speed_up"] = round(serial["wall_s"] / run["wall_s"], 3)
            run["efficiency"] = round(run["speed_up"] / run["workers"], 3)
        if one_thread:
            run["speed_up_over_one_thread"] = round(one_thread["wall_s"] / run["wall_s"], 3)
    report = {"images": str(args.images), "limit": args.limit, "trials": args.trials, "snr_db": [-4.0, 10.0, 1.0],
              "scenario": "scenarios/cliff.yaml (numba decoder)", "cpu": cpu_model(), "cpus": os.cpu_count(),
              "warm_up_s": round(warm_up, 1), "runs": runs,
              "torch_threads": _torch_threads(),
              "note": "load_average_1min_before: other jobs on the machine just before each run"}
    args.json.write_text(json.dumps(report, indent=1) + "\n")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--images", type=Path, default=KODAK)
    parser.add_argument("--limit", type=int, help="the first N images only")
    parser.add_argument("--trials", type=int, default=10)
    parser.add_argument("--configurations", nargs="+", default=list(CONFIGURATIONS), choices=list(CONFIGURATIONS))
    parser.add_argument("--json", type=Path, default=ROOT / "benchmarks" / "scaling.json")
    args = parser.parse_args()
    if not args.images.exists():
        print(f"{args.images} not found: pass --images DIR (Kodak PNGs); nothing measured")
        return 0
    snr = (-4.0, 10.0, 1.0)
    scenario = sweep_scenario(ROOT / "scenarios" / "cliff.yaml", "numba", args.trials, snr)
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        run_scenario(sweep_scenario(ROOT / "scenarios" / "cliff.yaml", "numba", 1, snr), images=str(args.images),
                     limit=args.limit, out=Path(tmp) / "warm-up", progress=False, plots=False)
        warm_up = time.perf_counter() - t0
        runs, reference = {}, None
        for name in args.configurations:
            load = os.getloadavg()[0]
            t0 = time.perf_counter()
            execution = {k: v for k, v in CONFIGURATIONS[name].items() if k != "threads"}
            with threads(CONFIGURATIONS[name].get("threads")):
                result = run_scenario(scenario, images=str(args.images), limit=args.limit, out=Path(tmp) / name,
                                      progress=False, plots=False, execution=execution)
            wall = time.perf_counter() - t0
            data = result.results_csv.read_bytes()
            reference = data if reference is None else reference
            runs[name] = {"workers": CONFIGURATIONS[name]["workers"], "wall_s": round(wall, 2), "points": result.computed,
                          "points_per_s": round(result.computed / wall, 2), "identical": data == reference,
                          "load_average_1min_before": round(load, 2)}
            print(f"{name:>8}: {result.computed} points in {wall:.1f} s = {result.computed / wall:.1f} points/s"
                  f" (load {load:.1f}; results.csv {'identical' if data == reference else 'DIFFERENT'})", flush=True)
            write_report(args, warm_up, runs)  # after every configuration: a long run keeps what it measured
    print(json.dumps({k: {m: v[m] for m in ("wall_s", "points_per_s", "speed_up", "efficiency", "speed_up_over_one_thread")
                          if m in v}
                      for k, v in runs.items()}, indent=1))
    print(f"written {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
