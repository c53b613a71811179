"""One self-contained HTML page per run: ``RUN_DIR/report.html``.

:func:`write_report` reads what ``linksim run`` left in a run folder (``scenario.json``,
``results.csv``, the PNG plots and image grids) and writes one HTML file that needs nothing
else — no network, no other file: the images are base64-embedded and the interactive plot's
JavaScript (plotly.js, about 4.8 MB) is inlined, so the page can be mailed or attached as it is.

The page shows, top to bottom: the provenance (linksim version, git commit of the code, seed,
checkpoint digests from the run's fingerprint, the machine the report was written on), the
cliff SNR of every separate scheme, an interactive PSNR-vs-SNR plot (PSNR-vs-cpp for a rate
sweep with one SNR; zoom and hover), the run's own PNG plots, the image grids, the summary
table (one row per scheme, restorer, [cpp,] SNR: the rows of ``summary.csv``) and the scenario
YAML. Elements a reader should see carry ``data-box`` attributes; a small inline script
records their page boxes in ``<html data-layout=…>`` so a headless browser test can find them
in a screenshot (``tests/test_report_browser.py``).
"""

from __future__ import annotations

import base64
import html
import json
import os
import platform
import subprocess
from datetime import datetime, timezone
from pathlib import Path

import yaml

from linksim.errors import ConfigError
from linksim.results import cliff_snr, read_results, series_label, summarize
from linksim.scenario import bandwidth_label

REPORT_NAME = "report.html"

_STYLE = """
body { font-family: system-ui, sans-serif; margin: 24px; color: #222; max-width: 1400px; }
h1 { margin-bottom: 4px; } h2 { border-bottom: 1px solid #ccc; padding-bottom: 2px; margin-top: 28px; }
table { border-collapse: collapse; font-size: 13px; }
th, td { border: 1px solid #ccc; padding: 2px 8px; text-align: right; }
th { background: #f0f0f0; } td.text, th.text { text-align: left; }
img { max-width: 100%; } .grid img { display: block; margin-bottom: 12px; }
pre { background: #f6f6f6; padding: 8px; overflow-x: auto; font-size: 12px; }
"""

# Records the page box (CSS pixels, page coordinates) of every [data-box] element once the page
# has loaded, so a headless browser's --dump-dom shows where the screenshot should have content.
_LAYOUT_SCRIPT = """
window.addEventListener("load", function () {
  var boxes = {};
  document.querySelectorAll("[data-box]").forEach(function (el) {
    var r = el.getBoundingClientRect();
    boxes[el.dataset.box] = [r.left + window.scrollX, r.top + window.scrollY, r.width, r.height];
  });
  document.documentElement.dataset.layout = JSON.stringify(boxes);
});
"""


def write_report(run_dir: str | Path, path: str | Path | None = None) -> Path:
    """Write the report of the run in ``run_dir`` to ``path`` (default ``run_dir/report.html``).

    Raises ConfigError when ``run_dir`` is not a finished or partial run folder (no
    ``scenario.json`` or no ``results.csv``); nothing is written then. The file is written
    whole (temporary file, then rename).
    """
    run_dir = Path(run_dir)
    text = build_report(run_dir)
    path = Path(path) if path is not None else run_dir / REPORT_NAME
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)
    return path


def build_report(run_dir: Path) -> str:
    """The HTML text of the report of ``run_dir`` (see the module docstring)."""
    run_dir = Path(run_dir)
    if not (run_dir / "scenario.json").is_file() or not (run_dir / "results.csv").is_file():
        raise ConfigError("run_dir", str(run_dir), "a folder written by `linksim run` (with scenario.json and results.csv)")
    fingerprint = json.loads((run_dir / "scenario.json").read_text())
    rows = read_results(run_dir / "results.csv")
    if not rows:
        raise ConfigError("run_dir", str(run_dir), "a run with at least one computed point in results.csv")
    summary = summarize(rows)
    name = str(fingerprint.get("name", run_dir.name))
    sections = [
        f"<h1>linksim run: {html.escape(name)}</h1>",
        f"<p>{len({r['image'] for r in rows})} image(s), {len(rows)} point(s); run folder "
        f"<code>{html.escape(str(run_dir.resolve()))}</code></p>",
        _section("Provenance", _provenance_table(fingerprint)),
        _section("Cliff SNR of the separate schemes", _cliff_table(summary, fingerprint)),
        _section("PSNR (interactive: drag to zoom, double-click to reset, hover for values)",
                 _interactive_plot(summary, name)),
        _section("Plots of the run", _pngs(run_dir, ["psnr_vs_snr*.png", "psnr_vs_cpp*.png"], "plot")),
        _section("Image grids (receiver outputs at the grid SNRs)", _pngs(run_dir, ["grid*.png"], "grid")),
        _section("Summary (means over images and trials)", _summary_table(summary)),
        _section("Scenario", f"<pre>{html.escape(_scenario_yaml(fingerprint))}</pre>"),
    ]
    return (f"<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>linksim: {html.escape(name)}"
            f"</title><style>{_STYLE}</style><script>{_LAYOUT_SCRIPT}</script></head>\n<body>\n"
            + "\n".join(sections) + "\n</body></html>\n")


def _section(title: str, body: str) -> str:
    return f"<h2>{html.escape(title)}</h2>\n{body}"


# ----------------------------------------------------------------------------- provenance

def provenance(fingerprint: dict) -> list[tuple[str, str]]:
    """(field, value) pairs: version, git commit, seed, checkpoint digests, PyTorch threads per
    unit (the last digits depend on them), machine, time."""
    import linksim

    pairs = [("linksim version", linksim.__version__), ("git commit", _git_commit()),
             ("seed", str(fingerprint.get("seed", "—"))), ("channel", json.dumps(fingerprint.get("channel")))]
    for field in ("checkpoints", "priors"):  # SHA-256 of the weights, as the run's fingerprint holds them
        for label, digest in (fingerprint.get(field) or {}).items():
            digests = digest if isinstance(digest, list) else [digest]
            pairs.append((f"weights of {label}", ", ".join(str(d) for d in digests)))
    if "threads" in fingerprint:  # folders written before the count was kept have none
        pairs.append(("PyTorch threads per unit", str(fingerprint["threads"])))
    pairs += [("machine", _machine()), ("report written", datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"))]
    return pairs


def _git_commit() -> str:
    """The commit of the code that wrote the report (``+ local changes`` when the tree is dirty)."""
    folder = Path(__file__).resolve().parent
    try:
        commit = subprocess.run(["git", "-C", str(folder), "rev-parse", "HEAD"], capture_output=True, text=True,
                                timeout=10, check=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(folder), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown (not a git checkout)"
    return commit + (" + local changes" if dirty else "")


def _machine() -> str:
    """Host, CPU model and count, OS, Python and torch versions, the GPU if one is visible."""
    cpu = platform.processor() or "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    parts = [platform.node(), f"{cpu} × {os.cpu_count()}", platform.platform(), f"Python {platform.python_version()}"]
    try:
        import torch

        parts.append(f"torch {torch.__version__}")
        if torch.cuda.is_available():
            parts.append(torch.cuda.get_device_name(0))
    except ImportError:
        pass
    return "; ".join(parts)


def _provenance_table(fingerprint: dict) -> str:
    body = "".join(f"<tr><th class=\"text\">{html.escape(k)}</th><td class=\"text\"><code>{html.escape(v)}</code></td></tr>"
                   for k, v in provenance(fingerprint))
    return f"<table id=\"provenance\">{body}</table>"


def _scenario_yaml(fingerprint: dict) -> str:
    """The scenario file as written when it is still there, else the run's fingerprint as YAML."""
    source = fingerprint.get("source")
    if source and source != "None" and Path(source).is_file():
        return f"# {source}\n" + Path(source).read_text()
    return "# scenario.json of the run (the YAML file is not at its recorded place)\n" + yaml.safe_dump(
        fingerprint, sort_keys=False, allow_unicode=True)


# ----------------------------------------------------------------------------- tables

def cliffs(summary: list[dict], fingerprint: dict) -> list[tuple[str, float | None, float | None]]:
    """(scheme, cpp or None, cliff SNR in dB or None) of every separate scheme of the run, per
    bandwidth of a rate sweep: the lowest SNR from which on ≥ 50 % of its points decode."""
    separate = [s["name"] for s in fingerprint.get("schemes", []) if s.get("type") == "separate"]
    rates = bool(summary) and "cpp" in summary[0]
    out = []
    for scheme in separate:
        cpps = dict.fromkeys(r["cpp"] for r in summary if r["scheme"] == scheme) if rates else [None]
        out += [(scheme, cpp, cliff_snr(summary, scheme, cpp=cpp)) for cpp in cpps]
    return out


def _cliff_table(summary: list[dict], fingerprint: dict) -> str:
    entries = cliffs(summary, fingerprint)
    if not entries:
        return "<p>This run has no separate (digital) scheme: nothing falls off a cliff.</p>"
    rows = "".join(
        f"<tr data-scheme=\"{html.escape(s)}\"><td class=\"text\">{html.escape(s)}</td>"
        + (f"<td>{_cpp(cpp)}</td>" if cpp is not None else "")
        + f"<td>{'never (≥ 50 % decoded at no SNR of the grid)' if snr is None else f'{snr:g} dB'}</td></tr>"
        for s, cpp, snr in entries)
    cpp_head = "<th>cpp</th>" if entries[0][1] is not None else ""
    return (f"<table id=\"cliffs\"><tr><th class=\"text\">scheme</th>{cpp_head}<th>cliff SNR "
            f"(decoded in ≥ 50 % of the points from there up)</th></tr>{rows}</table>")


_COLUMNS = [("psnr", "PSNR dB", ".2f"), ("psnr_ci95", "±95 %", ".2f"), ("ms_ssim", "MS-SSIM", ".4f"),
            ("lpips", "LPIPS", ".3f"), ("decoded_rate", "decoded", ".0%"), ("bpp", "bpp", ".4f")]


def _summary_table(summary: list[dict]) -> str:
    rates = bool(summary) and "cpp" in summary[0]
    head = ("<tr><th class=\"text\">scheme</th>" + ("<th>cpp</th>" if rates else "") + "<th>SNR dB</th><th>n</th>"
            + "".join(f"<th>{label}</th>" for _, label, _ in _COLUMNS) + "</tr>")
    body = []
    for r in summary:
        label = series_label(r["scheme"], r.get("restorer"))
        cells = "".join(f"<td>{'—' if r[key] is None else format(r[key], spec)}</td>" for key, _, spec in _COLUMNS)
        body.append(f"<tr data-series=\"{html.escape(label)}\" data-snr=\"{r['snr_db']:g}\">"
                    f"<td class=\"text\">{html.escape(label)}</td>" + (f"<td>{_cpp(r['cpp'])}</td>" if rates else "")
                    + f"<td>{r['snr_db']:g}</td><td>{r['n']}</td>{cells}</tr>")
    return f"<table id=\"summary\"><thead>{head}</thead><tbody>{''.join(body)}</tbody></table>"


def _cpp(cpp: float) -> str:
    """A nominal cpp as the scenario writes it (``1/32``), not as a float."""
    return bandwidth_label({"cpp": cpp})


# ----------------------------------------------------------------------------- figures

def psnr_figure(summary: list[dict], title: str = ""):
    """A plotly figure of the mean PSNR (95 % bars) per series: against the SNR, or against the
    cpp (log axis) for a rate sweep with a single SNR. Hover shows the decode rate and bpp."""
    import plotly.graph_objects as go

    rates = bool(summary) and "cpp" in summary[0]
    against_cpp = rates and len({r["snr_db"] for r in summary}) == 1
    groups: dict[str, list[dict]] = {}
    for r in summary:
        label = series_label(r["scheme"], r.get("restorer"))
        if rates and not against_cpp:
            label += f" (cpp {_cpp(r['cpp'])})"
        groups.setdefault(label, []).append(r)
    figure = go.Figure()
    for label, members in groups.items():
        members = sorted(members, key=lambda r: r["cpp"] if against_cpp else r["snr_db"])
        members = [r for r in members if r["psnr"] is not None]
        x = [r["cpp"] if against_cpp else r["snr_db"] for r in members]
        figure.add_trace(go.Scatter(
            x=x, y=[r["psnr"] for r in members], name=label, mode="lines+markers",
            error_y={"type": "data", "array": [r["psnr_ci95"] or 0 for r in members], "visible": True},
            customdata=[[r["decoded_rate"] if r["decoded_rate"] is not None else float("nan"),
                         r["bpp"] if r["bpp"] is not None else float("nan")] for r in members],
            hovertemplate="%{x:g}: PSNR %{y:.2f} dB<br>decoded %{customdata[0]:.0%}, %{customdata[1]:.4f} bpp"))
    figure.update_layout(title=title, height=520, template="plotly_white",
                         xaxis_title="cpp (channel uses per pixel)" if against_cpp else "SNR (dB)",
                         yaxis_title="PSNR (dB)", legend={"orientation": "h", "y": -0.2})
    if against_cpp:
        figure.update_xaxes(type="log")
    return figure


def _interactive_plot(summary: list[dict], name: str) -> str:
    div = psnr_figure(summary, title=name).to_html(full_html=False, include_plotlyjs=True,
                                                   config={"displaylogo": False})
    return f"<div data-box=\"plot\">{div}</div>"


def _pngs(run_dir: Path, patterns: list[str], box: str) -> str:
    files = [f for pattern in patterns for f in sorted(run_dir.glob(pattern))]
    if not files:
        return "<p>(none in the run folder)</p>"
    images = "".join(f"<figure><img alt=\"{html.escape(f.name)}\" src=\"data:image/png;base64,"
                     f"{base64.b64encode(f.read_bytes()).decode()}\"><figcaption>{html.escape(f.name)}</figcaption></figure>"
                     for f in files)
    return f"<div class=\"grid\" data-box=\"{box}\">{images}</div>"
