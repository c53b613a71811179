"""The public API ``import linksim as ls``: the README's Python API blocks run and print what the
link does, the separate chain's stages can be swapped or wrapped, and every listed name resolves."""

from __future__ import annotations

import contextlib
import io
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import linksim as ls
from linksim import zoo

ROOT = Path(__file__).resolve().parents[1]
CODEC = {"name": "bpg", "chroma": "420"}
PSNR_LINE = re.compile(r"BPG \+ LDPC: (\d+\.\d\d) dB, DeepJSCC: (\d+\.\d\d) dB")


@pytest.fixture(autouse=True)
def _one_artifact_loader(monkeypatch):
    """``ls.load`` is :func:`linksim.zoo.load`; where this checkout's zoo predates it, the
    DeepJSCC loader stands in (the README loads a DeepJSCC checkpoint)."""
    if not hasattr(zoo, "load"):
        monkeypatch.setattr(zoo, "load", zoo.load_deepjscc, raising=False)


def readme_python_blocks() -> list[str]:
    """The ```python blocks of README.md's "## Python API" section, in order."""
    text = (ROOT / "README.md").read_text()
    start = text.index("\n## Python API\n")
    end = text.find("\n## ", start + 1)
    return re.findall(r"```python\n(.*?)```", text[start:end], flags=re.S)


@pytest.fixture(scope="module")
def readme_run(tmp_path_factory):
    """Both blocks run in one namespace, as a reader pastes them; each block's printed text."""
    cache = tmp_path_factory.getbasetemp() / "linksim-cache"
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("LINKSIM_CACHE", str(cache))
        if not hasattr(zoo, "load"):
            patch.setattr(zoo, "load", zoo.load_deepjscc, raising=False)
        namespace: dict = {}
        printed = []
        for block in readme_python_blocks()[:2]:
            out = io.StringIO()
            with contextlib.redirect_stdout(out):
                exec(compile(block, "README.md", "exec"), namespace)
            printed.append(out.getvalue())
    return namespace, printed


def test_readme_first_block_is_short_and_prints_two_psnrs(readme_run):
    blocks = readme_python_blocks()
    assert len(blocks) >= 2
    assert len(blocks[0].strip().splitlines()) <= 10
    namespace, printed = readme_run
    match = PSNR_LINE.search(printed[0])
    assert match, printed[0]
    separate_db, deepjscc_db = map(float, match.groups())
    x = namespace["x"]
    assert tuple(x.shape) == (1, 3, 512, 512)  # the astronaut; ρ = 1/48 gives k = 16384 uses

    # 5 dB is 6 dB above the BPSK R = 1/2 threshold (≈ −1.3 dB): every codeword decodes and the
    # receiver shows the codec point that fits floor(k·m/n)·k_c = 8·972 bits, at its own PSNR.
    k = ls.Bandwidth(bcr=1 / 48).channel_uses(512, 512)
    budget = (k * 1 // 1944) * 972
    rung = namespace["bpg_ldpc"].ladder(x[0]).best_fitting(budget)
    assert rung is not None and rung.payload_bits <= budget
    assert separate_db == pytest.approx(rung.psnr_db, abs=0.006)

    # DeepJSCC: the notebook call gives what a scenario's deepjscc scheme gives with the same draws,
    # and lies near the checkpoint's own Kodak evaluation at 5 dB (another image set: ±3 dB).
    scheme = ls.DeepJSCCScheme("DeepJSCC", ls.Bandwidth(bcr=1 / 48), "deepjscc-awgn-r1_48")
    out = scheme.run(x, 5.0, ls.make_channel("awgn"), ls.point_generator(0, "deepjscc"))
    assert deepjscc_db == pytest.approx(ls.psnr(x, out.x_hat).item(), abs=0.006)
    evaluation = json.loads((zoo.resolve("deepjscc-awgn-r1_48") / "config.json").read_text())["evaluation"][0]
    kodak_db = evaluation["psnr"][evaluation["snr_db"].index(5.0)]
    assert abs(deepjscc_db - kodak_db) < 3.0


def test_readme_second_block_clipped_llrs_lose_the_image_at_0_db(readme_run):
    # Saturating the LLRs at ±1 throws away the decoder's reliability information: ≈ 1.5 dB of
    # coding gain. At 0 dB (1.3 dB above the threshold) the full LLRs decode, the clipped ones do not.
    namespace, printed = readme_run
    assert printed[1].split() == ["BPG", "+", "LDPC", "True", "BPG", "+", "LDPC,", "clipped", "LLRs", "False"]


# ------------------------------------------------------------------ swapping and inserting stages

@pytest.fixture(scope="module")
def image(photo):
    return ls.to_tensor([photo])  # float32 [1, 3, 128, 192]


def separate(**stages):
    return ls.SeparateScheme("sep", ls.Bandwidth(cpp=1.0), CODEC, mcs=ls.MCS("wifi-1944-1/2", "bpsk"), **stages)


class FlipOneBit:
    """A decoder that decodes, then flips the first information bit of the first codeword."""

    def __init__(self, code):
        self.inner = ls.LDPCDecoder(code)

    def __call__(self, llr):
        bits, ok = self.inner(llr)
        bits = bits.clone()
        bits[0, 0] = 1.0 - bits[0, 0]
        return bits, ok


def test_a_decoder_that_flips_one_bit_loses_the_image(image):
    awgn, snr = ls.make_channel("awgn"), 10.0  # 11 dB above the threshold: the real decoder never fails
    good = separate().run(image, snr, awgn, ls.point_generator(0, "swap"))
    bad = separate(decoder=FlipOneBit).run(image, snr, awgn, ls.point_generator(0, "swap"))
    assert bool(good.decoded[0]) and good.extras["codeword_errors"] == [0]
    assert not bool(bad.decoded[0]) and bad.extras["codeword_errors"] == [1]
    assert torch.all(bad.x_hat == 0.5)  # the failure rule: one wrong bit loses the whole image
    assert bad.extras["codewords"] == good.extras["codewords"] and bad.extras["codewords"][0] > 1


class Recording:
    """Wraps a block and records what crossed it (a block inserted after it that changes nothing)."""

    def __init__(self, block, log: list, stage: str):
        self.block, self.log, self.stage = block, log, stage

    def __call__(self, *args):
        out = self.block(*args)
        self.log.append((self.stage, args, out))
        return out


def test_the_chain_runs_the_public_blocks_in_order_with_the_scheme_draws(image):
    log: list = []
    wrap = lambda stage, factory: (lambda of: Recording(factory(of), log, stage))  # noqa: E731
    scheme = separate(encoder=wrap("encoder", ls.LDPCEncoder), mapper=wrap("mapper", ls.Mapper),
                      demapper=wrap("demapper", ls.Demapper), decoder=wrap("decoder", ls.LDPCDecoder),
                      equalizer=Recording(ls.equalize, log, "equalizer"))
    awgn, snr = ls.make_channel("awgn"), 0.5
    out = scheme.run(image, snr, awgn, ls.point_generator(3, "chain"))
    assert [stage for stage, _, _ in log] == ["encoder", "mapper", "equalizer", "demapper", "decoder"]

    # The same chain by hand from the public blocks, with the same generator: identical tensors.
    (_, (info,), codewords), (_, (bits,), symbols) = log[0], log[1]
    code, bpsk = ls.get_code("wifi-1944-1/2"), ls.make_modulation("bpsk")
    assert tuple(info.shape) == (out.extras["codewords"][0], code.k)
    assert torch.equal(codewords, code.encode(info)) and torch.equal(bits, codewords.reshape(1, -1))
    assert torch.equal(symbols, ls.Mapper(bpsk)(bits)) and symbols.shape[1] == out.extras["channel_uses_used"][0]
    y, noise_var = ls.equalize(awgn(symbols, snr, ls.point_generator(3, "chain")))
    llr = ls.Demapper(bpsk)(y, noise_var)
    assert torch.equal(log[3][2], llr)
    assert torch.equal(log[4][1][0], llr.reshape(-1, code.n))
    decoded_bits, _ = log[4][2]
    assert bool(out.decoded[0]) == bool(torch.equal(decoded_bits, info))

    # A pass-through block between two stages changes nothing: the scheme's own result.
    plain = separate().run(image, snr, awgn, ls.point_generator(3, "chain"))
    assert torch.equal(plain.x_hat, out.x_hat) and plain.extras == out.extras


def test_factories_are_called_once_per_code_and_modulation(image):
    calls = []

    def demapper(modulation):
        calls.append(modulation.name)
        return ls.Demapper(modulation)

    scheme = separate(demapper=demapper)
    for snr in (0.0, 5.0, 10.0):
        scheme.run(image, snr, ls.make_channel("awgn"), ls.point_generator(4, snr))
    assert calls == ["bpsk"]
    assert isinstance(scheme.stages(scheme.mcs[0]).demapper, ls.Demapper)


def test_bad_stage_arguments_name_the_field():
    with pytest.raises(ls.ConfigError, match=r"^demapper: "):
        separate(demapper="app")
    with pytest.raises(ls.ConfigError, match=r"^mcs: "):
        ls.SeparateScheme("sep", ls.Bandwidth(cpp=1.0), CODEC, mcs=[])
    with pytest.raises(ls.ConfigError, match=r"^codec: "):
        ls.SeparateScheme("sep", ls.Bandwidth(cpp=1.0), {"chroma": "420"}, mcs=ls.MCS("wifi-1944-1/2", "bpsk"))
    with pytest.raises(ls.ConfigError, match=r"^downscale: "):
        ls.CapacityScheme("cap", ls.Bandwidth(cpp=1.0), CODEC, downscale=[0])


# ------------------------------------------------------------------ schemes from scenario dicts

def test_make_scheme_builds_what_a_scenario_builds(image):
    spec = {"name": "BPG + LDPC", "type": "separate", "codec": CODEC, "mcs": {"code": "wifi-1944-1/2", "modulation": "bpsk"}}
    scenario = ls.parse_scenario({"schemes": [spec], "bandwidth": {"cpp": "1/2"}, "snr_db": [0.0]})
    made = ls.make_scheme(spec, {"cpp": "1/2"})
    assert isinstance(made, ls.SeparateScheme)
    assert (made.codec, made.downscale, made.mcs) == (scenario.schemes[0]["codec"], [1], [ls.MCS("wifi-1944-1/2", "bpsk")])
    assert made.bandwidth == ls.Bandwidth(cpp=0.5) == ls.make_scheme(spec, ls.Bandwidth(cpp=0.5)).bandwidth
    by_hand = ls.SeparateScheme("BPG + LDPC", ls.Bandwidth(cpp=0.5), CODEC, mcs=ls.MCS("wifi-1944-1/2", "bpsk"))
    a = made.run(image, 1.0, ls.make_channel("awgn"), ls.point_generator(5))
    b = by_hand.run(image, 1.0, ls.make_channel("awgn"), ls.point_generator(5))
    assert torch.equal(a.x_hat, b.x_hat) and a.extras == b.extras
    assert isinstance(ls.make_scheme({"type": "capacity"}, {"cpp": 1}), ls.CapacityScheme)


@pytest.mark.parametrize("spec, field", [
    ({"type": "separate", "mcs": {"code": "wifi-1944-1/2", "modulation": "8psk"}}, "modulation"),
    ({"type": "separate"}, "scheme.mcs"),
    ({"type": "analog"}, "scheme.type"),
    ({"type": "deepjscc", "model": "deepjscc-awgn-r1_12"}, "scheme.model"),   # ρ 1/12 ≠ the bandwidth's 1/48
])
def test_make_scheme_errors_name_the_field(spec, field):
    with pytest.raises(ls.ConfigError) as error:
        ls.make_scheme(spec, {"bcr": "1/48"})
    assert error.value.field == field


# ------------------------------------------------------------------ the namespace itself

def test_every_listed_name_resolves():
    names = dir(ls)
    assert set(ls.__all__) <= set(names)
    for name in names:
        assert getattr(ls, name) is not None, name
    assert ls.load is zoo.load and ls.SeparateScheme.kind == "separate" and callable(ls.make_scheme)
    with pytest.raises(AttributeError):
        ls.no_such_name  # noqa: B018


def test_import_linksim_is_lazy_and_python_m_linksim_is_the_cli():
    probe = "import sys, linksim; print(sorted(m for m in ('torch', 'sionna', 'numpy') if m in sys.modules))"
    loaded = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, cwd=ROOT, check=True)
    assert loaded.stdout.strip() == "[]"
    cli = subprocess.run([sys.executable, "-m", "linksim", "codes"], capture_output=True, text=True, cwd=ROOT)
    assert cli.returncode == 0, cli.stderr
    assert "wifi-1944-1/2" in cli.stdout
