"""The layer rules of docs/ARCHITECTURE.md §3, checked on every ``import`` statement of the package.

A module may import from linksim only what its layer allows; imports inside functions count
too (a lazy import is still a dependency). The table below is the one of §3.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "linksim"

FOUNDATION = {"units", "errors", "seeding", "devices", "link"}
# layer of a top-level module or package → the top-level names it may import
ALLOWED = {
    **{name: FOUNDATION for name in FOUNDATION},
    "channel": FOUNDATION,
    "digital": FOUNDATION | {"channel", "data", "metrics"},
    "data": FOUNDATION,
    "crops": FOUNDATION | {"data"},
    "metrics": FOUNDATION,
    "zoo": FOUNDATION,
    "jscc": FOUNDATION | {"channel", "zoo", "data", "crops", "metrics"},
    "restore": FOUNDATION | {"zoo", "data", "crops", "metrics"},
}
COMPOSITION = {"schemes", "scenario", "runner", "results", "plots", "report", "labs", "train", "execution"}
ENTRY_POINTS = {"cli", "__main__", "__init__"}
LAZY_DISPATCHERS = {"zoo"}


def _layer(path: Path) -> str:
    relative = path.relative_to(PACKAGE)
    return relative.parts[0].removesuffix(".py")


def _linksim_imports(path: Path, module_level_only: bool = False) -> set[str]:
    """Top-level linksim names imported in the module at ``path``: anywhere in it, or only by
    the statements that run when it is imported (``module_level_only``)."""
    names = set()
    tree = ast.parse(path.read_text(), filename=str(path))
    for node in (tree.body if module_level_only else ast.walk(tree)):
        if isinstance(node, ast.Import):
            modules = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            modules = [node.module]
            if node.module == "linksim":
                modules = [f"linksim.{alias.name}" for alias in node.names]
        else:
            continue
        for module in modules:
            parts = module.split(".")
            if parts[0] == "linksim" and len(parts) > 1:
                names.add(parts[1])
    return names


MODULES = sorted(p for p in PACKAGE.rglob("*.py") if "checkpoints" not in p.parts)


@pytest.mark.parametrize("path", MODULES, ids=[str(p.relative_to(PACKAGE)) for p in MODULES])
def test_module_imports_only_what_its_layer_allows(path):
    layer = _layer(path)
    if layer in ENTRY_POINTS:
        return
    # zoo is the one dispatcher: each artifact kind's loader imports its class when a folder of
    # that kind is loaded, so importing zoo (as restore does) brings in no other layer
    imported = _linksim_imports(path, module_level_only=layer in LAZY_DISPATCHERS) - {layer}
    if layer in COMPOSITION:
        assert not imported & ENTRY_POINTS, f"{path.name} imports an entry point: {sorted(imported & ENTRY_POINTS)}"
        return
    assert layer in ALLOWED, f"linksim/{layer} has no layer in docs/ARCHITECTURE.md §3"
    forbidden = imported - ALLOWED[layer]
    assert not forbidden, f"{path.relative_to(PACKAGE)} ({layer}) imports {sorted(forbidden)}; allowed: {sorted(ALLOWED[layer])}"


def test_the_checker_sees_imports_inside_functions(tmp_path):
    module = tmp_path / "m.py"
    module.write_text("import torch\nfrom linksim import units\n\ndef f():\n    from linksim.jscc.models import DeepJSCC\n"
                      "    import linksim.channel\n")
    assert _linksim_imports(module) == {"units", "jscc", "channel"}
    assert _linksim_imports(module, module_level_only=True) == {"units"}


def test_every_architecture_reference_names_a_section():
    """Docstrings cite docs/ARCHITECTURE.md §n: every n must be a section of that page."""
    root = PACKAGE.parent
    sections = set(re.findall(r"^## (\d+)\.", (root / "docs" / "ARCHITECTURE.md").read_text(), flags=re.M))
    cited = {}
    for path in [*PACKAGE.rglob("*.py"), *(root / "tests").glob("*.py")]:
        for group in re.findall(r"ARCHITECTURE\.md ((?:§\d+(?:, )?)+)", path.read_text()):
            for number in re.findall(r"§(\d+)", group):
                cited.setdefault(number, path.name)
    assert cited, "no docstring cites docs/ARCHITECTURE.md"
    missing = {n: where for n, where in cited.items() if n not in sections}
    assert not missing, f"sections cited but absent from docs/ARCHITECTURE.md: {missing}"
