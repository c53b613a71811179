"""The teaching labs' interactive explorer: precomputed link sweeps behind sliders.

A slider must redraw within about a second, and sending an image through BPG + LDPC or
DeepJSCC takes longer than that on a laptop CPU. So :func:`precompute_sweep` runs every point
of a small grid once — (channel, cpp, scheme, SNR) for one photograph, ``trials`` draws each,
every draw from its own seeded generator (:func:`linksim.seeding.point_generator`) — and keeps
a :class:`LinkSweep`: the mean PSNR and decode rate of each point and the received image of the
first trial. :class:`LinkExplorer` then only *draws* (matplotlib, no link computation):
the PSNR-vs-SNR curves of the chosen channel and bandwidth with a marker at the chosen SNR, the
capacity (Shannon) bound overlaid, and the received images side by side.

What is cached is the :class:`LinkSweep` (``save``/``load``: one ``.npz``), and the codec's
rate–quality table of the photograph (the schemes' own cache under ``$LINKSIM_CACHE``).

Schemes of a sweep, at every cpp: one ``separate`` entry per MCS of ``mcs`` (BPG + 802.11n LDPC),
``capacity`` (BPG at log2(1 + SNR) bits per use: the bound of every separate scheme), ``deepjscc``
(the shipped AWGN-trained checkpoint of that ρ = cpp/3, where one is shipped) and ``linear``
(PCA + LMMSE).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

import numpy as np
import torch

from linksim.channel import make_channel
from linksim.data import ImageItem, load_images, square_resize, to_tensor, to_uint8
from linksim.errors import ConfigError
from linksim.metrics import psnr
from linksim.schemes import make_scheme
from linksim.seeding import point_generator

#: The shipped AWGN-trained DeepJSCC checkpoint of each cpp (ρ = cpp / 3).
DEEPJSCC_AT_CPP = {"1/4": "deepjscc-awgn-r1_12", "1/16": "deepjscc-awgn-r1_48", "1/32": "deepjscc-awgn-r1_96",
                   "1/64": "deepjscc-awgn-r1_192"}
#: The linear analog code's shipped basis.
LINEAR_BASIS = "linear-pca16-natural"
#: Modulation and coding schemes of the separate schemes (802.11n LDPC, n = 1944), as ``code modulation``.
DEFAULT_MCS = ("wifi-1944-1/2 bpsk", "wifi-1944-2/3 bpsk", "wifi-1944-1/2 qpsk", "wifi-1944-3/4 qpsk")
BPG = {"name": "bpg", "chroma": "420"}
CAPACITY, DEEPJSCC, LINEAR = "BPG + capacity", "DeepJSCC", "Linear (PCA + LMMSE)"


def separate_label(mcs: str) -> str:
    """``"wifi-1944-1/2 bpsk"`` → ``"BPG + LDPC 1/2 BPSK"``."""
    code, modulation = mcs.split()
    return f"BPG + LDPC {code.rsplit('-', 1)[1]} {modulation.upper()}"


@dataclass
class LinkSweep:
    """Precomputed points of one photograph: ``psnr[key]`` (dB, mean over trials),
    ``decoded[key]`` (share of trials decoded), ``images[key]`` (uint8 [H, W, 3], trial 0) and
    ``bits[key]`` (payload bits, trial 0) for ``key = (channel, cpp, scheme, snr_db)``."""

    image: np.ndarray
    snrs: list[float]
    cpps: list[str]
    channels: list[str]
    schemes: list[str]
    trials: int
    psnr: dict = field(default_factory=dict)
    decoded: dict = field(default_factory=dict)
    images: dict = field(default_factory=dict)
    bits: dict = field(default_factory=dict)
    seconds: float = 0.0

    def curve(self, channel: str, cpp: str, scheme: str) -> tuple[np.ndarray, np.ndarray]:
        """(SNRs, mean PSNR) of one scheme; points it does not have (no checkpoint) are left out."""
        points = [(s, self.psnr[channel, cpp, scheme, s]) for s in self.snrs if (channel, cpp, scheme, s) in self.psnr]
        return np.array([p[0] for p in points]), np.array([p[1] for p in points])

    def save(self, path: str | Path) -> Path:
        """One ``.npz`` (keys and numbers as arrays; no pickles)."""
        keys = sorted(self.psnr, key=str)
        np.savez_compressed(path, image=self.image, snrs=np.array(self.snrs), cpps=np.array(self.cpps),
                            channels=np.array(self.channels), schemes=np.array(self.schemes), trials=self.trials,
                            keys=np.array([[c, p, s, repr(float(v))] for c, p, s, v in keys]),
                            psnr=np.array([self.psnr[k] for k in keys]), decoded=np.array([self.decoded[k] for k in keys]),
                            bits=np.array([self.bits[k] for k in keys]),
                            images=np.stack([self.images[k] for k in keys]), seconds=self.seconds)
        return Path(path)

    @classmethod
    def load(cls, path: str | Path) -> "LinkSweep":
        # every ``npz[name]`` decompresses the whole array again: read each one once
        with np.load(path, allow_pickle=False) as npz:
            data = {name: npz[name] for name in npz.files}
        keys = [(c, p, s, float(v)) for c, p, s, v in data["keys"]]
        sweep = cls(image=data["image"], snrs=[float(s) for s in data["snrs"]], cpps=[str(c) for c in data["cpps"]],
                    channels=[str(c) for c in data["channels"]], schemes=[str(s) for s in data["schemes"]],
                    trials=int(data["trials"]), seconds=float(data["seconds"]))
        for i, key in enumerate(keys):
            sweep.psnr[key], sweep.decoded[key] = float(data["psnr"][i]), float(data["decoded"][i])
            sweep.bits[key], sweep.images[key] = int(data["bits"][i]), data["images"][i]
        return sweep


def lab_photo(size: int = 256, name: str = "astronaut") -> ImageItem:
    """A bundled photograph, its centre square resized to ``size``×``size`` (a multiple of 16,
    so DeepJSCC spends exactly k = cpp·H·W channel uses like every other scheme)."""
    if size % 16:
        raise ConfigError("size", size, "a multiple of 16 (DeepJSCC's four stride-2 stages)")
    item = next((i for i in load_images("samples") if i.id == name), None)
    if item is None:
        raise ConfigError("name", name, "one of the bundled sample photographs")
    return square_resize(item, size)


def precompute_sweep(photo: ImageItem, snrs, cpps=("1/16",), channels=("awgn",), mcs=DEFAULT_MCS, trials: int = 1,
                     seed: int = 0, deepjscc: bool = True, linear: bool = True, progress: bool = False) -> LinkSweep:
    """Run every point of the grid once (see the module docstring); returns the :class:`LinkSweep`.

    Cost: (len(mcs) + 3) × len(snrs) × len(cpps) × len(channels) × trials link runs of a
    ``photo`` — for the labs' 256×256 photo about 20–80 ms each on one CPU core.
    """
    start = time.perf_counter()
    x = to_tensor([photo])
    specs = [(separate_label(m), {"type": "separate", "codec": BPG, "downscale": [1, 2, 4],
                                  "mcs": {"code": m.split()[0], "modulation": m.split()[1]}}) for m in mcs]
    specs.append((CAPACITY, {"type": "capacity", "codec": BPG, "downscale": [1, 2, 4]}))
    sweep = LinkSweep(image=photo.pixels, snrs=[float(s) for s in snrs], cpps=[str(c) for c in cpps],
                      channels=list(channels), schemes=[], trials=trials)
    for channel_name in channels:
        channel = make_channel(channel_name)
        for cpp in sweep.cpps:
            entries = list(specs)
            if deepjscc and cpp in DEEPJSCC_AT_CPP:
                entries.append((DEEPJSCC, {"type": "deepjscc", "model": DEEPJSCC_AT_CPP[cpp]}))
            if linear:
                entries.append((LINEAR, {"type": "linear", "basis": LINEAR_BASIS}))
            for name, spec in entries:
                if name not in sweep.schemes:
                    sweep.schemes.append(name)
                scheme = make_scheme({"name": name, **spec}, {"cpp": cpp})
                for snr in sweep.snrs:
                    values, decoded = [], []
                    for trial in range(trials):
                        generator = point_generator(seed, channel_name, cpp, name, snr, trial)
                        with torch.no_grad():
                            out = scheme.run(x, snr, channel, generator)
                        x_hat = out.x_hat.clamp(0, 1)
                        values.append(float(psnr(x, x_hat)[0]))
                        decoded.append(bool(out.decoded[0]))
                        if trial == 0:
                            key = (channel_name, cpp, name, snr)
                            sweep.images[key] = to_uint8(x_hat[0])
                            sweep.bits[key] = int(out.bits[0])
                    key = (channel_name, cpp, name, snr)
                    sweep.psnr[key], sweep.decoded[key] = float(np.mean(values)), float(np.mean(decoded))
                if progress:
                    print(f"{channel_name} cpp {cpp} {name}: done ({time.perf_counter() - start:.0f} s)")
    sweep.seconds = time.perf_counter() - start
    return sweep


class LinkExplorer:
    """Draws a :class:`LinkSweep` at a chosen (SNR, cpp, MCS, channel); :meth:`widget` puts
    ipywidgets sliders on it. :meth:`draw` does no link computation, only plotting."""

    def __init__(self, sweep: LinkSweep, schemes: list[str] | None = None):
        self.sweep = sweep
        self.separate = [s for s in sweep.schemes if s.startswith("BPG + LDPC")]
        self.others = [s for s in (schemes or sweep.schemes) if s not in self.separate]

    def draw(self, snr: float, cpp: str, mcs: str, channel: str, figure=None):
        """The figure at one setting: left, PSNR vs SNR of every scheme at (channel, cpp) — the
        chosen MCS bold, the other MCSs faint, the capacity bound dashed — with a marker at
        ``snr``; right, the original and the received images of the chosen MCS and the other
        schemes at ``snr``. ``mcs`` is a separate scheme's label (:func:`separate_label`)."""
        import matplotlib.pyplot as plt

        sweep = self.sweep
        snr = min(sweep.snrs, key=lambda s: abs(s - snr))  # the nearest precomputed SNR
        shown = [mcs] + [s for s in self.others if (channel, cpp, s, snr) in sweep.psnr]
        if figure is None:
            figure = plt.figure(figsize=(4.2 + 2.1 * (len(shown) + 1), 3.8), dpi=80)
        figure.clear()
        spec = figure.add_gridspec(1, 2, width_ratios=[4.2, 2.1 * (len(shown) + 1)], left=0.05, right=0.99,
                                   bottom=0.13, top=0.88, wspace=0.08)
        ax = figure.add_subplot(spec[0])
        for scheme in self.separate + self.others:
            x, y = sweep.curve(channel, cpp, scheme)
            if not len(x):
                continue
            chosen = scheme == mcs
            style = {"ls": "--", "color": "k", "lw": 1.2} if scheme == CAPACITY else \
                {"drawstyle": "steps-mid", "lw": 2.2 if chosen else 0.8, "alpha": 1 if chosen else 0.35} \
                if scheme in self.separate else {"lw": 2, "marker": "."}
            ax.plot(x, y, label=scheme if (chosen or scheme not in self.separate) else None, **style)
        for scheme in shown:
            ax.plot([snr], [sweep.psnr[channel, cpp, scheme, snr]], "o", ms=9, mfc="none", mec="red")
        ax.axvline(snr, color="red", lw=0.8, alpha=0.5)
        ax.set(xlabel="SNR (dB)", ylabel="PSNR (dB)", title=f"{channel}, cpp {cpp}")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, loc="lower right")
        images = spec[1].subgridspec(1, len(shown) + 1)
        panels = [("original", sweep.image)] + [
            (f"{s}\n{sweep.psnr[channel, cpp, s, snr]:.1f} dB"
             + ("" if s not in self.separate or sweep.decoded[channel, cpp, s, snr] >= 0.5 else " (lost)"),
             sweep.images[channel, cpp, s, snr]) for s in shown]
        for i, (title, image) in enumerate(panels):
            sub = figure.add_subplot(images[i])
            sub.imshow(image)
            sub.set_title(title, fontsize=7)
            sub.axis("off")
        return figure

    def widget(self, snr: float | None = None, cpp: str | None = None, mcs: str | None = None,
               channel: str | None = None):
        """Sliders (SNR, cpp) and menus (MCS, channel) that redraw :meth:`draw`. Returns the
        ipywidgets box, or None where ipywidgets is not installed (the static figure stays)."""
        try:
            import ipywidgets as widgets
        except ImportError:
            return None
        sweep = self.sweep
        controls = {
            "snr": widgets.SelectionSlider(options=sweep.snrs, value=snr if snr in sweep.snrs else sweep.snrs[0],
                                           description="SNR (dB)", continuous_update=False),
            "cpp": widgets.SelectionSlider(options=sweep.cpps, value=cpp or sweep.cpps[0], description="cpp",
                                           continuous_update=False),
            "mcs": widgets.Dropdown(options=self.separate, value=mcs or self.separate[0], description="MCS"),
            "channel": widgets.ToggleButtons(options=sweep.channels, value=channel or sweep.channels[0],
                                             description="channel"),
        }
        picture = widgets.Image(format="png")

        def redraw(_=None):
            picture.value = render_png(self.draw(**{k: c.value for k, c in controls.items()}))
        for control in controls.values():
            control.observe(redraw, names="value")
        redraw()
        return widgets.VBox([widgets.HBox([controls["snr"], controls["cpp"]]),
                             widgets.HBox([controls["mcs"], controls["channel"]]), picture])


#: The explorer's grid at each ``LINKSIM_LAB_SWEEP`` setting: ``full`` for reading and teaching
#: (``make labs``; a few minutes once, then cached), ``small`` for the test suite (seconds).
SWEEPS = {
    "full": dict(snrs=list(range(-4, 13)), cpps=["1/16", "1/4"], channels=["awgn", "rayleigh-block"], mcs=DEFAULT_MCS,
                 trials=1),
    "small": dict(snrs=[-2, 1, 4], cpps=["1/16"], channels=["awgn"], mcs=DEFAULT_MCS[::2], trials=1),
}


#: The seed of the labs' sweep (every point's generator derives from it).
SWEEP_SEED = 0


def lab_sweep(setting: str | None = None, size: int = 256, progress: bool = True) -> LinkSweep:
    """The explorer's sweep of the labs (:data:`SWEEPS`; default ``$LINKSIM_LAB_SWEEP`` or ``full``)
    of :func:`lab_photo`, read from the cache folder (``$LINKSIM_CACHE/labs/``) when an earlier
    run computed it, else computed and saved there — so the labs and the playground share it."""
    import os

    setting = setting or os.environ.get("LINKSIM_LAB_SWEEP", "full")
    if setting not in SWEEPS:
        raise ConfigError("LINKSIM_LAB_SWEEP", setting, f"one of {sorted(SWEEPS)}")
    path = sweep_cache_path(setting, size)
    if path.is_file():
        return LinkSweep.load(path)
    options = {**SWEEPS[setting], "seed": SWEEP_SEED}
    sweep = precompute_sweep(lab_photo(size), progress=progress, **options)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.stem + ".tmp.npz")
    sweep.save(tmp)
    tmp.replace(path)
    return sweep


def sweep_cache_path(setting: str, size: int) -> Path:
    """Where :func:`lab_sweep` keeps the sweep of one :data:`SWEEPS` setting: the name hashes the
    grid, the photo size and the bytes of every model the sweep runs, so a retrained checkpoint
    (a new ``model.safetensors`` under the same name) computes a new sweep instead of showing
    the old model's curves."""
    import hashlib
    import json

    from linksim import zoo
    from linksim.digital.separate import default_cache_dir

    grid = {**SWEEPS[setting], "size": size, "seed": SWEEP_SEED, "version": 1}
    models = [DEEPJSCC_AT_CPP[cpp] for cpp in grid["cpps"] if cpp in DEEPJSCC_AT_CPP] + [LINEAR_BASIS]
    grid["weights"] = {name: zoo.files_digest(zoo.resolve(name) / zoo.WEIGHTS) for name in models}
    digest = hashlib.sha256(json.dumps(grid, sort_keys=True, default=str).encode()).hexdigest()[:16]
    return default_cache_dir() / "labs" / f"sweep-{setting}-{digest}.npz"


def time_redraw(explorer: LinkExplorer, settings: list[dict], clock=time.perf_counter) -> float:
    """Seconds of the slowest redraw over ``settings`` (keyword dicts of :meth:`LinkExplorer.draw`):
    draw and encode the PNG the widget shows — what one slider move costs in the kernel. One
    untimed redraw first (matplotlib's first figure loads fonts). ``clock``: wall time by
    default; ``time.process_time`` gives the CPU time, which a loaded machine does not inflate."""
    render_png(explorer.draw(**settings[0]))
    worst = 0.0
    for setting in settings:
        start = clock()
        render_png(explorer.draw(**setting))
        worst = max(worst, clock() - start)
    return worst


def cpp_fraction(cpp: str) -> float:
    """``"1/16"`` → 0.0625."""
    return float(Fraction(cpp))


def check_claims(claims: dict[str, bool]) -> None:
    """Check the statements a lab's text makes about its own outputs: prints each with ✓ or ✗
    and raises AssertionError naming those that no longer hold (the executed lab then shows
    the error, and the test suite, which executes every lab, fails)."""
    for text, holds in claims.items():
        print(("✓ " if holds else "✗ ") + text)
    failed = [text for text, holds in claims.items() if not holds]
    assert not failed, f"the lab's text no longer matches its outputs: {failed}"


def image_row(panels: list[tuple[str, np.ndarray | torch.Tensor]], scale: float = 2.2, figure=None):
    """One row of images with titles (uint8 [H, W, 3], or float [1 or none, 3, H, W] in [0, 1])."""
    import matplotlib.pyplot as plt

    if figure is None:
        figure = plt.figure(figsize=(scale * len(panels), scale + 0.5), dpi=80)
    figure.clear()
    axes = figure.subplots(1, len(panels), squeeze=False)[0]
    for ax, (title, image) in zip(axes, panels):
        if isinstance(image, torch.Tensor):
            image = (image[0] if image.dim() == 4 else image).permute(1, 2, 0).clamp(0, 1).cpu().numpy()
        ax.imshow(image, interpolation="nearest")
        ax.set_title(title, fontsize=8)
        ax.axis("off")
    figure.subplots_adjust(left=0.01, right=0.99, bottom=0.02, top=0.85, wspace=0.05)
    return figure


def frame_slider(frames: dict, description: str, value=None):
    """A slider over precomputed ``frames`` (slider value → list of (title, image) panels) that
    redraws :func:`image_row`; returns the ipywidgets box, or None without ipywidgets."""
    try:
        import ipywidgets as widgets
    except ImportError:
        return None
    slider = widgets.SelectionSlider(options=list(frames), value=value if value in frames else list(frames)[0],
                                     description=description, continuous_update=True)
    picture = widgets.Image(format="png")

    def redraw(_=None):
        picture.value = render_png(image_row(frames[slider.value]))

    slider.observe(redraw, names="value")
    redraw()
    return widgets.VBox([slider, picture])


def render_png(figure) -> bytes:
    """The figure as PNG bytes, closed afterwards: what a widget shows after a slider move (an
    ``ipywidgets.Image`` whose value is replaced, so no output area is cleared and redrawn)."""
    import io

    import matplotlib.pyplot as plt

    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    plt.close(figure)
    return buffer.getvalue()
