"""Checkpoints (docs/ARCHITECTURE.md §6): safetensors + JSON config round-trip bit-exactly; pickles and mismatches are refused."""

from __future__ import annotations

import json
import struct
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from linksim import zoo
from linksim.channel import make_channel
from linksim.errors import ConfigError
from linksim.jscc.models import BOURTSOULATZE, DeepJSCC, DeepJSCCConfig

CONFIGS = {
    "adaptive": DeepJSCCConfig(latent_channels=4, widths=(8, 8), channel="rayleigh-block", snr_range_db=(0, 20)),
    "bourtsoulatze": DeepJSCCConfig(latent_channels=2, **{**BOURTSOULATZE, "widths": (8, 16)}),
}


def _model(config: DeepJSCCConfig, seed: int = 0) -> DeepJSCC:
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        model = DeepJSCC(config)
        with torch.no_grad():  # move every tensor off its initial value (PReLU, GDN, biases too)
            for p in model.parameters():
                p.add_(0.01 * torch.randn_like(p))
    return model


def _save(model: DeepJSCC, folder: Path, card: str | None = "# tiny\n") -> Path:
    return zoo.save_checkpoint(model, folder, "deepjscc", model.config.to_dict(), card=card)


# ----------------------------------------------------------------------------- round trip
@pytest.mark.parametrize("arch", list(CONFIGS))
def test_checkpoint_round_trip_is_bit_exact(arch, tmp_path):
    model = _model(CONFIGS[arch])
    folder = _save(model, tmp_path / f"tiny-{arch}")
    assert sorted(p.name for p in folder.iterdir()) == ["MODEL_CARD.md", "config.json", "model.safetensors"]
    assert [p.name for p in tmp_path.iterdir()] == [folder.name]  # no temporary folder left beside it
    assert json.loads((folder / "config.json").read_text())["kind"] == "deepjscc"

    loaded = zoo.load_deepjscc(folder)
    assert isinstance(loaded, DeepJSCC) and not loaded.training and loaded.name == folder.name
    assert loaded.config == model.config
    ours, theirs = model.state_dict(), loaded.state_dict()
    assert list(ours) == list(theirs)
    for name in ours:
        assert theirs[name].dtype == ours[name].dtype and torch.equal(theirs[name], ours[name]), name

    x = torch.rand(2, 3, 20, 12, generator=torch.Generator().manual_seed(0))
    model.eval()
    for channel in ("awgn", "rayleigh-block"):
        with torch.no_grad():
            a = model(x, torch.tensor([0.0, 12.0]), make_channel(channel), torch.Generator().manual_seed(9))
            b = loaded(x, torch.tensor([0.0, 12.0]), make_channel(channel), torch.Generator().manual_seed(9))
        assert torch.equal(a, b)


def test_overwriting_a_checkpoint_replaces_its_files(tmp_path):
    cfg = CONFIGS["adaptive"]
    folder = _save(_model(cfg, seed=0), tmp_path / "ck")
    second = _model(cfg, seed=1)
    _save(second, folder, card="# second\n")
    assert (folder / "MODEL_CARD.md").read_text() == "# second\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ck"]
    state = zoo.load_state(folder)
    assert all(torch.equal(state[k], v) for k, v in second.state_dict().items())


def test_names_resolve_through_linksim_checkpoints(tmp_path, monkeypatch):
    _save(_model(CONFIGS["adaptive"]), tmp_path / "my-tiny")
    monkeypatch.setenv("LINKSIM_CHECKPOINTS", str(tmp_path))
    assert zoo.resolve("my-tiny") == tmp_path / "my-tiny"
    assert "my-tiny" in zoo.available("deepjscc")
    assert zoo.resolve(tmp_path / "my-tiny" / "model.safetensors") == tmp_path / "my-tiny"  # the weights file
    assert zoo.load_deepjscc("my-tiny").name == "my-tiny"
    with pytest.raises(ConfigError) as e:
        zoo.resolve("no-such-model")
    assert e.value.field == "checkpoint" and "'no-such-model'" in str(e.value) and "my-tiny" in str(e.value)


def test_a_folder_without_its_config_is_refused(tmp_path):
    folder = _save(_model(CONFIGS["adaptive"]), tmp_path / "ck")
    (folder / "config.json").unlink()
    with pytest.raises(ConfigError) as e:
        zoo.load_deepjscc(folder)
    assert e.value.field == "checkpoint" and "config.json is missing" in str(e.value)


def test_a_valid_safetensors_file_whose_header_length_starts_like_a_pickle_loads(tmp_path):
    """The first 8 bytes are the header length: 0x80 (128) is a legal low byte, not a pickle opcode."""
    folder = tmp_path / "odd"
    folder.mkdir()
    tensors = {"w": torch.arange(6.0).reshape(2, 3)}
    for pad in range(300):
        save_file(tensors, str(folder / "model.safetensors"), metadata={"pad": "x" * pad})
        head = (folder / "model.safetensors").read_bytes()[:8]
        if head[:1] == b"\x80":
            break
    else:
        pytest.fail("no header length with low byte 0x80 found")
    assert struct.unpack("<Q", head)[0] % 256 == 0x80
    assert torch.equal(zoo.load_state(folder)["w"], tensors["w"])


# ----------------------------------------------------------------------------- refusals
@pytest.mark.parametrize("zipfile", [True, False], ids=["torch-zip", "legacy-pickle"])
def test_a_pickle_named_model_safetensors_is_refused(zipfile, tmp_path):
    model = _model(CONFIGS["adaptive"])
    folder = _save(model, tmp_path / "ck")
    torch.save(model.state_dict(), folder / "model.safetensors", _use_new_zipfile_serialization=zipfile)
    with pytest.raises(ConfigError) as e:
        zoo.load_deepjscc(folder)
    msg = str(e.value)
    assert e.value.field == "checkpoint" and str(folder / "model.safetensors") in msg
    assert "pickle" in msg and "safetensors" in msg and "never loaded" in msg


@pytest.mark.parametrize("suffix", [".pt", ".pth", ".PT"])
def test_a_pickle_path_is_refused(suffix, tmp_path):
    model = _model(CONFIGS["adaptive"])
    path = tmp_path / f"model{suffix}"
    torch.save(model.state_dict(), path)
    for target in (path, tmp_path / f"missing{suffix}"):  # refused by name, whether or not it exists
        with pytest.raises(ConfigError) as e:
            zoo.load_deepjscc(target)
        msg = str(e.value)
        assert e.value.field == "checkpoint" and repr(str(target)) in msg
        assert "model.safetensors + config.json" in msg and "pickle" in msg


def test_a_corrupt_safetensors_file_is_refused(tmp_path):
    folder = _save(_model(CONFIGS["adaptive"]), tmp_path / "ck")
    data = (folder / "model.safetensors").read_bytes()
    (folder / "model.safetensors").write_bytes(data[: len(data) // 2])  # truncated download
    with pytest.raises(ConfigError) as e:
        zoo.load_deepjscc(folder)
    assert e.value.field == "checkpoint" and "a valid safetensors file" in str(e.value)


def test_config_that_does_not_match_the_weights_is_refused(tmp_path):
    small = _model(DeepJSCCConfig(latent_channels=2, widths=(8, 8)))
    folder = tmp_path / "ck"
    zoo.save_checkpoint(small, folder, "deepjscc", DeepJSCCConfig(latent_channels=4, widths=(8, 8)).to_dict())
    with pytest.raises(ConfigError) as e:
        zoo.load_deepjscc(folder)
    msg = str(e.value)
    assert e.value.field == "checkpoint" and str(folder) in msg and "matching its config.json" in msg
    assert "has shape (2, 8, 5, 5), the config builds (4, 8, 5, 5)" in msg  # the first mismatching tensor


def test_a_missing_or_extra_tensor_is_refused(tmp_path):
    model = _model(CONFIGS["adaptive"])
    folder = _save(model, tmp_path / "ck")
    state = load_file(str(folder / "model.safetensors"))
    missing = dict(state)
    del missing["to_image.bias"]
    save_file(missing, str(folder / "model.safetensors"))
    with pytest.raises(ConfigError) as e:
        zoo.load_deepjscc(folder)
    assert "missing ['to_image.bias']" in str(e.value)
    save_file({**state, "extra.weight": torch.zeros(1)}, str(folder / "model.safetensors"))
    with pytest.raises(ConfigError) as e:
        zoo.load_deepjscc(folder)
    assert "unexpected ['extra.weight']" in str(e.value)


def test_wrong_kind_or_bad_config_is_refused(tmp_path):
    model = _model(CONFIGS["adaptive"])
    folder = zoo.save_checkpoint(model, tmp_path / "ck", "diffusion", model.config.to_dict())
    with pytest.raises(ConfigError) as e:
        zoo.load_deepjscc(folder)
    assert "a deepjscc checkpoint" in str(e.value) and "'diffusion'" in str(e.value)
    zoo.save_checkpoint(model, folder, "deepjscc", {**model.config.to_dict(), "latent_channels": 3})
    with pytest.raises(ConfigError) as e:
        zoo.load_deepjscc(folder)
    assert e.value.field == "latent_channels" and e.value.value == 3
    (folder / "config.json").write_text("{not json")
    with pytest.raises(ConfigError) as e:
        zoo.load_deepjscc(folder)
    assert e.value.field == "checkpoint.config" and "readable JSON" in str(e.value)
