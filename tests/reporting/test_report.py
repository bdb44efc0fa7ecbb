"""compare() outputs on a hand-made two-dataset sweep: every file, plots, a self-contained report.html
and its render in headless Chromium."""
from __future__ import annotations

import base64
import json
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from common.palette import BASELINE_COLOR, SERIES_COLORS, series_colors
from reporting.html import _shown
from reporting.pipeline import compare
from reporting.plots import smallest_object_box

from .conftest import MIOU, curve_to, seg_metrics, write_run

PLOTS = ["seed_strips.png", "learning_curves.png", "size_recall.png", "class_iou.png", "cd_diagram.png", "rank_stability.png",
         "predictions_synthetic_imbalanced.png", "predictions_synthetic_small.png"]
LOSSES = [*MIOU, "lovasz"]


@pytest.fixture(scope="module")
def report(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("report") / "sweep"
    num = 0
    for dm, shift in (("synthetic_imbalanced", 0.0), ("synthetic_small", -0.1)):
        for i, loss in enumerate(LOSSES):
            for seed in (1, 2, 3):
                failed = (loss, seed, dm) == ("focal", 3, "synthetic_small")
                value = MIOU.get(loss, [0.7, 0.72, 0.69])[seed - 1] + shift
                hist = {"val/miou": curve_to(value, 6, plateau_from=2 + i), "train/loss": [1 / (e + 1) for e in range(6)]}
                write_run(root / str(num), loss=loss, seed=seed, datamodule=dm,
                          metrics=None if failed else seg_metrics(value, 0.3 + shift),
                          error="ValueError: boom <script>" if failed else None, predictions=True,
                          history=None if failed else hist, curves=False)
                num += 1
    (root / "broken").mkdir()
    (root / "broken" / "metrics.json").write_text("{not json")
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


def test_tables_ranks_budget_summary_and_latex(report):
    table = pd.read_csv(report / "leaderboard.csv", keep_default_na=False, na_values=[""])
    assert len(table) == 8 and {"loss_params", "miou_p_holm", "miou_delta_ci_low", "converged"} <= set(table.columns)
    ranks = pd.read_csv(report / "ranks.csv", keep_default_na=False, na_values=[""])
    assert list(ranks.columns) == ["loss", "loss_params", "avg_rank", "n_blocks"] and set(ranks["n_blocks"]) == {2}
    budget = pd.read_csv(report / "budget.csv", keep_default_na=False, na_values=[""])
    assert {"datamodule", "model", "loss", "loss_params", "epoch", "mean", "rank"} <= set(budget.columns)
    assert len(budget) == 2 * 4 * 6
    summary = json.loads((report / "summary.json").read_text())
    assert summary["friedman"]["n_blocks"] == 2 and "too few blocks" in summary["friedman"]["verdict"]
    assert [s["path"].endswith("broken") for s in summary["skipped_runs"]] == [True]
    assert summary["skipped_runs"][0]["reason"].startswith("cannot read metrics.json")
    assert len(summary["budget"]) == 2 and summary["budget"][0]["epoch_half"] == 3
    tex = (report / "leaderboard.tex").read_text()
    assert tex.count(r"\toprule") == 4 and r"\textbf{" in tex and "synthetic\\_small" in tex
    md = (report / "leaderboard.md").read_text()
    assert "## Skipped run dirs (1)" in md and "too few blocks to conclude anything" in md


def test_report_is_self_contained_with_links_and_sortable_tables(report):
    page = (report / "report.html").read_text()
    assert not re.search(r"src\s*=\s*['\"]?(https?:|//|file:)", page), "report must not load anything"
    assert not re.search(r"href\s*=\s*['\"]?(https?:|//|file:|/)", page), "links must be relative"
    embedded = re.findall(r"data:image/png;base64,([A-Za-z0-9+/=]+)", page)
    assert sorted(base64.b64decode(e) for e in embedded) == sorted((report / p).read_bytes() for p in PLOTS)
    assert page.count("<table class='leaderboard sortable'>") == 2 and page.count("<tr class=best>") == 2
    assert "ValueError: boom &lt;script&gt;" in page and "boom <script>" not in page
    assert page.count("<script>") == 1 and "addEventListener('click'" in page
    assert "<a href='0/'>sweep/0</a>" in page and "<a href='broken/'>" in page
    assert "Per class: iou" in page and "By object size" in page and "Config diff" in page
    assert "too few blocks to conclude anything" in page


def test_series_palette_has_distinct_colours_and_a_black_baseline():
    assert len(set(SERIES_COLORS)) >= 20 and BASELINE_COLOR not in SERIES_COLORS
    rgb = np.array([[int(c[i:i + 2], 16) for i in (1, 3, 5)] for c in SERIES_COLORS], dtype=float)
    dist = np.sqrt(((rgb[:, None] - rgb[None]) ** 2).sum(-1))
    assert dist[~np.eye(len(rgb), dtype=bool)].min() > 25  # no two series nearly the same colour
    labels = [f"loss{i}" for i in range(20)] + ["ce", "mcc"]
    colors = series_colors(labels, baseline="ce")
    assert colors["ce"] == BASELINE_COLOR and len(set(colors.values())) == 22


def test_zoom_window_is_around_the_smallest_object():
    mask = np.zeros((64, 64), dtype=int)
    mask[5:30, 5:30] = 1
    mask[50:52, 40:43] = 2  # 2 × 3 px: the smallest object
    (y0, y1), (x0, x1) = smallest_object_box(mask)
    assert y0 <= 50 and y1 >= 52 and x0 <= 40 and x1 >= 43 and (y1 - y0) <= 13 and (x1 - x0) <= 13
    assert smallest_object_box(np.zeros((8, 8), dtype=int)) is None


def _chromium() -> str | None:
    return next((shutil.which(n) for n in ("chromium", "chromium-browser", "google-chrome") if shutil.which(n)), None)


@pytest.mark.skipif(_chromium() is None, reason="headless Chromium not installed (Debian package `chromium`; "
                                                 ".ci/run installs it with apt-get)")
def test_report_renders_in_headless_chromium_with_the_leaderboard_visible(report, tmp_path):
    shot = tmp_path / "shot.png"
    cmd = [_chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", "--no-first-run",
           f"--user-data-dir={tmp_path / 'profile'}", "--window-size=1280,1000", f"--screenshot={shot}",
           (report / "report.html").as_uri()]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and shot.is_file(), done.stderr[-2000:]
    pixels = np.asarray(Image.open(shot).convert("RGB"))
    assert pixels.shape[:2] == (1000, 1280)
    assert _non_blank(pixels) > 0.03, "screenshot is blank"
    # The best row's green background (#e7f6e7) is in the first viewport: the leaderboard is visible.
    best_row = np.all(np.abs(pixels.astype(int) - [0xE7, 0xF6, 0xE7]) <= 2, axis=-1)
    assert best_row.sum() > 5000


def test_detection_report_has_per_class_ap_ap_by_size_and_wandb_links(tmp_path):
    root = tmp_path / "det"
    for i, (loss, seed) in enumerate((l, s) for l in ("giou", "ciou") for s in (1, 2)):
        m = 0.3 + (loss == "ciou") / 20 + seed / 100
        run = write_run(root / str(i), loss=loss, seed=seed, task="detection", curves=False,
                        metrics={"test/map": m, "test/map_small": m / 3, "test/map_medium": m / 2, "test/map_large": m,
                                 "test/ap/0": m + 0.1, "test/ap/1": m - 0.1})
        (run / "wandb" / f"offline-run-20261129_1200{i}-abc{i}").mkdir(parents=True)
    result = compare([root])
    assert result.leaderboard.baseline == "giou" and (root / "class_ap.png").is_file()
    page = (root / "report.html").read_text()
    assert "Per class: ap" in page and "By object size" in page and "map_medium" in page
    assert "<a href='0/wandb/offline-run-20261129_12000-abc0/'>offline-run-20261129_12000-abc0</a>" in page


def test_latex_escapes_what_would_break_a_paper(report):
    tex = (report / "leaderboard.tex").read_text()
    body = "\n".join(line for line in tex.splitlines() if not line.startswith("%"))
    assert "95%" not in body and r"95\%" in body  # an unescaped % would comment out the rest of the caption
    assert "·" not in body and "_" not in body.replace(r"\_", "")


@pytest.mark.skipif(_chromium() is None, reason="headless Chromium not installed")
def test_clicking_a_header_sorts_the_table_in_chromium(report, tmp_path):
    page = (report / "report.html").read_text()
    # Click "loss" once (ascending by name), as a reader would; the DOM after the script ran is dumped.
    click = "<script>document.querySelectorAll('table.leaderboard')[0].querySelectorAll('th')[1].click();</script>"
    clicked = tmp_path / "clicked.html"
    clicked.write_text(page.replace("</body>", click + "</body>"))
    cmd = [_chromium(), "--headless", "--no-sandbox", "--disable-gpu", f"--user-data-dir={tmp_path / 'profile'}",
           "--dump-dom", clicked.as_uri()]
    dom = subprocess.run(cmd, capture_output=True, text=True, timeout=120).stdout
    first = dom.split("<table class=\"leaderboard sortable\">", 1)[1].split("</tbody>", 1)[0]
    order = re.findall(r"<td class=\"l\">([a-z]+)", first)
    assert order == sorted(LOSSES), order
    original = page.split("<table class='leaderboard sortable'>", 1)[1].split("</tbody>", 1)[0]
    assert re.findall(r"<td class=l>([a-z]+)", original) != sorted(LOSSES)  # the click changed the order


def test_header_names_sources_below_the_working_directory_relative_and_others_absolute(report, monkeypatch):
    page = (report / "report.html").read_text()
    assert f"from <code>{report.resolve()}</code>" in page  # the fixture's sweep is outside the working directory
    monkeypatch.chdir(report.parent)
    assert _shown(report.resolve()) == "sweep"
    assert _shown(report.resolve() / "0") == str(Path("sweep") / "0")
    monkeypatch.chdir(report)
    assert _shown(report.parent.resolve()) == str(report.parent.resolve())
