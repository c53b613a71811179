"""Points per second of the Kodak cliff sweep on 1 and 2 local worker processes and on a local Ray instance.

The sweep is the one of ``benchmarks/cliff_sweep.py``: ``scenarios/cliff.yaml`` (BPG + 802.11n
LDPC R = 1/2, 2/3, link adaptation, BPG + capacity; AWGN, cpp 1/16, numba decoder) over
−4…10 dB in 1 dB steps × 10 trials, on Kodak (``../shared/data/kodak`` or ``--images DIR``;
without it the script says so and exits 0), ``--limit N`` images (default all 24).

One untimed warm-up run (1 trial) fills the codec-table cache, so every timed run reads the
same tables from disk. Then each configuration runs the whole sweep into its own temporary
folder — ``serial`` (one process, the default path: one PyTorch thread per unit, numba's
LDPC loop on every core), ``serial-2-threads`` (the same with ``--threads 2``), ``local-2``
(``--workers 2``), ``ray-2`` (a local Ray instance with 2 CPUs, started and stopped inside the
timed call, as ``linksim run --executor ray`` does), ``bare-1``/``bare-2`` (below) — and the
timed call is
:func:`linksim.runner.run_scenario` without plots, start-up of the workers included. Every run's
``results.csv`` is compared byte for byte (``identical``) with the first run made with the same
PyTorch threads per unit: the last digits depend on that count, not on where the units ran.

speed-up = ``serial`` wall / wall, efficiency = speed-up / workers: the scaling of the
processes at the run's fixed threads per unit. ``speed_up_over_fastest_serial`` divides the
fastest one-process wall (either thread count) instead: what a user of this 2-core machine
gains over the best they could do without workers.

What stays serial: the driver loads the images and reads the codec tables (the workers start
meanwhile: spawn, a fresh interpreter importing PyTorch and Sionna), writes every row and grid
picture, and each worker builds its schemes and compiles its first numba calls. A unit is one
image with all its schemes (they share the image's metric scores, as on one process), so with
N workers and I images the wall time is about start-up + ⌈I/N⌉·(one image's time on a worker).
What grows with N besides: the memory traffic of workers side by side (two copies of a
``numpy`` sum over 512 MB take 0.25 s each where one alone takes 0.19 s here) and the driver's
share of one core. ``bare-1`` and ``bare-2`` (:data:`BARE`) measure that ceiling without any
executor: plain processes, built beforehand, that compute the units between them and start
together; ``ceiling_speed_up`` = ``bare-1`` / ``bare-N`` seconds of computing.

Measured on this machine (``lscpu``: AMD EPYC, 2 cores), with every other process paused (24
images): ``serial`` 129.4 s, ``serial-2-threads`` 119.0 s, ``local-2`` 80.2 s (1.61×), ``ray-2``
97.2 s, ``bare-1`` 131.5 s and ``bare-2`` 73.0 s: the ceiling of two processes here is 1.80×,
each computing its half 11 % slower than one process computes all (shared caches and memory
bandwidth), and the pool reaches 91 % of it. Two workers that each took the machine's two
PyTorch threads ran an image in 7.2 s instead of 5.5–6.1 s (two cores shared four ways), which
is why the threads per unit are fixed rather than the core count. Two settings of the workers'
environment (:data:`linksim.execution.worker.WORKER_ENVIRONMENT`) matter: without
``OMP_WAIT_POLICY=PASSIVE`` spinning OpenMP waiters made 8 units take 131 s instead of 17 s,
and without the glibc thresholds a process spent 0.9 s of an image's 5.4 s in page faults
(0.1 s with them).

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
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from cliff_sweep import KODAK, ROOT, sweep_scenario  # noqa: E402

from linksim.runner import run_scenario  # noqa: E402

CONFIGURATIONS = {"serial": {"workers": 1}, "serial-2-threads": {"workers": 1, "threads": 2},
                  "local-2": {"workers": 2}, "ray-2": {"executor": "ray", "workers": 2}}
#: The ceiling: the units computed by N bare processes that were started and built beforehand and
#: begin together (no pool, no driver, no file written): what N processes side by side can do on
#: this machine's shared caches and memory, whatever executor hands them the units.
BARE = {"bare-1": 1, "bare-2": 2}
SNR_DB = (-4.0, 10.0, 1.0)  # start, stop, step


def cliff_scenario(trials: int):
    """The timed sweep: ``scenarios/cliff.yaml`` with the numba decoder over :data:`SNR_DB`."""
    return sweep_scenario(ROOT / "scenarios" / "cliff.yaml", "numba", trials, SNR_DB)


def bare_part(args) -> None:
    """In a bare process: build the sweep, say ready, wait for the go file, then compute units
    ``part``, ``part + parts``, … and print the seconds they took (one PyTorch thread, numba's
    threads shared as the pool's workers share them)."""
    import torch

    from linksim.execution.worker import set_threads
    from linksim.runner import Sweep

    part, parts, go = args.bare
    torch.set_num_threads(1)
    set_threads(int(parts))
    scenario = cliff_scenario(args.trials)
    with tempfile.TemporaryDirectory() as tmp:
        sweep = Sweep(scenario, images=str(args.images), limit=args.limit, out=Path(tmp) / "bare", progress=False)
        try:
            units = sweep.units()[int(part)::int(parts)]
            print("ready", flush=True)
            while not Path(go).exists():
                time.sleep(0.01)
            t0 = time.perf_counter()
            points = sum(sweep.worker.compute(unit).computed for unit in units)
            print(json.dumps({"seconds": time.perf_counter() - t0, "points": points}), flush=True)
        finally:
            sweep.close()


def run_bare(args, parts: int, tmp: str) -> dict:
    """``parts`` bare processes (:func:`bare_part`) computing the sweep's units between them."""
    from linksim.execution.worker import worker_environment

    go = Path(tmp) / f"go-{parts}"
    command = [sys.executable, __file__, "--images", str(args.images), "--trials", str(args.trials)]
    command += ["--limit", str(args.limit)] if args.limit else []
    environment = {**os.environ, **worker_environment()}  # as the pool's workers start
    processes = [subprocess.Popen(command + ["--bare", str(i), str(parts), str(go)], stdout=subprocess.PIPE, text=True,
                                  env=environment) for i in range(parts)]
    for process in processes:
        assert process.stdout.readline().strip() == "ready"
    go.touch()
    outputs = [json.loads(process.stdout.readline()) for process in processes]
    for process in processes:
        process.wait()
    wall = max(output["seconds"] for output in outputs)
    points = sum(output["points"] for output in outputs)
    return {"workers": parts, "executor": "bare", "threads_per_unit": 1, "wall_s": round(wall, 2), "points": points,
            "points_per_s": round(points / wall, 2), "process_s": [round(o["seconds"], 2) for o in outputs]}


def cpu_model() -> str:
    try:
        for line in subprocess.run(["lscpu"], capture_output=True, text=True).stdout.splitlines():
            if line.startswith("Model name:"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def write_report(args, warm_up: float, runs: dict) -> None:
    """speed-up and efficiency against the serial run; the JSON at ``args.json``."""
    serial = runs.get("serial")
    fastest = min((run["wall_s"] for run in runs.values() if run["workers"] == 1 and run["executor"] == "local"),
                  default=None)
    bare_one = runs.get("bare-1")
    for run in runs.values():
        if bare_one and run["executor"] == "bare":
            run["ceiling_speed_up"] = round(bare_one["wall_s"] / run["wall_s"], 3)
        if serial:
            run["speed_up"] = round(serial["wall_s"] / run["wall_s"], 3)
            run["efficiency"] = round(run["speed_up"] / run["workers"], 3)
        if fastest:
            run["speed_up_over_fastest_serial"] = round(fastest / run["wall_s"], 3)
    report = {"images": str(args.images), "limit": args.limit, "trials": args.trials, "snr_db": list(SNR_DB),
              "scenario": "scenarios/cliff.yaml (numba decoder)", "cpu": cpu_model(), "cpus": os.cpu_count(),
              "warm_up_s": round(warm_up, 1), "runs": runs,
              "note": "load_average_1min_before: other jobs on the machine just before each run"}
    args.json.write_text(json.dumps(report, indent=1) + "\n")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--images", type=Path, default=KODAK)
    parser.add_argument("--limit", type=int, help="the first N images only")
    parser.add_argument("--trials", type=int, default=10)
    # Ray last: its instance's processes take some seconds to go after it is shut down
    parser.add_argument("--configurations", nargs="+", choices=[*CONFIGURATIONS, *BARE],
                        default=["serial", "serial-2-threads", "bare-1", "bare-2", "local-2", "ray-2"])
    parser.add_argument("--json", type=Path, default=ROOT / "benchmarks" / "scaling.json")
    parser.add_argument("--bare", nargs=3, metavar=("PART", "PARTS", "GO_FILE"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.bare:
        bare_part(args)
        return 0
    if not args.images.exists():
        print(f"{args.images} not found: pass --images DIR (Kodak PNGs); nothing measured")
        return 0
    scenario = cliff_scenario(args.trials)
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        run_scenario(cliff_scenario(1), images=str(args.images),
                     limit=args.limit, out=Path(tmp) / "warm-up", progress=False, plots=False)
        warm_up = time.perf_counter() - t0
        runs, references = {}, {}  # threads per unit → the first results.csv made with them
        for name in args.configurations:
            load = os.getloadavg()[0]
            if name in BARE:
                runs[name] = {**run_bare(args, BARE[name], tmp), "load_average_1min_before": round(load, 2)}
                print(f"{name:>16}: {runs[name]['points']} points in {runs[name]['wall_s']:.1f} s of computing "
                      f"(load {load:.1f})", flush=True)
                write_report(args, warm_up, runs)
                continue
            execution = CONFIGURATIONS[name]
            threads = execution.get("threads", 1)
            t0 = time.perf_counter()
            result = run_scenario(scenario, images=str(args.images), limit=args.limit, out=Path(tmp) / name,
                                  progress=False, plots=False, execution=execution)
            wall = time.perf_counter() - t0
            data = result.results_csv.read_bytes()
            reference = references.setdefault(threads, data)
            runs[name] = {"workers": execution["workers"], "executor": execution.get("executor", "local"),
                          "threads_per_unit": threads, "wall_s": round(wall, 2), "points": result.computed,
                          "points_per_s": round(result.computed / wall, 2), "identical": data == reference,
                          "load_average_1min_before": round(load, 2)}
            print(f"{name:>16}: {result.computed} points in {wall:.1f} s = {result.computed / wall:.1f} points/s"
                  f" (load {load:.1f}; results.csv {'identical' if data == reference else 'DIFFERENT'} "
                  f"to the first run with {threads} thread(s) per unit)", flush=True)
            write_report(args, warm_up, runs)  # after every configuration: a long run keeps what it measured
    print(json.dumps({k: {m: v[m] for m in ("wall_s", "points_per_s", "speed_up", "efficiency", "speed_up_over_fastest_serial",
                                       "ceiling_speed_up")
                          if m in v}
                      for k, v in runs.items()}, indent=1))
    print(f"written {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
