"""``benchmarks/gpu.py --dry-run``: every section runs on CPU at tiny sizes and reports what it promises."""
from __future__ import annotations

import importlib.util
import re

import pytest

from runtime.compose import REPO


def load_gpu_benchmark():
    spec = importlib.util.spec_from_file_location("benchmarks_gpu", REPO / "benchmarks" / "gpu.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_loss_section_compares_every_loss_with_its_peers_and_the_bandwidth_bound(tmp_path):
    text = load_gpu_benchmark().main(["--dry-run", "--sections", "loss", "--out", str(tmp_path / "gpu.txt")])
    assert (tmp_path / "gpu.txt").read_text() == text
    assert "dry-run (numbers meaningless)" in text and re.search(r"bandwidth bound \d+\.\d+ ms", text)
    rows = re.findall(r"^(\w+)\s+(ours|torch|smp|monai)\s+([\d.]+)\s+([\d.]+)\s+(\d+)%$", text, re.M)
    assert {(loss, impl) for loss, impl, *_ in rows} == {
        ("ce", "ours"), ("ce", "torch"), ("ce", "smp"), ("dice", "ours"), ("dice", "monai"), ("dice", "smp"),
        ("focal", "ours"), ("focal", "monai"), ("dice_ce", "ours"), ("dice_ce", "monai")}
    for loss in ("ce", "dice", "focal", "dice_ce"):  # the fastest peer of each loss has ratio 1.00
        assert min(float(r[3]) for r in rows if r[0] == loss and r[1] != "ours") == pytest.approx(1.0)
    assert all(float(ms) > 0 for _, _, ms, _, _ in rows)


@pytest.mark.slow
def test_dry_run_runs_every_section(tmp_path):
    text = load_gpu_benchmark().main(["--dry-run", "--out", str(tmp_path / "gpu.txt")])
    models = sorted(p.stem for p in (REPO / "configs" / "model").glob("*.yaml"))
    for name in models:
        assert re.search(rf"^{name}\s+ok\s", text, re.M), f"bf16 smoke of {name} failed:\n{text}"
    for case in ("unet 64²", "unet 256²", "segformer 256²", "retinanet 128²"):
        assert re.search(rf"^{case}\s+2\s+[\d.]+$", text, re.M), case
    sweep = re.findall(r"^(\d)\s+(\d+)\s+([\d.]+)\s+(\d+)$", text, re.M)
    assert [(j, n, done) for j, n, _, done in sweep] == [("1", "2", "2"), ("2", "2", "2")]
