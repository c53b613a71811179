"""One artifact format, one loader: zoo.load for every kind and every shipped folder,
save_pretrained → load round trips, folders without a kind, refusals, `linksim models`."""

from __future__ import annotations

import ast
import json
import shutil
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from linksim import zoo
from linksim.cli import main
from linksim.errors import ConfigError
from linksim.jscc.linear import LinearBasis
from linksim.jscc.models import DeepJSCC, DeepJSCCConfig
from linksim.restore.inn import ConditionalINN, ConditionalINNConfig
from linksim.restore.priors import Prior

SHIPPED = sorted(p.name for p in zoo.SHIPPED_DIR.iterdir() if p.is_dir())


def _perturbed(module: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    """``module`` with every parameter and float buffer moved off its initial value (so that a
    round trip of a freshly built model could not pass by accident)."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for tensor in list(module.parameters()) + [b for b in module.buffers() if b.is_floating_point()]:
            tensor.add_(0.01 * torch.randn(tensor.shape, generator=generator, dtype=tensor.dtype))
    return module


def _assert_same_state(a: dict, b: dict) -> None:
    assert sorted(a) == sorted(b)  # safetensors files keep their tensors sorted by name
    for key in a:
        assert a[key].dtype == b[key].dtype and torch.equal(a[key].cpu(), b[key].cpu()), key


# ----------------------------------------------------------------------------- every shipped folder

def _check_deepjscc(obj, record, folder):
    assert isinstance(obj, DeepJSCC) and not obj.training and obj.name == folder.name
    assert obj.config == DeepJSCCConfig.from_dict(record["config"])
    assert obj.to_latent.out_channels == record["config"]["latent_channels"]


def _check_linear(obj, record, folder):
    assert isinstance(obj, LinearBasis) and obj.name == folder.name
    assert (obj.block, obj.dim) == (record["config"]["block"], record["config"]["dim"])
    # the shipped basis is orthonormal (rows of `components`)
    components = obj.components.double()
    assert torch.allclose(components @ components.T, torch.eye(obj.dim, dtype=torch.float64), atol=1e-4)


def _check_inn(obj, record, folder):
    assert isinstance(obj, ConditionalINN) and not obj.training and obj.meta == record
    assert obj.config == ConditionalINNConfig.from_dict(record["config"])
    assert (obj.embedding is not None) == record["config"]["conditional"]
    assert not any(p.requires_grad for p in obj.parameters())


def _check_prior(obj, record, folder):
    size = record["config"]["sample_size"]
    assert isinstance(obj, Prior) and obj.path == folder
    assert obj.image_shape == (record["config"]["in_channels"], size, size)
    assert obj.scheduler.config.num_train_timesteps == record["scheduler"]["num_train_timesteps"]


def _check_base(obj, record, folder):
    from linksim.restore.diffjscc import DiffJSCCPipeline

    vae = record["config"]["vae"]
    assert isinstance(obj, DiffJSCCPipeline)
    assert obj.latent_channels == vae["latent_channels"]
    assert obj.downsampling == 2 ** (len(vae["block_out_channels"]) - 1)
    # a fresh control module: the unsteered base model (every zero conv exactly zero)
    assert all(float(p.detach().abs().max()) == 0 for p in obj.controlled.control.zero_conv_mid.parameters())


def _check_control(obj, record, folder):
    from linksim.restore.diffjscc import DiffJSCCPipeline

    assert isinstance(obj, DiffJSCCPipeline)
    control = obj.controlled.control
    assert control.config.snr_embedding == record["config"].get("snr_embedding", True)
    assert list(obj.controlled.unet.config.block_out_channels) == record["config"]["base_block_out_channels"]
    _assert_same_state(load_file(str(folder / "model.safetensors")), control.state_dict())


CHECKS = {"deepjscc": _check_deepjscc, "linear-basis": _check_linear, "inn": _check_inn, "ddpm-prior": _check_prior,
          "diffjscc-base": _check_base, "diffjscc-control": _check_control}


def test_the_checks_cover_every_kind_and_every_kind_is_shipped():
    assert set(CHECKS) == set(zoo.kinds())
    assert {zoo.identify(zoo.SHIPPED_DIR / name)["kind"] for name in SHIPPED} == set(zoo.kinds())
    assert zoo.available() == SHIPPED or set(SHIPPED) <= set(zoo.available())


@pytest.mark.parametrize("name", SHIPPED)
def test_every_shipped_folder_loads_by_name(name, monkeypatch):
    monkeypatch.delenv("LINKSIM_CHECKPOINTS", raising=False)
    folder = zoo.SHIPPED_DIR / name
    record = zoo.identify(folder)
    assert record is not None, f"{name}: not recognised"
    obj = zoo.load(name)
    CHECKS[record["kind"]](obj, record, folder)
    assert name in zoo.available(record["kind"])


def test_shipped_control_modules_have_no_kind_and_still_load():
    controls = zoo.available("diffjscc-control")
    assert {"diffjscc-control-r1_192", "diffjscc-control-r1_192-spatial"} <= set(controls)
    for name in controls:
        assert "kind" not in json.loads((zoo.SHIPPED_DIR / name / "config.json").read_text())


# ----------------------------------------------------------------------------- folders without a kind

def test_a_control_folder_without_kind_or_training_record_loads_on_a_given_base(tmp_path):
    folder = tmp_path / "ctrl"
    shutil.copytree(zoo.SHIPPED_DIR / "diffjscc-control-r1_192-spatial", folder)
    (folder / "training.json").unlink()  # nothing names the base any more
    assert zoo.identify(folder)["kind"] == "diffjscc-control"
    with pytest.raises(ConfigError) as caught:
        zoo.load(folder)
    assert caught.value.field == "base" and "base=" in str(caught.value)
    with pytest.raises(ConfigError) as caught:
        zoo.load(folder, base="no-such-base")
    assert caught.value.field == "base" and "diffjscc-base-natural" in str(caught.value)
    pipeline = zoo.load(folder, base="diffjscc-base-natural")
    assert pipeline.controlled.control.snr_embedding is None  # the spatial-only ablation
    _assert_same_state(load_file(str(folder / "model.safetensors")), pipeline.controlled.control.state_dict())


def test_diffusers_folders_without_linksim_record_are_recognised(tmp_path):
    pytest.importorskip("diffusers")
    from diffusers import UNet2DModel

    from diffjscc_tiny import save_tiny_base

    base = save_tiny_base(tmp_path / "sd-like")  # vae/, unet/, scheduler/; no root config.json
    assert zoo.identify(base)["kind"] == "diffjscc-base"
    assert "VAE f = 2" in zoo.describe(base)
    assert zoo.load(base).downsampling == 2
    unet = UNet2DModel(sample_size=8, in_channels=3, out_channels=3, block_out_channels=(8, 16), layers_per_block=1,
                       down_block_types=("DownBlock2D",) * 2, up_block_types=("UpBlock2D",) * 2, norm_num_groups=4)
    unet.save_pretrained(tmp_path / "unet-only", safe_serialization=True)
    assert zoo.identify(tmp_path / "unet-only")["kind"] == "ddpm-prior"
    prior = zoo.load(tmp_path / "unet-only")
    assert isinstance(prior, Prior) and prior.image_shape == (3, 8, 8)
    _assert_same_state(unet.state_dict(), prior.unet.state_dict())


# ----------------------------------------------------------------------------- save_pretrained → load

def _tiny_deepjscc():
    return _perturbed(DeepJSCC(DeepJSCCConfig(latent_channels=2, widths=(4, 4), snr_range_db=(0, 10))))


def _tiny_inn():
    return _perturbed(ConditionalINN(ConditionalINNConfig(width=4, blocks=1, pairs=1, emb_dim=8)))


def _tiny_basis():
    return _perturbed(LinearBasis(block=2))


@pytest.mark.parametrize("make, cls", [(_tiny_deepjscc, DeepJSCC), (_tiny_inn, ConditionalINN),
                                       (_tiny_basis, LinearBasis)], ids=["deepjscc", "inn", "linear-basis"])
def test_save_pretrained_then_load_gives_back_equal_weights(make, cls, tmp_path):
    model = make()
    folder = model.save_pretrained(tmp_path / "tiny", card="# tiny\n", extra={"step": 7})
    assert sorted(p.name for p in folder.iterdir()) == ["MODEL_CARD.md", "config.json", "model.safetensors"]
    record = json.loads((folder / "config.json").read_text())
    assert record["kind"] in zoo.kinds() and record["step"] == 7
    loaded = zoo.load(folder)
    assert type(loaded) is cls and loaded.name == "tiny"
    _assert_same_state(model.state_dict(), loaded.state_dict())
    _assert_same_state(model.state_dict(), cls.from_pretrained(folder).state_dict())
    # saved again without a card: the card written before stays
    make().save_pretrained(folder)
    assert (folder / "MODEL_CARD.md").read_text() == "# tiny\n"


def test_a_tiny_deepjscc_round_trip_computes_the_same_link(tmp_path):
    from linksim.channel import make_channel

    model = _tiny_deepjscc().eval()
    loaded = zoo.load(model.save_pretrained(tmp_path / "ck"))
    x = torch.rand(2, 3, 16, 16, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        a = model(x, torch.tensor([0.0, 8.0]), make_channel("awgn"), torch.Generator().manual_seed(3))
        b = loaded(x, torch.tensor([0.0, 8.0]), make_channel("awgn"), torch.Generator().manual_seed(3))
    assert torch.equal(a, b)


def test_control_module_save_pretrained_then_load(tmp_path):
    pytest.importorskip("diffusers")
    from linksim.restore.diffjscc_control import ControlModule
    from diffjscc_tiny import save_tiny_base, tiny_unet

    base = save_tiny_base(tmp_path / "base")
    control = _perturbed(ControlModule.from_unet(tiny_unet(), snr_embedding=False), seed=1)
    folder = control.save_pretrained(tmp_path / "ctrl", card="# control\n", base=str(base))
    record = json.loads((folder / "config.json").read_text())
    assert record["kind"] == "diffjscc-control" and record["base"] == str(base)
    assert record["config"] == control.config.to_dict()
    pipeline = zoo.load(folder)  # the base comes from the record
    _assert_same_state(control.state_dict(), pipeline.controlled.control.state_dict())
    # ControlModule.load reads the new form as it reads ControlModule.save's
    again = ControlModule.load(folder, pipeline.controlled.unet)
    _assert_same_state(control.state_dict(), again.state_dict())


# ----------------------------------------------------------------------------- refusals

def test_an_unknown_kind_is_refused_naming_the_known_ones(tmp_path):
    folder = _tiny_deepjscc().save_pretrained(tmp_path / "ck")
    record = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps({**record, "kind": "mystery"}))
    with pytest.raises(ConfigError) as caught:
        zoo.load(folder)
    error = caught.value
    assert error.field == "checkpoint.kind" and error.value == "mystery"
    assert all(kind in error.allowed for kind in zoo.kinds())
    assert "mystery" in zoo.describe(folder) and "does not know" in zoo.describe(folder)


def test_a_missing_folder_or_name_is_refused_naming_the_names(tmp_path, monkeypatch):
    _tiny_deepjscc().save_pretrained(tmp_path / "mine")
    monkeypatch.setenv("LINKSIM_CHECKPOINTS", str(tmp_path))
    assert isinstance(zoo.load("mine"), DeepJSCC)  # a name under $LINKSIM_CHECKPOINTS
    for missing in ("no-such-model", str(tmp_path / "nowhere")):
        with pytest.raises(ConfigError) as caught:
            zoo.load(missing)
        assert caught.value.field == "checkpoint" and caught.value.value == missing
        assert "'mine'" in caught.value.allowed and "'deepjscc-awgn-r1_48'" in caught.value.allowed


def test_pickled_weights_are_refused(tmp_path):
    model = _tiny_deepjscc()
    only = tmp_path / "pickle-only"
    only.mkdir()
    torch.save(model.state_dict(), only / "model.pt")
    with pytest.raises(ConfigError) as caught:  # no config.json at all
        zoo.load(only)
    assert caught.value.field == "checkpoint" and caught.value.value == str(only)
    assert "model.pt" in caught.value.allowed and "never loaded" in caught.value.allowed
    assert "deepjscc" in caught.value.allowed  # the kinds that would be
    folder = model.save_pretrained(tmp_path / "converted-badly")
    (folder / "model.safetensors").unlink()
    torch.save(model.state_dict(), folder / "model.pt")
    with pytest.raises(ConfigError) as caught:  # a config.json, the weights only as a pickle
        zoo.load(folder)
    assert caught.value.field == "checkpoint" and "model.safetensors is missing" in caught.value.allowed
    assert "model.pt is pickled and never loaded" in caught.value.allowed
    with pytest.raises(ConfigError) as caught:  # a pickle path
        zoo.load(folder / "model.pt")
    assert caught.value.field == "checkpoint" and "pickle" in caught.value.allowed


def test_base_is_only_for_a_control_module(tmp_path):
    folder = _tiny_deepjscc().save_pretrained(tmp_path / "ck")
    with pytest.raises(ConfigError) as caught:
        zoo.load(folder, base="diffjscc-base-natural")
    assert caught.value.field == "base" and "diffjscc-control" in caught.value.allowed


# ----------------------------------------------------------------------------- listing, layering

def test_linksim_models_lists_every_kind(tmp_path, monkeypatch, capsys):
    folder = _tiny_basis().save_pretrained(tmp_path / "my-basis", extra={"images": 3})
    shutil.copytree(folder, tmp_path / "odd")
    record = json.loads((tmp_path / "odd" / "config.json").read_text())
    (tmp_path / "odd" / "config.json").write_text(json.dumps({**record, "kind": "mystery"}))
    monkeypatch.setenv("LINKSIM_CHECKPOINTS", str(tmp_path))
    assert main(["models"]) == 0
    rows = {line.split()[0]: line.split()[1] for line in capsys.readouterr().out.splitlines() if line.strip()}
    assert set(rows.values()) == set(zoo.kinds()) | {"mystery"}
    assert rows["my-basis"] == "linear-basis" and rows["odd"] == "mystery"
    assert all(rows[name] == zoo.identify(zoo.locate(name))["kind"] for name in SHIPPED)


def test_zoo_imports_no_model_package_when_imported():
    """zoo is neutral: the restore layer uses it, so its module-level imports stay out of
    channel/digital/jscc/restore (each kind's classes are imported when it loads)."""
    tree = ast.parse(Path(zoo.__file__).read_text())
    top = set()
    for node in tree.body:
        if isinstance(node, ast.ImportFrom) and node.module:
            top.add(node.module)
        elif isinstance(node, ast.Import):
            top.update(alias.name for alias in node.names)
    assert "linksim.errors" in top  # the walk did see the imports
    assert not {m for m in top if m.split(".")[:2] in (["linksim", "channel"], ["linksim", "digital"],
                                                       ["linksim", "jscc"], ["linksim", "restore"])}
