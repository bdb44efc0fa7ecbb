"""Fixtures for the synthetic data tests: build a preset from the composed config tree, as train.py would."""

from typing import Any, Callable

import hydra
import pytest
from hydra.core.global_hydra import GlobalHydra
from omegaconf import OmegaConf

from datamodules.synthetic import SyntheticSegDataModule
from runtime.compose import compose_config


def build_preset(name: str, seed: int = 1, **overrides: Any) -> SyntheticSegDataModule:
    """Instantiate ``configs/datamodule/<name>.yaml`` (with its ``defaults``) for run ``seed``, plus overrides."""
    try:
        cfg = compose_config([f"datamodule={name}", f"seed={seed}"])
    finally:
        GlobalHydra.instance().clear()
    for key, value in overrides.items():
        OmegaConf.update(cfg, f"datamodule.{key}", value, merge=False)
    return hydra.utils.instantiate(cfg.datamodule)


@pytest.fixture
def preset() -> Callable[..., SyntheticSegDataModule]:
    return build_preset
