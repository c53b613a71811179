"""LDPC decoder throughput and FER on this machine: numba (1 and all threads) vs Sionna vs pyldpc.

One process, the same LLRs (BPSK on real AWGN, drawn from ``linksim.seeding.point_generator``)
and the same maximum number of iterations for every decoder, on the IEEE 802.11n n=1944
codes at R = 1/2, 2/3, 5/6, at three Eb/N0 points around each code's FER-1e-2 threshold
(``wifi_thresholds.json`` -0.25, +0, +0.25 dB). The slow decoders decode a prefix of the
same frames (fewer frames, wider FER intervals). Throughput counts information bits over
the three points; the decoders that stop early (numba, pyldpc) run fewer iterations at
higher Eb/N0, Sionna always runs all of them.

Rows: ``numba``: the default (layered offset min-sum, offset 0.5, early stop), on 1
thread and on all numba threads; ``numba-nms``: layered normalized min-sum (factor 0.8),
all threads; ``numba-sp``: the numba decoder's exact layered
sum-product (the accuracy reference, all threads); ``sionna``: Sionna's LDPCBPDecoder
(flooding sum-product, boxplus-phi); ``pyldpc``: pyldpc's log-BP kernel.

Usage::

    python benchmarks/ldpc_decoders.py                 # full (a few minutes)
    python benchmarks/ldpc_decoders.py --quick         # under a minute (Sionna, pyldpc: R=2/3 only)
    python benchmarks/ldpc_decoders.py --json out.json # also write the figures

``--json`` writes every figure plus ``speedup_vs_sionna`` and ``speedup_vs_pyldpc``: the
information throughput of the default numba decoder on all threads over that of Sionna / pyldpc, on
wifi-1944-2/3 at 20 iterations over the same three Eb/N0 points.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import sys
import time

import numba
import torch

from linksim.digital.ldpc import LDPCDecoder, get_code
from linksim.digital.ldpc.numba_decoder import warm_up
from linksim.digital.ldpc.thresholds import bpsk_awgn_llr, wifi_thresholds
from linksim.seeding import point_generator

CODES = ("wifi-1944-1/2", "wifi-1944-2/3", "wifi-1944-5/6")
SPEEDUP_CODE = "wifi-1944-2/3"
OFFSETS_DB = (-0.25, 0.0, 0.25)


def wilson(errors: int, frames: int, z: float = 1.96) -> tuple[float, float]:
    """95 % Wilson interval of a binomial proportion."""
    p = errors / frames
    d = 1 + z * z / frames
    c = (p + z * z / (2 * frames)) / d
    h = z * math.sqrt(p * (1 - p) / frames + z * z / (4 * frames * frames)) / d
    return max(0.0, c - h), min(1.0, c + h)


def make_points(name: str, frames: int, seed: int) -> list[dict]:
    code = get_code(name)
    x0 = round(wifi_thresholds()[name]["ebno_db_fer_1e-2"] / 0.05) * 0.05
    points = []
    for off in OFFSETS_DB:
        ebno = round(x0 + off, 2)
        g = point_generator(seed, "ldpc-bench", name, ebno)
        u = torch.randint(0, 2, (frames, code.k), generator=g).to(torch.float32)
        llr = bpsk_awgn_llr(code.encode(u), ebno, code.rate, g)
        points.append({"ebno_db": ebno, "u": u, "llr": llr.contiguous()})
    return points


def run_decoder(dec: LDPCDecoder, points: list[dict], frames: int, batch: int) -> dict:
    code = dec.code
    total_t, total_frames, fer, ci, iters = 0.0, 0, [], [], []
    for p in points:
        u, llr = p["u"][:frames], p["llr"][:frames]
        errors, it_sum, t = 0, 0.0, 0.0
        for i in range(0, frames, batch):
            t0 = time.perf_counter()
            u_hat, _ = dec.decode(llr[i:i + batch])
            t += time.perf_counter() - t0
            errors += int((u_hat != u[i:i + batch]).any(dim=1).sum())
            it = dec.last_iterations
            it_sum += float(it.sum()) if it is not None else math.nan   # pyldpc: not reported
        total_t += t
        total_frames += frames
        fer.append(errors / frames)
        ci.append(wilson(errors, frames))
        iters.append(it_sum / frames)
    avg_it = None if any(math.isnan(i) for i in iters) else sum(iters) / len(iters)
    return {"frames_per_point": frames, "seconds": total_t, "frames_per_s": total_frames / total_t,
            "info_mbps": total_frames * code.k / total_t / 1e6,
            "avg_iterations": avg_it,   # None: not reported by the backend (pyldpc)
            "avg_iterations_per_point": None if avg_it is None else iters,
            "fer": fer, "fer_ci95": ci}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="fewer frames: under a minute")
    ap.add_argument("--json", metavar="PATH", help="write the figures as JSON")
    ap.add_argument("--iterations", type=int, default=20)
    ap.add_argument("--seed", type=int, default=2026)
    ap.add_argument("--codes", nargs="+", default=list(CODES))
    args = ap.parse_args(argv)

    q = args.quick
    nframes = {"numba": 2000 if q else 20000, "numba-nms": 2000 if q else 20000, "numba-sp": 200 if q else 4000,
               "sionna": 120 if q else 600, "pyldpc": 4 if q else 30}
    batches = {"numba": 4000, "numba-nms": 4000, "numba-sp": 4000, "sionna": 600, "pyldpc": 10}
    slow_codes = (SPEEDUP_CODE,) if q else tuple(args.codes)   # --quick: Sionna and pyldpc on R=2/3 only
    threads_all = numba.config.NUMBA_NUM_THREADS
    load_start = os.getloadavg()
    compile_s = warm_up()                      # numba kernels: compile or load from the cache
    t_start = time.perf_counter()

    results = {}
    for name in args.codes:
        code = get_code(name)
        points = make_points(name, max(nframes.values()), args.seed)
        decoders = {
            "numba 1t": (LDPCDecoder(code, backend="numba", iterations=args.iterations, threads=1), "numba"),
            f"numba {threads_all}t": (LDPCDecoder(code, backend="numba", iterations=args.iterations), "numba"),
            f"numba-nms {threads_all}t": (LDPCDecoder(code, backend="numba", iterations=args.iterations,
                                                      check_update="normalized-minsum"), "numba-nms"),
            f"numba-sp {threads_all}t": (LDPCDecoder(code, backend="numba", iterations=args.iterations,
                                                     check_update="boxplus-phi"), "numba-sp"),
            "sionna": (LDPCDecoder(code, backend="sionna", iterations=args.iterations), "sionna"),
            "pyldpc": (LDPCDecoder(code, backend="pyldpc", iterations=args.iterations), "pyldpc"),
        }
        rows = {}
        for label, (dec, kind) in decoders.items():
            if kind in ("sionna", "pyldpc") and name not in slow_codes:
                continue
            dec.decode(points[0]["llr"][:2])   # warm-up: first-call costs are not throughput
            rows[label] = run_decoder(dec, points, nframes[kind], batches[kind])
            print(f"  {name} {label}: {rows[label]['info_mbps']:.4f} Mbit/s", file=sys.stderr, flush=True)
        results[name] = {"ebno_db": [p["ebno_db"] for p in points], "k": code.k, "n": code.n, "decoders": rows}

    load_end = os.getloadavg()
    fast = f"numba {threads_all}t"
    out = {
        "machine": {"cpus": os.cpu_count(), "numba_threads": threads_all, "numba_threading_layer": None,
                    "platform": platform.platform(), "loadavg_start": load_start, "loadavg_end": load_end},
        "quick": q, "iterations": args.iterations, "seed": args.seed,
        "numba_compile_or_cache_load_s": compile_s, "wall_s": time.perf_counter() - t_start,
        "codes": results,
    }
    try:
        out["machine"]["numba_threading_layer"] = numba.threading_layer()
    except ValueError:
        pass
    if SPEEDUP_CODE in results:
        r = results[SPEEDUP_CODE]["decoders"]
        out["speedup_code"] = SPEEDUP_CODE
        out["speedup_vs_sionna"] = r[fast]["info_mbps"] / r["sionna"]["info_mbps"]
        out["speedup_vs_pyldpc"] = r[fast]["info_mbps"] / r["pyldpc"]["info_mbps"]
        out["numba_info_mbps"] = r[fast]["info_mbps"]

    print(f"LDPC decoders, {args.iterations} iterations max, BPSK/AWGN, {'quick' if q else 'full'} run; "
          f"{os.cpu_count()} CPUs, numba threads {threads_all} ({out['machine']['numba_threading_layer']}); "
          f"load average {load_start[0]:.2f} -> {load_end[0]:.2f}; numba compile/cache load {compile_s:.2f} s")
    for name, res in results.items():
        eb = res["ebno_db"]
        print(f"\n{name} (k={res['k']})")
        head = f"{'decoder':<14} {'frames/pt':>9} {'Mbit/s':>9} {'frames/s':>9} {'avg it':>6}  " + \
               "  ".join(f"{'FER @ ' + format(x, '.2f') + ' dB [95% CI]':<27}" for x in eb)
        print(head)
        print("-" * len(head))
        for label, r in res["decoders"].items():
            fers = "  ".join(f"{f:<8.4f}[{lo:.4f}, {hi:.4f}]".ljust(27) for f, (lo, hi) in zip(r["fer"], r["fer_ci95"]))
            it = "—" if r["avg_iterations"] is None else f"{r['avg_iterations']:.2f}"
            print(f"{label:<14} {r['frames_per_point']:>9} {r['info_mbps']:>9.4f} {r['frames_per_s']:>9.1f} "
                  f"{it:>6}  {fers}")
    if "speedup_vs_sionna" in out:
        print(f"\n{SPEEDUP_CODE}, {args.iterations} iterations: {fast} = {out['numba_info_mbps']:.2f} Mbit/s; "
              f"speedup_vs_sionna = {out['speedup_vs_sionna']:.0f}x, speedup_vs_pyldpc = {out['speedup_vs_pyldpc']:.0f}x")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(out, f, indent=1)
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
