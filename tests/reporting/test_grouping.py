"""Tables and rows: cosmetic overrides never split, swept settings do, parsed values compare equal,
and a setting edited between runs is a warning instead of a silent merge or split."""
from __future__ import annotations

import pytest

from reporting.collect import collect_runs
from reporting.grouping import group_runs, is_cosmetic, normalize, parse_value
from reporting.leaderboard import build_leaderboard

from .conftest import seg_metrics, write_run


def _tables(root):
    return group_runs(collect_runs([root]).runs)


def _shape(grouping):
    return {t.title: sorted(r.label for r in rows) for t, rows in grouping.tables.items()}


def test_cosmetic_overrides_do_not_split_the_table(tmp_path):
    # One sweep, but some jobs were started with a progress-bar, logger and worker override (and their
    # resolved configs differ accordingly): still one table with every loss, tests against ce.
    for i, (loss, seed) in enumerate((l, s) for l in ("ce", "dice", "focal") for s in (1, 2, 3)):
        cosmetic = i % 2 == 0
        write_run(tmp_path / str(i), loss=loss, seed=seed, metrics=seg_metrics(0.5 + i / 100, rare=0.2), curves=False,
                  extra_overrides=("callbacks.progress_bar=null", "logger=wandb", "datamodule.num_workers=4")
                  if cosmetic else (),
                  config={"logger": {"wandb": {"project": "x"}}, "datamodule": {"num_workers": 4},
                          "paths": {"output_dir": f"/elsewhere/{i}"}} if cosmetic else
                  {"callbacks": {"progress_bar": {"_target_": "RichProgressBar"}}})
    grouping = _tables(tmp_path)
    assert _shape(grouping) == {"synthetic_imbalanced · unet": ["ce", "dice", "focal"]}
    assert not grouping.warnings
    assert grouping.roles["logger.wandb.project"] == "cosmetic"
    lb = build_leaderboard(collect_runs([tmp_path]).runs)
    assert lb.table.set_index("loss").loc["dice", "n_pairs"] == 3


def test_swept_loss_setting_makes_rows_in_the_same_table_as_the_baseline(tmp_path):
    num = 0
    for seed in (1, 2):
        write_run(tmp_path / str(num), loss="ce", seed=seed, metrics=seg_metrics(0.5, 0.2), curves=False)
        num += 1
        for gamma in ("1", "2.0"):
            write_run(tmp_path / str(num), loss="focal", seed=seed, metrics=seg_metrics(0.5 + float(gamma) / 10, 0.2),
                      curves=False, extra_overrides=(f"loss.gamma={gamma}",),
                      config={"loss": {"gamma": float(gamma)}})
            num += 1
    grouping = _tables(tmp_path)
    assert _shape(grouping) == {"synthetic_imbalanced · unet": ["ce", "focal gamma=1", "focal gamma=2"]}
    lb = build_leaderboard(collect_runs([tmp_path]).runs)
    row = lb.table.set_index("loss_params").loc["gamma=2"]
    assert row["loss"] == "focal" and row["n_pairs"] == 2 and row["miou_delta"] == pytest.approx(0.2)


def test_values_are_compared_after_parsing(tmp_path):
    # lr=1e-3 in one sweep and lr=0.001 in the other (as override text and as YAML text): the same setting.
    for i, (loss, lr) in enumerate([("ce", "1e-3"), ("dice", "0.001"), ("ce", "0.01"), ("dice", "1.0e-2")]):
        write_run(tmp_path / str(i), loss=loss, seed=1, metrics=seg_metrics(0.5, 0.2), curves=False,
                  extra_overrides=(f"model.optimizer.lr={lr}",), config={"model": {"optimizer": {"lr": lr}}})
    assert _shape(_tables(tmp_path)) == {"synthetic_imbalanced · unet · model.optimizer.lr=0.001": ["ce", "dice"],
                                         "synthetic_imbalanced · unet · model.optimizer.lr=0.01": ["ce", "dice"]}
    assert parse_value("1e-3") == normalize("0.001") == 0.001 and normalize(4.0) == normalize("4") == 4
    assert parse_value("null") is None and parse_value("True") is True


def test_two_presets_compared_together_make_two_tables_not_an_error(tmp_path):
    # loss_benchmark_cpu vs loss_benchmark: the same losses and seeds with different epochs and data sizes.
    for preset, epochs, size in (("loss_benchmark_cpu", 4, 192), ("loss_benchmark", 30, 800)):
        for i, (loss, seed) in enumerate((l, s) for l in ("ce", "dice") for s in (1, 2)):
            write_run(tmp_path / preset / str(i), loss=loss, seed=seed, metrics=seg_metrics(0.4 + epochs / 100, 0.2),
                      curves=False, extra_overrides=(f"experiment={preset}",),
                      config={"trainer": {"max_epochs": epochs}, "datamodule": {"train_size": size},
                              "tags": [preset]})
    shape = _shape(_tables(tmp_path))
    assert len(shape) == 2 and all(rows == ["ce", "dice"] for rows in shape.values())
    assert any("trainer.max_epochs=30" in title and "experiment=loss_benchmark " in title + " " for title in shape)


def test_a_config_edited_between_runs_is_a_warning_not_a_split(tmp_path):
    for i, (loss, seed) in enumerate((l, s) for l in ("ce", "focal") for s in (1, 2, 3)):
        edited = (loss, seed) == ("ce", 3)
        write_run(tmp_path / str(i), loss=loss, seed=seed, metrics=seg_metrics(0.5, 0.2), curves=False,
                  config={"datamodule": {"class_frequencies": [1.0, 0.5] if edited else [1.0, 0.1]},
                          "loss": {"gamma": 3.0 if (loss, seed) == ("focal", 2) else 2.0}})
    grouping = _tables(tmp_path)
    assert _shape(grouping) == {"synthetic_imbalanced · unet": ["ce", "focal"]}
    assert len(grouping.warnings) == 2
    assert "`datamodule.class_frequencies` differs between runs made with the same overrides" in grouping.warnings[0]
    assert "· focal: `loss.gamma`" in grouping.warnings[1] and "2 ×2, 3 ×1" in grouping.warnings[1]
    assert grouping.roles["datamodule.class_frequencies"] == "edited"


def test_cosmetic_key_rules():
    for key in ("logger.wandb.project", "callbacks.progress_bar", "callbacks.test_predictions.num_images",
                "hydra.run.dir", "paths.output_dir", "datamodule.num_workers", "datamodule.pin_memory", "resume",
                "tags", "trainer.log_every_n_steps", "callbacks.model_checkpoint.dirpath", "datamodule.cache"):
        assert is_cosmetic(key), key
    for key in ("model.optimizer.lr", "trainer.max_epochs", "callbacks.early_stopping.patience",
                "callbacks.model_checkpoint.monitor", "datamodule.train_size", "loss.gamma"):
        assert not is_cosmetic(key), key
