"""The sweep runner: a validated :class:`~linksim.scenario.Scenario` → results, plots, grids.

    for image → for scheme → for SNR → for trial → [for restorer after that scheme]

Each point draws its randomness from a generator derived from (seed, scheme, image id,
SNR, trial) (:mod:`linksim.seeding`), so a point gives the same numbers whatever ran
before it; rows go to ``results.csv`` as each point finishes and a rerun skips the
points already there. The runner composes the physical layer and the restorers
(DESIGN.md §3: ``linksim.restore`` never sees a channel): each restorer runs on the
receiver output x̂ of a point with its own generator derived from (seed, scheme,
restorer, image id, SNR, trial), and its row's metrics compare x with x̃ clipped to
[0, 1] (the restored image as saved; the restorer itself does not clip). A restorer's
row keeps the link columns of its point (k, bits, decoded, …). The points of one
(scheme, SNR) that a restorer still needs are restored in batches of its ``batch``. Images
are brought to the scenario's ``resize`` (a centre square, resized) and centre-cropped to its
``crop_multiple``, the same for every scheme. Everything that can be wrong with the inputs
(scenario fields, image files, checkpoints) is checked before the output folder is created.
"""

from __future__ import annotations

import hashlib
import re
import warnings
from collections.abc import Hashable
from dataclasses import dataclass
from pathlib import Path

import torch
from PIL import Image
from tqdm.auto import tqdm

from linksim import units
from linksim.channel import make_channel
from linksim.data import center_crop, load_images, square_resize, to_tensor, to_uint8
from linksim.digital.separate import LadderCache, SourceCodedScheme, default_cache_dir
from linksim.errors import ConfigError
from linksim.link import Bandwidth, Scheme
from linksim.metrics import MetricSuite
from linksim.results import ResultsStore, cliff_snr, point_key, read_results, series_label, summarize, write_csv, write_json
from linksim.scenario import Scenario
from linksim.schemes import build_scheme
from linksim.seeding import point_generator


def build_schemes(scenario: Scenario, ladders: LadderCache) -> list[Scheme]:
    """Scheme objects for the scenario's validated scheme entries (one codec cache shared)."""
    bandwidth = Bandwidth(**scenario.bandwidth)
    return [build_scheme(spec, bandwidth, ladders) for spec in scenario.schemes]


@dataclass
class RunResult:
    """Where a run wrote its outputs, and its per-(scheme, SNR) summary."""

    out: Path
    summary: list[dict]
    computed: int
    skipped: int

    @property
    def results_csv(self) -> Path:
        return self.out / "results.csv"


def slug(text: str) -> str:
    """File-name-safe version of a scheme or image name."""
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("_") or "x"


def image_folder(scheme: str, restorer: str | None = None) -> str:
    """The folder under ``images/`` of a scheme's receiver outputs (``<scheme>``) or of their
    restorations (``<scheme>+<restorer>``; ``+`` never appears in a slug)."""
    return slug(scheme) + (f"+{slug(restorer)}" if restorer else "")


def build_restorers(scenario: Scenario, items, progress: bool = True) -> list:
    """Restorer objects for the scenario's validated ``restorers:`` entries (priors loaded),
    each checked against every image's size (a pooling factor that does not divide it, a
    prior of another resolution or channel count): a ``ConfigError`` naming the entry, the
    image and both sizes, before anything is computed."""
    from linksim.restore.registry import make_restorer

    restorers = []
    for index, spec in enumerate(scenario.restorers):
        where = f"restorers[{index}]"
        restorer = make_restorer({k: v for k, v in spec.items() if k != "after"}, progress=progress, where=where)
        restorer.after = list(spec["after"])
        for item in items:
            height, width = item.pixels.shape[:2]
            try:
                restorer.check((3, height, width))
            except ConfigError as error:
                raise ConfigError(f"{where}.{error.field}", f"{item.id}: {error.value}", error.allowed) from None
        restorers.append(restorer)
    return restorers


def run_scenario(scenario: Scenario, *, images=None, limit: int | None = None, out: Path | None = None,
                 progress: bool = True, plots: bool = True) -> RunResult:
    """Run (or resume) ``scenario``; returns the summary and where everything was written.

    ``images``, ``limit`` and ``out`` override the scenario's fields (the CLI's
    ``--images``, ``--limit``, ``--out``).
    """
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 1):
        raise ConfigError("limit", limit, "a positive integer")
    items = load_images(images if images is not None else scenario.images, limit or scenario.limit)
    # the same picture for every scheme: square + resize (a prior's resolution), then crop
    items = [center_crop(square_resize(item, scenario.resize), scenario.crop_multiple) for item in items]
    cache_dir = scenario.cache_dir or default_cache_dir()
    channel = make_channel(scenario.channel)
    schemes = build_schemes(scenario, LadderCache(cache_dir))
    restorers = build_restorers(scenario, items, progress=progress)
    metrics = MetricSuite(scenario.metrics)
    # Everything that can fail on the inputs fails here, before the output folder exists:
    # every image needs ≥ 1 channel use and a codec table (computed once, cached on disk).
    coded = {(repr(s.codec), tuple(s.downscale)): s for s in schemes if isinstance(s, SourceCodedScheme)}
    for item in tqdm(items, desc="codec tables", unit="img", disable=not progress or not coded):
        Bandwidth(**scenario.bandwidth).channel_uses(*item.pixels.shape[:2])
        for scheme in coded.values():
            scheme.ladder(to_tensor([item.pixels])[0])
    _check_equal_k(schemes, items, Bandwidth(**scenario.bandwidth))

    out = Path(out or scenario.output)
    _check_fingerprint(out, scenario)
    out.mkdir(parents=True, exist_ok=True)
    write_json(out / "scenario.json", {"name": scenario.name, "source": str(scenario.source), **scenario.fingerprint(),
                                       "snr_db": scenario.snr_db, "trials": scenario.trials, "grid": scenario.grid})
    store = ResultsStore(out / "results.csv")

    grid_images = {item.id for item in items[: scenario.grid["images"]]}
    after = {scheme.name: [r for r in restorers if scheme.name in r.after] for scheme in schemes}
    total = len(items) * sum(1 + len(after[s.name]) for s in schemes) * len(scenario.snr_db) * scenario.trials
    computed = skipped = 0
    bar = tqdm(total=total, desc=scenario.name, unit="pt", disable=not progress, dynamic_ncols=True)
    for item in items:
        x = to_tensor([item.pixels])
        height, width = item.pixels.shape[:2]
        # Metrics are a pure function of (x, x_hat), and a cliff sweep sends few distinct x_hat
        # per image (the failure fill, a few codec rungs): compute each distinct one once.
        score_cache: dict[Hashable, dict] = {}  # content id or SHA-1 → scores
        for scheme in schemes:
            for snr in scenario.snr_db:
                rows, pending = [], {r.label: [] for r in after[scheme.name]}  # restorer → [(trial, x_hat, row)]
                for trial in range(scenario.trials):
                    raw_done = point_key(scheme.name, None, item.id, snr, trial) in store.done
                    wanted = [r for r in after[scheme.name]
                              if point_key(scheme.name, r.label, item.id, snr, trial) not in store.done]
                    skipped += int(raw_done) + len(after[scheme.name]) - len(wanted)
                    bar.update(int(raw_done) + len(after[scheme.name]) - len(wanted))
                    if raw_done and not wanted:
                        continue
                    generator = point_generator(scenario.seed, scheme.name, item.id, snr, trial)
                    link = scheme.run(x, snr, channel, generator)
                    row = {"scheme": scheme.name, "restorer": None, "kind": scheme.kind, "image": item.id,
                           "height": height, "width": width, "snr_db": float(snr), "trial": trial,
                           "channel": channel.name, "k": link.k, "cpp": units.cpp(link.k, height, width),
                           "bcr": units.bcr(link.k, height, width), "bits": int(link.bits[0]),
                           "bpp": units.bpp(int(link.bits[0]), height, width), "decoded": bool(link.decoded[0]),
                           **{name: values[0] for name, values in link.extras.items()}}
                    for restorer in wanted:
                        pending[restorer.label].append((trial, link.x_hat, row))
                    if raw_done:
                        continue
                    # the scheme's content id when it has one (no 5 MB hash per Kodak point), else a digest
                    key = link.x_hat_ids[0] if link.x_hat_ids is not None else \
                        hashlib.sha1(link.x_hat.detach().to("cpu").contiguous().numpy().tobytes()).digest()
                    if key not in score_cache:
                        score_cache[key] = metrics(x, link.x_hat)
                    rows.append({**row, **{name: values[0] for name, values in score_cache[key].items()}})
                    computed += 1
                    bar.update(1)
                    if trial == 0 and item.id in grid_images and snr in scenario.grid["snr_db"]:
                        _save_png(out / "images" / image_folder(scheme.name) / f"{slug(item.id)}__snr{float(snr):+g}.png",
                                  link.x_hat[0])
                    bar.set_postfix_str(f"{scheme.name} · {item.id} · {snr:+g} dB", refresh=False)
                if rows:
                    store.append(rows)
                for restorer in after[scheme.name]:
                    todo = pending[restorer.label]
                    for start in range(0, len(todo), restorer.batch):
                        chunk = todo[start:start + restorer.batch]
                        bar.set_postfix_str(f"{scheme.name} + {restorer.label} · {item.id} · {snr:+g} dB", refresh=False)
                        x_tilde = restore_points(restorer, scenario.seed, scheme.name, item.id, snr,
                                                 [trial for trial, _, _ in chunk],
                                                 torch.cat([x_hat for _, x_hat, _ in chunk]))
                        scores = metrics(x.repeat(len(chunk), 1, 1, 1), x_tilde.clamp(0.0, 1.0))
                        restored = [{**row, "restorer": restorer.label, **{name: v[j] for name, v in scores.items()}}
                                    for j, (_, _, row) in enumerate(chunk)]
                        store.append(restored)
                        computed += len(chunk)
                        bar.update(len(chunk))
                        for j, (trial, _, _) in enumerate(chunk):
                            if trial == 0 and item.id in grid_images and snr in scenario.grid["snr_db"]:
                                _save_png(out / "images" / image_folder(scheme.name, restorer.label)
                                          / f"{slug(item.id)}__snr{float(snr):+g}.png", x_tilde[j])
    bar.close()

    rows = read_results(store.path)
    summary = summarize(rows)
    write_csv(out / "summary.csv", summary)
    if plots:
        from linksim import plots as plotting

        title = f"{scenario.name}: {channel.name}, {Bandwidth(**scenario.bandwidth).describe()}, {len(items)} image(s) × {scenario.trials} trial(s)"
        plotting.psnr_vs_snr(summary, out / "psnr_vs_snr.png", title=title, kinds={s.name: s.kind for s in schemes})
        series = [(s.name, None) for s in schemes] + [(s.name, r.label) for s in schemes for r in after[s.name]]
        series.sort(key=lambda pair: [s.name for s in schemes].index(pair[0]))  # restored rows under their scheme
        labels = [series_label(*pair) for pair in series]
        folders = {series_label(*pair): image_folder(*pair) for pair in series}
        for index, item in enumerate([i for i in items if i.id in grid_images]):
            path = out / ("grid.png" if index == 0 else f"grid_{slug(item.id)}.png")
            captions = {(series_label(r["scheme"], r.get("restorer")), r["snr_db"]): _caption(r)
                        for r in rows if r["image"] == item.id and r["trial"] == 0}
            plotting.image_grid(item, labels, scenario.grid["snr_db"], out / "images", path, slug, captions,
                                folders=folders)
    return RunResult(out=out, summary=summary, computed=computed, skipped=skipped)


def restore_points(restorer, seed: int, scheme: str, image: str, snr_db: float, trials: list[int],
                   x_hat: torch.Tensor) -> torch.Tensor:
    """Restore the receiver outputs x̂ [len(trials), 3, H, W] of the points (scheme, image,
    snr_db, trial) exactly as the runner does: generator i derived from (seed, scheme,
    restorer label, image, snr_db, trials[i]). Returns x̃ on the CPU, not clipped."""
    generators = [point_generator(seed, scheme, restorer.label, image, snr_db, trial) for trial in trials]
    with torch.no_grad():
        x_tilde = restorer.restore(x_hat, [float(snr_db)] * len(trials), generators)
    return x_tilde.detach().to("cpu", torch.float32)


def format_summary(summary: list[dict]) -> str:
    """The summary as an aligned text table, with the cliff SNR of each scheme."""
    width = max([28] + [len(series_label(r["scheme"], r.get("restorer"))) for r in summary])  # never cut a label
    header = f"{'scheme':<{width}} {'SNR dB':>7} {'n':>4} {'PSNR dB':>8} {'±95%':>6} {'MS-SSIM':>8} {'LPIPS':>6} {'decoded':>8} {'bpp':>7}"
    lines = [header, "-" * len(header)]
    fmt = lambda v, spec: format(v, spec) if v is not None else "—".rjust(len(format(0.0, spec)))  # noqa: E731
    for r in summary:
        lines.append(f"{series_label(r['scheme'], r.get('restorer')):<{width}} {r['snr_db']:>7g} {r['n']:>4} {fmt(r['psnr'], '8.2f')} {fmt(r['psnr_ci95'], '6.2f')} "
                     f"{fmt(r['ms_ssim'], '8.4f')} {fmt(r['lpips'], '6.3f')} {fmt(r['decoded_rate'], '8.0%')} {fmt(r['bpp'], '7.4f')}")
    # a cliff line only for schemes that can lose the image (analog and ideal ones never do)
    lossy = {r["scheme"] for r in summary if not r.get("restorer") and (r["decoded_rate"] or 0) < 1}
    for scheme in dict.fromkeys(r["scheme"] for r in summary if r["scheme"] in lossy):
        snr = cliff_snr(summary, scheme)
        lines.append(f"cliff of {scheme}: " + (f"decoded in ≥ 50 % of the points from {snr:g} dB up" if snr is not None else "never decoded in ≥ 50 % of the points"))
    return "\n".join(lines)


def _check_equal_k(schemes: list[Scheme], items, bandwidth: Bandwidth) -> None:
    """Load every model now (a bad checkpoint fails before any output) and warn, once per
    scheme, when a scheme spends another k than the budget (a DeepJSCC model pads the image
    to multiples of 2^d; ``crop_multiple`` avoids it). The ``k`` column records what was spent."""
    for scheme in schemes:
        channel_uses = getattr(scheme, "channel_uses", None)
        if channel_uses is None:
            continue
        differ = []
        for item in items:
            height, width = item.pixels.shape[:2]
            k, budget = channel_uses(height, width), bandwidth.channel_uses(height, width)
            if k != budget:
                differ.append((item.id, height, width, k, budget))
        if differ:
            image, height, width, k, budget = differ[0]
            more = f" (and {len(differ) - 1} more image(s))" if len(differ) > 1 else ""
            multiple = getattr(getattr(scheme, "config", None), "downsampling", None)
            hint = f"set crop_multiple: {multiple} in the scenario" if multiple else "crop the images"
            warnings.warn(f"{scheme.name} spends k = {k} channel uses on {image} ({height}×{width}){more}, the other "
                          f"schemes k = {budget} ({bandwidth.describe()}): unequal bandwidth; {hint} to give every "
                          "scheme the same k (the k column records what each spent)", stacklevel=3)


def _caption(row: dict) -> str:
    """Under a grid cell: the PSNR when the image arrived (or was restored), else why not."""
    if row.get("restorer"):
        return f"{row['psnr']:.1f} dB" if row["psnr"] is not None else ""
    if row["decoded"] and row["psnr"] is not None:
        return f"{row['psnr']:.1f} dB"
    return "did not fit the budget" if row["fits"] is False else "lost (decoding failed)"


def _check_fingerprint(out: Path, scenario: Scenario) -> None:
    """A resumed run must have been made with the same seed, channel, bandwidth, schemes, metrics."""
    import json

    previous = out / "scenario.json"
    if not previous.exists():
        return
    stored = json.loads(previous.read_text())
    current = json.loads(json.dumps(scenario.fingerprint(), default=str))
    changed = [key for key in current if stored.get(key) != current[key]]
    if changed:
        raise ConfigError("output", str(out), f"an empty folder or one from the same scenario (its {', '.join(changed)} differ); use another --out")


def _save_png(path: Path, image: torch.Tensor) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp.png")
    Image.fromarray(to_uint8(image)).save(tmp)
    tmp.replace(path)
