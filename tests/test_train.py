"""train.py end to end on the real config tree: composing, tiny runs, metrics.json, seeds, DDP, failures."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from hydra.errors import ConfigCompositionException, MissingConfigException
from omegaconf import OmegaConf
from omegaconf.errors import InterpolationToMissingValueError

from runtime.compose import REPO, compose_config
from train import train

CONFIG_GROUPS = ("datamodule", "model", "loss", "trainer", "logger", "callbacks", "task", "debug", "experiment", "hparams_search")
FAST = ("debug=fast", "logger=csv")
SEG_KEYS = ["miou", "dice_fg", "pixel_acc", "object_recall", "iou/0", "dice/1", "small_recall/lt16"]


def _options(group: str) -> list[str]:
    return sorted(p.stem for p in (REPO / "configs" / group).glob("*.yaml"))


@pytest.mark.parametrize("group", CONFIG_GROUPS)
def test_every_config_file_composes(group, tmp_path):
    # Each option must compose and fully resolve within at least one task (a detection model needs a
    # detection datamodule); `???` values (e.g. datamodule.root) are the user's to give.
    for option in _options(group):
        errors = []
        for task in ("segmentation", "detection"):
            cfg = compose_config([f"task={task}", f"{group}={option}"], tmp_path)
            assert cfg.hydra.runtime.choices[group] == option
            try:
                OmegaConf.to_container(OmegaConf.masked_copy(cfg, [k for k in cfg if k != "hydra"]), resolve=True)
                break
            except InterpolationToMissingValueError:
                break  # points at a `???` the user must give (e.g. a COCO folder's num_classes)
            except Exception as error:
                errors.append(f"task={task}: {error}")
        else:
            pytest.fail(f"{group}={option} does not resolve: {errors}")


@pytest.mark.parametrize("group,bad", [("loss", "no_such_loss"), ("model", "no_such_model"), ("datamodule", "nope")])
def test_unknown_option_names_the_valid_ones(group, bad, tmp_path):
    with pytest.raises((MissingConfigException, ConfigCompositionException)) as info:
        compose_config([f"{group}={bad}"], tmp_path)
    message = str(info.value)
    assert bad in message
    assert _options(group)[0] in message  # Hydra lists the available options


def test_default_tiny_run_writes_contract_metrics(run_config):
    cfg = run_config(*FAST)
    record = train(cfg)
    run_dir = Path(cfg.paths.output_dir)
    on_disk = json.loads((run_dir / "metrics.json").read_text())
    assert on_disk["status"] == "completed" and on_disk["error"] is None
    assert on_disk["task"] == "segmentation" and on_disk["loss"] == "ce"
    assert on_disk["datamodule"] == "synthetic_imbalanced" and on_disk["model"] == "unet"
    assert on_disk["seed"] == 1 and on_disk["epochs"] == 2 and on_disk["wall_time_s"] > 0
    for stage in ("val", "test"):
        for key in SEG_KEYS:
            assert f"{stage}/{key}" in on_disk["metrics"], f"{stage}/{key} missing"
    assert 0.0 <= on_disk["metrics"]["test/miou"] <= 1.0
    counts = on_disk["class_pixel_counts"]  # training split, for compare.py's rare-class metrics
    assert len(counts) == 6 and counts[0] > 10 * sum(counts[1:]) and min(counts[4:]) * 20 <= max(counts[1:3])
    assert {"torch", "pytorch_lightning", "hydra_core"} <= set(on_disk["versions"])
    assert _comparable(record["metrics"]) == on_disk["metrics"]
    assert (run_dir / "config.yaml").is_file()
    assert (run_dir / "csv" / "metrics.csv").is_file()
    assert any((run_dir / "checkpoints").glob("best-*.ckpt"))


def test_dice_focal_logs_each_term(run_config):
    cfg = run_config(*FAST, "loss=dice_focal")
    record = train(cfg)
    assert record["status"] == "completed" and record["loss"] == "dice_focal"
    header = (Path(cfg.paths.output_dir) / "csv" / "metrics.csv").read_text().splitlines()[0].split(",")
    terms = [h for h in header if h.startswith("train/loss/")]
    assert len(terms) == 2, header


def _comparable(metrics: dict[str, float]) -> dict[str, float | None]:
    return {key: None if value != value else value for key, value in metrics.items()}  # NaN != NaN


def test_same_seed_same_metrics_other_seed_differs(run_config):
    first = _comparable(train(run_config(*FAST, "seed=3", subdir="a"))["metrics"])
    second = _comparable(train(run_config(*FAST, "seed=3", subdir="b"))["metrics"])
    other = _comparable(train(run_config(*FAST, "seed=4", subdir="c"))["metrics"])
    assert len(first) > 40
    assert first == second
    assert first["test/pixel_acc"] != other["test/pixel_acc"] or first["val/loss"] != other["val/loss"]


def test_exploding_run_is_recorded_as_failed(run_config):
    cfg = run_config(*FAST, "model.optimizer.lr=1e30", "model.optimizer.weight_decay=0", "callbacks=none")
    with pytest.raises(FloatingPointError, match="non-finite training loss"):
        train(cfg)
    record = json.loads((Path(cfg.paths.output_dir) / "metrics.json").read_text())
    assert record["status"] == "failed"
    assert record["error"].startswith("NonFiniteLossError: non-finite training loss")


def test_detection_loss_with_segmentation_task_stops_at_start(run_config):
    from losses import available

    box_losses = available("detection")
    if not box_losses:
        pytest.skip("no detection losses registered")
    cfg = run_config(*FAST, f"loss={box_losses[0]}")
    with pytest.raises(ValueError, match="Segmentation losses: .*ce"):
        train(cfg)


def _cli(tmp_path: Path, *overrides: str) -> dict:
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    run_dir = tmp_path / "_".join(o.split("=")[0] for o in overrides[:1]) / str(len(list(tmp_path.iterdir())))
    result = subprocess.run(
        [sys.executable, "train.py", *overrides, f"hydra.run.dir={run_dir}", "logger=none", "callbacks=none"],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads((run_dir / "metrics.json").read_text())


def test_ddp_cpu_evaluation_equals_single_process(tmp_path):
    # Same initial weights (same seed), no training steps: the synced DDP metrics over the two ranks'
    # shares of val/test must equal the single-process metrics over the whole splits. Odd split sizes:
    # a sampler that pads a rank with a repeated case (Lightning's default) would score that case twice.
    common = ("debug=fast", "trainer.limit_train_batches=0", "trainer.limit_val_batches=null",
              "trainer.limit_test_batches=null", "datamodule.val_size=15", "datamodule.test_size=17")
    single = _cli(tmp_path, *common)
    ddp = _cli(tmp_path, *common, "trainer=ddp_cpu")
    assert single["status"] == ddp["status"] == "completed"
    for key in ("test/miou", "test/pixel_acc", "test/object_recall", "val/dice_fg"):
        assert ddp["metrics"][key] == pytest.approx(single["metrics"][key], abs=1e-6), key


def test_ddp_cpu_trains_the_default_unet_without_find_unused_parameters(tmp_path):
    # smp builds resnet18's layer4 for the depth-4 default U-Net and never runs it; DDP refused such
    # parameters ("Expected to have finished reduction…") until models.unused_stages dropped them.
    ddp = _cli(tmp_path, "debug=fast", "trainer=ddp_cpu", "trainer.max_epochs=1")
    assert ddp["status"] == "completed" and ddp["epochs"] == 1, ddp.get("error")


def test_run_dirs_are_unique_per_invocation_and_shared_by_sweep_workers():
    # Run/sweep dir names end in a per-invocation id: two runs started in the same second differ,
    # while a sweep's worker processes inherit the id (through the environment) and agree.
    hydra_cfg = (REPO / "configs" / "hydra" / "default.yaml").read_text()
    assert hydra_cfg.count("_${lossbench_run_id:}") == 2
    code = "import train; from omegaconf import OmegaConf; print(OmegaConf.create({'a': '${lossbench_run_id:}'}).a)"
    env = {k: v for k, v in os.environ.items() if k != "LOSSBENCH_RUN_ID"}

    def run_id(extra_env: dict) -> str:
        result = subprocess.run([sys.executable, "-c", code], cwd=REPO, env={**env, **extra_env},
                                capture_output=True, text=True, timeout=120)
        assert result.returncode == 0, result.stderr[-2000:]
        return result.stdout.strip().splitlines()[-1]

    first, second = run_id({}), run_id({})
    assert len(first) == 6 and first != second
    assert run_id({"LOSSBENCH_RUN_ID": "abc123"}) == "abc123"
