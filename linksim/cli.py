"""Command line: ``linksim run SCENARIO [--images PATH] [--limit N] [--out DIR] [--report] [--workers N]
[--executor local|ray] [--address HOST:PORT] [--threads N]``, ``linksim report RUN_DIR``, ``linksim train
deepjscc|prior|inn|diffjscc-base|diffjscc-control|linear-basis …``, ``linksim eval deepjscc …``,
``linksim calibrate sigma-y …``, ``linksim models``, ``linksim metrics``, ``linksim codes``.

The flags of ``linksim train X`` are generated from the trainer's settings dataclass
(:mod:`linksim.train.flags`): each default and help text is written once, beside the field.

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
    execution = {"executor": args.executor, "workers": args.workers, "address": args.address,
                 "threads": args.threads}  # override the scenario's
    result = run_scenario(scenario, images=args.images, limit=args.limit, out=args.out, progress=not args.quiet,
                          execution=execution)
    print(format_summary(result.summary))
    print(f"\n{result.computed} point(s) computed, {result.skipped} already in {result.results_csv}")
    for name in ("results.csv", "summary.csv", "psnr_vs_snr.png", "perceptual_vs_snr.png", "grid.png"):
        if (result.out / name).exists():
            print(f"  {result.out / name}")
    if args.report:
        from linksim.report import write_report

        print(f"  {write_report(result.out)}")
    return 0


def _report(args: argparse.Namespace) -> int:
    from linksim.report import write_report

    print(write_report(args.run_dir, args.out))
    return 0


def _metrics(args: argparse.Namespace) -> int:
    """Every metric name a scenario may list: per image or per group, what it needs, whether it runs here."""
    from linksim.metrics import catalogue

    for info in catalogue():
        needs = "no weights" if info.weights is None else info.weights
        here = "yes" if info.available else f"no (weights missing: download {info.url} to {info.weights})"
        print(f"{info.name:<10} {info.scope:<6} {info.description}\n{'':<17} needs: {needs}\n{'':<17} runs here: {here}")
    return 0


def _integer(text: str):
    """An integer flag's value; anything else is kept as given, for the ConfigError naming the field."""
    try:
        return int(text)
    except ValueError:
        return text


def _codes(args: argparse.Namespace) -> int:
    from linksim.digital.ldpc import available_codes, get_code

    for name in available_codes():
        code = get_code(name) if name.startswith("wifi") else None
        print(name if code is None else f"{name:<16} n={code.n:<5} k={code.k:<5} R={code.rate:.3f}")
    return 0


def _command_line(args: argparse.Namespace) -> str:
    """The command that was run, as a shell line (``main(argv)`` called from Python included)."""
    import shlex

    if getattr(args, "command_line", None) is not None:  # the hidden --command-line of the train commands
        return args.command_line
    return "linksim " + shlex.join(getattr(args, "argv", sys.argv[1:]))


def _train(args: argparse.Namespace, train, **options):
    """Build the settings of ``linksim train <args.model>`` from the parsed flags and run ``train``;
    returns ``(settings, record)``."""
    from linksim.train.flags import settings_from_args

    settings = settings_from_args(settings_class(args.model), args)
    record = train(settings, args.out, command=_command_line(args), progress=not args.quiet,
                   keep_state=args.keep_state, **options)
    return settings, record


def _train_deepjscc(args: argparse.Namespace) -> int:
    from linksim.train.deepjscc import train_deepjscc

    settings, meta = _train(args, train_deepjscc, device=args.device)
    print(f"{args.out}: step {meta['step']} of {settings.steps}, {meta['wall_seconds'] / 60:.1f} min")
    return 0


def _train_linear_basis(args: argparse.Namespace) -> int:
    from linksim.jscc.linear import fit_linear_basis

    folder = fit_linear_basis(args.data, args.out, block=args.block, command=_command_line(args))
    print(f"{folder}: PCA of {args.block}×{args.block}×3 blocks")
    return 0


def _train_prior(args: argparse.Namespace) -> int:
    from linksim.train.prior import train_prior

    settings, meta = _train(args, train_prior, device=args.device, samples=args.samples)
    print(f"{args.out}: step {meta['step']} of {settings.steps}, {meta['wall_seconds'] / 60:.1f} min")
    return 0


def _train_inn(args: argparse.Namespace) -> int:
    from linksim.train.inn import train_inn

    settings, meta = _train(args, train_inn)
    print(f"{args.out}: step {meta['step']} of {settings.steps}, {meta['wall_seconds'] / 60:.1f} min")
    for row in meta.get("evaluation", {}).get("rows", []):
        print(f"SNR {row['snr_db']:6.1f} dB   INN coarse MSE {row['inn_mse']:.5f}   linear A {row['linear_mse']:.5f}"
              f"   ratio {row['ratio']:.3f}")
    return 0


def _train_diffjscc_base(args: argparse.Namespace) -> int:
    from linksim.train.diffjscc_base import train_base

    settings, record = _train(args, train_base, device=args.device)
    vae, unet = record.get("vae", {}), record.get("unet", {})
    print(f"{args.out}: VAE step {vae.get('step', 0)} of {settings.vae_steps}"
          + (f" (crop PSNR {vae['crop_psnr_db']} dB)" if "crop_psnr_db" in vae else "")
          + f", UNet step {unet.get('step', 0)} of {settings.unet_steps}")
    return 0


def _train_diffjscc_control(args: argparse.Namespace) -> int:
    from linksim.train.diffjscc_control import train_control

    settings, record = _train(args, train_control, device=args.device)
    loss = record.get("final_loss")
    print(f"{args.out}: step {record['step']} of {settings.steps}, {record['wall_seconds'] / 60:.1f} min"
          + (f", final loss {loss:.4g}" if loss is not None else ""))
    return 0


def _eval_deepjscc(args: argparse.Namespace) -> int:
    from linksim.data import image_files, load_images
    from linksim.devices import parse_device
    from linksim.train.deepjscc import evaluate, record_evaluation
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
    from linksim.data import image_files, load_images, square_resize, to_tensor
    from linksim.errors import ConfigError
    from linksim.train.sigma_y import format_sigma_y, measure_sigma_y
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


#: ``linksim train X``: (help, handler, settings class as "module:Class", --device help or None)
_TRAINERS = {
    "deepjscc": ("train a DeepJSCC model (channel in the loop)", _train_deepjscc,
                 "linksim.train.deepjscc:DeepJSCCSettings",
                 "where the model trains: cpu, cuda or cuda:N (the draws are the same on every device: crops, SNRs "
                 "and channel noise come from the seeded CPU generator)"),
    "prior": ("train a small pixel-space DDPM prior (for sing-zero restorers)", _train_prior,
              "linksim.train.prior:PriorSettings", "cpu, cuda or cuda:N"),
    "inn": ("train a SING-INN (SNR-conditioned) or CommIN (--commin, one SNR) INN", _train_inn,
            "linksim.train.inn:INNSettings", None),
    "diffjscc-base": ("train a small latent diffusion base model (VAE, then UNet) for DiffJSCC", _train_diffjscc_base,
                      "linksim.train.diffjscc_base:BaseSettings", "cpu, cuda or cuda:N"),
    "diffjscc-control": ("train DiffJSCC's control module (the base diffusion model frozen)", _train_diffjscc_control,
                         "linksim.train.diffjscc_control:ControlSettings",
                         "cpu, cuda or cuda:N (the DeepJSCC link stays on the CPU)"),
}


def settings_class(trainer: str):
    """The settings dataclass of ``linksim train <trainer>``."""
    import importlib

    module, name = _TRAINERS[trainer][2].split(":")
    return getattr(importlib.import_module(module), name)


def _add_common_options(parser: argparse.ArgumentParser, *, quiet: bool = True, device: str | None = None,
                        out: str | None = None, keep_state: bool = False) -> None:
    """The options that are not settings, each written once: ``--device``, ``--out``,
    ``--keep-state``, the hidden ``--command-line`` (the command recorded in model cards), ``--quiet``."""
    if device is not None:
        parser.add_argument("--device", default="cpu", help=device)
    if out is not None:
        parser.add_argument("--out", type=Path, required=True, help=out)
        parser.add_argument("--command-line", help=argparse.SUPPRESS)
    if keep_state:
        parser.add_argument("--keep-state", action="store_true", help="keep the optimizer state at the end")
    if quiet:
        parser.add_argument("--quiet", action="store_true", help="no progress bar")


def _add_train_commands(commands) -> None:
    from linksim.train.flags import add_settings

    train = commands.add_parser("train", help="train a model").add_subparsers(dest="model", required=True)
    for name, (help_text, handler, _, device) in _TRAINERS.items():
        sub = train.add_parser(name, help=help_text)
        add_settings(sub, settings_class(name))
        _add_common_options(sub, device=device, out="output folder (rerun the command to resume)", keep_state=True)
        if name == "prior":
            sub.add_argument("--samples", type=int, default=0, help="at the end, draw N samples into samples.png")
        sub.set_defaults(handler=handler)
    tl = train.add_parser("linear-basis", help="fit the PCA block transform of the linear analog scheme")
    tl.add_argument("--data", nargs="+", required=True, help="training image folders (searched recursively) or files")
    tl.add_argument("--block", type=int, default=16, help="block side in pixels (16 matches DeepJSCC's 2^4)")
    _add_common_options(tl, quiet=False, out="output folder")
    tl.set_defaults(handler=_train_linear_basis)


def _add_measure_commands(commands) -> None:
    """``linksim eval deepjscc`` and ``linksim calibrate sigma-y``."""
    snr_channel = {"choices": ["awgn", "rayleigh-block"], "help": "default: the one it was trained for"}
    ev = commands.add_parser("eval", help="evaluate a model").add_subparsers(dest="model", required=True)
    ej = ev.add_parser("deepjscc", help="mean PSNR per SNR of a DeepJSCC checkpoint on full-size images")
    ej.add_argument("checkpoint", help="checkpoint name or folder")
    ej.add_argument("--data", required=True, help="image folder")
    ej.add_argument("--snr", type=float, nargs="+", default=[-5, -3, -1, 0, 1, 3, 5, 7, 9, 11, 13, 15])
    ej.add_argument("--channel", **{**snr_channel, "choices": [*snr_channel["choices"], "ofdm-tdl-a"]})
    ej.add_argument("--limit", type=int)
    ej.add_argument("--seed", type=int, default=0)
    ej.add_argument("--record", metavar="LABEL", help="write the table into the checkpoint's model card as LABEL")
    _add_common_options(ej, device="cpu, cuda or cuda:N (same channel draws on every device)")
    ej.set_defaults(handler=_eval_deepjscc)

    cal = commands.add_parser("calibrate", help="measure a restorer setting").add_subparsers(dest="what", required=True)
    cs = cal.add_parser("sigma-y", help="σ_y per SNR for DDNM+ (sing-zero): RMS of A x̂ − A x of a DeepJSCC checkpoint")
    cs.add_argument("checkpoint", help="checkpoint name or folder")
    cs.add_argument("--operator", required=True, help="the restorer's A, e.g. avgpool8")
    cs.add_argument("--data", required=True, help="calibration images (not the ones you evaluate on)")
    cs.add_argument("--resize", type=int, help="centre square resized to N×N (the prior's resolution)")
    cs.add_argument("--snr", type=float, nargs="+", default=[-5, -2.5, 0, 2.5, 5, 10, 15])
    cs.add_argument("--channel", **snr_channel)
    cs.add_argument("--trials", type=int, default=2)
    cs.add_argument("--limit", type=int)
    cs.add_argument("--seed", type=int, default=0)
    _add_common_options(cs)
    cs.set_defaults(handler=_calibrate_sigma_y)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="linksim", description="End-to-end wireless image link simulator.")
    commands = parser.add_subparsers(dest="command", required=True)

    run = commands.add_parser("run", help="run (or resume) a YAML scenario")
    run.add_argument("scenario", type=Path, help="scenario file, e.g. scenarios/cliff.yaml")
    run.add_argument("--images", help="image folder or file (default: the scenario's, usually the bundled samples)")
    run.add_argument("--limit", type=int, help="use only the first N images")
    run.add_argument("--out", type=Path, help="output folder (default: the scenario's `output`)")
    run.add_argument("--quiet", action="store_true", help="no progress bar")
    run.add_argument("--report", action="store_true", help="also write OUT/report.html (see `linksim report`)")
    run.add_argument("--workers", type=_integer, metavar="N",
                     help="worker processes (default: the scenario's execution.workers, else 1 = this process)")
    run.add_argument("--executor", metavar="{local,ray}", help="local processes, or a Ray cluster (default: local)")
    run.add_argument("--address", help="a running Ray cluster's HOST:PORT (default: a local Ray instance)")
    run.add_argument("--threads", type=_integer, metavar="N",
                     help="PyTorch threads per unit of work, in every process (default: the scenario's "
                          "execution.threads, else 1; the last digits depend on it, so a run folder keeps its count)")
    run.set_defaults(handler=_run)

    report = commands.add_parser("report", help="write a run folder's self-contained HTML page (report.html)")
    report.add_argument("run_dir", type=Path, help="a folder written by `linksim run`, e.g. runs/cliff_vs_smooth")
    report.add_argument("--out", type=Path, help="the HTML file (default: RUN_DIR/report.html)")
    report.set_defaults(handler=_report)

    _add_train_commands(commands)
    _add_measure_commands(commands)

    models = commands.add_parser("models", help="list every artifact (of every kind) that loads by name")
    models.set_defaults(handler=_models)

    metrics = commands.add_parser("metrics", help="list every metric, what it needs and whether it can run here")
    metrics.set_defaults(handler=_metrics)

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
