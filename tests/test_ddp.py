"""DeepJSCC training on two CPU processes (torchrun, DDP over gloo): it trains, rank 0 alone
writes, and a run interrupted on two ranks resumes — on two ranks to the weights of an
uninterrupted two-rank run, on one process to a complete checkpoint."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from linksim.train.deepjscc import DeepJSCCSettings, train_deepjscc
from linksim.train.distributed import DistributedRun

ROOT = Path(__file__).resolve().parents[1]
TINY = {"bcr": 1 / 48, "widths": (8, 8, 8, 8), "crop": 32, "batch": 2, "steps": 4, "save_every": 2, "bf16": False,
        "seed": 3}


def test_ranks_draw_different_reproducible_streams():
    """Rank r at step s: a generator of its own, the same whenever it is rebuilt (no state to save)."""
    def draw(rank, step):
        return torch.rand(4, generator=DistributedRun(rank, 2, rank).generator(3, step))

    assert torch.equal(draw(0, 5), draw(0, 5))
    assert not torch.equal(draw(0, 5), draw(1, 5))
    assert not torch.equal(draw(0, 5), draw(0, 6))


def test_a_single_process_is_not_distributed(monkeypatch):
    for name in ("RANK", "WORLD_SIZE", "LOCAL_RANK"):
        monkeypatch.delenv(name, raising=False)
    run = DistributedRun.from_env()
    assert not run.active and run.writer
    model = torch.nn.Linear(2, 2)
    assert run.wrap(model, torch.device("cpu")) is model


def _torchrun(args: list[str], tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    result = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2",
                             "--master_addr", "127.0.0.1", "--master_port", str(29500 + os.getpid() % 1000), *args],
                            env=env, cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]


@pytest.mark.slow  # three two-process launches (~1 min on a loaded 2-core machine)
def test_two_ranks_train_and_resume_on_two_ranks_or_one(image_dir, tmp_path):
    flags = ["--bcr", "1/48", "--data", str(image_dir), "--widths", "8", "8", "8", "8", "--crop", "32", "--batch", "2",
             "--steps", "4", "--save-every", "2", "--float32", "--seed", "3", "--quiet"]
    # uninterrupted, from the command line
    _torchrun(["-m", "linksim", "train", "deepjscc", *flags, "--out", str(tmp_path / "full")], tmp_path)
    full = tmp_path / "full"
    assert sorted(p.name for p in full.iterdir()) == ["MODEL_CARD.md", "config.json", "model.safetensors"]
    config = __import__("json").loads((full / "config.json").read_text())
    assert (config["step"], config["ranks"]) == (4, 2)

    # interrupted after step 2 (the save_every save) on two ranks
    script = tmp_path / "interrupted.py"
    script.write_text("import sys\nfrom linksim.train.deepjscc import DeepJSCCSettings, train_deepjscc\n"
                      f"settings = DeepJSCCSettings(data=[{str(image_dir)!r}], **{TINY!r})\n"
                      "train_deepjscc(settings, sys.argv[1], progress=False, stop_after=3)\n")
    _torchrun([str(script), str(tmp_path / "two")], tmp_path)
    assert (tmp_path / "two" / "train_state.safetensors").exists()
    shutil.copytree(tmp_path / "two", tmp_path / "one")

    # resumed on two ranks: the weights of the uninterrupted run (the draws are (seed, rank, step)'s)
    _torchrun(["-m", "linksim", "train", "deepjscc", *flags, "--out", str(tmp_path / "two")], tmp_path)
    reference, resumed = load_file(str(full / "model.safetensors")), load_file(str(tmp_path / "two" / "model.safetensors"))
    assert reference.keys() == resumed.keys()
    assert all(torch.equal(reference[k], resumed[k]) for k in reference)

    # resumed on one process: it continues from rank 0's step-2 state to a complete checkpoint
    state = load_file(str(tmp_path / "one" / "train_state.safetensors"))
    assert int(state["step"]) == 2
    record = train_deepjscc(DeepJSCCSettings(data=[str(image_dir)], **TINY), tmp_path / "one", progress=False)
    assert record["step"] == 4 and "ranks" not in record
    weights = load_file(str(tmp_path / "one" / "model.safetensors"))
    assert all(torch.isfinite(v).all() for v in weights.values())
    assert any(not torch.equal(weights[k], reference[k]) for k in weights)  # other batches than two ranks'
    assert not (tmp_path / "one" / "train_state.safetensors").exists()
