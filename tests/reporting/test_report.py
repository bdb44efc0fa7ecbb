"""compare() outputs on a hand-made sweep: plots, a self-contained report.html, headless Chromium render."""
from __future__ import annotations

import base64
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from reporting.pipeline import compare

PLOTS = ["metric_bars.png", "size_recall.png", "class_iou.png", "training_curves.png",
         "predictions_synthetic_imbalanced.png"]


@pytest.fixture(scope="module")
def report(tmp_path_factory) -> Path:
    from .conftest import MIOU, seg_metrics, write_run

    root = tmp_path_factory.mktemp("report") / "sweep"
    for num, (loss, seed) in enumerate((l, s) for l in MIOU for s in (1, 2, 3)):
        failed = (loss, seed) == ("focal", 3)
        write_run(root / str(num), loss=loss, seed=seed, metrics=None if failed else seg_metrics(MIOU[loss][seed], 0.3),
                  error="ValueError: boom <script>" if failed else None, predictions=True)
    result = compare([root])
    assert result.out_dir == root.resolve()
    return root


def _non_blank(pixels: np.ndarray) -> float:
    """Share of pixels that differ from the page/figure background (white)."""
    return float((pixels[..., :3].astype(int).sum(-1) < 740).mean())


@pytest.mark.parametrize("name", PLOTS)
def test_plots_are_written_and_not_blank(report, name):
    pixels = np.asarray(Image.open(report / name).convert("RGB"))
    assert pixels.shape[0] > 200 and pixels.shape[1] > 300
    assert _non_blank(pixels) > 0.02


def test_prediction_grid_has_image_truth_and_one_column_per_loss(report):
    pixels = np.asarray(Image.open(report / "predictions_synthetic_imbalanced.png").convert("RGB"))
    # 2 + 3 columns at 1.9 in × 110 dpi each.
    assert pixels.shape[1] == pytest.approx(5 * 1.9 * 110, abs=2)


def test_report_is_self_contained(report):
    page = (report / "report.html").read_text()
    assert not re.search(r"(src|href)\s*=\s*['\"]?(https?:|//|file:)", page), "report must not reference anything"
    embedded = re.findall(r"data:image/png;base64,([A-Za-z0-9+/=]+)", page)
    assert len(embedded) == len(PLOTS)
    assert sorted(base64.b64decode(e) for e in embedded) == sorted((report / p).read_bytes() for p in PLOTS)
    assert page.count("<table class=leaderboard>") == 1 and page.count("<tr class=best>") == 1
    assert "ValueError: boom &lt;script&gt;" in page and "<script>" not in page
    assert "Config diff" in page and "<code>loss._target_</code>" in page


def _chromium() -> str | None:
    return next((shutil.which(n) for n in ("chromium", "chromium-browser", "google-chrome") if shutil.which(n)), None)


@pytest.mark.skipif(_chromium() is None, reason="headless Chromium not installed (Debian package `chromium`; "
                                                 ".ci/run installs it with apt-get)")
def test_report_renders_in_headless_chromium_with_the_leaderboard_visible(report, tmp_path):
    shot = tmp_path / "shot.png"
    cmd = [_chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", "--no-first-run",
           f"--user-data-dir={tmp_path / 'profile'}", "--window-size=1280,800", f"--screenshot={shot}",
           (report / "report.html").as_uri()]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and shot.is_file(), done.stderr[-2000:]
    pixels = np.asarray(Image.open(shot).convert("RGB"))
    assert pixels.shape[:2] == (800, 1280)
    assert _non_blank(pixels) > 0.03, "screenshot is blank"
    # The best row's green background (#e7f6e7) is in the first viewport: the leaderboard is visible.
    best_row = np.all(np.abs(pixels.astype(int) - [0xE7, 0xF6, 0xE7]) <= 2, axis=-1)
    assert best_row.sum() > 5000
