"""Measure the Eb/N0 at FER 1e-2 of the n=1944 IEEE 802.11n codes (BPSK, real AWGN).

Decoder: Sionna LDPCBPDecoder, flooding sum-product (boxplus-phi), 20 iterations.
Writes linksim/digital/ldpc/wifi_thresholds.json (merging into what is there).

    .venv/bin/python benchmarks/measure_ldpc_thresholds.py                 # all 4 rates
    .venv/bin/python benchmarks/measure_ldpc_thresholds.py --codes wifi-1944-1/2
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

from linksim.digital.ldpc import get_code
from linksim.digital.ldpc.thresholds import measure_fer_threshold

# Starting points of the grid walk (dB), near the published 802.11n thresholds.
START_DB = {"wifi-1944-1/2": 1.6, "wifi-1944-2/3": 2.2, "wifi-1944-3/4": 2.8, "wifi-1944-5/6": 3.4}
OUT = Path(__file__).resolve().parents[1] / "linksim" / "digital" / "ldpc" / "wifi_thresholds.json"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--codes", nargs="+", default=list(START_DB))
    ap.add_argument("--max-errors", type=int, default=100)
    ap.add_argument("--max-frames", type=int, default=10000)
    ap.add_argument("--step-db", type=float, default=0.2)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=OUT)
    args = ap.parse_args(argv)
    command = "python benchmarks/measure_ldpc_thresholds.py " + " ".join(sys.argv[1:] if argv is None else argv)
    table = json.loads(args.out.read_text()) if args.out.exists() else {}
    for name in args.codes:
        code = get_code(name)
        t0 = time.perf_counter()
        x, points = measure_fer_threshold(code, START_DB.get(name, 2.0), step_db=args.step_db,
                                          max_errors=args.max_errors, max_frames=args.max_frames,
                                          seed=args.seed, log=lambda p: print(name, p, flush=True))
        wall = time.perf_counter() - t0
        frames = sum(p["frames"] for p in points)
        table[name] = {"ebno_db_fer_1e-2": round(x, 3), "frames": frames, "iterations": 20,
                       "decoder": "sionna boxplus-phi", "points": points,
                       "wall_s": round(wall, 1), "torch_threads": torch.get_num_threads(),
                       "info_mbit_per_s": round(frames * code.k / wall / 1e6, 3),
                       "command": command.strip()}
        print(f"{name}: Eb/N0 at FER 1e-2 = {x:.3f} dB ({frames} frames, {wall:.0f} s)", flush=True)
        args.out.write_text(json.dumps(table, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
