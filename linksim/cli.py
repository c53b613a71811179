"""Command line: ``linksim run SCENARIO [--images PATH] [--limit N] [--out DIR]``, ``linksim train|eval deepjscc …``,
``linksim train prior …``, ``linksim train inn …``, ``linksim train diffjscc-control …``,
``linksim models``, ``linksim codes``.

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


def _fraction(text: str) -> float:
    from fractions import Fraction

    try:
        value = float(Fraction(text))
    except (ValueError, ZeroDivisionError):
        raise argparse.ArgumentTypeError(f"got {text!r} — expected a number or a fraction like 1/48") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"got {text!r} — expected a positive ratio")
    return value


def _command_line(args: argparse.Namespace) -> str:
    """The command that was run, as a shell line (``main(argv)`` called from Python included)."""
    import shlex

    return "linksim " + shlex.join(getattr(args, "argv", sys.argv[1:]))


def _train_deepjscc(args: argparse.Namespace) -> int:
    from linksim.jscc.training import TrainSettings, train_deepjscc

    settings = TrainSettings(bcr=args.bcr, data=args.data, channel=args.channel, snr_range=tuple(args.snr_range),
                             loss=args.loss, lpips_weight=args.lpips_weight, arch=args.arch,
                             af_gate=args.af_gate, linear_path=args.linear_path, steps=args.steps,
                             batch=args.batch, crop=args.crop, lr=args.lr, seed=args.seed, init=args.init,
                             bf16=not args.float32, val_data=args.val_data or [], val_every=args.val_every,
                             save_every=args.save_every, **({"widths": tuple(args.widths)} if args.widths else {}))
    command = _command_line(args) if args.command_line is None else args.command_line
    meta = train_deepjscc(settings, args.out, command=command, progress=not args.quiet, keep_state=args.keep_state,
                          device=args.device)
    print(f"{args.out}: step {meta['step']} of {settings.steps}, {meta['wall_seconds'] / 60:.1f} min")
    return 0


def _train_linear_basis(args: argparse.Namespace) -> int:
    from linksim.jscc.linear import fit_linear_basis

    command = _command_line(args) if args.command_line is None else args.command_line
    folder = fit_linear_basis(args.data, args.out, block=args.block, command=command)
    print(f"{folder}: PCA of {args.block}×{args.block}×3 blocks")
    return 0


def _train_prior(args: argparse.Namespace) -> int:
    from linksim.restore.training import PriorSettings, train_prior

    settings = PriorSettings(data=args.data, size=args.size, channels=tuple(args.channels),
                             layers_per_block=args.layers_per_block, attention_res=args.attention_res, steps=args.steps,
                             batch=args.batch, lr=args.lr, ema=args.ema, seed=args.seed, save_every=args.save_every,
                             bf16=args.bf16)
    command = _command_line(args) if args.command_line is None else args.command_line
    meta = train_prior(settings, args.out, command=command, progress=not args.quiet, keep_state=args.keep_state,
                       device=args.device, samples=args.samples)
    print(f"{args.out}: step {meta['step']} of {settings.steps}, {meta['wall_seconds'] / 60:.1f} min")
    return 0


def _train_inn(args: argparse.Namespace) -> int:
    from linksim.inn_training import INNSettings, train_inn

    settings = INNSettings(deepjscc=args.deepjscc, data=args.data, val_data=args.val_data or [],
                           snr_range=tuple(args.snr_range), conditional=not args.commin, channel=args.channel,
                           size=args.size, levels=args.levels, pairs=args.pairs, width=args.width, blocks=args.blocks,
                           detail_weight=args.detail_weight, steps=args.steps, batch=args.batch, lr=args.lr,
                           seed=args.seed, save_every=args.save_every)
    command = _command_line(args) if args.command_line is None else args.command_line
    meta = train_inn(settings, args.out, command=command, progress=not args.quiet, keep_state=args.keep_state)
    print(f"{args.out}: step {meta['step']} of {settings.steps}, {meta['wall_seconds'] / 60:.1f} min")
    for row in meta.get("evaluation", {}).get("rows", []):
        print(f"SNR {row['snr_db']:6.1f} dB   INN coarse MSE {row['inn_mse']:.5f}   linear A {row['linear_mse']:.5f}"
              f"   ratio {row['ratio']:.3f}")
    return 0


def _train_diffjscc_base(args: argparse.Namespace) -> int:
    from linksim.restore.ldm_training import BaseSettings, train_base

    settings = BaseSettings(data=args.data, crop=args.crop, vae_channels=tuple(args.vae_channels),
                            latent_channels=args.latent_channels, vae_layers=args.vae_layers, kl_weight=args.kl_weight,
                            vae_steps=args.vae_steps, vae_batch=args.vae_batch, vae_lr=args.vae_lr,
                            unet_channels=tuple(args.unet_channels), unet_layers=args.unet_layers,
                            text_dim=args.text_dim, unet_steps=args.unet_steps, unet_batch=args.unet_batch,
                            unet_lr=args.unet_lr, ema=args.ema, seed=args.seed, save_every=args.save_every,
                            bf16=args.bf16)
    command = _command_line(args) if args.command_line is None else args.command_line
    record = train_base(settings, args.out, command=command, progress=not args.quiet, keep_state=args.keep_state,
                        device=args.device)
    vae, unet = record.get("vae", {}), record.get("unet", {})
    print(f"{args.out}: VAE step {vae.get('step', 0)} of {settings.vae_steps}"
          + (f" (crop PSNR {vae['crop_psnr_db']} dB)" if "crop_psnr_db" in vae else "")
          + f", UNet step {unet.get('step', 0)} of {settings.unet_steps}")
    return 0


def _train_diffjscc_control(args: argparse.Namespace) -> int:
    from linksim.diffjscc_training import ControlSettings, train_control

    settings = ControlSettings(deepjscc=args.deepjscc, base=args.base, data=args.data,
                               snr_range=tuple(args.snr_range) if args.snr_range else None, channel=args.channel,
                               size=args.size, steps=args.steps, batch=args.batch, lr=args.lr, seed=args.seed,
                               save_every=args.save_every, snr_embedding=args.snr_embedding)
    command = _command_line(args) if args.command_line is None else args.command_line
    record = train_control(settings, args.out, command=command, progress=not args.quiet, keep_state=args.keep_state,
                           device=args.device)
    loss = record.get("final_loss")
    print(f"{args.out}: step {record['step']} of {settings.steps}, {record['wall_seconds'] / 60:.1f} min"
          + (f", final loss {loss:.4g}" if loss is not None else ""))
    return 0


def _eval_deepjscc(args: argparse.Namespace) -> int:
    from linksim.data import image_files, load_images
    from linksim.devices import parse_device
    from linksim.jscc.training import evaluate, record_evaluation
    from linksim.zoo import load_deepjscc

    model = load_deepjscc(args.checkpoint, device=parse_device(args.device, "device"))
    items = load_images(image_files([args.data]), limit=args.limit)
    channel = args.channel or model.config.channel
    result = evaluate(model, items, args.snr, channel=channel, seed=args.seed, progress=not args.quiet)
    for s, p in zip(result["snr_db"], result["psnr"]):
        print(f"SNR {s:6.1f} dB   PSNR {p:6.2f} dB")
    if args.record:
        record_evaluation(args.checkpoint, result, args.record, channel, _command_line(args))
        print(f"recorded in {args.checkpoint}/MODEL_CARD.md")
    return 0


def _calibrate_sigma_y(args: argparse.Namespace) -> int:
    from linksim.calibration import format_sigma_y, measure_sigma_y
    from linksim.data import image_files, load_images, square_resize, to_tensor
    from linksim.errors import ConfigError
    from linksim.zoo import load_deepjscc

    model = load_deepjscc(args.checkpoint)
    items = [square_resize(item, args.resize) for item in load_images(image_files([args.data]), limit=args.limit)]
    images = to_tensor(items)
    if isinstance(images, list):
        raise ConfigError("data", args.data, "images of one size (pass --resize N)")
    channel = args.channel or model.config.channel
    table = measure_sigma_y(model, args.operator, images, args.snr, channel=channel, trials=args.trials,
                            seed=args.seed, progress=not args.quiet)
    print(f"σ_y = RMS of A x̂ − A x, A = {args.operator}, {args.checkpoint}, {len(items)} images × {args.trials} trials")
    for snr, sigma in table.items():
        print(f"SNR {snr:6.1f} dB   σ_y {sigma:.4f}")
    print(format_sigma_y(table))
    return 0


def _models(args: argparse.Namespace) -> int:
    from linksim import zoo

    names = zoo.available()
    if not names:
        print("no checkpoints found (shipped ones live in linksim/checkpoints/, more under $LINKSIM_CHECKPOINTS)")
    width = max(map(len, names), default=0) + 1
    for name in names:
        print(f"{name:<{width}} {zoo.describe(zoo.locate(name))}")
    return 0


def _add_training_output_options(parser: argparse.ArgumentParser) -> None:
    """The output options every `linksim train` command shares (resumable output folder)."""
    parser.add_argument("--out", type=Path, required=True, help="output folder (rerun the command to resume)")
    parser.add_argument("--keep-state", action="store_true", help="keep the optimizer state at the end")
    parser.add_argument("--command-line", help=argparse.SUPPRESS)
    parser.add_argument("--quiet", action="store_true")


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

    train = commands.add_parser("train", help="train a model").add_subparsers(dest="model", required=True)
    tj = train.add_parser("deepjscc", help="train a DeepJSCC model (channel in the loop)")
    tj.add_argument("--bcr", type=_fraction, required=True, help="bandwidth ratio ρ = k/(3HW), e.g. 1/48")
    tj.add_argument("--channel", choices=["awgn", "rayleigh-block"], default="awgn")
    tj.add_argument("--snr-range", type=float, nargs=2, default=[-5.0, 15.0], metavar=("LOW", "HIGH"))
    tj.add_argument("--loss", choices=["mse", "mse+lpips"], default="mse")
    tj.add_argument("--lpips-weight", type=float, default=0.1, help="λ of MSE + λ·LPIPS")
    tj.add_argument("--arch", choices=["adaptive", "bourtsoulatze"], default="adaptive")
    tj.add_argument("--af-gate", choices=["2sigmoid", "sigmoid"], default="2sigmoid",
                    help="AF modules' gate (adaptive arch): 2·sigmoid starts as the identity; ADJSCC's sigmoid "
                         "halves the features after every layer at init and learns slower")
    tj.add_argument("--linear-path", metavar="BASIS", help="start as the linear analog code of this linear-basis "
                    "checkpoint (e.g. linear-pca16-natural): a frozen PCA + Lee–Petersen + LMMSE path, the CNNs "
                    "adding residuals that start at zero")
    tj.add_argument("--data", nargs="+", required=True, help="training image folders (searched recursively)")
    tj.add_argument("--val-data", nargs="+", help="validation image folders (PSNR per SNR)")
    tj.add_argument("--steps", type=int, default=4000)
    tj.add_argument("--batch", type=int, default=16)
    tj.add_argument("--crop", type=int, default=128)
    tj.add_argument("--lr", type=float, default=1e-3)
    tj.add_argument("--seed", type=int, default=0)
    tj.add_argument("--widths", type=int, nargs="+", help="hidden widths of the stride-2 stages (adaptive arch; "
                    "default 48 64 96 128)")
    tj.add_argument("--save-every", type=int, default=250, help="steps between resumable saves")
    tj.add_argument("--init", help="warm start from this checkpoint (tensors whose names and shapes match)")
    tj.add_argument("--float32", action="store_true", help="no bfloat16 autocast")
    tj.add_argument("--val-every", type=int, default=1000)
    tj.add_argument("--device", default="cpu", help="where the model trains: cpu, cuda or cuda:N (the draws are "
                    "the same on every device: crops, SNRs and channel noise come from the seeded CPU generator)")
    _add_training_output_options(tj)
    tj.set_defaults(handler=_train_deepjscc)

    tl = train.add_parser("linear-basis", help="fit the PCA block transform of the linear analog scheme")
    tl.add_argument("--data", nargs="+", required=True, help="training image folders (searched recursively) or files")
    tl.add_argument("--block", type=int, default=16, help="block side in pixels (16 matches DeepJSCC's 2^4)")
    tl.add_argument("--out", type=Path, required=True, help="output folder")
    tl.add_argument("--command-line", help=argparse.SUPPRESS)
    tl.set_defaults(handler=_train_linear_basis)

    tp = train.add_parser("prior", help="train a small pixel-space DDPM prior (for sing-zero restorers)")
    tp.add_argument("--data", nargs="+", required=True, help="training image folders (searched recursively) or files")
    tp.add_argument("--size", type=int, default=64, help="resolution: shorter side resized to it, then square crops")
    tp.add_argument("--channels", type=int, nargs="+", default=[32, 64, 128, 128],
                    help="UNet block_out_channels, one per resolution level")
    tp.add_argument("--layers-per-block", type=int, default=2)
    tp.add_argument("--attention-res", type=int, default=16, help="self-attention at resolutions ≤ this (0: none)")
    tp.add_argument("--steps", type=int, default=20000)
    tp.add_argument("--batch", type=int, default=16)
    tp.add_argument("--lr", type=float, default=2e-4)
    tp.add_argument("--ema", type=float, default=0.999, help="EMA decay of the exported weights (0: none)")
    tp.add_argument("--seed", type=int, default=0)
    tp.add_argument("--save-every", type=int, default=250, help="steps between resumable saves")
    tp.add_argument("--bf16", action="store_true", help="bfloat16 autocast")
    tp.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N")
    tp.add_argument("--samples", type=int, default=0, help="at the end, draw N samples into samples.png")
    _add_training_output_options(tp)
    tp.set_defaults(handler=_train_prior)

    ti = train.add_parser("inn", help="train a SING-INN (SNR-conditioned) or CommIN (--commin, one SNR) INN")
    ti.add_argument("--deepjscc", required=True, help="the DeepJSCC checkpoint whose outputs it learns")
    ti.add_argument("--data", nargs="+", required=True, help="training image folders (searched recursively)")
    ti.add_argument("--val-data", nargs="+", help="held-out images: INN vs. linear-A error per SNR in the card")
    ti.add_argument("--snr-range", type=float, nargs=2, default=[-5.0, 5.0], metavar=("LOW", "HIGH"),
                    help="SNR (dB) drawn uniformly; LOW = HIGH for --commin")
    ti.add_argument("--commin", action="store_true", help="no SNR conditioning (CommIN: one model per SNR)")
    ti.add_argument("--channel", choices=["awgn", "rayleigh-block"], help="default: the checkpoint's")
    ti.add_argument("--size", type=int, default=64, help="crop size (the prior's resolution)")
    ti.add_argument("--levels", type=int, default=2, help="Haar levels: the coarse part is 2**levels smaller per side")
    ti.add_argument("--pairs", type=int, default=4, help="lifting (P, U) pairs per level")
    ti.add_argument("--width", type=int, default=32)
    ti.add_argument("--blocks", type=int, default=2, help="CondBlocks per lifting net (J)")
    ti.add_argument("--detail-weight", type=float, default=0.0, help="λ of the detail regularizer λ·mean(d²)")
    ti.add_argument("--steps", type=int, default=3000)
    ti.add_argument("--batch", type=int, default=16)
    ti.add_argument("--lr", type=float, default=1e-3)
    ti.add_argument("--seed", type=int, default=0)
    ti.add_argument("--save-every", type=int, default=250, help="steps between resumable saves")
    _add_training_output_options(ti)
    ti.set_defaults(handler=_train_inn)

    tb = train.add_parser("diffjscc-base", help="train a small latent diffusion base model (VAE, then UNet) for DiffJSCC")
    tb.add_argument("--data", nargs="+", required=True, help="training image folders (searched recursively) or files")
    tb.add_argument("--crop", type=int, default=128, help="training crop size, at the images' own scale")
    tb.add_argument("--vae-channels", type=int, nargs="+", default=[64, 128, 128],
                    help="VAE block_out_channels (factor 2^(n-1))")
    tb.add_argument("--latent-channels", type=int, default=4)
    tb.add_argument("--vae-layers", type=int, default=1, help="VAE ResNet blocks per level")
    tb.add_argument("--kl-weight", type=float, default=1e-6)
    tb.add_argument("--vae-steps", type=int, default=4000)
    tb.add_argument("--vae-batch", type=int, default=16)
    tb.add_argument("--vae-lr", type=float, default=2e-4)
    tb.add_argument("--unet-channels", type=int, nargs="+", default=[64, 128, 192], help="UNet block_out_channels")
    tb.add_argument("--unet-layers", type=int, default=1, help="UNet ResNet blocks per level")
    tb.add_argument("--text-dim", type=int, default=64, help="cross-attention width (text features)")
    tb.add_argument("--unet-steps", type=int, default=8000)
    tb.add_argument("--unet-batch", type=int, default=32)
    tb.add_argument("--unet-lr", type=float, default=2e-4)
    tb.add_argument("--ema", type=float, default=0.999, help="EMA decay of the exported UNet (0: none)")
    tb.add_argument("--seed", type=int, default=0)
    tb.add_argument("--save-every", type=int, default=500, help="steps between resumable saves")
    tb.add_argument("--bf16", action="store_true", help="bfloat16 autocast")
    tb.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N")
    _add_training_output_options(tb)
    tb.set_defaults(handler=_train_diffjscc_base)

    td = train.add_parser("diffjscc-control", help="train DiffJSCC's control module (the base diffusion model frozen)")
    td.add_argument("--deepjscc", required=True, help="the DeepJSCC checkpoint whose outputs x̂ condition the model")
    td.add_argument("--base", required=True, help="local diffusers folder of the base model (vae/, unet/, scheduler/), "
                                                  "or its name under $LINKSIM_CHECKPOINTS or linksim/checkpoints/")
    td.add_argument("--data", nargs="+", required=True, help="training image folders (searched recursively)")
    td.add_argument("--snr-range", type=float, nargs=2, metavar=("LOW", "HIGH"),
                    help="SNR (dB) drawn uniformly (default: the checkpoint's training range, else 1 13)")
    td.add_argument("--channel", choices=["awgn", "rayleigh-block"], help="default: the checkpoint's")
    td.add_argument("--size", type=int, default=64, help="crop size (a multiple of the VAE factor)")
    td.add_argument("--steps", type=int, default=5000)
    td.add_argument("--batch", type=int, default=8)
    td.add_argument("--lr", type=float, default=1e-4, help="AdamW learning rate (DiffJSCC's 1e-4)")
    td.add_argument("--seed", type=int, default=0)
    td.add_argument("--save-every", type=int, default=250, help="steps between resumable saves")
    td.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N (the DeepJSCC link stays on the CPU)")
    td.add_argument("--no-snr", dest="snr_embedding", action="store_false",
                    help="spatial-only ablation: no SNR embedding")
    _add_training_output_options(td)
    td.set_defaults(handler=_train_diffjscc_control)

    ev = commands.add_parser("eval", help="evaluate a model").add_subparsers(dest="model", required=True)
    ej = ev.add_parser("deepjscc", help="mean PSNR per SNR of a DeepJSCC checkpoint on full-size images")
    ej.add_argument("checkpoint", help="checkpoint name or folder")
    ej.add_argument("--data", required=True, help="image folder")
    ej.add_argument("--snr", type=float, nargs="+", default=[-5, -3, -1, 0, 1, 3, 5, 7, 9, 11, 13, 15])
    ej.add_argument("--channel", choices=["awgn", "rayleigh-block"], help="default: the one it was trained for")
    ej.add_argument("--limit", type=int)
    ej.add_argument("--seed", type=int, default=0)
    ej.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N (same channel draws on every device)")
    ej.add_argument("--record", metavar="LABEL", help="write the table into the checkpoint's model card as LABEL")
    ej.add_argument("--quiet", action="store_true")
    ej.set_defaults(handler=_eval_deepjscc)

    cal = commands.add_parser("calibrate", help="measure a restorer setting").add_subparsers(dest="what", required=True)
    cs = cal.add_parser("sigma-y", help="σ_y per SNR for DDNM+ (sing-zero): RMS of A x̂ − A x of a DeepJSCC checkpoint")
    cs.add_argument("checkpoint", help="checkpoint name or folder")
    cs.add_argument("--operator", required=True, help="the restorer's A, e.g. avgpool8")
    cs.add_argument("--data", required=True, help="calibration images (not the ones you evaluate on)")
    cs.add_argument("--resize", type=int, help="centre square resized to N×N (the prior's resolution)")
    cs.add_argument("--snr", type=float, nargs="+", default=[-5, -2.5, 0, 2.5, 5, 10, 15])
    cs.add_argument("--channel", choices=["awgn", "rayleigh-block"], help="default: the one it was trained for")
    cs.add_argument("--trials", type=int, default=2)
    cs.add_argument("--limit", type=int)
    cs.add_argument("--seed", type=int, default=0)
    cs.add_argument("--quiet", action="store_true")
    cs.set_defaults(handler=_calibrate_sigma_y)

    models = commands.add_parser("models", help="list the checkpoints that load by name")
    models.set_defaults(handler=_models)

    codes = commands.add_parser("codes", help="list the LDPC codes linksim knows")
    codes.set_defaults(handler=_codes)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else [str(a) for a in argv]
    args = build_parser().parse_args(argv)
    args.argv = argv  # the command as given (recorded in model cards), also when main() is called from Python
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
