"""Command line: ``linksim run SCENARIO [--images PATH] [--limit N] [--out DIR]``.

User errors (a bad scenario field, a missing folder, an unreadable image) print one line
naming the field, the value and what is allowed, and exit with status 2 — no traceback,
and nothing is written.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from linksim.errors import LinkSimError


def _run(args: argparse.Namespace) -> int:
    from linksim.runner import format_summary, run_scenario
    from linksim.scenario import load_scenario

    scenario = load_scenario(args.scenario)
    result = run_scenario(scenario, images=args.images, limit=args.limit, out=args.out, progress=not args.quiet)
    print(format_summary(result.summary))
    print(f"\n{result.computed} point(s) computed, {result.skipped} already in {result.results_csv}")
    for name in ("results.csv", "summary.csv", "psnr_vs_snr.png", "grid.png"):
        if (result.out / name).exists():
            print(f"  {result.out / name}")
    return 0


def _codes(args: argparse.Namespace) -> int:
    from linksim.digital.ldpc import available_codes, get_code

    for name in available_codes():
        code = get_code(name) if name.startswith("wifi") else None
        print(name if code is None else f"{name:<16} n={code.n:<5} k={code.k:<5} R={code.rate:.3f}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="linksim", description="End-to-end wireless image link simulator.")
    commands = parser.add_subparsers(dest="command", required=True)

    run = commands.add_parser("run", help="run (or resume) a YAML scenario")
    run.add_argument("scenario", type=Path, help="scenario file, e.g. scenarios/cliff.yaml")
    run.add_argument("--images", help="image folder or file (default: the scenario's, usually the bundled samples)")
    run.add_argument("--limit", type=int, help="use only the first N images")
    run.add_argument("--out", type=Path, help="output folder (default: the scenario's `output`)")
    run.add_argument("--quiet", action="store_true", help="no progress bar")
    run.set_defaults(handler=_run)

    codes = commands.add_parser("codes", help="list the LDPC codes linksim knows")
    codes.set_defaults(handler=_codes)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.handler(args)
    except LinkSimError as error:
        print(f"linksim: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("linksim: interrupted; rerun the same command to resume", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
