"""Parallel and fault-tolerant sweeps (linksim.execution): the defining property is that
``results.csv`` has the same bytes however the points ran — one process, a pool of local
workers, a Ray instance, a driver killed with SIGKILL and rerun, a worker killed mid-unit —
because every point draws from its own generator and one process writes rows in canonical order.

The scenario is tiny (two bundled photographs at 128×128, a cliff scheme and the capacity
bound, three SNRs, two trials: 24 points; 4 units on two workers, one scheme each) so that
each run takes seconds.
"""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import yaml

from linksim.cli import main
from linksim.errors import ConfigError
from linksim.results import OutputLock
from linksim.runner import run_scenario
from linksim.scenario import load_scenario, parse_scenario
from restorer_scenarios import ckpt, images  # noqa: F401 (fixtures)

ROOT = Path(__file__).resolve().parents[1]
SCENARIO = {
    "name": "tiny-cliff", "seed": 7, "images": "samples", "limit": 2, "resize": 128, "channel": "awgn",
    "snr_db": [-2, 0, 2], "trials": 2, "bandwidth": {"cpp": "1/16"}, "metrics": ["psnr"],
    "schemes": [
        {"name": "BPG + LDPC 1/2 BPSK", "type": "separate", "codec": {"name": "bpg", "chroma": "420"},
         "downscale": [1, 2], "mcs": {"code": "wifi-1944-1/2", "modulation": "bpsk"},
         "decoder": {"backend": "numba", "iterations": 10}},
        {"name": "BPG + capacity", "type": "capacity", "codec": {"name": "bpg", "chroma": "420"}, "downscale": [1, 2]},
    ],
    "grid": {"snr_db": [-2, 2], "images": 1},
}
POINTS = 2 * 2 * 3 * 2  # images × schemes × SNRs × trials


@pytest.fixture(scope="module")
def scenario_file(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("scenario") / "tiny.yaml"
    path.write_text(yaml.safe_dump(SCENARIO))
    return path


@pytest.fixture(scope="module")
def serial(scenario_file, tmp_path_factory) -> bytes:
    """The reference: ``results.csv`` of an uninterrupted run on this process."""
    out = tmp_path_factory.mktemp("serial")
    run_scenario(load_scenario(scenario_file), out=out, progress=False, plots=False)
    return (out / "results.csv").read_bytes()


def _keys(data: bytes) -> list[tuple]:
    rows = list(csv.DictReader(data.decode().splitlines()))
    return [(r["scheme"], r["restorer"], r["image"], r["snr_db"], r["trial"], r.get("bandwidth")) for r in rows]


def test_the_reference_holds_every_point_once(serial):
    keys = _keys(serial)
    assert len(keys) == POINTS and len(set(keys)) == POINTS


def test_two_local_workers_write_the_serial_bytes(scenario_file, serial, tmp_path):
    run_scenario(load_scenario(scenario_file), out=tmp_path, progress=False, plots=False, execution={"workers": 2})
    assert (tmp_path / "results.csv").read_bytes() == serial
    # the grid pictures, computed by the workers, are written by the driver
    assert sorted(p.name for p in (tmp_path / "images").rglob("*.png")) == \
        sorted(["astronaut__snr-2.png", "astronaut__snr+2.png"] * 2)


@pytest.mark.slow  # two pool starts (~1 min on a loaded 2-core machine)
def test_a_killed_worker_is_recomputed_once(scenario_file, serial, tmp_path, monkeypatch):
    """The worker that starts unit 1 dies (SIGKILL) once; the pool is rebuilt, unit 1 runs again."""
    marker = tmp_path / "killed"
    monkeypatch.setenv("LINKSIM_TEST_KILL_WORKER", f"1:{marker}")
    run_scenario(load_scenario(scenario_file), out=tmp_path / "out", progress=False, plots=False,
                 execution={"workers": 2})
    assert marker.exists(), "no worker was killed: the test tested nothing"
    assert (tmp_path / "out" / "results.csv").read_bytes() == serial


@pytest.fixture()
def local_ray():
    """A local 2-CPU Ray instance on 127.0.0.1, shut down after the tests that use it. The
    fault hook's variable is set before it starts, so its worker processes inherit it."""
    ray = pytest.importorskip("ray")
    marker = Path(os.environ.get("TMPDIR", "/tmp")) / f"linksim-ray-kill-{os.getpid()}"
    marker.unlink(missing_ok=True)
    os.environ["LINKSIM_TEST_KILL_WORKER"] = f"2:{marker}"
    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False,
             _node_ip_address="127.0.0.1")
    try:
        yield marker
    finally:
        ray.shutdown()
        del os.environ["LINKSIM_TEST_KILL_WORKER"]
        marker.unlink(missing_ok=True)


@pytest.mark.slow  # a Ray start (~30 s on a loaded 2-core machine)
def test_ray_writes_the_serial_bytes_after_losing_a_worker(scenario_file, serial, tmp_path, local_ray):
    """Ray's task retry recomputes the unit whose worker process died; nothing is duplicated."""
    run_scenario(load_scenario(scenario_file), out=tmp_path, progress=False, plots=False,
                 execution={"executor": "ray", "workers": 2})
    assert local_ray.exists(), "no Ray worker was killed: the test tested nothing"
    assert (tmp_path / "results.csv").read_bytes() == serial


def _killed_run(scenario_file: Path, out: Path, at: str, workers: int) -> None:
    """``linksim run`` in a subprocess that SIGKILLs itself at row ``at`` (``N`` before row N,
    ``N+`` halfway through writing it); its workers (own session) are killed after it."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "LINKSIM_TEST_KILL_AFTER_ROWS": at, "OMP_NUM_THREADS": "1"}
    log = out.with_name("stderr.txt")
    with log.open("wb") as stderr:  # a file, not a pipe: orphaned workers would hold a pipe open
        process = subprocess.Popen([sys.executable, "-m", "linksim", "run", str(scenario_file), "--out", str(out),
                                    "--quiet", "--workers", str(workers)], env=env, cwd=ROOT, start_new_session=True,
                                   stdout=subprocess.DEVNULL, stderr=stderr)
        try:
            process.wait(timeout=240)
        finally:
            try:
                os.killpg(process.pid, signal.SIGKILL)  # orphaned pool workers of the killed driver
            except ProcessLookupError:
                pass
    assert process.returncode == -signal.SIGKILL, log.read_text()[-2000:]


@pytest.mark.parametrize("at, workers, partial", [
    pytest.param("0", 1, False, id="after-0-rows"),
    pytest.param("9+", 2, True, id="mid-run-mid-line-2-workers", marks=pytest.mark.slow),
    pytest.param(f"{POINTS - 1}+", 1, True, id="during-the-last-point", marks=pytest.mark.slow),
])
def test_a_driver_killed_with_sigkill_resumes_to_the_same_bytes(scenario_file, serial, tmp_path, at, workers, partial):
    out = tmp_path / "out"
    _killed_run(scenario_file, out, at, workers)
    written = (out / "results.csv").read_bytes()
    rows = int(at.rstrip("+"))
    assert len(written.splitlines()) == 1 + rows + partial  # header, complete rows, the cut one
    assert written.endswith(b"\n") != partial
    assert serial.startswith(written[: written.rfind(b"\n") + 1])
    with pytest.warns(UserWarning, match="incomplete last line") if partial else _no_warning():
        result = run_scenario(load_scenario(scenario_file), out=out, progress=False, plots=False)
    final = (out / "results.csv").read_bytes()
    assert final == serial
    assert (result.skipped, result.computed) == (rows, POINTS - rows)
    keys = _keys(final)
    assert len(set(keys)) == len(keys) == POINTS


class _no_warning:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


def test_a_second_run_into_a_locked_folder_refuses(scenario_file, serial, tmp_path, capsys):
    """Another process holds the folder's lock (a plain flock, as a running linksim holds it):
    the run exits 2 with one line naming the field, and writes no row."""
    out = tmp_path / "out"
    out.mkdir()
    holder = subprocess.Popen([sys.executable, "-c", "import fcntl, sys, time; f = open(sys.argv[1], 'a'); "
                               "fcntl.flock(f, fcntl.LOCK_EX); print('locked', flush=True); time.sleep(120)",
                               str(out / ".lock")], stdout=subprocess.PIPE)
    try:
        assert holder.stdout.readline().strip() == b"locked"
        assert main(["run", str(scenario_file), "--out", str(out), "--quiet"]) == 2
        error = capsys.readouterr().err.strip()
        assert error.count("\n") == 0 and error.startswith("linksim: error: output:") and "another run" in error
        assert not (out / "results.csv").exists() and not (out / "scenario.json").exists()
    finally:
        holder.kill()
        holder.wait()
    # the holder gone (as after kill -9: the OS drops its lock), the folder is free again
    lock = OutputLock(out)
    lock.acquire()
    lock.release()


def test_an_in_process_holder_locks_out_a_second_writer(tmp_path):
    first = OutputLock(tmp_path)
    first.acquire()
    try:
        with pytest.raises(ConfigError, match="^output: .*another run holds"):
            OutputLock(tmp_path).acquire()
    finally:
        first.release()


@pytest.mark.parametrize("flags, field", [
    (["--workers", "0"], "workers"),
    (["--workers", "two"], "workers"),
    (["--executor", "dask"], "executor"),
    (["--address", "127.0.0.1:6379"], "address"),  # an address without Ray
    (["--executor", "ray", "--address", "127.0.0.1:1"], "address"),  # nothing listens on port 1
    (["--threads", "0"], "threads"),
])
def test_bad_execution_flags_exit_2_naming_the_field_and_write_nothing(scenario_file, tmp_path, capsys, flags, field):
    out = tmp_path / "out"
    started = time.monotonic()
    assert main(["run", str(scenario_file), "--out", str(out), "--quiet", *flags]) == 2
    error = capsys.readouterr().err.strip()
    assert error.count("\n") == 0 and error.startswith(f"linksim: error: {field}: "), error
    assert not out.exists()
    assert time.monotonic() - started < 30  # an unreachable cluster fails fast, not after Ray's minutes of retries


def test_the_scenario_field_is_validated_and_left_out_of_the_fingerprint():
    base = {k: v for k, v in SCENARIO.items()}
    scenario = parse_scenario({**base, "execution": {"executor": "ray", "workers": 8}})
    assert scenario.execution == {"executor": "ray", "workers": 8, "address": None, "threads": 1}
    assert "execution" not in scenario.fingerprint()  # a rerun elsewhere resumes the same folder
    assert parse_scenario(base).execution == {"executor": "local", "workers": 1, "address": None, "threads": 1}
    assert parse_scenario({**base, "execution": {"threads": 4}}).execution["threads"] == 4
    for bad, field in [({"workers": 0}, "execution.workers"), ({"executor": "slurm"}, "execution.executor"),
                       ({"threads": 0}, "execution.threads"), ({"threads": 1.5}, "execution.threads"),
                       ({"gpus": 2}, "execution"), ("ray", "execution")]:
        with pytest.raises(ConfigError, match=f"^{field}: "):
            parse_scenario({**base, "execution": bad})


def test_the_command_line_wins_over_the_scenario(scenario_file, serial, tmp_path, capsys):
    """The scenario asks for 2 workers: ``--workers 0`` is the value checked (and refused),
    ``--workers 1`` the one used (the points run in this process: the serial bytes)."""
    raw = yaml.safe_load(scenario_file.read_text())
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump({**raw, "execution": {"workers": 2}}))
    out = tmp_path / "out"
    assert main(["run", str(path), "--out", str(out), "--quiet", "--workers", "0"]) == 2
    assert capsys.readouterr().err.startswith("linksim: error: workers: got 0 ")
    assert main(["run", str(path), "--out", str(out), "--quiet", "--workers", "1"]) == 0
    assert (out / "results.csv").read_bytes() == serial


@pytest.mark.slow  # a pool start (~30 s on a loaded 2-core machine)
def test_restored_rows_and_pictures_from_workers_match_a_serial_run(tmp_path, ckpt, images, tiny_prior):
    """DeepJSCC + a SING-Zero restorer after it (restorer batches, restored grid cells): two
    workers give the serial run's bytes, rows and pictures alike."""
    raw = {"name": "tiny-restore", "seed": 4, "images": str(images), "channel": "awgn", "snr_db": [0, 5], "trials": 2,
           "bandwidth": {"bcr": "1/48"}, "schemes": [{"name": "DeepJSCC", "type": "deepjscc", "model": str(ckpt)}],
           "restorers": [{"type": "sing-zero", "prior": str(tiny_prior), "operator": "avgpool2", "steps": 3}],
           "metrics": ["psnr"], "grid": {"snr_db": [0], "images": 1}}
    scenario = parse_scenario(raw)
    run_scenario(scenario, out=tmp_path / "serial", progress=False, plots=False)
    run_scenario(scenario, out=tmp_path / "pool", progress=False, plots=False, execution={"workers": 2})
    serial_csv = (tmp_path / "serial" / "results.csv").read_bytes()
    assert len(_keys(serial_csv)) == 2 * 2 * 2 * 2  # images × SNRs × trials × (x̂, x̃)
    assert (tmp_path / "pool" / "results.csv").read_bytes() == serial_csv
    pictures = sorted(p.relative_to(tmp_path / "serial") for p in (tmp_path / "serial" / "images").rglob("*.png"))
    assert pictures == sorted(p.relative_to(tmp_path / "pool") for p in (tmp_path / "pool" / "images").rglob("*.png"))
    assert len(pictures) == 2
    assert all((tmp_path / "serial" / p).read_bytes() == (tmp_path / "pool" / p).read_bytes() for p in pictures)


def test_every_process_computes_with_the_run_threads_per_unit(tmp_path):
    """DeepJSCC's convolutions sum in an order that depends on PyTorch's thread count (x̂ moves in
    the 7th digit between 1 and 2 threads on a 512×512 photo), so the run fixes the count per
    unit: this process and the workers compute with ``threads`` whatever this process had
    before (restored after), the folder keeps it, and a resume with another count refuses
    before writing."""
    spec = {"name": "threads", "seed": 3, "images": "samples", "limit": 1, "crop_multiple": 16, "channel": "awgn",
            "snr_db": [-3, 4, 9, 10], "trials": 2, "bandwidth": {"bcr": "1/48"}, "metrics": ["psnr"],
            "schemes": [{"name": "DeepJSCC", "type": "deepjscc", "model": "deepjscc-awgn-r1_48"}],
            "grid": {"snr_db": [4], "images": 1}}
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        run_scenario(parse_scenario(spec), out=tmp_path / "serial", progress=False, plots=False,
                     execution={"threads": 2})
        assert torch.get_num_threads() == 1
        run_scenario(parse_scenario(spec), out=tmp_path / "pool", progress=False, plots=False,
                     execution={"workers": 2, "threads": 2})
    finally:
        torch.set_num_threads(before)
    serial = (tmp_path / "serial" / "results.csv").read_bytes()
    assert (tmp_path / "pool" / "results.csv").read_bytes() == serial
    assert json.loads((tmp_path / "serial" / "scenario.json").read_text())["threads"] == 2
    with pytest.raises(ConfigError, match="^threads: got 1"):
        run_scenario(parse_scenario(spec), out=tmp_path / "serial", progress=False, plots=False)
    assert (tmp_path / "serial" / "results.csv").read_bytes() == serial


def test_image_units_carry_every_scheme_and_give_the_serial_bytes(scenario_file, serial, tmp_path):
    """With at least twice as many images as workers a unit is one image with all its schemes
    (they share the image's scores, as on one process); with fewer, one scheme each. Either
    cut, the rows are the serial run's."""
    from linksim.execution.pool import PoolExecutor
    from linksim.runner import Sweep

    sweep = Sweep(load_scenario(scenario_file), out=tmp_path / "one-worker", progress=False)
    try:
        assert [(u.item.id, u.schemes) for u in sweep.units()] == [("astronaut", (0, 1)), ("chelsea", (0, 1))]
        assert [u.schemes for u in sweep.units(per_scheme=True)] == [(0,), (1,), (0,), (1,)]
        executor = PoolExecutor(1)  # 2 images ≥ 2 × 1 slot: image units
        try:
            sweep.run(executor)
        finally:
            executor.close()
    finally:
        sweep.close()
    assert (tmp_path / "one-worker" / "results.csv").read_bytes() == serial


def test_worker_processes_start_with_sleeping_openmp_waiters(monkeypatch):
    """With ``threads`` > 1 per unit N workers run N× that many OpenMP threads: the processes
    they start get OMP_WAIT_POLICY=PASSIVE (OpenMP threads that wait sleep instead of spinning
    on the cores others compute on), unless the user chose a policy."""
    from linksim.execution.worker import spawning_environment

    probe = [sys.executable, "-c", "import os; print(os.environ.get('OMP_WAIT_POLICY'))"]
    monkeypatch.delenv("OMP_WAIT_POLICY", raising=False)
    with spawning_environment():
        assert subprocess.run(probe, capture_output=True, text=True).stdout.strip() == "PASSIVE"
    assert "OMP_WAIT_POLICY" not in os.environ  # this process's environment is as it was
    monkeypatch.setenv("OMP_WAIT_POLICY", "ACTIVE")
    with spawning_environment():
        assert subprocess.run(probe, capture_output=True, text=True).stdout.strip() == "ACTIVE"
