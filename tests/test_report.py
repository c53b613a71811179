"""The run report (``linksim report RUN_DIR``, ``linksim run … --report``): one self-contained HTML
page whose table, cliff SNRs and figures match the run's results.csv, checked in a real browser.

The run is a small separate-vs-capacity sweep (two 64×64 photographs, JPEG + 802.11n LDPC R = 1/2
BPSK, cpp 2, −6…2 dB) made once for the module.
"""

from __future__ import annotations

import csv
import json
import math
import re
import shutil
import subprocess
from collections import defaultdict
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest
import yaml

from linksim.cli import main

SCENARIO = {
    "name": "report-test", "seed": 1, "images": "samples", "limit": 2, "resize": 64, "channel": "awgn",
    "snr_db": [-6, -4, -2, 0, 2], "trials": 1, "bandwidth": {"cpp": 2}, "metrics": ["psnr"],
    "schemes": [{"name": "JPEG + LDPC 1/2 BPSK", "type": "separate", "codec": "jpeg",
                 "mcs": {"code": "wifi-648-1/2", "modulation": "bpsk"}},
                {"name": "JPEG + capacity", "type": "capacity", "codec": "jpeg"}],
    "grid": {"snr_db": [-6, 2], "images": 1},
}
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--force-device-scale-factor=1", "--hide-scrollbars", "--virtual-time-budget=8000"]


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> Path:
    """The run folder of :data:`SCENARIO`, written by ``linksim run … --report``."""
    folder = tmp_path_factory.mktemp("report")
    (folder / "s.yaml").write_text(yaml.safe_dump(SCENARIO))
    assert main(["run", str(folder / "s.yaml"), "--out", str(folder / "run"), "--quiet", "--report"]) == 0
    return folder / "run"


def _results(run: Path) -> list[dict]:
    with (run / "results.csv").open() as handle:
        return list(csv.DictReader(handle))


class _Tables(HTMLParser):
    """Cells of every <table id=…> and the tags seen (the stdlib parser: no DOM library needed)."""

    def __init__(self):
        super().__init__()
        self.tables, self.current, self.row, self.cell, self.tags = defaultdict(list), None, None, None, []

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        self.tags.append((tag, attrs))
        if tag == "table":
            self.current = attrs.get("id")
        elif tag == "tr" and self.current:
            self.row = []
            self.tables[self.current].append(self.row)
        elif tag in ("td", "th") and self.row is not None:
            self.cell = ""

    def handle_endtag(self, tag):
        if tag in ("td", "th") and self.cell is not None:
            self.row.append(self.cell.strip())
            self.cell = None
        elif tag == "table":
            self.current = None

    def handle_data(self, data):
        if self.cell is not None:
            self.cell += data


def _parse(path: Path) -> _Tables:
    parser = _Tables()
    parser.feed(path.read_text())
    return parser


def test_the_report_needs_nothing_but_itself(run):
    text = (run / "report.html").read_text()
    parser = _parse(run / "report.html")
    sources = [a.get("src") or a.get("href") for t, a in parser.tags if t in ("img", "script", "link", "iframe")]
    assert not [s for s in sources if s and not s.startswith("data:")], "a resource is fetched from elsewhere"
    assert sum(t == "img" for t, _ in parser.tags) == 2  # psnr_vs_snr.png and grid.png, embedded
    assert "Plotly.newPlot" in text and len(text) > 3_000_000  # plotly.js inlined, not linked
    assert not re.search(r"""url\(\s*['"]?https?:""", text) and "@import" not in text


def test_the_table_has_one_row_per_scheme_and_snr_with_the_mean_psnr_of_the_results(run):
    rows = _results(run)
    groups = defaultdict(list)
    for r in rows:
        groups[(r["scheme"], float(r["snr_db"]))].append(float(r["psnr"]))
    table = _parse(run / "report.html").tables["summary"]
    header, body = table[0], table[1:]
    assert len(body) == len(groups) == 2 * 5
    psnr = header.index("PSNR dB")
    for cells in body:
        values = groups[(cells[0], float(cells[1]))]
        assert float(cells[psnr]) == pytest.approx(np.mean(values), abs=0.006)  # printed to 0.01 dB


def test_the_cliff_of_the_separate_scheme_is_where_its_results_start_to_decode(run):
    rows = _results(run)
    decoded = defaultdict(list)
    for r in rows:
        if r["scheme"] == "JPEG + LDPC 1/2 BPSK":
            decoded[float(r["snr_db"])].append(r["decoded"] in ("True", "1", "true"))
    cliff = None
    for snr in sorted(decoded, reverse=True):  # from the top: the lowest SNR above which ≥ half decode everywhere
        if np.mean(decoded[snr]) < 0.5:
            break
        cliff = snr
    table = _parse(run / "report.html").tables["cliffs"]
    assert [cells[0] for cells in table[1:]] == ["JPEG + LDPC 1/2 BPSK"]  # the capacity bound is no separate scheme
    assert table[1][1] == f"{cliff:g} dB"
    # BPSK carries at most 0.5 bit per channel use (R = 1/2) only above Es/N0 = 0.19 dB + 10·log10(1/2) ≈ −2.8 dB
    # (the BPSK-constrained Shannon limit): no real code decodes below it
    assert cliff is not None and cliff > 0.19 + 10 * math.log10(0.5)


def test_the_provenance_names_the_seed_the_version_the_commit_and_the_threads(run):
    import linksim

    cells = dict((c[0], c[1]) for c in _parse(run / "report.html").tables["provenance"])
    assert cells["seed"] == "1" and cells["linksim version"] == linksim.__version__
    assert cells["PyTorch threads per unit"] == "1"  # the default, kept by the run folder
    if shutil.which("git"):
        assert re.fullmatch(r"[0-9a-f]{40}( \+ local changes)?|unknown \(not a git checkout\)", cells["git commit"])
    assert cells["machine"]


def test_report_of_a_folder_that_is_no_run_exits_2_with_one_line_and_writes_nothing(tmp_path, capsys):
    assert main(["report", str(tmp_path)]) == 2
    error = capsys.readouterr().err.strip()
    assert len(error.splitlines()) == 1 and "run_dir" in error and str(tmp_path) in error
    assert list(tmp_path.iterdir()) == []


def test_report_rewrites_the_page_of_a_run(run, tmp_path, capsys):
    page = tmp_path / "copy.html"
    assert main(["report", str(run), "--out", str(page)]) == 0
    assert _parse(page).tables["summary"] == _parse(run / "report.html").tables["summary"]


# ----------------------------------------------------------------------------- in a browser

def _chromium(args: list[str], tmp_path: Path) -> subprocess.CompletedProcess:
    return subprocess.run([CHROMIUM, *CHROMIUM_FLAGS, f"--user-data-dir={tmp_path / 'profile'}", *args],
                          capture_output=True, text=True, timeout=120)


@pytest.mark.skipif(not Path(CHROMIUM).exists(), reason=f"no Chromium at {CHROMIUM} (Debian: apt-get install chromium)")
def test_in_headless_chromium_the_plot_and_the_grid_show_and_the_table_has_a_row_per_point(run, tmp_path):
    from PIL import Image

    url, size = (run / "report.html").resolve().as_uri(), "1400,6000"
    dom = _chromium([f"--window-size={size}", "--dump-dom", url], tmp_path).stdout
    assert len(re.findall(r"<tr data-series=", dom)) == len({(r["scheme"], r["snr_db"]) for r in _results(run)})
    assert "main-svg" in dom  # plotly drew its SVG in the browser (the figure is made by its JavaScript)
    layout = json.loads(re.search(r'data-layout="([^"]*)"', dom).group(1).replace("&quot;", '"'))
    shot = tmp_path / "report.png"
    _chromium([f"--window-size={size}", f"--screenshot={shot}", url], tmp_path)
    pixels = np.asarray(Image.open(shot).convert("L"), dtype=np.float32)
    for box in ("plot", "grid"):
        left, top, width, height = (int(round(v)) for v in layout[box])
        assert width > 300 and height > 200 and top + height <= pixels.shape[0], (box, layout[box])
        region = pixels[top: top + height, left: left + width]
        inked = np.mean(region < 240)  # share of pixels that are not (near) white
        assert inked > 0.02 and region.std() > 10, f"the {box} box looks blank ({inked:.1%} inked)"
    # the same measure on the empty page below the report says blank: the check can fail
    bottom = max(top + height for _, top, _, height in layout.values())
    below = pixels[-100:] if pixels.shape[0] - bottom > 800 else None
    if below is not None:
        assert np.mean(below < 240) < 0.001


def test_a_rate_sweep_reports_one_cliff_per_scheme_and_bandwidth_with_the_cpp_as_written():
    from linksim.report import _cliff_table, cliffs
    from linksim.results import summarize

    rows = [dict(scheme=scheme, restorer=None, snr_db=snr, psnr=20.0, ms_ssim=None, lpips=None, bpp=0.1, image="a",
                 trial=0, bandwidth=cpp, decoded=scheme == "cap" or snr >= (1 if cpp == "1/16" else 3))
            for scheme in ("sep", "cap") for cpp in ("1/16", "1/32") for snr in (-1.0, 1.0, 3.0)]
    summary = summarize(rows)
    fingerprint = {"schemes": [{"name": "sep", "type": "separate"}, {"name": "cap", "type": "capacity"}]}
    assert sorted(cliffs(summary, fingerprint)) == [("sep", 1 / 32, 3.0), ("sep", 1 / 16, 1.0)]
    parser = _Tables()
    parser.feed(_cliff_table(summary, fingerprint))
    assert sorted(parser.tables["cliffs"][1:]) == [["sep", "1/16", "1 dB"], ["sep", "1/32", "3 dB"]]
