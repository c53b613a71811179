"""DiffJSCC's control module on a tiny random UNet2DConditionModel (CPU, a few seconds)."""

from __future__ import annotations

import json
import os

import pytest
import torch

pytest.importorskip("diffusers")
from diffjscc_tiny import LATENT_CHANNELS, LATENT_SIZE, TEXT_DIM, tiny_unet  # noqa: E402

from linksim.errors import ConfigError  # noqa: E402
from linksim.restore.diffjscc_control import ControlledUNet, ControlModule, SNRTimeEmbedding  # noqa: E402

B, L = 2, 5
C, S, D = LATENT_CHANNELS, LATENT_SIZE, TEXT_DIM


def inputs(seed: int = 1):
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(B, C, S, S, generator=g), torch.tensor([10, 700]), torch.randn(B, C, S, S, generator=g),
            torch.randn(B, L, D, generator=g))


def randomize_zero_convs(control: ControlModule, seed: int = 3, snr_too: bool = False) -> None:
    g = torch.Generator().manual_seed(seed)
    mods = list(control.zero_convs_down) + [control.zero_conv_mid]
    if snr_too:
        mods.append(control.snr_embedding.mlp.linear_2)
    with torch.no_grad():
        for m in mods:
            for p in m.parameters():
                p.copy_(0.1 * torch.randn(p.shape, generator=g))


@pytest.fixture(scope="module")
def unet():
    return tiny_unet()


def test_structure_mirrors_controlnet(unet):
    control = ControlModule.from_unet(unet)
    # one zero conv per skip tensor: conv_in, 1 resnet + 1 downsampler, 1 resnet → 4; plus the mid
    assert len(control.zero_convs_down) == 4 and control.zero_conv_mid is not None
    assert control.conv_in.weight.shape == (32, 2 * C, 3, 3)
    assert torch.equal(control.conv_in.weight[:, :C], unet.conv_in.weight)
    assert torch.equal(control.conv_in.weight[:, C:], torch.zeros_like(control.conv_in.weight[:, C:]))
    assert torch.equal(control.down_blocks[0].resnets[0].conv1.weight, unet.down_blocks[0].resnets[0].conv1.weight)
    assert control.down_blocks[0] is not unet.down_blocks[0]  # a copy, not the same module
    sample, t, cond, text = inputs()
    down, mid = control(sample, t, cond, torch.tensor([0.0, 10.0]), text)
    assert [tuple(r.shape) for r in down] == [(B, 32, 8, 8), (B, 32, 8, 8), (B, 32, 4, 4), (B, 64, 4, 4)]
    assert tuple(mid.shape) == (B, 64, 4, 4)
    with pytest.raises(ConfigError, match="condition"):
        control(sample, t, cond[:, :3], 0.0, text)


def test_fresh_snr_embedding_is_zero():
    emb = SNRTimeEmbedding(64, 16)
    out = emb(torch.tensor([-10.0, 0.0, 25.0]))
    assert out.shape == (3, 64) and torch.equal(out, torch.zeros(3, 64))
    assert emb(3.0, batch=4).shape == (4, 64)


def test_zero_init_reproduces_base_exactly(unet):
    model = ControlledUNet(unet)
    reference = tiny_unet()  # an independent base UNet with the same seed: the ground truth
    sample, t, cond, text = inputs()
    with torch.no_grad():
        expected = reference(sample, t, encoder_hidden_states=text).sample
        assert torch.equal(model.bare(sample, t, text), expected)
        for snr in (-5.0, 0.0, torch.tensor([3.0, 20.0])):
            out = model(sample, t, cond, snr, text)
            assert out.shape == (B, C, S, S)
            assert torch.equal(out, expected)


def test_nonzero_control_changes_output_and_reacts_to_snr(unet):
    model = ControlledUNet(unet)
    randomize_zero_convs(model.control, snr_too=True)
    sample, t, cond, text = inputs()
    with torch.no_grad():
        bare = model.bare(sample, t, text)
        a = model(sample, t, cond, torch.tensor([0.0, 0.0]), text)
        b = model(sample, t, cond, torch.tensor([15.0, 15.0]), text)
        c = model(sample, t, cond + 1.0, torch.tensor([0.0, 0.0]), text)
        # conv_in's condition channels start at zero (ControlNet-like): the condition enters once they move
        model.control.conv_in.weight[:, C:].normal_(0.0, 0.1, generator=torch.Generator().manual_seed(4))
        d = model(sample, t, cond, torch.tensor([0.0, 0.0]), text)
        e = model(sample, t, cond + 1.0, torch.tensor([0.0, 0.0]), text)
    assert not torch.allclose(a, bare, atol=1e-4)
    assert not torch.allclose(a, b, atol=1e-5)      # only the SNR changed
    assert torch.equal(a, c)                        # fresh condition channels: the condition has no effect yet
    assert not torch.allclose(d, e, atol=1e-5)      # only the condition changed


def test_adam_step_moves_control_only(unet):
    model = ControlledUNet(unet)
    base_before = {k: v.clone() for k, v in model.unet.state_dict().items()}
    ctrl_before = {k: v.clone() for k, v in model.control.state_dict().items()}
    assert all(not p.requires_grad for p in model.unet.parameters())
    params = list(model.trainable_parameters())
    assert params and sum(p.numel() for p in params) == sum(p.numel() for p in model.control.parameters())
    opt = torch.optim.Adam(params, lr=1e-3)
    sample, t, cond, text = inputs()
    target = torch.randn(B, C, S, S, generator=torch.Generator().manual_seed(9))
    model.train()
    assert not model.unet.training
    loss = torch.nn.functional.mse_loss(model(sample, t, cond, 5.0, text), target)
    opt.zero_grad()
    loss.backward()
    opt.step()
    for k, v in model.unet.state_dict().items():
        assert torch.equal(v, base_before[k]), k
    changed = [k for k, v in model.control.state_dict().items() if not torch.equal(v, ctrl_before[k])]
    assert any(k.startswith("zero_convs_down.") for k in changed) and any(k.startswith("zero_conv_mid.") for k in changed)


def test_save_load_round_trip(unet, tmp_path):
    control = ControlModule.from_unet(unet)
    randomize_zero_convs(control, snr_too=True)
    with torch.no_grad():
        control.conv_in.weight.add_(0.01)
    control.save(tmp_path / "ctrl")
    assert sorted(os.listdir(tmp_path / "ctrl")) == ["config.json", "model.safetensors"]
    loaded = ControlModule.load(tmp_path / "ctrl", unet)
    sd, sd2 = control.state_dict(), loaded.state_dict()
    assert sd.keys() == sd2.keys() and all(torch.equal(sd[k], sd2[k]) for k in sd)
    assert loaded.config == control.config
    sample, t, cond, text = inputs()
    with torch.no_grad():
        a = ControlledUNet(unet, control)(sample, t, cond, 7.0, text)
        b = ControlledUNet(unet, loaded)(sample, t, cond, 7.0, text)
    assert torch.equal(a, b)


def test_load_refuses_bad_folders(unet, tmp_path):
    control = ControlModule.from_unet(unet)
    control.save(tmp_path / "ok")
    ControlModule.load(tmp_path / "ok", unet)  # the good folder loads

    control.save(tmp_path / "noweights")
    os.remove(tmp_path / "noweights" / "model.safetensors")
    with pytest.raises(ConfigError, match="model.safetensors") as e:
        ControlModule.load(tmp_path / "noweights", unet)
    assert e.value.field == "folder"

    # a config whose condition_channels does not match the saved weights
    control.save(tmp_path / "mismatch")
    cfg_path = tmp_path / "mismatch" / "config.json"
    cfg = json.loads(cfg_path.read_text())
    cfg["condition_channels"] = 3
    cfg_path.write_text(json.dumps(cfg))
    with pytest.raises(ConfigError) as e:
        ControlModule.load(tmp_path / "mismatch", unet)
    assert e.value.field == "conv_in.weight"

    # a config saved for another base UNet
    cfg["condition_channels"] = C
    cfg["base_block_out_channels"] = [32, 128]
    cfg_path.write_text(json.dumps(cfg))
    with pytest.raises(ConfigError) as e:
        ControlModule.load(tmp_path / "mismatch", unet)
    assert e.value.field == "base_block_out_channels"

    # an unknown key
    cfg["base_block_out_channels"] = [32, 64]
    cfg["bogus"] = 1
    cfg_path.write_text(json.dumps(cfg))
    with pytest.raises(ConfigError, match="bogus"):
        ControlModule.load(tmp_path / "mismatch", unet)


# ------------------------------------------------------------------ ablation: spatial only


def test_spatial_only_control_ignores_the_snr(unet):
    spatial = ControlModule.from_unet(unet, snr_embedding=False)
    full = ControlModule.from_unet(unet)
    assert spatial.snr_embedding is None and spatial.config.snr_embedding is False
    assert full.config.snr_embedding is True
    n_snr = sum(p.numel() for p in full.snr_embedding.parameters())
    assert sum(p.numel() for p in spatial.parameters()) == sum(p.numel() for p in full.parameters()) - n_snr > 0
    assert not any(k.startswith("snr_embedding.") for k in spatial.state_dict())
    randomize_zero_convs(spatial)
    randomize_zero_convs(full, snr_too=True)  # the SNR MLP's last layer non-zero: the SNR now matters
    sample, t, cond, text = inputs()
    with torch.no_grad():
        for control, depends in ((spatial, False), (full, True)):
            model = ControlledUNet(unet, control)
            a = model(sample, t, cond, torch.tensor([0.0, 0.0]), text)
            b = model(sample, t, cond, torch.tensor([15.0, 15.0]), text)
            assert not torch.allclose(a, model.bare(sample, t, text), atol=1e-4)  # the control does act
            assert torch.equal(a, b) is not depends, depends
        # any snr_db is accepted (even None: it is not looked at)
        down, _ = spatial(sample, t, cond, None, text)
        assert torch.equal(down[0], spatial(sample, t, cond, 3.0, text)[0][0])
    with pytest.raises(ConfigError) as e:
        ControlModule.from_unet(unet, snr_embedding="no")
    assert e.value.field == "snr_embedding"


def test_snr_embedding_flag_round_trips_and_defaults_to_true(unet, tmp_path):
    spatial = ControlModule.from_unet(unet, snr_embedding=False)
    randomize_zero_convs(spatial)
    spatial.save(tmp_path / "spatial")
    assert json.loads((tmp_path / "spatial" / "config.json").read_text())["snr_embedding"] is False
    loaded = ControlModule.load(tmp_path / "spatial", unet)
    assert loaded.config == spatial.config and loaded.snr_embedding is None
    sd, sd2 = spatial.state_dict(), loaded.state_dict()
    assert sd.keys() == sd2.keys() and all(torch.equal(sd[k], sd2[k]) for k in sd)

    # a config.json written before the field existed: an SNR embedding (and its weights) expected
    full = ControlModule.from_unet(unet)
    full.save(tmp_path / "old")
    cfg_path = tmp_path / "old" / "config.json"
    cfg = json.loads(cfg_path.read_text())
    del cfg["snr_embedding"]
    cfg_path.write_text(json.dumps(cfg))
    old = ControlModule.load(tmp_path / "old", unet)
    assert old.config.snr_embedding is True and isinstance(old.snr_embedding, SNRTimeEmbedding)

    # weights and flag that disagree are refused, naming the tensor; a non-bool flag, naming the field
    cfg["snr_embedding"] = False
    cfg_path.write_text(json.dumps(cfg))
    with pytest.raises(ConfigError) as e:
        ControlModule.load(tmp_path / "old", unet)
    assert e.value.field.startswith("snr_embedding.")
    cfg["snr_embedding"] = "yes"
    cfg_path.write_text(json.dumps(cfg))
    with pytest.raises(ConfigError) as e:
        ControlModule.load(tmp_path / "old", unet)
    assert e.value.field == "snr_embedding"
