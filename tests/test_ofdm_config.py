"""The OFDM channel's configuration: defaults, every bad field named, overhead bookkeeping, and
the command line refusing a bad OFDM entry with one line, exit 2, nothing written."""

from __future__ import annotations

import subprocess
import sys

import pytest
import yaml

from linksim.channel import OFDMChannel, OFDMConfig, make_channel
from linksim.errors import ConfigError
from linksim.scenario import parse_scenario


def test_defaults_are_5g_like_and_round_trip():
    cfg = OFDMConfig.from_spec({"type": "ofdm"})
    assert (cfg.model, cfg.delay_spread_ns, cfg.speed_kmh, cfg.subcarrier_spacing_khz) == ("tdl-a", 100.0, 3.0, 30.0)
    assert (cfg.csi, cfg.interpolation, cfg.equalizer) == ("ls", "lin", "lmmse")
    assert cfg.num_ofdm_symbols == 14 and cfg.pilot_symbols == [2, 11]
    assert OFDMConfig.from_spec(cfg.to_spec()) == cfg
    ch = make_channel({"type": "ofdm"})
    assert isinstance(ch, OFDMChannel) and ch.name == "ofdm-tdl-a" and ch.to_spec() == cfg.to_spec()
    assert make_channel("ofdm-tdl-a").config == cfg         # the name training uses
    # the default cyclic prefix covers the default channel's discrete-time taps: no ISI
    assert cfg.cp_length >= ch.blocks().taps.l_tot - 1


@pytest.mark.parametrize("change, field", [
    ({"model": "tdl-z"}, "channel.model"),
    ({"delay_spread_ns": -1}, "channel.delay_spread_ns"),
    ({"speed_kmh": float("nan")}, "channel.speed_kmh"),
    ({"carrier_ghz": 0}, "channel.carrier_ghz"),
    ({"subcarrier_spacing_khz": 20}, "channel.subcarrier_spacing_khz"),
    ({"fft_size": 4}, "channel.fft_size"),
    ({"cp_length": 256}, "channel.cp_length"),
    ({"cp_length": 2.5}, "channel.cp_length"),
    ({"guard_carriers": [200, 100]}, "channel.guard_carriers"),
    ({"dc_null": "yes"}, "channel.dc_null"),
    ({"pilots": {"pattern": "comb"}}, "channel.pilots"),
    ({"pilots": {"pattern": "kronecker", "symbols": [2, 14]}}, "channel.pilots.symbols"),
    ({"pilots": {"pattern": "none"}}, "channel.pilots"),          # LS needs pilots
    ({"csi": "genie"}, "channel.csi"),
    ({"interpolation": "cubic"}, "channel.interpolation"),
    ({"equalizer": "ml"}, "channel.equalizer"),
    ({"bandwidth_mhz": 20}, "channel.bandwidth_mhz"),
])
def test_bad_fields_are_named(change, field):
    with pytest.raises(ConfigError) as err:
        make_channel({"type": "ofdm", **change})
    assert err.value.field == field
    assert repr(next(iter(change.values())))[:20] in str(err.value) or field.endswith("symbols")


def test_overhead_counts_every_resource_element():
    cfg = OFDMConfig.from_spec({"fft_size": 64, "cp_length": 8, "guard_carriers": [3, 2], "dc_null": True})
    assert cfg.effective_subcarriers == 58 and cfg.data_res_per_grid == 12 * 58
    k = 1000
    o = cfg.overhead(k)
    assert o["ofdm_grids"] == 2
    assert k + o["pilot_res"] + o["null_res"] == 2 * 14 * 64
    assert o["pilot_res"] == 2 * 2 * 58 and o["cp_overhead"] == pytest.approx(8 / 72)


def test_scenario_keeps_the_whole_ofdm_entry():
    s = parse_scenario({"name": "x", "images": "samples", "channel": {"type": "ofdm", "csi": "perfect"},
                        "snr_db": [0], "bandwidth": {"bcr": "1/48"}, "schemes": [{"name": "L", "type": "linear"}]})
    assert s.channel["csi"] == "perfect" and s.channel["fft_size"] == 256 and s.channel["type"] == "ofdm"


def test_cli_bad_ofdm_field_is_one_line_exit_2_and_writes_nothing(tmp_path):
    out = tmp_path / "never"
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump({"name": "bad", "images": "samples", "snr_db": [0], "bandwidth": {"bcr": "1/48"},
                                    "channel": {"type": "ofdm", "cp_length": 999},
                                    "schemes": [{"name": "L", "type": "linear"}]}))
    result = subprocess.run([sys.executable, "-m", "linksim.cli", "run", str(path), "--out", str(out), "--quiet"],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "channel.cp_length" in lines[0] and "999" in lines[0], result.stderr
    assert not out.exists()


def test_shipped_ofdm_scenarios_differ_only_in_the_csi():
    from pathlib import Path

    from linksim.scenario import load_scenario

    folder = Path(__file__).resolve().parents[1] / "scenarios"
    ls_, perfect = load_scenario(folder / "ofdm_tdl.yaml"), load_scenario(folder / "ofdm_tdl_perfect.yaml")
    assert ls_.channel["csi"] == "ls" and perfect.channel["csi"] == "perfect"
    assert {**ls_.channel, "csi": "perfect"} == perfect.channel
    assert ls_.schemes == perfect.schemes and ls_.snr_db == perfect.snr_db and ls_.seed == perfect.seed
    assert [s["model"] for s in ls_.schemes if s["type"] == "deepjscc"] == ["deepjscc-awgn-r1_48",
                                                                            "deepjscc-ofdm-tdl-a-r1_48"]
