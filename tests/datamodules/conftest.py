"""Fixtures for the synthetic data tests: build a preset from its YAML exactly as Hydra would."""

from pathlib import Path
from typing import Any, Callable

import hydra
import pytest
from omegaconf import OmegaConf

from datamodules.synthetic import SyntheticSegDataModule

CONFIG_DIR = Path(__file__).resolve().parents[2] / "configs" / "datamodule"


def build_preset(name: str, seed: int = 1, **overrides: Any) -> SyntheticSegDataModule:
    """Instantiate ``configs/datamodule/<name>.yaml`` with a root ``seed`` (its ``${seed}``) and overrides."""
    node = OmegaConf.load(CONFIG_DIR / f"{name}.yaml")
    root = OmegaConf.create({"seed": seed, "datamodule": node})
    for key, value in overrides.items():
        OmegaConf.update(root, f"datamodule.{key}", value, merge=False)
    return hydra.utils.instantiate(root.datamodule)


@pytest.fixture
def preset() -> Callable[..., SyntheticSegDataModule]:
    return build_preset
