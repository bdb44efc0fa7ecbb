"""configs/loss/<name>.yaml: one per registered segmentation loss, building the registered class with the
constructor's own defaults (so YAML and ``build_loss`` construct the same object)."""
from __future__ import annotations

import inspect
from pathlib import Path

import pytest
import torch
from hydra.utils import instantiate
from omegaconf import OmegaConf

from losses import available, build_loss, get_loss_class

CONFIGS = Path(__file__).resolve().parents[2] / "configs" / "loss"
NAMES = available("segmentation")


def load(name: str, mode: str = "multiclass", ignore_index: int | None = 255):
    datamodule = {"datamodule": {"mode": mode, "ignore_index": ignore_index}}
    return OmegaConf.merge(datamodule, {"loss": OmegaConf.load(CONFIGS / f"{name}.yaml")}).loss


@pytest.mark.parametrize("name", NAMES)
def test_yaml_builds_the_registered_class_with_its_defaults(name):
    mode = "binary" if name == "bce" else "multiclass"
    cfg = load(name, mode)
    assert OmegaConf.to_container(cfg, resolve=True)["mode"] == mode
    assert cfg.ignore_index == 255
    loss = instantiate(cfg)
    assert type(loss) is get_loss_class(name)
    params = inspect.signature(type(loss).__init__).parameters
    for key, value in OmegaConf.to_container(cfg, resolve=True).items():
        if key in ("_target_", "mode", "ignore_index", "terms"):
            continue
        assert key in params, f"{name}.yaml: unknown key {key!r}"
        assert params[key].default == value, f"{name}.yaml: {key}={value!r} differs from the default"
    built = build_loss(name, mode=mode, ignore_index=255)
    x = torch.randn(2, 1 if mode == "binary" else 3, 5, 5)
    t = torch.randint(0, 2 if mode == "binary" else 3, (2, 5, 5))
    if loss.requires_class_counts:
        counts = torch.tensor([5.0, 3.0, 2.0])
        loss.set_class_counts(counts)
        built.set_class_counts(counts)
    torch.testing.assert_close(loss(x, t), built(x, t))


@pytest.mark.parametrize("name", ["dice_ce", "dice_focal", "composite"])
def test_composite_yaml_terms_override_from_the_command_line(name):
    cfg = load(name)
    cfg.terms.dice.weight = 0.25
    loss = instantiate(cfg)
    assert loss.term_weights["dice"] == 0.25
    assert set(loss.terms) == set(cfg.terms)


def test_null_ignore_index_and_auto_weights_from_yaml():
    loss = instantiate(load("weighted_ce", ignore_index=None))
    assert loss.ignore_index is None and loss.requires_class_counts
    loss.set_class_counts(torch.tensor([90.0, 10.0], dtype=torch.float64))
    torch.testing.assert_close(loss.class_weights, torch.tensor([0.2, 1.8]))
