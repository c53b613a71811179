"""Scenario validation: every bad field gets a one-line error naming field, value and what is allowed."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import yaml

from linksim.errors import ConfigError
from linksim.scenario import load_scenario, parse_scenario

BASE = {
    "name": "t",
    "seed": 1,
    "images": "samples",
    "channel": "awgn",
    "snr_db": {"start": -2, "stop": 2, "step": 1},
    "trials": 1,
    "bandwidth": {"cpp": "1/16"},
    "schemes": [
        {"name": "ldpc", "type": "separate", "codec": {"name": "bpg", "chroma": "420"},
         "mcs": {"code": "wifi-648-1/2", "modulation": "bpsk"}},
        {"name": "cap", "type": "capacity", "codec": "bpg"},
    ],
    "metrics": ["psnr"],
}


def with_change(path: str, value):
    raw = copy.deepcopy(BASE)
    target = raw
    keys = path.split(".")
    for key in keys[:-1]:
        target = target[int(key)] if isinstance(target, list) else target[key]
    last = keys[-1]
    if isinstance(target, list):
        target[int(last)] = value
    else:
        target[last] = value
    return raw


def test_valid_scenario_parses_with_units():
    scenario = parse_scenario(BASE)
    assert scenario.snr_db == [-2.0, -1.0, 0.0, 1.0, 2.0]
    assert scenario.bandwidth == {"cpp": 1 / 16}
    assert [s["type"] for s in scenario.schemes] == ["separate", "capacity"]
    assert scenario.schemes[0]["decoder"] == {"backend": "numba", "iterations": 20}   # the default for 802.11n codes


@pytest.mark.parametrize(
    "path, value, field",
    [
        ("schemes.0.type", "quantum", "schemes[0].type"),
        ("schemes.0.mcs", {"code": "wifi-1000-1/2", "modulation": "bpsk"}, "code"),
        ("schemes.0.mcs", {"code": "wifi-648-1/2", "modulation": "64qam"}, "modulation"),
        ("snr_db", [], "snr_db"),
        ("snr_db", ["high", 3], "snr_db[0]"),
        ("snr_db", "loud", "snr_db"),
        ("snr_db", {"start": 5, "stop": 1}, "snr_db.stop"),
        ("bandwidth", {"bcr": 0}, "bandwidth.bcr"),
        ("bandwidth", {"bcr": 1.5}, "bandwidth.bcr"),
        ("bandwidth", {"bcr": -0.1}, "bandwidth.bcr"),
        ("bandwidth", {"cpp": 1, "bcr": 0.1}, "bandwidth"),
        ("bandwidth", [{"cpp": "1/16"}, {"bcr": 0}], "bandwidth[1].bcr"),
        ("bandwidth", [{"cpp": "1/16"}, {"cpp": "1/32"}, {"cpp": "2/32"}], "bandwidth[2]"),
        ("bandwidth", [], "bandwidth"),
        ("channel", "martian", "channel"),
        ("trials", 0, "trials"),
        ("metrics", ["psnr", "dists"], "metrics"),
        ("schemes", [], "schemes"),
        ("schemes.0.codec", {"name": "webp"}, "codec"),
    ],
)
def test_bad_fields_name_field_value_and_allowed(path, value, field):
    with pytest.raises(ConfigError) as caught:
        parse_scenario(with_change(path, value))
    message = str(caught.value)
    assert field in message
    assert "expected" in message
    assert "\n" not in message


def test_a_bandwidth_list_is_a_rate_sweep_and_the_codec_schemes_accept_any_bandwidth():
    scenario = parse_scenario(with_change("bandwidth", [{"cpp": "1/32"}, {"bcr": "1/48"}]))
    assert scenario.bandwidths == [{"cpp": 1 / 32}, {"bcr": 1 / 48}] and scenario.several_bandwidths
    assert scenario.fingerprint()["bandwidth"] == [{"cpp": 1 / 32}, {"bcr": 1 / 48}]
    assert parse_scenario(BASE).fingerprint()["bandwidth"] == {"cpp": 1 / 16}  # one bandwidth: the mapping, as always


@pytest.mark.parametrize("snr_db, grid", [([3], [3.0]), ([1, 5], [1.0, 5.0]), ([0, 1, 2, 3], [0.0, 2.0, 3.0])])
def test_the_default_image_grid_takes_first_middle_last_snr_once_each(snr_db, grid):
    assert parse_scenario(with_change("snr_db", snr_db)).grid["snr_db"] == grid


def test_unknown_top_level_key_is_rejected():
    raw = dict(BASE, snr=[1, 2])
    with pytest.raises(ConfigError, match="snr"):
        parse_scenario(raw)


def test_yaml_loads_safely(tmp_path):
    evil = tmp_path / "evil.yaml"
    evil.write_text("name: !!python/object/apply:os.system ['echo pwned']\n")
    with pytest.raises(ConfigError, match="valid YAML"):
        load_scenario(evil)


SCENARIOS = sorted(Path(__file__).resolve().parents[1].joinpath("scenarios").glob("*.yaml"))


@pytest.mark.parametrize("path", SCENARIOS, ids=[p.name for p in SCENARIOS])
def test_shipped_scenarios_are_valid(path):
    from linksim import zoo

    raw = yaml.safe_load(path.read_text())
    models = [m for s in raw["schemes"] if s.get("type") == "deepjscc"
              for m in (s["model"] if isinstance(s.get("model"), list) else [s.get("model")])]  # a rate sweep: one per ρ
    missing = [m for m in models if m not in zoo.available("deepjscc")]
    if missing:
        pytest.skip(f"checkpoint {missing[0]} not installed (not trained yet)")
    scenario = load_scenario(path)
    assert scenario.schemes, path
