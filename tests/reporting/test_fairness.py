"""The fairness check (reporting/fairness.py): rows of one table may differ in the loss only; a planted
difference is listed with every row's value, in summary.json and as a report warning; declared ones are not."""
from __future__ import annotations

import json

from reporting.collect import collect_runs
from reporting.fairness import check_fairness
from reporting.grouping import group_runs
from reporting.pipeline import compare

from .conftest import seg_metrics, write_run

DICE = {"include_background": True, "smooth": 1e-5, "reduction": "mean", "class_weights": None}
FOCAL = {"include_background": True, "gamma": 2.0, "reduction": "mean", "class_weights": None}
CE = {"label_smoothing": 0.0, "reduction": "mean", "class_weights": None}


def _sweep(root, losses: dict[str, dict], seeds=(1, 2), config=None, overrides=None):
    """One run dir per loss × seed; ``config``/``overrides``: per (loss, seed) additions."""
    n = 0
    for loss, options in losses.items():
        for seed in seeds:
            extra = dict((config or {}).get((loss, seed), {}))
            write_run(root / str(n), loss=loss, seed=seed, metrics=seg_metrics(0.5 + n / 100, 0.2), curves=False,
                      config={**extra, "loss": {**options, **extra.get("loss", {})}},
                      extra_overrides=tuple((overrides or {}).get((loss, seed), ())))
            n += 1


def _differences(root):
    return check_fairness(group_runs(collect_runs([root]).runs))


def test_rows_that_differ_only_in_the_loss_pass(tmp_path):
    _sweep(tmp_path, {"ce": CE, "dice": DICE, "focal": FOCAL,
                      # declared: the class weights are weighted_ce; MCC's smooth is a pseudo-count
                      "weighted_ce": {**CE, "class_weights": "auto"},
                      "mcc": {"include_background": True, "smooth": 0.0, "batch": True, "reduction": "mean"}})
    assert _differences(tmp_path) == []


def test_a_planted_background_difference_is_flagged_with_every_rows_value(tmp_path):
    _sweep(tmp_path, {"ce": CE, "dice": DICE, "focal": FOCAL,
                      "cldice": {**DICE, "include_background": False, "smooth": 1.0}})
    found = {d.key: d.values for d in _differences(tmp_path)}
    assert found == {
        "loss.*.include_background": {"cldice": "false", "dice": "true", "focal": "true"},  # ce lacks the option
        "loss.*.smooth": {"cldice": "1", "dice": "1e-05"},
    }


def test_a_composite_term_counts_and_a_non_loss_key_edited_for_one_loss_is_flagged(tmp_path):
    dice_ce = {"reduction": "mean", "class_weights": None,
               "terms": {"dice": {"weight": 1.0, "smooth": 1e-5, "include_background": False},
                         "ce": {"weight": 1.0, "label_smoothing": 0.0}}}
    # dice's runs were made with another learning rate, without a command-line override saying so
    lr = {("dice", s): {"model": {"optimizer": {"lr": 0.01}}} for s in (1, 2)}
    lr |= {(loss, s): {"model": {"optimizer": {"lr": 0.003}}} for loss in ("ce", "dice_ce") for s in (1, 2)}
    _sweep(tmp_path, {"ce": CE, "dice": DICE, "dice_ce": dice_ce}, config=lr)
    found = {d.key: d.values for d in _differences(tmp_path)}
    assert found == {"loss.*.include_background": {"dice": "true", "dice_ce": "false"},
                     "model.optimizer.lr": {"ce": "0.003", "dice": "0.01", "dice_ce": "0.003"}}


def test_a_loss_option_swept_into_the_row_names_is_declared(tmp_path):
    configs = {("dice", s): {"loss": {"include_background": False}} for s in (1, 2)}
    sweeps = {("dice", s): ("loss.include_background=false",) for s in (1, 2)}
    _sweep(tmp_path, {"dice": DICE, "focal": FOCAL}, config=configs, overrides=sweeps)
    _sweep(tmp_path / "b", {"dice": DICE}, overrides={("dice", s): ("loss.include_background=true",) for s in (1, 2)})
    runs = collect_runs([tmp_path]).runs
    grouping = group_runs(runs)
    labels = sorted(r.label for rows in grouping.tables.values() for r in rows)
    assert labels == ["dice include_background=False", "dice include_background=True", "focal"]
    assert check_fairness(grouping) == []


def test_compare_writes_the_difference_to_summary_and_report(tmp_path):
    runs = tmp_path / "runs"
    _sweep(runs, {"ce": CE, "dice": DICE, "focal": {**FOCAL, "include_background": False}})
    compare([runs], out=tmp_path / "out", plots=False, resamples=100)
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert summary["fairness"] == [{"datamodule": "synthetic_imbalanced", "model": "unet", "settings": "",
                                    "key": "loss.*.include_background",
                                    "values": {"dice": "true", "focal": "false"}}]
    warning = next(w for w in summary["warnings"] if "loss.*.include_background" in w)
    assert "false in `focal`; true in `dice`" in warning
    assert warning in (tmp_path / "out" / "leaderboard.md").read_text()
    assert "loss.*.include_background" in (tmp_path / "out" / "report.html").read_text()


def test_compare_names_the_preset_and_its_version(tmp_path):
    runs = tmp_path / "runs"
    _sweep(runs, {"ce": CE, "dice": DICE})
    for n in range(3):  # three of the four runs come from the preset
        path = runs / str(n) / "metrics.json"
        path.write_text(json.dumps({**json.loads(path.read_text()), "preset": {"name": "real_benchmark_cpu",
                                                                             "version": 2}}))
    compare([runs], out=tmp_path / "out", plots=False, resamples=100)
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert summary["presets"] == [{"name": "real_benchmark_cpu", "version": 2, "n_runs": 3},
                                  {"name": None, "version": None, "n_runs": 1}]
    text = (tmp_path / "out" / "leaderboard.md").read_text()
    assert "Presets: `real_benchmark_cpu` version 2 (3 runs), no preset (1 run)" in text
