"""Imports point one way: each package imports only from its own layer or lower ones.

Layers, lowest first (docs/architecture.md draws them):

- ``common``       neutral pieces, imports nothing of ours
- ``losses``       imports ``common``
- ``metrics``      the measuring instrument, beside ``losses``: imports ``common``
- ``datamodules``  imports ``common``, ``losses`` (class-weight schemes) — never ``models``
- ``models``       imports ``common``, ``losses``, ``metrics`` — never ``datamodules``
- ``runtime``      run plumbing: imports everything above except ``reporting``
- ``reporting``    the report writer: imports ``common``, the record schema ``runtime.run_record`` and the
                   metric names ``metrics.names`` only (so compare.py never loads torch)
- entry points     ``train.py``, ``compare.py``, ``scripts/``, ``benchmarks/``: anything below

Nothing imports ``train`` or ``compare`` (tests may, to test them). Every import statement counts,
also one inside a function: a lazy import is still a dependency.
"""
from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

# package → the packages (or exact modules) of ours it may import, besides itself.
ALLOWED: dict[str, set[str]] = {
    "common": set(),
    "losses": {"common"},
    "metrics": {"common"},
    "datamodules": {"common", "losses"},
    "models": {"common", "losses", "metrics"},
    "runtime": {"common", "losses", "metrics", "datamodules", "models"},
    "reporting": {"common", "runtime.run_record", "metrics.names"},
    "scripts": {"common", "losses", "metrics", "datamodules", "models", "runtime", "reporting", "scripts"},
    "benchmarks": {"common", "losses", "metrics", "datamodules", "models", "runtime", "reporting", "scripts",
                   "benchmarks"},
    "train": {"common", "losses", "metrics", "datamodules", "models", "runtime"},
    "compare": {"common", "metrics", "runtime", "reporting"},
}
# Modules of one layer that stay independent: each LightningModule takes shared pieces from
# models.lightning_base, never from its sibling.
APART = {("models.detection", "models.segmentation"), ("models.segmentation", "models.detection")}
OURS = {"common", "losses", "metrics", "datamodules", "models", "runtime", "reporting", "scripts", "benchmarks",
        "train", "compare"}


def _source_files() -> list[Path]:
    files = [REPO / "train.py", REPO / "compare.py"]
    for package in ALLOWED:
        folder = REPO / package
        if folder.is_dir():
            files += sorted(folder.rglob("*.py"))
    return files


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(REPO).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path) -> list[tuple[int, str]]:
    """``(line, dotted module)`` of every import in ``path``, relative ones resolved."""
    module = _module_name(path)
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found = []
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                name = ".".join(base + ([node.module] if node.module else []))
            else:
                name = node.module or ""
            # `from runtime import run_record` imports the module runtime.run_record.
            found += [(node.lineno, f"{name}.{alias.name}") for alias in node.names]
    return found


def _allowed(importer: str, imported: str) -> bool:
    layer = importer.split(".")[0]
    if imported.split(".")[0] == layer:
        return True
    return any(imported == rule or imported.startswith(rule + ".") for rule in ALLOWED[layer])


def violations() -> list[str]:
    wrong = []
    for path in _source_files():
        importer = _module_name(path)
        for line, imported in _imports(path):
            top = imported.split(".")[0]
            if top not in OURS:
                continue
            # `from runtime.run_record import RECORD_NAME` counts as importing runtime.run_record.
            if not (_allowed(importer, imported) or _allowed(importer, imported.rpartition(".")[0])):
                wrong.append(f"{path.relative_to(REPO)}:{line}: {importer} imports {imported}")
            elif any((importer, m) in APART for m in (imported, imported.rpartition(".")[0])):
                wrong.append(f"{path.relative_to(REPO)}:{line}: {importer} imports its sibling {imported}")
    return wrong


def test_imports_follow_the_layers() -> None:
    wrong = violations()
    assert not wrong, "imports crossing the layers the wrong way:\n" + "\n".join(wrong)


def test_every_package_has_a_layer() -> None:
    """A new top-level package must be placed in the table above before it can import anything."""
    packages = {p.name for p in REPO.iterdir() if p.is_dir() and (p / "__init__.py").exists()}
    assert packages <= set(ALLOWED), f"packages without a layer: {sorted(packages - set(ALLOWED))}"


@pytest.mark.parametrize(
    ("importer", "imported", "ok"),
    [
        ("datamodules.file_seg", "models.inferer.WindowInferer", False),
        ("models.detection", "datamodules.coco", False),
        ("models.detection", "models.segmentation.NonFiniteLossError", True),
        ("reporting.collect", "runtime.run_record.RECORD_NAME", True),
        ("reporting.collect", "runtime.builders", False),
        ("runtime.compose", "train", False),
        ("losses.region", "common.checks.check_choice", True),
        ("common.checks", "losses", False),
        ("metrics.segmentation", "common.checks.check_choice", True),
        ("metrics.segmentation", "models.segmentation", False),
        ("metrics.cases", "runtime.builders", False),
        ("metrics.names", "reporting.metric_names.column", False),
        ("metrics.detection", "datamodules.coco", False),
        ("metrics.surface", "losses.region", False),
        ("models.segmentation", "metrics.segmentation.SegmentationMetrics", True),
        ("runtime.evaluation", "metrics.names", True),
        ("reporting.leaderboard", "metrics.names.higher_is_better", True),
        ("reporting.leaderboard", "metrics.segmentation.SegmentationMetrics", False),
        ("datamodules.base", "metrics.names", False),
    ],
)
def test_rule_table(importer: str, imported: str, ok: bool) -> None:
    assert (_allowed(importer, imported) or _allowed(importer, imported.rpartition(".")[0])) is ok


def test_the_report_writer_and_metric_names_load_without_torch() -> None:
    """Why reporting may import ``metrics.names`` but not the metric implementations: compare.py stays light."""
    code = ("import sys, metrics.names, reporting.pipeline\n"
            "print(sorted(m for m in ('torch', 'torchmetrics') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
