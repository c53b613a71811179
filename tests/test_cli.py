"""The command line end to end: a tiny sweep, determinism, resume, and clean failures."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image

from linksim.cli import main
from linksim.results import COLUMNS, read_results


def write_scenario(tmp_path: Path, folder: Path, **changes) -> Path:
    scenario = {
        "name": "tiny",
        "seed": 7,
        "images": str(folder),
        "channel": "awgn",
        "snr_db": [-6, 0, 6],
        "trials": 2,
        "bandwidth": {"cpp": 1},
        "schemes": [
            {"name": "BPG + LDPC 1/2", "type": "separate", "codec": {"name": "bpg", "chroma": "420"},
             "mcs": {"code": "wifi-648-1/2", "modulation": "qpsk"}, "decoder": {"iterations": 10}},
            {"name": "BPG + capacity", "type": "capacity", "codec": {"name": "bpg", "chroma": "420"}},
        ],
        "metrics": ["psnr", "ms_ssim", "lpips"],
        "grid": {"snr_db": [-6, 6], "images": 1},
        "output": str(tmp_path / "default-out"),
    }
    scenario.update(changes)
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(scenario))
    return path


@pytest.fixture()
def image_folder(tmp_path, photo):
    folder = tmp_path / "imgs"
    folder.mkdir()
    Image.fromarray(photo[:64, :96]).save(folder / "crop.png")
    return folder


def test_run_writes_results_plots_and_is_reproducible(tmp_path, image_folder, capsys):
    scenario = write_scenario(tmp_path, image_folder)
    assert main(["run", str(scenario), "--out", str(tmp_path / "a"), "--quiet"]) == 0
    assert main(["run", str(scenario), "--out", str(tmp_path / "b"), "--quiet"]) == 0
    a, b = (tmp_path / d / "results.csv" for d in "ab")
    assert a.read_bytes() == b.read_bytes()  # same scenario and seed → identical results.csv
    rows = read_results(a)
    assert len(rows) == 2 * 3 * 2
    assert list(rows[0]) == COLUMNS
    for name in ("summary.csv", "psnr_vs_snr.png", "grid.png", "scenario.json"):
        assert (tmp_path / "a" / name).exists(), name
    for r in rows:  # QPSK at R = 1/2 carries one information bit per complex use: Eb/N0 = SNR
        assert (r["ebno_db"] is None) == (r["scheme"] == "BPG + capacity")
        assert r["ebno_db"] is None or r["ebno_db"] == pytest.approx(r["snr_db"], abs=1e-6)
    capacity_psnr = {r["snr_db"]: r["psnr"] for r in rows if r["scheme"] == "BPG + capacity"}
    assert capacity_psnr[6.0] > capacity_psnr[-6.0]
    assert all(r["lpips"] is None or 0 <= r["lpips"] <= 1 for r in rows)
    printed = capsys.readouterr().out
    assert "cliff of BPG + LDPC 1/2" in printed
    assert "cliff of BPG + capacity" not in printed  # an ideal code never loses the image: no cliff line


def test_rerun_skips_points_already_written(tmp_path, image_folder, capsys):
    scenario = write_scenario(tmp_path, image_folder)
    out = tmp_path / "resume"
    assert main(["run", str(scenario), "--out", str(out), "--quiet"]) == 0
    before = (out / "results.csv").read_bytes()
    capsys.readouterr()
    assert main(["run", str(scenario), "--out", str(out), "--quiet"]) == 0
    assert "0 point(s) computed, 12 already" in capsys.readouterr().out
    assert (out / "results.csv").read_bytes() == before


def test_resume_refuses_a_changed_scenario(tmp_path, image_folder, capsys):
    out = tmp_path / "changed"
    assert main(["run", str(write_scenario(tmp_path, image_folder)), "--out", str(out), "--quiet"]) == 0
    assert main(["run", str(write_scenario(tmp_path, image_folder, seed=8)), "--out", str(out), "--quiet"]) == 2
    assert "seed" in capsys.readouterr().err


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "linksim.cli", *args], capture_output=True, text=True, timeout=300)


@pytest.mark.parametrize(
    "change, field",
    [
        ({"snr_db": []}, "snr_db"),
        ({"bandwidth": {"bcr": 2}}, "bandwidth.bcr"),
        ({"schemes": [{"name": "x", "type": "analog-magic"}]}, "schemes[0].type"),
        ({"images": "/nonexistent/folder"}, "/nonexistent/folder"),
    ],
)
def test_bad_input_is_one_line_exit_2_and_writes_nothing(tmp_path, image_folder, change, field):
    out = tmp_path / "never"
    result = run_cli("run", str(write_scenario(tmp_path, image_folder, **change)), "--out", str(out), "--quiet")
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and field in lines[0], result.stderr
    assert not out.exists()


def test_corrupt_image_is_refused_before_any_output(tmp_path, image_folder):
    (image_folder / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"garbage" * 10)
    out = tmp_path / "never"
    result = run_cli("run", str(write_scenario(tmp_path, image_folder)), "--out", str(out), "--quiet")
    assert result.returncode == 2 and "broken.png" in result.stderr and "Traceback" not in result.stderr
    assert not out.exists()


def test_image_too_small_for_the_bandwidth_is_refused(tmp_path):
    folder = tmp_path / "tiny-imgs"
    folder.mkdir()
    Image.fromarray(np.zeros((3, 3, 3), np.uint8)).save(folder / "dot.png")
    out = tmp_path / "never"
    result = run_cli("run", str(write_scenario(tmp_path, folder, bandwidth={"cpp": "1/16"})), "--out", str(out), "--quiet")
    assert result.returncode == 2 and "cpp" in result.stderr and "Traceback" not in result.stderr
    assert not out.exists()


def test_missing_scenario_file(tmp_path):
    result = run_cli("run", str(tmp_path / "nope.yaml"))
    assert result.returncode == 2 and "nope.yaml" in result.stderr


def test_models_lists_checkpoints_with_their_bandwidth(tmp_path, monkeypatch, capsys):
    from linksim import zoo
    from linksim.jscc.models import DeepJSCC, DeepJSCCConfig

    config = DeepJSCCConfig(latent_channels=2, widths=(4, 4), channel="rayleigh-block", snr_range_db=(0, 10))
    zoo.save_checkpoint(DeepJSCC(config), tmp_path / "tiny-r1_48", "deepjscc", config.to_dict())
    monkeypatch.setenv("LINKSIM_CHECKPOINTS", str(tmp_path))
    assert main(["models"]) == 0
    line = next(l for l in capsys.readouterr().out.splitlines() if l.startswith("tiny-r1_48"))
    # c = 2 real outputs per 4×4 block of 48 real samples: ρ = 1 complex use / 48 samples
    assert "ρ = 1/48" in line and "rayleigh-block" in line and "SNR 0…10 dB" in line


def test_models_lists_the_shipped_diffjscc_base_and_control_modules(capsys):
    # the base is a diffusers folder (no root model.safetensors), the controls have no "kind": both load by name
    assert main(["models"]) == 0
    lines = {l.split()[0]: l for l in capsys.readouterr().out.splitlines() if l.strip()}
    assert "VAE f = 4" in lines["diffjscc-base-natural"]
    assert "spatial + SNR" in lines["diffjscc-control-r1_192"]
    assert "spatial only" in lines["diffjscc-control-r1_192-spatial"]


# ----------------------------------------------------------------------------- train flags from the settings

TRAINERS = ["deepjscc", "prior", "inn", "diffjscc-base", "diffjscc-control"]
#: every flag `linksim train X` accepted before the flags were generated from the settings
FLAGS_IN_USE = {
    "deepjscc": "--bcr --channel --snr-range --loss --lpips-weight --arch --af-gate --linear-path --data --val-data "
                "--steps --batch --crop --lr --seed --widths --save-every --init --float32 --val-every --device "
                "--out --keep-state --command-line --quiet",
    "prior": "--data --size --channels --layers-per-block --attention-res --steps --batch --lr --ema --seed "
             "--save-every --bf16 --device --samples --out --keep-state --command-line --quiet",
    "inn": "--deepjscc --data --val-data --snr-range --commin --channel --size --levels --pairs --width --blocks "
           "--detail-weight --steps --batch --lr --seed --save-every --out --keep-state --command-line --quiet",
    "diffjscc-base": "--data --crop --vae-channels --latent-channels --vae-layers --kl-weight --vae-steps --vae-batch "
                     "--vae-lr --unet-channels --unet-layers --text-dim --unet-steps --unet-batch --unet-lr --ema "
                     "--seed --save-every --bf16 --device --out --keep-state --command-line --quiet",
    "diffjscc-control": "--deepjscc --base --data --snr-range --channel --size --steps --batch --lr --seed "
                        "--save-every --device --no-snr --out --keep-state --command-line --quiet",
}


def _subparser(*path: str):
    from linksim.cli import build_parser

    parser = build_parser()
    for name in path:
        action = next(a for a in parser._actions if a.__class__.__name__ == "_SubParsersAction")
        parser = action.choices[name]
    return parser


@pytest.mark.parametrize("trainer", TRAINERS)
def test_every_setting_has_a_flag_with_its_default_and_a_help(trainer):
    import dataclasses

    from linksim.cli import settings_class

    cls = settings_class(trainer)
    actions = {a.dest: a for a in _subparser("train", trainer)._actions}
    for f in dataclasses.fields(cls):
        action = actions[f.name]  # KeyError: a setting without a flag
        assert action.help and action.help.strip(), f.name
        if f.default is not dataclasses.MISSING:
            assert action.default == f.default and not action.required, f.name
        elif f.default_factory is not dataclasses.MISSING:
            assert action.default == f.default_factory(), f.name
        else:
            assert action.required, f.name


@pytest.mark.parametrize("trainer", TRAINERS)
def test_every_flag_in_use_is_still_accepted(trainer):
    flags = {s for a in _subparser("train", trainer)._actions for s in a.option_strings}
    assert set(FLAGS_IN_USE[trainer].split()) <= flags


@pytest.mark.parametrize("path", [("train", t) for t in TRAINERS + ["linear-basis"]]
                         + [("eval", "deepjscc"), ("calibrate", "sigma-y"), ("run",)])
def test_help_of_every_subcommand(path, capsys):
    with pytest.raises(SystemExit) as exit_:
        main([*path, "--help"])
    assert exit_.value.code == 0 and "usage: linksim " + " ".join(path) in capsys.readouterr().out


@pytest.mark.parametrize("trainer, required", [
    ("deepjscc", ["--bcr", "1/48", "--data", "d"]),
    ("prior", ["--data", "d"]),
    ("inn", ["--deepjscc", "m", "--data", "d"]),
    ("diffjscc-base", ["--data", "d"]),
])
def test_flags_left_out_give_the_default_settings(trainer, required):
    """The settings built from the parsed flags equal the dataclass's own defaults (tuples stay tuples)."""
    from linksim.cli import build_parser, settings_class
    from linksim.train.flags import settings_from_args

    cls = settings_class(trainer)
    args = build_parser().parse_args(["train", trainer, *required, "--out", "o"])
    given = {"bcr": 1 / 48, "data": ["d"], "deepjscc": "m"}
    expected = cls(**{k: v for k, v in given.items() if k in cls.__dataclass_fields__})
    assert settings_from_args(cls, args).to_dict() == expected.to_dict()


def test_inverted_and_typed_flags_reach_the_settings():
    from linksim.cli import build_parser
    from linksim.train.deepjscc import DeepJSCCSettings
    from linksim.train.flags import settings_from_args
    from linksim.train.inn import INNSettings

    args = build_parser().parse_args(["train", "deepjscc", "--bcr", "1/12", "--data", "a", "b", "--float32",
                                      "--snr-range", "0", "10", "--widths", "8", "16", "--out", "o"])
    s = settings_from_args(DeepJSCCSettings, args)
    assert (s.bcr, s.data, s.bf16, s.snr_range, s.widths) == (1 / 12, ["a", "b"], False, (0.0, 10.0), (8, 16))
    args = build_parser().parse_args(["train", "inn", "--deepjscc", "m", "--data", "d", "--commin",
                                      "--snr-range", "1", "1", "--out", "o"])
    s = settings_from_args(INNSettings, args)
    assert not s.conditional and s.snr_range == (1.0, 1.0)
    with pytest.raises(SystemExit):
        build_parser().parse_args(["train", "deepjscc", "--bcr", "0", "--data", "d", "--out", "o"])


def _makefile_commands() -> list[list[str]]:
    """Every `linksim train|eval|calibrate` command of the Makefile, its make variables expanded."""
    import re
    import shlex

    text = (Path(__file__).parents[1] / "Makefile").read_text().replace("\\\n", " ")
    variables = dict(re.findall(r"^(\w+)\s*[:?]?=\s*(.*)$", text, flags=re.M))
    commands = []
    for line in text.splitlines():
        if re.match(r"^\w+\s*[:?]?=", line):
            continue
        for _ in range(3):  # variables inside variables
            line = re.sub(r"\$\((\w+)\)", lambda m: variables.get(m.group(1), m.group(0)), line)
        line = line.replace("$$(seq -5 15)", "-5 0 15").replace("$$", "")
        commands += [shlex.split(m) for m in re.findall(r"linksim ((?:train|eval|calibrate) [^;]*)", line)]
    return commands


def test_every_makefile_training_line_parses():
    from linksim.cli import build_parser, settings_class
    from linksim.train.flags import settings_from_args

    commands = _makefile_commands()
    assert {c[1] for c in commands if c[0] == "train"} == {*TRAINERS, "linear-basis"}
    for argv in commands:
        args = build_parser().parse_args(argv)
        if argv[0] == "train" and argv[1] in TRAINERS and argv[1] != "diffjscc-control":  # control reads its base
            settings_from_args(settings_class(argv[1]), args)


#: The settings of a DeepJSCC training command that decide its weights (paths and flags such as
#: --quiet do not).
WEIGHT_SETTINGS = ("bcr", "channel", "snr_range", "steps", "batch", "crop", "lr", "seed", "loss", "linear_path",
                   "af_gate", "save_every", "val_every")


def _weight_settings(argv: list[str]) -> dict:
    from linksim.cli import build_parser

    args = build_parser().parse_args(argv)
    return {name: getattr(args, name) for name in WEIGHT_SETTINGS}


def test_the_makefile_retrains_each_shipped_deepjscc_as_its_card_records_it():
    """`make checkpoints` must rebuild what is shipped: for every DeepJSCC checkpoint, the Makefile's
    command for it and the runs it continues (its --init, followed while ρ and channel stay the
    same) carry the settings of the commands its config.json records (lineage, then command)."""
    import shlex

    from linksim import zoo

    commands = {Path(c[c.index("--out") + 1]).name: c for c in _makefile_commands() if c[:2] == ["train", "deepjscc"]}
    for folder in sorted(zoo.SHIPPED_DIR.glob("deepjscc-*")):
        meta = zoo.read_config(folder)
        recorded = [shlex.split(stage["command"])[1:] for stage in meta.get("lineage", [])]
        recorded.append(shlex.split(meta["command"])[1:])
        chain = [commands[folder.name]]
        while "--init" in chain[0]:
            earlier = commands.get(Path(chain[0][chain[0].index("--init") + 1]).name)
            same_model = earlier is not None and all(_weight_settings(earlier)[k] == _weight_settings(chain[0])[k]
                                                     for k in ("bcr", "channel"))
            if not same_model or Path(earlier[earlier.index("--out") + 1]).parent.name == "checkpoints":
                break
            chain.insert(0, earlier)
        assert [_weight_settings(c) for c in chain] == [_weight_settings(c) for c in recorded], folder.name
