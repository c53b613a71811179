"""The restoration core's cost beyond the denoiser: the bare loop vs the loop with the DDNM hook.

One process, one UNet2DModel, one scheduler, the same steps, batch and seeds for every
variant; the variants alternate within each repetition (the order rotates) so that a
change of machine load hits them alike:

- ``bare``: the prior alone (no hook);
- ``ddnm``: SING-Zero's noiseless hook, x̂₀ ← A⁺y + (I − A⁺A) x̂₀ (σ_y = 0);
- ``ddnm+``: the noise-aware hook (σ_y > 0: λ, matched noise, two more projections);
- ``sing-inn``: SING-INN's hook, the DDNM update then the INN guidance step (INN forward and
  inverse at every step; the shipped SING-INN architecture: 2 Haar levels, 4 lifting pairs,
  width 32, J = 2 — the shipped weights when installed, random non-zero weights otherwise).

``overhead_sing_inn`` = median ``sing-inn`` / median ``bare`` (target ≤ 1.5).
``overhead_diffjscc`` = median time of one ``ControlledUNet`` forward (DiffJSCC's control module
plus the frozen base UNet) / median time of one bare ``UNet2DConditionModel`` forward, same
inputs, alternating repetitions (target ≤ 1.45, the ControlNet anchor). Its UNet is a randomly
initialized scaled-down Stable Diffusion UNet (SD 1.x's layout at 1/10 of its widths:
block_out_channels (32, 64, 128, 128), 2 layers per block, CrossAttn ×3 + plain down blocks,
cross_attention_dim 64, attention_head_dim 8; 8.6 M parameters, its control module 3.6 M), latent 4×32×32, batch 4,
77×64 random text features, timestep 500, SNR 5 dB, condition latent 4×32×32; 15 repetitions
(3 with ``--quick``) after one warm-up call each. On a loaded CPU the medians are noisy; the
JSON also holds the ratio of the minima (``diffjscc.overhead_of_minima``).
``inn_inverse_max_err`` = max |F⁻¹(F(x, snr), snr) − x| in float32 over 16 random 64×64 images
at SNRs spread over the INN's range (target < 1e-5).

The UNet is *randomly initialized* (sample_size 64, block_out_channels (32, 64, 64), the
size of a small pixel-space prior): its outputs are meaningless, its cost is real. This
measures time only, never restoration quality.

``overhead_ddnm`` = median time of ``ddnm`` / median time of ``bare`` (target ≤ 1.05),
``overhead_ddnm_plus`` likewise. Peak memory: ``torch.cuda.max_memory_allocated`` per
variant on CUDA; on the CPU the process's peak resident set (``getrusage`` ru_maxrss),
which is one number for the whole run (torch's CPU allocations are invisible to
tracemalloc), plus the hook's own extra tensors counted analytically.

Usage::

    python benchmarks/restoration_core.py                 # 50 steps, batch 4, 5 repetitions
    python benchmarks/restoration_core.py --quick         # 4 steps, batch 1, 2 repetitions (a smoke run)
    python benchmarks/restoration_core.py --json out.json # also write the figures
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import sys
import time

import torch

from linksim.restore import DDNMHook, RestorationCore, make_operator
from linksim.restore.inn import ConditionalINN
from linksim.restore.sing_inn import INNGuidanceHook

#: the INN timed (its architecture is what matters; the shipped weights when present)
INN_NAME = "inn-awgn-r1_192-faces"


def build_inn() -> tuple[ConditionalINN, str]:
    from linksim import zoo

    if INN_NAME in zoo.available("inn"):
        return zoo.load_inn(INN_NAME), INN_NAME
    torch.manual_seed(0)
    inn = ConditionalINN()
    with torch.no_grad():  # a fresh INN is the Haar split: give every lifting net non-zero weights
        for p in inn.parameters():
            p.add_(0.02 * torch.randn_like(p))
    return inn.eval().requires_grad_(False), "random init (default ConditionalINNConfig)"


def inverse_max_error(inn: ConditionalINN, size: int) -> float:
    """max |F⁻¹(F(x)) − x| over 16 random images at SNRs spread over the INN's range (float32)."""
    gen = torch.Generator().manual_seed(7)
    x = torch.rand(16, 3, size, size, generator=gen)
    lo, hi = inn.config.snr_range_db
    snr = torch.linspace(lo, hi, 16) if inn.config.conditional else None
    with torch.no_grad():
        coarse, details = inn(x, snr)
        return float((inn.inverse(coarse, details, snr) - x).abs().max())


def build_unet(sample_size: int):
    from diffusers import UNet2DModel

    torch.manual_seed(0)
    return UNet2DModel(sample_size=sample_size, in_channels=3, out_channels=3, layers_per_block=2,
                       block_out_channels=(32, 64, 64),
                       down_block_types=("DownBlock2D", "AttnDownBlock2D", "DownBlock2D"),
                       up_block_types=("UpBlock2D", "AttnUpBlock2D", "UpBlock2D"))


#: the scaled-down SD UNet of ``overhead_diffjscc`` (SD 1.x: (320, 640, 1280, 1280), cross_attention_dim 768)
DIFFJSCC_UNET = dict(sample_size=32, in_channels=4, out_channels=4, layers_per_block=2,
                     block_out_channels=(32, 64, 128, 128),
                     down_block_types=("CrossAttnDownBlock2D",) * 3 + ("DownBlock2D",),
                     up_block_types=("UpBlock2D",) + ("CrossAttnUpBlock2D",) * 3,
                     cross_attention_dim=64, attention_head_dim=8, norm_num_groups=32)
DIFFJSCC_BATCH, DIFFJSCC_TEXT_LEN = 4, 77


def measure_diffjscc(device: torch.device, dtype: torch.dtype, reps: int) -> dict:
    """Median seconds of one ControlledUNet forward vs one bare UNet forward (alternating reps)."""
    from diffusers import UNet2DConditionModel

    from linksim.restore.diffjscc_control import ControlledUNet

    torch.manual_seed(0)
    unet = UNet2DConditionModel(**DIFFJSCC_UNET).to(device).eval()
    if dtype != torch.float32:
        unet = unet.to(dtype)
    model = ControlledUNet(unet).eval()
    with torch.no_grad():  # random non-zero zero convs: the residuals are really added (cost is the same)
        for p in list(model.control.zero_convs_down.parameters()) + list(model.control.zero_conv_mid.parameters()):
            p.normal_(0.0, 0.01)
    g = torch.Generator().manual_seed(2)
    s = DIFFJSCC_UNET["sample_size"]
    sample = torch.randn(DIFFJSCC_BATCH, 4, s, s, generator=g).to(device, dtype)
    cond = torch.randn(DIFFJSCC_BATCH, 4, s, s, generator=g).to(device, dtype)
    text = torch.randn(DIFFJSCC_BATCH, DIFFJSCC_TEXT_LEN, DIFFJSCC_UNET["cross_attention_dim"], generator=g).to(device, dtype)
    t = torch.full((DIFFJSCC_BATCH,), 500, device=device)
    snr = torch.full((DIFFJSCC_BATCH,), 5.0, device=device)
    calls = {"bare": lambda: model.bare(sample, t, text), "controlled": lambda: model(sample, t, cond, snr, text)}

    def timed(name: str) -> float:
        if device.type == "cuda":
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        calls[name]()
        if device.type == "cuda":
            torch.cuda.synchronize()
        return time.perf_counter() - t0

    times = {n: [] for n in calls}
    with torch.no_grad():
        for n in calls:  # warm-up
            timed(n)
        for rep in range(reps):
            for n in (("bare", "controlled") if rep % 2 == 0 else ("controlled", "bare")):
                times[n].append(timed(n))
    med = {n: statistics.median(v) for n, v in times.items()}
    return {"unet": {k: list(v) if isinstance(v, tuple) else v for k, v in DIFFJSCC_UNET.items()}
            | {"parameters": sum(p.numel() for p in unet.parameters())},
            "control_parameters": sum(p.numel() for p in model.control.parameters()),
            "latent": [4, s, s], "batch": DIFFJSCC_BATCH, "text": [DIFFJSCC_TEXT_LEN, DIFFJSCC_UNET["cross_attention_dim"]],
            "reps": reps, "seconds": {n: {"median": med[n], "min": min(v), "all": v} for n, v in times.items()},
            "overhead": med["controlled"] / med["bare"],
            "overhead_of_minima": min(times["controlled"]) / min(times["bare"])}


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", help="write the figures to this file")
    parser.add_argument("--quick", action="store_true", help="4 steps, batch 1, 2 repetitions")
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--operator", default="avgpool4")
    parser.add_argument("--device", default=None, help="cuda or cpu (default: cuda when present)")
    parser.add_argument("--fp16", action="store_true", help="float16 UNet (CUDA only)")
    args = parser.parse_args(argv)
    if args.quick:
        args.steps, args.batch, args.reps = 4, 1, 2

    from diffusers import DDPMScheduler

    device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    dtype = torch.float16 if args.fp16 else torch.float32
    unet = build_unet(args.size).to(device).eval().requires_grad_(False)
    if dtype != torch.float32:
        unet = unet.to(dtype)
    core = RestorationCore(unet, DDPMScheduler(), device=device)
    shape = (3, args.size, args.size)
    op = make_operator(args.operator, shape)
    gy = torch.Generator().manual_seed(1)
    y = op.A(torch.rand(args.batch, *shape, generator=gy).to(device) * 2 - 1)
    inn, inn_source = build_inn()
    inn = inn.to(device)
    snr = torch.zeros(args.batch, device=device)
    coarse = torch.nn.functional.avg_pool2d((op.A_pinv(y) + 1) / 2, inn.config.scale)
    hooks = {"bare": None, "ddnm": DDNMHook(op, y, 0.0), "ddnm+": DDNMHook(op, y, 0.1),
             "sing-inn": INNGuidanceHook(inn, coarse, snr, torch.full((args.batch,), 0.05, device=device),
                                         DDNMHook(op, y, 0.1))}

    def run(name: str) -> float:
        gens = [torch.Generator().manual_seed(100 + i) for i in range(args.batch)]
        if device.type == "cuda":
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        core.sample(gens, shape, hooks[name], num_inference_steps=args.steps, progress=False)
        if device.type == "cuda":
            torch.cuda.synchronize()
        return time.perf_counter() - t0

    names = list(hooks)
    for name in names:  # warm-up: one step each
        gens = [torch.Generator().manual_seed(i) for i in range(args.batch)]
        core.sample(gens, shape, hooks[name], num_inference_steps=1, progress=False)
    times = {n: [] for n in names}
    peak_gpu = {}
    for rep in range(args.reps):
        order = names[rep % len(names):] + names[: rep % len(names)]
        for name in order:
            if device.type == "cuda":
                torch.cuda.reset_peak_memory_stats(device)
            times[name].append(run(name))
            if device.type == "cuda":
                peak_gpu[name] = max(peak_gpu.get(name, 0), torch.cuda.max_memory_allocated(device))

    med = {n: statistics.median(v) for n, v in times.items()}
    diffjscc = measure_diffjscc(device, dtype, 3 if args.quick else 15)
    image_bytes = args.batch * 3 * args.size * args.size * 4
    result = {
        "benchmark": "restoration_core",
        "note": "randomly initialized UNet2DModel: timing only, no restoration quality",
        "device": str(device) if device.type == "cpu" else torch.cuda.get_device_name(device),
        "dtype": str(dtype).replace("torch.", ""),
        "cpu_threads": torch.get_num_threads(),
        "load_average_1min_at_end": os.getloadavg()[0],
        "python": platform.python_version(), "torch": torch.__version__,
        "diffusers": __import__("diffusers").__version__,
        "unet": {"sample_size": args.size, "block_out_channels": [32, 64, 64],
                 "parameters": sum(p.numel() for p in unet.parameters())},
        "steps": args.steps, "batch": args.batch, "reps": args.reps, "operator": op.name, "quick": args.quick,
        "seconds": {n: {"median": med[n], "min": min(v), "all": v} for n, v in times.items()},
        "seconds_per_step_bare": med["bare"] / args.steps,
        "overhead_ddnm": med["ddnm"] / med["bare"],
        "overhead_ddnm_plus": med["ddnm+"] / med["bare"],
        "overhead_sing_inn": med["sing-inn"] / med["bare"],
        "inn": {"source": inn_source, "config": inn.config.to_dict(),
                "parameters": sum(p.numel() for p in inn.parameters())},
        "inn_inverse_max_err": inverse_max_error(inn.cpu(), args.size),
        "overhead_diffjscc": diffjscc["overhead"],
        "diffjscc": diffjscc,
        "hook_extra_tensors_bytes": {"ddnm": 2 * image_bytes, "ddnm+": 6 * image_bytes},  # sing-inn: not counted
    }
    if device.type == "cuda":
        result["peak_gpu_memory_bytes"] = peak_gpu
    else:
        rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        result["peak_rss_bytes_process"] = rss * (1 if sys.platform == "darwin" else 1024)

    print(f"restoration core — {result['device']}, {result['dtype']}, {torch.get_num_threads()} CPU threads, "
          f"UNet {result['unet']['parameters'] / 1e6:.2f} M params (random init: timing only)")
    print(f"{args.steps} steps, batch {args.batch}, {args.size}x{args.size}, operator {op.name}, {args.reps} alternating reps"
          + (" [--quick: smoke run]" if args.quick else ""))
    print(f"{'variant':<8} {'median s':>10} {'min s':>10} {'vs bare':>8}" + ("  peak GPU MiB" if peak_gpu else ""))
    for n in names:
        line = f"{n:<8} {med[n]:>10.3f} {min(times[n]):>10.3f} {med[n] / med['bare']:>8.3f}"
        if peak_gpu:
            line += f"  {peak_gpu[n] / 2 ** 20:>12.1f}"
        print(line)
    if "peak_rss_bytes_process" in result:
        print(f"peak resident memory (whole process): {result['peak_rss_bytes_process'] / 2 ** 20:.0f} MiB")
    print(f"overhead_ddnm = {result['overhead_ddnm']:.3f}  (target ≤ 1.05), overhead_ddnm_plus = "
          f"{result['overhead_ddnm_plus']:.3f}; overhead_sing_inn = {result['overhead_sing_inn']:.3f} (target ≤ 1.5; "
          f"INN: {inn_source}, {result['inn']['parameters'] / 1e6:.2f} M params); "
          f"inn_inverse_max_err = {result['inn_inverse_max_err']:.2e} (target < 1e-5); "
          f"overhead_diffjscc = {result['overhead_diffjscc']:.3f} (target ≤ 1.45; ControlledUNet vs bare forward, "
          f"UNet {diffjscc['unet']['parameters'] / 1e6:.2f} M + control {diffjscc['control_parameters'] / 1e6:.2f} M "
          f"params, batch {diffjscc['batch']}, latent 4x{diffjscc['latent'][1]}x{diffjscc['latent'][2]}); "
          f"load average at the end: {result['load_average_1min_at_end']:.2f}")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(result, fh, indent=2)
    return result


if __name__ == "__main__":
    main()
