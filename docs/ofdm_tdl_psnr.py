"""Draws ``docs/ofdm_tdl_psnr.png``: the README's OFDM figure, perfect (solid) against LS-estimated
(dashed) CSI, one colour per scheme, from the ``summary.csv`` of the two OFDM scenario runs.

    linksim run scenarios/ofdm_tdl_perfect.yaml --limit 1 --out runs/ofdm_tdl_perfect
    linksim run scenarios/ofdm_tdl.yaml --limit 1 --out runs/ofdm_tdl
    python docs/ofdm_tdl_psnr.py runs/ofdm_tdl_perfect runs/ofdm_tdl
"""

from __future__ import annotations

import argparse
from pathlib import Path

from matplotlib.figure import Figure

from linksim.results import read_results


def mean_psnr(run: Path) -> dict[str, tuple[list[float], list[float]]]:
    """Scheme → (SNRs in dB, mean PSNR in dB) of a run's receiver outputs (restored rows left out)."""
    curves: dict[str, tuple[list[float], list[float]]] = {}
    for row in read_results(run / "summary.csv"):
        if row["restorer"]:
            continue
        snrs, psnrs = curves.setdefault(row["scheme"], ([], []))
        snrs.append(row["snr_db"])
        psnrs.append(row["psnr"])
    return curves


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("perfect", type=Path, help="run folder of scenarios/ofdm_tdl_perfect.yaml")
    parser.add_argument("estimated", type=Path, help="run folder of scenarios/ofdm_tdl.yaml (LS CSI)")
    parser.add_argument("--out", type=Path, default=Path(__file__).with_name("ofdm_tdl_psnr.png"))
    args = parser.parse_args()
    perfect, estimated = mean_psnr(args.perfect), mean_psnr(args.estimated)
    fig = Figure(figsize=(7.2, 4.5))
    ax = fig.subplots()
    for index, scheme in enumerate(dict.fromkeys([*perfect, *estimated])):
        colour = f"C{index}"
        for curves, csi, style in ((perfect, "perfect CSI", "-"), (estimated, "LS CSI", "--")):
            if scheme in curves:
                ax.plot(*curves[scheme], style, color=colour, marker="o" if style == "-" else "s", markersize=3,
                        label=f"{scheme}, {csi}")
    ax.set_xlabel("SNR per data RE (dB)")
    ax.set_ylabel("PSNR (dB)")
    ax.set_title("OFDM over TDL-A (100 ns, 3 km/h), ρ = 1/48: perfect (solid) vs LS-estimated CSI (dashed)",
                 fontsize=8)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=6.5, ncol=2, loc="upper left")
    fig.tight_layout()
    fig.savefig(args.out, dpi=100)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
