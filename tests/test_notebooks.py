"""The teaching labs: every notebook executes top to bottom without error (its claim cells —
:func:`linksim.labs.check_claims` — assert that the text's statements hold on its own outputs),
every lab has exercises with folded solutions, the instructor notebook holds them all, and the
executed HTML labs of ``make labs`` are there and hold their claims."""

from __future__ import annotations

import json
import re
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
#: The labs with exercises: 01…06 and the DDPM primer (not the playground, not the instructor notebook).
LABS = [p for p in NOTEBOOKS if re.match(r"0[1-6]", p.name) or "primer" in p.name]
INSTRUCTOR = ROOT / "notebooks" / "99_instructor_solutions.ipynb"
SOLUTION = "<details><summary><b>Solution</b>"

#: Environment of the notebook kernels: the short versions of the labs. Each variable means one
#: thing: training steps (Lab 2), diffusion sampling steps (Labs 3–5, the primer uses none), and
#: the explorer's grid (Labs 1, 2 and the playground: 3 SNRs, one cpp, AWGN).
LAB_ENV = {"LINKSIM_LAB_TRAIN_STEPS": "20", "LINKSIM_LAB_SAMPLING_STEPS": "3", "LINKSIM_LAB_SWEEP": "small"}


def _sources(path: Path, kind: str) -> list[str]:
    return [c.source for c in nbformat.read(path, as_version=4).cells if c.cell_type == kind]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def test_notebook_runs(path, tmp_path, monkeypatch):
    for name, value in LAB_ENV.items():
        monkeypatch.setenv(name, value)  # the kernel inherits this process's environment
    notebook = nbformat.read(path, as_version=4)
    NotebookClient(notebook, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}).execute()
    outputs = [o for cell in notebook.cells if cell.cell_type == "code" for o in cell.get("outputs", [])]
    errors = [o for o in outputs if o.get("output_type") == "error"]
    assert not errors, errors[0].get("evalue") if errors else None
    printed = "".join(o.get("text", "") for o in outputs if o.get("output_type") == "stream")
    if any("check_claims(" in s for s in _sources(path, "code")):
        assert "✓ " in printed and "✗ " not in printed


@pytest.mark.parametrize("path", LABS, ids=[p.name for p in LABS])
def test_every_lab_has_exercises_and_a_folded_solution_for_its_questions(path):
    text = _sources(path, "markdown")
    assert any("## Exercises" in s for s in text), "no Exercises section"
    assert any("Predict, then check" in s for s in text), "no predict-then-check question"
    solutions = [s for s in text if s.startswith(SOLUTION)]
    assert solutions and all(s.rstrip().endswith("</details>") for s in solutions)  # folded: closed by default
    assert not any(" open" in s.split(">", 2)[0] for s in solutions)  # <details open> would unfold it


def test_the_instructor_notebook_holds_every_solution_of_every_lab():
    instructor = "\n".join(_sources(INSTRUCTOR, "markdown"))
    for path in LABS:
        for solution in (s for s in _sources(path, "markdown") if s.startswith(SOLUTION)):
            body = solution[solution.index("</summary>") + len("</summary>"):].replace("</details>", "").strip()
            assert body in instructor, f"{path.name}: a solution is missing from {INSTRUCTOR.name}"


def test_each_lab_setting_has_one_meaning():
    """The environment variables of the labs: one name per quantity, none of the old overloaded one."""
    for path in NOTEBOOKS:
        code = "\n".join(_sources(path, "code"))
        assert "LINKSIM_LAB_STEPS" not in code, path.name
        used = set(re.findall(r"LINKSIM_LAB_[A-Z_]+", code))
        assert used <= set(LAB_ENV), (path.name, used - set(LAB_ENV))


def test_the_executed_labs_are_there_with_their_claims_holding():
    """``make labs`` writes docs/labs/<lab>.html with the outputs; their claim cells passed."""
    for path in NOTEBOOKS:
        page = ROOT / "docs" / "labs" / f"{path.stem}.html"
        assert page.is_file(), f"{page} missing: run `make labs`"
        html = page.read_text(encoding="utf-8")
        assert "Traceback" not in html and "✗ " not in html, f"{page.name}: an error or a failed claim"
        if any("check_claims(" in s for s in _sources(path, "code")):
            assert "✓ " in html, f"{page.name}: its claims were not checked"
        assert "<img" in html or "image/png" in html or "image/jpeg" in html, f"{page.name}: no figure"
