"""The results store: ``results.csv``, one row per (scheme, restorer, image, snr_db, trial).

``restorer`` is empty for the receiver output x̂ itself and names the restorer for its
restored x̃ (whose metrics compare x with x̃; the link columns k, bits, decoded, … are the
scheme's). Rows are appended and flushed as each point finishes, so an interrupted sweep
resumes where it stopped; :func:`summarize` turns rows into the per-(scheme, restorer, SNR)
table.

A ``results.csv`` written before the ``restorer`` column existed (header
:data:`LEGACY_COLUMNS`) holds only receiver outputs: :class:`ResultsStore` upgrades it in
place (the column inserted, empty in every row, every other cell kept byte for byte) with
a warning, and the run resumes. Any other header is refused.

A rate sweep (a scenario with several bandwidths) writes :data:`RATE_COLUMNS`: one more column,
``bandwidth``, the nominal cpp of the point's budget as a fraction (``1/128``; the ``cpp``
column is what the scheme spent, k/(H·W), which differs between image sizes). Its points are
keyed and summarized per bandwidth too, and its summary gains nominal ``cpp`` and ``bcr``
columns. A single-bandwidth run writes exactly the files it wrote before rate sweeps existed.
"""

from __future__ import annotations

import csv
import json
import math
import os
from fractions import Fraction
from pathlib import Path

from linksim.errors import ConfigError

# results.csv columns, in order. Scheme reports (LinkOutput.extras) fill the columns they know.
COLUMNS = ["scheme", "restorer", "kind", "image", "height", "width", "snr_db", "trial", "channel", "k", "cpp", "bcr",
           "bits", "bpp", "decoded", "psnr", "ms_ssim", "lpips",
           "mcs", "ebno_db", "budget_bits", "fits", "codec_quality", "codec_scale", "codec_psnr",
           "codewords", "codeword_errors", "channel_uses_used"]
#: the header before the restorer column existed (upgraded in place when resumed)
LEGACY_COLUMNS = [c for c in COLUMNS if c != "restorer"]
#: the columns of a rate sweep: ``bandwidth`` (nominal cpp, e.g. "1/128") after ``channel``
RATE_COLUMNS = COLUMNS[:COLUMNS.index("k")] + ["bandwidth"] + COLUMNS[COLUMNS.index("k"):]
#: per-image metrics beyond psnr/ms_ssim/lpips: a column each (after ``lpips``) only when the
#: scenario names them, so the files of scenarios without them stay byte for byte the same
EXTRA_METRIC_COLUMNS = ("lpips_vgg", "haarpsi", "vsi")
TEXT_COLUMNS = {"scheme", "restorer", "kind", "image", "channel", "bandwidth", "mcs", "csi"}
BOOL_COLUMNS = {"decoded", "fits"}


def point_key(scheme: str, restorer: str | None, image: str, snr_db: float, trial: int,
              bandwidth: str | None = None) -> tuple:
    """Identity of a row; SNRs compare by value (``3`` and ``3.0`` are one point); no
    restorer (the receiver output) is ``""``. ``bandwidth`` (the label of a rate sweep's
    bandwidth, ``"1/128"``) is part of the key only when given."""
    key = (scheme, restorer or "", image, f"{float(snr_db):.6g}", int(trial))
    return key if bandwidth is None else key + (bandwidth,)


def _row_key(row: dict) -> tuple:
    return point_key(row["scheme"], row.get("restorer"), row["image"], row["snr_db"], row["trial"], row.get("bandwidth"))


def result_columns(several_bandwidths: bool = False, metrics=()) -> list[str]:
    """The header of a results.csv: :data:`COLUMNS` (:data:`RATE_COLUMNS` for a rate sweep) with a
    column after ``lpips`` for each metric of ``metrics`` in :data:`EXTRA_METRIC_COLUMNS`."""
    base = RATE_COLUMNS if several_bandwidths else COLUMNS
    extra = [m for m in EXTRA_METRIC_COLUMNS if m in metrics]
    at = base.index("lpips") + 1
    return base[:at] + extra + base[at:]


class ResultsStore:
    """``results.csv`` in an output folder, appended one batch of rows at a time.

    ``several_bandwidths``: a rate sweep's file (:data:`RATE_COLUMNS`, points keyed by bandwidth too);
    ``metrics``: the scenario's metric names (columns of the extra per-image metrics, :func:`result_columns`);
    ``extra_columns``: the channel's own columns (an OFDM channel's overheads), last.
    """

    def __init__(self, path: Path, several_bandwidths: bool = False, metrics=(), extra_columns: tuple[str, ...] = ()):
        self.path = Path(path)
        # extra_columns: the channel's own report (the OFDM overheads), appended only for such channels
        self.columns = result_columns(several_bandwidths, metrics) + list(extra_columns)
        self.done: set[tuple] = set()
        if self.path.exists():
            _drop_partial_line(self.path)
        if self.path.exists():
            with self.path.open(newline="") as handle:
                reader = csv.DictReader(handle)
                header = reader.fieldnames
            if header == LEGACY_COLUMNS and self.columns == COLUMNS:
                self._upgrade()
            elif header != self.columns:
                raise ConfigError("output", str(self.path), "a results.csv written by this linksim version for the same "
                                                            "bandwidth(s); use a new --out folder")
            with self.path.open(newline="") as handle:
                for row in csv.DictReader(handle):
                    self.done.add(_row_key({**row, "snr_db": float(row["snr_db"]), "trial": int(row["trial"])}))

    def _upgrade(self) -> None:
        """Insert the empty ``restorer`` column into a results.csv of the earlier format."""
        import warnings

        tmp = self.path.with_name(self.path.name + ".tmp")
        with self.path.open(newline="") as source, tmp.open("w", newline="") as target:
            writer = csv.DictWriter(target, fieldnames=COLUMNS)
            writer.writeheader()
            for row in csv.DictReader(source):
                writer.writerow({**row, "restorer": ""})
            target.flush()
            os.fsync(target.fileno())
        tmp.replace(self.path)
        warnings.warn(f"{self.path}: written before the restorer column existed; upgraded in place (its rows are "
                      "receiver outputs: restorer left empty)", stacklevel=3)

    def append(self, rows: list[dict]) -> None:
        new = not self.path.exists()
        with self.path.open("a", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=self.columns, extrasaction="ignore")
            if new:
                writer.writeheader()
            for row in rows:
                if _KILL_AFTER_ROWS is not None:
                    _fault_point(handle, writer, {k: _format(row.get(k)) for k in self.columns})
                writer.writerow({k: _format(row.get(k)) for k in self.columns})
            handle.flush()
            os.fsync(handle.fileno())
        self.done.update(_row_key(r) for r in rows)


def _drop_partial_line(path: Path) -> None:
    """Cut ``results.csv`` after its last complete line: a run killed while writing a row
    leaves the start of that row without its line end (no cell holds a newline, so every
    complete row ends with one). The point of that row is then computed again. A file
    without even a complete header is removed."""
    import warnings

    with path.open("rb+") as handle:
        data = handle.read()
        if not data or data.endswith(b"\n"):
            return
        end = data.rfind(b"\n") + 1
        handle.truncate(end)
        handle.flush()
        os.fsync(handle.fileno())
    if end == 0:
        path.unlink()
    warnings.warn(f"{path}: dropped an incomplete last line ({len(data) - end} bytes, a run stopped while writing "
                  "it); its point is computed again", stacklevel=3)


class OutputLock:
    """An exclusive lock on an output folder (``.lock`` in it), held while a run writes there,
    so that two runs never interleave rows in one ``results.csv``.

    An advisory OS lock (``filelock``: ``flock`` on POSIX): the system releases it when the
    holding process ends, however it ends (``kill -9`` included), so a stale lock never
    blocks the rerun that resumes.
    """

    def __init__(self, folder: Path):
        from filelock import FileLock

        self.folder = Path(folder)
        self._lock = FileLock(str(self.folder / ".lock"), timeout=0, is_singleton=False)

    def acquire(self) -> None:
        """:raises ConfigError: another process holds the lock."""
        from filelock import Timeout

        try:
            self._lock.acquire()
        except Timeout:
            raise ConfigError("output", str(self.folder), "a folder no other linksim run is writing to (another run "
                                                          "holds its .lock; wait for it or use another --out)") from None

    def release(self) -> None:
        self._lock.release()


#: a fault-test hook (tests/test_parallel_sweep.py): "N" kills this process with SIGKILL before
#: it writes row N (counted from 0 in this process), "N+" after writing half of row N
_KILL_AFTER_ROWS = os.environ.get("LINKSIM_TEST_KILL_AFTER_ROWS")
_rows_written = 0


def _fault_point(handle, writer, row: dict) -> None:
    global _rows_written
    at, partial = int(_KILL_AFTER_ROWS.rstrip("+")), _KILL_AFTER_ROWS.endswith("+")
    if _rows_written == at:
        import io
        import signal

        if partial:
            line = io.StringIO()
            csv.DictWriter(line, fieldnames=writer.fieldnames).writerow(row)
            handle.write(line.getvalue()[: len(line.getvalue()) // 2])
        handle.flush()
        os.fsync(handle.fileno())
        os.kill(os.getpid(), signal.SIGKILL)
    _rows_written += 1


def _format(value):
    if value is None:
        return ""
    if isinstance(value, float):
        if math.isnan(value):
            return ""
        return repr(round(value, 6)) if math.isfinite(value) else ("inf" if value > 0 else "-inf")
    return value


def read_results(path: Path) -> list[dict]:
    """Rows of a results.csv, numbers parsed, empty cells as None."""
    rows = []
    with Path(path).open(newline="") as handle:
        for row in csv.DictReader(handle):
            parsed = {}
            for key, value in row.items():
                if value == "" or key in TEXT_COLUMNS:
                    parsed[key] = None if value == "" else value
                elif key in BOOL_COLUMNS:
                    parsed[key] = value == "True"
                else:
                    parsed[key] = float(value)
            rows.append(parsed)
    return rows


def series_label(scheme: str, restorer: str | None) -> str:
    """The curve label of a (scheme, restorer) pair: ``"scheme"`` or ``"scheme + restorer"``."""
    return f"{scheme} + {restorer}" if restorer else scheme


def summarize(rows: list[dict], group: dict[tuple, dict] | None = None, group_names=()) -> list[dict]:
    """One row per (scheme, restorer, snr_db): means, a 95 % confidence half-width of PSNR,
    decode rate. ``restorer`` is None for the receiver output.

    The extra per-image metrics present in the rows (:data:`EXTRA_METRIC_COLUMNS`) are averaged
    into columns after ``lpips``; then one column per group metric of ``group_names`` (``fid``,
    ``kid``), its value from ``group`` (:func:`linksim.metrics.pool`'s output, keyed by (scheme,
    restorer, bandwidth label, snr_db)) when every point of the group had its features, else empty.

    Rows of a rate sweep (with a ``bandwidth`` label) are grouped per (scheme, restorer,
    bandwidth, snr_db), and each summary row gains the nominal ``cpp`` and ``bcr`` = cpp/3 of
    its bandwidth after ``restorer`` (ordered by cpp within a scheme); single-bandwidth rows
    give the table they always gave.

    PSNR is averaged in dB over images and trials (the convention of the JSCC papers).
    """
    several = any(row.get("bandwidth") for row in rows)
    extra = [m for m in EXTRA_METRIC_COLUMNS if rows and m in rows[0]]
    pooled = {(k[0], k[1], float(Fraction(k[2])) if k[2] else None, k[3]): v for k, v in (group or {}).items()}
    groups: dict[tuple, list[dict]] = {}
    for row in rows:
        cpp = float(Fraction(row["bandwidth"])) if several else None
        groups.setdefault((row["scheme"], row.get("restorer") or None, cpp, row["snr_db"]), []).append(row)
    order = {pair: i for i, pair in enumerate(dict.fromkeys((r["scheme"], r.get("restorer") or None) for r in rows))}
    table = []
    for (scheme, restorer, cpp, snr), members in sorted(groups.items(), key=lambda kv: (order[kv[0][:2]], *kv[0][2:])):
        psnr = [r["psnr"] for r in members if r["psnr"] is not None and math.isfinite(r["psnr"])]
        entry = {"scheme": scheme, "restorer": restorer,
                 **({"cpp": cpp, "bcr": cpp / 3} if several else {}),
                 "snr_db": snr, "n": len(members),
                 "psnr": _mean(psnr), "psnr_ci95": _ci95(psnr),
                 "ms_ssim": _mean([r["ms_ssim"] for r in members if r["ms_ssim"] is not None]),
                 "lpips": _mean([r["lpips"] for r in members if r["lpips"] is not None]),
                 **{m: _mean([r[m] for r in members if r[m] is not None]) for m in extra},
                 **_group_values(pooled.get((scheme, restorer, cpp, snr)), len(members), group_names),
                 "decoded_rate": _mean([1.0 if r["decoded"] else 0.0 for r in members]),
                 "bpp": _mean([r["bpp"] for r in members if r["bpp"] is not None])}
        table.append(entry)
    return table


def _group_values(pooled: dict | None, n: int, names) -> dict:
    """The group metrics of one summary row: values only when all ``n`` points had features."""
    complete = pooled is not None and pooled.get("points") == n
    return {name: pooled.get(name) if complete else None for name in names}


def cliff_snr(summary: list[dict], scheme: str, rate: float = 0.5, cpp: float | None = None) -> float | None:
    """Lowest SNR from which on the decode rate of ``scheme`` stays ≥ ``rate`` (None if never);
    in a rate sweep's summary, at the bandwidth of nominal ``cpp``."""
    points = sorted((r["snr_db"], r["decoded_rate"]) for r in summary
                    if r["scheme"] == scheme and not r.get("restorer") and (cpp is None or r.get("cpp") == cpp))
    cliff = None
    for snr, decoded in reversed(points):
        if decoded is None or decoded < rate:
            break
        cliff = snr
    return cliff


def _mean(values):
    return sum(values) / len(values) if values else None


def _ci95(values):
    if len(values) < 2:
        return None
    mean = _mean(values)
    variance = sum((v - mean) ** 2 for v in values) / (len(values) - 1)
    return 1.96 * math.sqrt(variance / len(values))


def write_csv(path: Path, rows: list[dict]) -> None:
    """Write dict rows atomically (temporary file, then rename)."""
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    with tmp.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]) if rows else [])
        writer.writeheader()
        writer.writerows({k: _format(v) for k, v in row.items()} for row in rows)
    tmp.replace(path)


def write_json(path: Path, data) -> None:
    """Write JSON atomically."""
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=2, default=str))
    tmp.replace(path)
