"""The sweep runner: a validated :class:`~linksim.scenario.Scenario` → results, plots, grids.

    for image → for bandwidth → for scheme → for SNR → for trial → [for restorer after that scheme]

Each point draws its randomness from a generator derived from (seed, scheme, image id,
SNR, trial) (:mod:`linksim.seeding`), so a point gives the same numbers whatever ran
before it; rows go to ``results.csv`` as each point finishes and a rerun skips the
points already there. The runner composes the physical layer and the restorers
(docs/ARCHITECTURE.md §3: ``linksim.restore`` never sees a channel): each restorer runs on the
receiver output x̂ of a point with its own generator derived from (seed, scheme,
restorer, image id, SNR, trial), and its row's metrics compare x with x̃ clipped to
[0, 1] (the restored image as saved; the restorer itself does not clip). A restorer's
row keeps the link columns of its point (k, bits, decoded, …). The points of one
(scheme, SNR) that a restorer still needs are restored in batches of its ``batch``.

A rate sweep (several bandwidths) runs every scheme at each bandwidth, the bandwidths the
outer loop inside an image (the codec tables are per image, shared by all bandwidths). The
bandwidth is not part of a point's generator: the rows of one bandwidth are exactly those of
the same scenario with that bandwidth alone, and the curves over cpp see common random
numbers (differences between bandwidths are the rate's, not another noise draw). The rows
carry the bandwidth's label (``results.csv``'s ``bandwidth`` column) and the points are keyed
by it. Images
are brought to the scenario's ``resize`` (a centre square, resized) and centre-cropped to its
``crop_multiple``, the same for every scheme. Everything that can be wrong with the inputs
(scenario fields, image files, checkpoints) is checked before the output folder is created.

The work is cut into :class:`Unit` s (one image at one bandwidth, with all its schemes or, when
a sweep has fewer such units than twice the executor's workers, one scheme each; in the order
above) that :class:`SweepWorker` computes as a pure function returning rows and grid pictures
(:class:`UnitResult`); :class:`Sweep` alone writes files. It runs the units itself, or hands
them to an executor of :mod:`linksim.execution` (local worker processes, Ray) that returns
the results in canonical order, so ``results.csv`` has the same bytes either way.
"""

from __future__ import annotations

import hashlib
import re
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from tqdm.auto import tqdm

from linksim import units
from linksim.channel import make_channel
from linksim.data import ImageItem, center_crop, load_images, square_resize, to_tensor, to_uint8
from linksim.digital.separate import LadderCache, SourceCodedScheme, default_cache_dir
from linksim.errors import ConfigError
from linksim.link import Bandwidth, LinkOutput, Scheme
from linksim.metrics import GroupMetrics, MetricSuite, point_fields, pool, write_point, write_reference
from linksim.metrics.group import reference_path
from linksim.results import OutputLock, ResultsStore, cliff_snr, point_key, read_results, series_label, summarize, write_csv, write_json
from linksim.scenario import Scenario, bandwidth_label, nominal_cpp
from linksim.schemes import build_scheme
from linksim.seeding import point_generator


def build_schemes(scenario: Scenario, ladders: LadderCache, bandwidth: dict | None = None) -> list[Scheme]:
    """Scheme objects for the scenario's validated scheme entries (one codec cache shared), at
    ``bandwidth`` (one of the scenario's validated mappings; default: its first or only one)."""
    bandwidth = Bandwidth(**(bandwidth or scenario.bandwidth))
    return [build_scheme(spec, bandwidth, ladders) for spec in scenario.schemes]


@dataclass
class Budget:
    """One bandwidth of a run and the schemes built for it.

    ``label`` is the value of ``results.csv``'s ``bandwidth`` column (``"1/128"``) in a rate
    sweep, None in a single-bandwidth run (whose rows have no such column).
    """

    bandwidth: Bandwidth
    label: str | None
    schemes: list[Scheme]


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
                 progress: bool = True, plots: bool = True, execution: dict | None = None) -> RunResult:
    """Run (or resume) ``scenario``; returns the summary and where everything was written.

    ``images``, ``limit`` and ``out`` override the scenario's fields (the CLI's
    ``--images``, ``--limit``, ``--out``); ``execution`` overrides fields of the scenario's
    ``execution`` (``executor``, ``workers``, ``address``, ``threads``: the CLI's
    ``--executor``, ``--workers``, ``--address``, ``--threads``; :mod:`linksim.execution`). The
    executor is checked (a Ray cluster reached) before anything is written.

    This process computes with ``threads`` PyTorch threads from the start (the models and
    tables it builds included) to the end, as every worker does; its count is restored after.
    """
    from linksim.execution import make_executor, validate_execution

    settings = validate_execution({**scenario.execution, **{k: v for k, v in (execution or {}).items() if v is not None}})
    executor = make_executor(settings)
    try:
        with torch_threads(settings["threads"]):
            sweep = Sweep(scenario, images=images, limit=limit, out=out, progress=progress, threads=settings["threads"])
            try:
                sweep.run(executor)
                summary = sweep.finish(plots=plots)
            finally:
                sweep.close()
    finally:
        if executor is not None:
            executor.close()
    return RunResult(out=sweep.out, summary=summary, computed=sweep.computed, skipped=sweep.skipped)


@contextmanager
def torch_threads(count: int):
    """PyTorch's intra-op thread count set to ``count`` within the block, restored on exit."""
    before = torch.get_num_threads()
    torch.set_num_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(before)


class Sweep:
    """One run of a scenario, in the order the rows of ``results.csv`` are written:

    for image → for bandwidth → for scheme → for SNR → [the link's trials, then each restorer
    after that scheme].

    Building it loads the images, the models and the codec tables and checks everything that
    can be wrong with the inputs; only then does it create the output folder.
    """

    def __init__(self, scenario: Scenario, *, images=None, limit: int | None = None, out: Path | None = None,
                 progress: bool = True, threads: int = 1):
        if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 1):
            raise ConfigError("limit", limit, "a positive integer")
        self.scenario = scenario
        self.progress = progress
        items = load_images(images if images is not None else scenario.images, limit or scenario.limit)
        # the same picture for every scheme: square + resize (a prior's resolution), then crop
        self.items = [center_crop(square_resize(item, scenario.resize), scenario.crop_multiple) for item in items]
        self.bandwidth = Bandwidth(**scenario.bandwidth)  # the first (or only) one
        self.channel = make_channel(scenario.channel)
        self.budgets = make_budgets(scenario, LadderCache(scenario.cache_dir or default_cache_dir()))
        self.schemes = self.budgets[0].schemes  # names, kinds and codecs are the same at every bandwidth
        restorers = build_restorers(scenario, self.items, progress=progress)
        self.metrics = MetricSuite(scenario.metrics)
        self._check_inputs()

        self.out = Path(out or scenario.output)
        self.threads = threads  # PyTorch threads per unit: part of what fixes the numbers
        _check_fingerprint(self.out, scenario, threads)
        self.out.mkdir(parents=True, exist_ok=True)
        self.lock = OutputLock(self.out)  # a second run into this folder refuses here, before writing
        self.lock.acquire()
        write_json(self.out / "scenario.json", {"name": scenario.name, "source": str(scenario.source), **scenario.fingerprint(),
                                                "snr_db": scenario.snr_db, "trials": scenario.trials, "grid": scenario.grid,
                                                "threads": threads})
        self.store = ResultsStore(self.out / "results.csv", several_bandwidths=scenario.several_bandwidths,
                                  metrics=scenario.metrics,
                                  extra_columns=tuple(getattr(self.channel, "result_columns", lambda k: {})(1)))
        self.grid_images = {item.id for item in self.items[: scenario.grid["images"]]}
        self.after = {scheme.name: [r for r in restorers if scheme.name in r.after] for scheme in self.schemes}
        self.worker = SweepWorker(scenario, self.budgets, self.channel, self.after, self.metrics, self.grid_images)
        self.group = self.worker.group  # FID/KID: features per point, pooled in finish()
        self.computed = self.skipped = 0

    def _check_inputs(self) -> None:
        """Fail before the output folder exists: every image needs ≥ 1 channel use and a codec
        table (computed once here, cached on disk), and every model must load."""
        coded = {(repr(s.codec), tuple(s.downscale)): s for s in self.schemes if isinstance(s, SourceCodedScheme)}
        for item in tqdm(self.items, desc="codec tables", unit="img", disable=not self.progress or not coded):
            for budget in self.budgets:
                budget.bandwidth.channel_uses(*item.pixels.shape[:2])
            for scheme in coded.values():  # a codec table is the image's, whatever the bandwidth
                scheme.ladder(to_tensor([item.pixels])[0])
        for budget in self.budgets:
            _check_equal_k(budget.schemes, self.items, budget.bandwidth)

    def units(self, per_scheme: bool = False) -> list[Unit]:
        """The sweep's units of work in canonical order (image → bandwidth → scheme), each with
        the keys of its points already in ``results.csv``.

        One unit per (image, bandwidth) with all its schemes: the schemes of an image share its
        metric scores (a cliff sweep's schemes send the same few codec rungs and the same
        failure fill), as in a run on one process. ``per_scheme`` cuts each into one unit per
        scheme: more units, for more workers than images, at the price of scores computed
        again by each worker that meets the image."""
        units = []
        for item in self.items:
            for b, budget in enumerate(self.budgets):
                groups = [(s,) for s in range(len(budget.schemes))] if per_scheme else [tuple(range(len(budget.schemes)))]
                for schemes in groups:
                    keys = set().union(*(self.worker.point_keys(item, budget, budget.schemes[s]) for s in schemes))
                    units.append(Unit(len(units), item, b, schemes, frozenset(keys & self.store.done)))
        return units

    def run(self, executor=None) -> None:
        """Compute every point not yet in ``results.csv``, appending rows as points finish.

        ``executor`` (:mod:`linksim.execution`): None runs the units here, one after the
        other; an executor runs them on its workers and hands the results back in canonical
        order, which this process alone writes (the same bytes as a run here)."""
        scenario = self.scenario
        total = (len(self.items) * len(self.budgets) * sum(1 + len(self.after[s.name]) for s in self.schemes)
                 * len(scenario.snr_db) * scenario.trials)
        self.bar = tqdm(total=total, desc=scenario.name, unit="pt", disable=not self.progress, dynamic_ncols=True)
        # image-level units unless there are too few of them to keep every worker busy
        slots = getattr(executor, "slots", 1)
        work = self.units(per_scheme=executor is not None and len(self.items) * len(self.budgets) < 2 * slots)
        if executor is None:
            score_cache: dict = {}  # content id or SHA-1 → scores (and FID/KID features), of one image
            cached_image = None
            with torch_threads(self.threads):
                for unit in work:
                    # Metrics are a pure function of (x, x_hat), and a cliff sweep sends few distinct
                    # x_hat per image (the failure fill, a few codec rungs): compute each distinct one
                    # once. The units come image by image, so only the image at hand's cache is kept.
                    if unit.item.id != cached_image:
                        score_cache, cached_image = {}, unit.item.id
                    for result in self.worker.chunks(unit, score_cache):
                        self._write(result)
        else:
            todo = []
            for unit in work:
                if len(unit.done) == self.worker.unit_points(unit):  # nothing left: no trip to a worker
                    self.skipped += len(unit.done)
                    self.bar.update(len(unit.done))
                else:
                    todo.append(unit)
            for result in executor.run(self.worker.recipe(self.threads), todo):
                self._write(result)
        self.bar.close()

    def _write(self, result: UnitResult) -> None:
        """Append a unit's (or a part's) rows and keep its grid pictures; count its points.

        The group-metric payloads (FID/KID: the patches' Inception features) go to ``features/``
        before the rows go to results.csv, the original's once per image: a row in the file
        means its features are on disk, so a resumed run pools complete groups."""
        for image, features in result.references:
            if not reference_path(self.out, image).exists():
                write_reference(self.out, image, features)
        for fields, features in result.features:
            write_point(self.out, fields, features)
        if result.rows:
            self.store.append(result.rows)
        for folder, name, pixels in result.pictures:
            _save_png(self.out / "images" / folder / name, pixels)
        self.computed += result.computed
        self.skipped += result.skipped
        self.bar.update(result.computed + result.skipped)
        if result.postfix:
            self.bar.set_postfix_str(result.postfix, refresh=False)

    def close(self) -> None:
        """Release the output folder's lock (another run may then write to it)."""
        self.lock.release()

    def finish(self, plots: bool = True) -> list[dict]:
        """Summarize ``results.csv`` into ``summary.csv`` (and the plots); returns the summary."""
        rows = read_results(self.store.path)
        summary = summarize(rows, pool(self.out, self.group.names) if self.group.active else None, self.group.names)
        write_csv(self.out / "summary.csv", summary)
        if plots:
            self._plot(summary, rows)
        return summary

    def _plot(self, summary: list[dict], rows: list[dict]) -> None:
        """``psnr_vs_snr.png`` and one image grid per grid image (``grid.png`` for the first).

        A rate sweep draws ``psnr_vs_cpp.png`` (:func:`linksim.plots.psnr_vs_cpp`, one panel per
        SNR of ``grid.snr_db``), one ``psnr_vs_snr_cpp<label>.png`` per bandwidth when the SNR
        grid has several SNRs (none when it has one: a single point per curve), and the image
        grids of its first bandwidth.
        """
        from linksim import plots as plotting

        scenario, schemes = self.scenario, self.schemes
        kinds = {s.name: s.kind for s in schemes}
        shown = f"{len(self.items)} image(s) × {scenario.trials} trial(s)"
        if scenario.several_bandwidths:
            cpps = ", ".join(budget.label for budget in self.budgets)
            plotting.psnr_vs_cpp(summary, self.out / "psnr_vs_cpp.png", scenario.grid["snr_db"],
                                 title=f"{scenario.name}: {self.channel.name}, cpp {cpps}, {shown}", kinds=kinds)
            if len(scenario.snr_db) > 1:
                for budget, bandwidth in zip(self.budgets, scenario.bandwidths):
                    plotting.psnr_vs_snr([r for r in summary if r["cpp"] == nominal_cpp(bandwidth)],
                                         self.out / f"psnr_vs_snr_cpp{slug(budget.label)}.png",
                                         title=f"{scenario.name}: {self.channel.name}, {budget.bandwidth.describe()}, "
                                               f"{shown}", kinds=kinds)
        else:
            plotting.psnr_vs_snr(summary, self.out / "psnr_vs_snr.png",
                                 title=f"{scenario.name}: {self.channel.name}, {self.bandwidth.describe()}, {shown}",
                                 kinds=kinds)
        # the perceptual metrics with values (HaarPSI, VSI, LPIPS, FID, KID), when there are any
        where = (f"cpp {', '.join(b.label for b in self.budgets)}" if scenario.several_bandwidths
                 else self.bandwidth.describe())
        plotting.perceptual_vs_snr(summary, self.out / "perceptual_vs_snr.png", kinds=kinds,
                                   title=f"{scenario.name}: {self.channel.name}, {where}, {shown}")
        series = [(s.name, None) for s in schemes] + [(s.name, r.label) for s in schemes for r in self.after[s.name]]
        series.sort(key=lambda pair: [s.name for s in schemes].index(pair[0]))  # restored rows under their scheme
        labels = [series_label(*pair) for pair in series]
        folders = {series_label(*pair): image_folder(*pair) for pair in series}
        first = self.budgets[0].label  # the grid's bandwidth (None: the only one)
        for index, item in enumerate([i for i in self.items if i.id in self.grid_images]):
            path = self.out / ("grid.png" if index == 0 else f"grid_{slug(item.id)}.png")
            captions = {(series_label(r["scheme"], r.get("restorer")), r["snr_db"]): _caption(r)
                        for r in rows if r["image"] == item.id and r["trial"] == 0 and r.get("bandwidth") == first}
            plotting.image_grid(item, labels, scenario.grid["snr_db"], self.out / "images", path, slug, captions,
                                folders=folders)


@dataclass
class Unit:
    """One unit of work: one image at one bandwidth through one or more schemes, all their SNRs
    and trials (and the restorers after each scheme), so that a worker builds the schemes'
    codec tables and models once for many points and scores each distinct x̂ of the image once.

    ``index`` is its place in the canonical order (:meth:`Sweep.units`); ``budget`` indexes
    :attr:`SweepWorker.budgets` and ``schemes`` (ascending) that budget's schemes; ``done`` holds
    the :func:`~linksim.results.point_key` of its points already in ``results.csv`` (skipped).
    """

    index: int
    item: ImageItem
    budget: int
    schemes: tuple[int, ...]
    done: frozenset = frozenset()


@dataclass
class UnitResult:
    """What computing a unit (or a part of one) gives back to the process that writes.

    ``rows``: ``results.csv`` rows in canonical order; ``pictures``: the image-grid cells,
    (folder under ``images/``, file name, uint8 [H, W, 3]); ``features``: the group-metric payload
    of each computed point, (its :func:`~linksim.metrics.point_fields`, float32 [P, D]);
    ``references``: the original's, (image id, float32 [P, D]); ``computed``/``skipped``: points.
    A worker returns data only; the writing process writes every file.
    """

    index: int
    rows: list[dict] = field(default_factory=list)
    pictures: list[tuple[str, str, np.ndarray]] = field(default_factory=list)
    features: list[tuple[dict, torch.Tensor]] = field(default_factory=list)
    references: list[tuple[str, torch.Tensor]] = field(default_factory=list)
    computed: int = 0
    skipped: int = 0
    postfix: str = ""

    def merge(self, other: UnitResult) -> None:
        self.rows += other.rows
        self.pictures += other.pictures
        self.features += other.features
        self.references += other.references
        self.computed += other.computed
        self.skipped += other.skipped
        self.postfix = other.postfix or self.postfix


@dataclass
class WorkerRecipe:
    """What a worker process needs to build its :class:`SweepWorker`: the validated scenario and
    the ids of the grid images (small and picklable; the images travel with each unit), and the
    run's PyTorch thread count per unit: a convolution's float sums depend on how many threads
    split them (DeepJSCC's x̂ moves in the 7th digit), so every process computes with the same
    count to give the same bytes."""

    scenario: Scenario
    grid_images: tuple[str, ...]
    torch_threads: int = 1

    @property
    def token(self) -> str:
        """Identifies the recipe (a worker keeps one built :class:`SweepWorker` per token)."""
        import json

        text = json.dumps([self.scenario.fingerprint(), self.scenario.snr_db, self.scenario.trials,
                           self.scenario.grid, str(self.scenario.cache_dir), list(self.grid_images)], default=str)
        return hashlib.sha256(text.encode()).hexdigest()


def make_budgets(scenario: Scenario, ladders: LadderCache) -> list[Budget]:
    """The scenario's bandwidths, each with its schemes built (models loaded)."""
    return [Budget(Bandwidth(**b), bandwidth_label(b) if scenario.several_bandwidths else None,
                   build_schemes(scenario, ladders, b)) for b in scenario.bandwidths]


class SweepWorker:
    """Computes the points of units: a pure function of a unit and the built schemes, channel,
    restorers and metrics (no file is written here; every draw comes from the point's own
    generator, so any process computes any unit and gets the same numbers)."""

    def __init__(self, scenario: Scenario, budgets: list[Budget], channel, after: dict[str, list], metrics: MetricSuite,
                 grid_images: set[str]):
        self.scenario, self.budgets, self.channel, self.after = scenario, budgets, channel, after
        self.metrics, self.grid_images = metrics, set(grid_images)
        self.group = GroupMetrics(scenario.metrics)  # FID/KID: features per point, pooled by Sweep.finish
        self._reference: dict[str, torch.Tensor] = {}  # the original's features, for the image at hand

    @classmethod
    def build(cls, recipe: WorkerRecipe) -> SweepWorker:
        """A worker process's own copy: schemes, models and priors loaded once (the inputs were
        checked by the process that made the recipe)."""
        scenario = recipe.scenario
        budgets = make_budgets(scenario, LadderCache(scenario.cache_dir or default_cache_dir()))
        restorers = build_restorers(scenario, [], progress=False)
        after = {scheme.name: [r for r in restorers if scheme.name in r.after] for scheme in budgets[0].schemes}
        return cls(scenario, budgets, make_channel(scenario.channel), after, MetricSuite(scenario.metrics),
                   set(recipe.grid_images))

    def recipe(self, threads: int) -> WorkerRecipe:
        return WorkerRecipe(self.scenario, tuple(sorted(self.grid_images)), threads)

    def point_keys(self, item, budget: Budget, scheme: Scheme) -> set[tuple]:
        """The keys of every point of (item, budget, scheme): link and restored rows."""
        restorers = [None] + [r.label for r in self.after[scheme.name]]
        return {point_key(scheme.name, r, item.id, snr, trial, budget.label)
                for r in restorers for snr in self.scenario.snr_db for trial in range(self.scenario.trials)}

    def unit_points(self, unit: Unit) -> int:
        schemes = [self.budgets[unit.budget].schemes[s] for s in unit.schemes]
        return len(self.scenario.snr_db) * self.scenario.trials * sum(1 + len(self.after[s.name]) for s in schemes)

    def compute(self, unit: Unit) -> UnitResult:
        """Every missing point of ``unit``, in one result (what a worker sends back)."""
        result = UnitResult(unit.index)
        for part in self.chunks(unit, {}):
            result.merge(part)
        return result

    def chunks(self, unit: Unit, score_cache: dict) -> Iterator[UnitResult]:
        """The missing points of ``unit`` part by part, in canonical order: per scheme and SNR the
        link's trials, then each restorer's batches. ``score_cache`` (content id → scores) is
        shared by the unit's schemes and may be by the units of one image: the scores of an x̂
        are the same whoever computes them."""
        budget = self.budgets[unit.budget]
        x = to_tensor([unit.item.pixels])
        for scheme in (budget.schemes[s] for s in unit.schemes):
            for snr in self.scenario.snr_db:
                result, pending = self._link_trials(unit, x, budget, scheme, snr, score_cache)
                yield result
                for restorer in self.after[scheme.name]:
                    yield from self._restore(unit, x, budget, scheme, snr, restorer, pending[restorer.label])

    def _link_trials(self, unit: Unit, x: torch.Tensor, budget: Budget, scheme: Scheme, snr: float,
                     score_cache: dict) -> tuple[UnitResult, dict[str, list]]:
        """Send ``x`` [1, 3, H, W] through ``scheme`` (built for ``budget``) at ``snr`` for every
        trial not yet done; returns the link rows and, per restorer label, the (trial, x̂, link
        row) its missing points need."""
        item, result = unit.item, UnitResult(unit.index)
        height, width = item.pixels.shape[:2]
        pending = {r.label: [] for r in self.after[scheme.name]}
        for trial in range(self.scenario.trials):
            raw_done = point_key(scheme.name, None, item.id, snr, trial, budget.label) in unit.done
            wanted = [r for r in self.after[scheme.name]
                      if point_key(scheme.name, r.label, item.id, snr, trial, budget.label) not in unit.done]
            result.skipped += int(raw_done) + len(self.after[scheme.name]) - len(wanted)
            if raw_done and not wanted:
                continue
            generator = point_generator(self.scenario.seed, scheme.name, item.id, snr, trial)
            link = scheme.run(x, snr, self.channel, generator)
            row = {"scheme": scheme.name, "restorer": None, "kind": scheme.kind, "image": item.id,
                   "height": height, "width": width, "snr_db": float(snr), "trial": trial,
                   "channel": self.channel.name, "bandwidth": budget.label, "k": link.k, "cpp": units.cpp(link.k, height, width),
                   "bcr": units.bcr(link.k, height, width), "bits": int(link.bits[0]),
                   "bpp": units.bpp(int(link.bits[0]), height, width), "decoded": bool(link.decoded[0]),
                   **{name: values[0] for name, values in link.extras.items()},
                   **_channel_columns(self.channel, link)}
            for restorer in wanted:
                pending[restorer.label].append((trial, link.x_hat, row))
            if raw_done:
                continue
            # the scheme's content id when it has one (no 5 MB hash per Kodak point), else a digest
            key = link.x_hat_ids[0] if link.x_hat_ids is not None else \
                hashlib.sha1(link.x_hat.detach().to("cpu").contiguous().numpy().tobytes()).digest()
            if key not in score_cache:
                score_cache[key] = self.metrics(x, link.x_hat)
            if self.group.available:
                if ("group", key) not in score_cache:
                    score_cache[("group", key)] = self.group.point_payload(link.x_hat)[0]
                self._group_payload(result, item, x, row, score_cache[("group", key)])
            result.rows.append({**row, **{name: values[0] for name, values in score_cache[key].items()}})
            result.computed += 1
            if trial == 0:
                self._grid_picture(result, item, budget, snr, image_folder(scheme.name), link.x_hat[0])
            where = f" · cpp {budget.label}" if budget.label else ""
            result.postfix = f"{scheme.name} · {item.id}{where} · {snr:+g} dB"
        return result, pending

    def _restore(self, unit: Unit, x: torch.Tensor, budget: Budget, scheme: Scheme, snr: float, restorer,
                 todo: list) -> Iterator[UnitResult]:
        """Restore the pending points ``todo`` = [(trial, x̂, link row)] in batches of the
        restorer's ``batch``; each restored row keeps its link columns."""
        item = unit.item
        for start in range(0, len(todo), restorer.batch):
            chunk = todo[start:start + restorer.batch]
            x_tilde = restore_points(restorer, self.scenario.seed, scheme.name, item.id, snr,
                                     [trial for trial, _, _ in chunk], torch.cat([x_hat for _, x_hat, _ in chunk]))
            scores = self.metrics(x.repeat(len(chunk), 1, 1, 1), x_tilde.clamp(0.0, 1.0))
            result = UnitResult(unit.index, computed=len(chunk),
                                postfix=f"{scheme.name} + {restorer.label} · {item.id} · {snr:+g} dB")
            if self.group.available:
                for (_, _, row), features in zip(chunk, self.group.point_payload(x_tilde.clamp(0.0, 1.0))):
                    self._group_payload(result, item, x, {**row, "restorer": restorer.label}, features)
            result.rows = [{**row, "restorer": restorer.label, **{name: v[j] for name, v in scores.items()}}
                           for j, (_, _, row) in enumerate(chunk)]
            for j, (trial, _, _) in enumerate(chunk):
                if trial == 0:
                    self._grid_picture(result, item, budget, snr, image_folder(scheme.name, restorer.label), x_tilde[j])
            yield result

    def _group_payload(self, result: UnitResult, item, x: torch.Tensor, row: dict, features: torch.Tensor) -> None:
        """Add a point's group-metric payload (a pure function of its x̂) to ``result``, and the
        original's once per unit (the writing process keeps the first one of an image)."""
        if item.id not in self._reference:
            self._reference = {item.id: self.group.reference_payload(x)[0]}
        if not any(image == item.id for image, _ in result.references):
            result.references.append((item.id, self._reference[item.id]))
        result.features.append((point_fields(row["scheme"], row["restorer"], item.id, row["snr_db"], row["trial"],
                                             row["bandwidth"]), features))

    def _grid_picture(self, result: UnitResult, item, budget: Budget, snr: float, folder: str,
                      image: torch.Tensor) -> None:
        """Keep trial 0's picture when (image, SNR) is a cell of the image grid (the grid is
        drawn at the first bandwidth of a rate sweep)."""
        if budget is self.budgets[0] and item.id in self.grid_images and snr in self.scenario.grid["snr_db"]:
            result.pictures.append((folder, f"{slug(item.id)}__snr{float(snr):+g}.png", to_uint8(image)))


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
    """The summary as an aligned text table, with the cliff SNR of each scheme (a rate sweep's
    table has a cpp column and a cliff line per scheme and bandwidth)."""
    width = max([28] + [len(series_label(r["scheme"], r.get("restorer"))) for r in summary])  # never cut a label
    rates = bool(summary) and "cpp" in summary[0]
    cpp_label = lambda cpp: bandwidth_label({"cpp": cpp})  # noqa: E731
    header = (f"{'scheme':<{width}} " + (f"{'cpp':>8} " if rates else "") +
              f"{'SNR dB':>7} {'n':>4} {'PSNR dB':>8} {'±95%':>6} {'MS-SSIM':>8} {'LPIPS':>6} {'decoded':>8} {'bpp':>7}")
    lines = [header, "-" * len(header)]
    fmt = lambda v, spec: format(v, spec) if v is not None else "—".rjust(len(format(0.0, spec)))  # noqa: E731
    extra = [m for m in ("haarpsi", "vsi", "lpips_vgg", "fid", "kid") if summary and m in summary[0]]
    if extra:  # the further metrics the scenario names, after the usual columns
        header += "".join(f" {m.upper().replace('_', '-'):>9}" for m in extra)
        lines = [header, "-" * len(header)]
    for r in summary:
        lines.append(f"{series_label(r['scheme'], r.get('restorer')):<{width}} " +
                     (f"{cpp_label(r['cpp']):>8} " if rates else "") +
                     f"{r['snr_db']:>7g} {r['n']:>4} {fmt(r['psnr'], '8.2f')} {fmt(r['psnr_ci95'], '6.2f')} "
                     f"{fmt(r['ms_ssim'], '8.4f')} {fmt(r['lpips'], '6.3f')} {fmt(r['decoded_rate'], '8.0%')} {fmt(r['bpp'], '7.4f')}" +
                     "".join(f" {fmt(r[m], '9.4f')}" for m in extra))
    # a cliff line only for schemes that can lose the image (analog and ideal ones never do)
    lossy = {r["scheme"] for r in summary if not r.get("restorer") and (r["decoded_rate"] or 0) < 1}
    for scheme in dict.fromkeys(r["scheme"] for r in summary if r["scheme"] in lossy):
        for cpp in dict.fromkeys(r["cpp"] for r in summary if r["scheme"] == scheme) if rates else [None]:
            snr = cliff_snr(summary, scheme, cpp=cpp)
            at = f" at cpp {cpp_label(cpp)}" if rates else ""
            lines.append(f"cliff of {scheme}{at}: " + (f"decoded in ≥ 50 % of the points from {snr:g} dB up" if snr is not None else "never decoded in ≥ 50 % of the points"))
    return "\n".join(lines)


def _channel_columns(channel, link: LinkOutput) -> dict:
    """The channel's own result columns for one image (the OFDM overheads of the REs the scheme
    really sent: ``channel_uses_used`` when it reports it, else k); nothing for other channels."""
    columns = getattr(channel, "result_columns", None)
    if columns is None:
        return {}
    used = link.extras.get("channel_uses_used", [None])[0]
    return columns(int(used) if used else link.k)


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


def _check_fingerprint(out: Path, scenario: Scenario, threads: int) -> None:
    """A resumed run must have been made with the same seed, channel, bandwidth, schemes,
    metrics, and PyTorch threads per unit (folders written before that count was kept take
    any)."""
    import json

    previous = out / "scenario.json"
    if not previous.exists():
        return
    stored = json.loads(previous.read_text())
    current = json.loads(json.dumps(scenario.fingerprint(), default=str))
    changed = [key for key in current if stored.get(key) != current[key]]
    if changed:
        raise ConfigError("output", str(out), f"an empty folder or one from the same scenario (its {', '.join(changed)} differ); use another --out")
    if stored.get("threads", threads) != threads:
        raise ConfigError("threads", threads, f"{stored['threads']}, the count {out} was computed with "
                                              "(the last digits depend on it), or another --out")


def _save_png(path: Path, pixels: np.ndarray) -> None:
    """Write uint8 [H, W, 3] ``pixels`` atomically."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp.png")
    Image.fromarray(pixels).save(tmp)
    tmp.replace(path)
