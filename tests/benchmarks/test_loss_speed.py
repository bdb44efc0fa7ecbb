"""``benchmarks/loss_speed.py``: the paired time ratio and its interval, and one real table row."""
from __future__ import annotations

import importlib.util
import math
import re
import shutil
import subprocess
import sys

import numpy as np
import pytest

from runtime.compose import REPO


def load_loss_speed():
    spec = importlib.util.spec_from_file_location("benchmarks_loss_speed", REPO / "benchmarks" / "loss_speed.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_paired_ratio_uses_the_binomial_order_statistics():
    paired_ratio = load_loss_speed().paired_ratio
    ours = [float(v) for v in range(1, 16)]  # ratios 1/10 .. 15/10, sorted as given
    median, low, high = paired_ratio(ours, [10.0] * 15)
    # n = 15: (X_(4), X_(12)) covers the median with 1 - 2 P(B <= 3) = 96.5 %; X_(5) would give 88 %
    assert (median, low, high) == pytest.approx((0.8, 0.4, 1.2))
    assert all(math.isnan(v) for v in paired_ratio([1.0] * 5, [1.0] * 5)[1:])  # n = 5: no 95 % interval
    with pytest.raises(ValueError, match="equally many rounds"):
        paired_ratio([1.0, 2.0], [1.0])


def test_paired_ratio_interval_keeps_its_coverage_on_skewed_timings():
    """Round-to-round load noise is skewed (log-normal here): the interval must still cover the true
    median ratio in >= 95 % of 4,000 simulated 15-round runs (exactly 96.5 % in theory)."""
    paired_ratio = load_loss_speed().paired_ratio
    rng = np.random.default_rng(0)
    true_ratio, hits, runs = 0.8, 0, 4000
    for _ in range(runs):
        load = rng.lognormal(0.0, 0.3, 15)  # the machine's speed in each round, shared by both
        peer = 10.0 * load * rng.lognormal(0.0, 0.05, 15)
        ours = true_ratio * 10.0 * load * rng.lognormal(0.0, 0.05, 15)
        _, low, high = paired_ratio(list(ours), list(peer))
        hits += low <= true_ratio <= high
    assert 0.95 <= hits / runs <= 0.98


def test_one_row_of_the_table_runs_against_torch():
    result = subprocess.run([sys.executable, "benchmarks/loss_speed.py", "--losses", "ce", "--cases", "3d_c4",
                             "--reps", "6"], cwd=REPO, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr
    row = re.search(r"^3d_c4\s+ce\s+torch/torch\s+([\d.]+)\s+([\d.]+)\s+([\d.]+) \[([\d.]+), ([\d.]+)\]"
                    r"\s+([\d.]+)\s+([\d.]+)\s+([\d.]+)$", result.stdout, re.M)
    assert row, result.stdout
    ratio, low, high = (float(row.group(i)) for i in (3, 4, 5))
    assert 0 < low <= ratio <= high
    assert float(row.group(6)) == float(row.group(7)) == 8.0  # both save one (2, 4, 64^3) float32 tensor


@pytest.mark.skipif(shutil.which("c++") is None and shutil.which("g++") is None,
                    reason="torch.compile on CPU needs a C++ compiler")
def test_fused_bound_compares_ours_the_peers_and_a_compiled_formula():
    spec = importlib.util.spec_from_file_location("benchmarks_fused_bound", REPO / "benchmarks" / "fused_bound.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    text = module.main(["--cases", "3d_c4", "--losses", "ce", "--reps", "6"])
    rows = dict(re.findall(r"^3d_c4\s+ce\s+(ours|torch|smp|compiled textbook)\s+[\d.]+\s+([\d.]+) \[", text, re.M))
    assert set(rows) == {"ours", "torch", "smp", "compiled textbook"}
    assert float(rows["torch"]) == 1.0  # the fastest eager peer is the reference of every ratio
    assert re.search(r"compiled textbook\s+[\d.]+\s+[\d.]+ \[[\d.]+, [\d.]+\]\s+[\d.]+$", text, re.M)


def test_donated_backward_compares_the_two_backward_paths_of_one_loss():
    spec = importlib.util.spec_from_file_location("benchmarks_donated_backward",
                                                  REPO / "benchmarks" / "donated_backward.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    text = module.main(["--cases", "3d_c4", "--losses", "ce,dice", "--reps", "6"])
    rows = re.findall(r"^3d_c4\s+(ce|dice)\s+([\d.]+)\s+([\d.]+)\s+([\d.]+) \[([\d.]+), ([\d.]+)\]$", text, re.M)
    assert [row[0] for row in rows] == ["ce", "dice"]
    for _, donated_ms, kept_ms, ratio, low, high in rows:
        assert float(donated_ms) > 0 and float(kept_ms) > 0
        assert float(low) <= float(ratio) <= float(high)
