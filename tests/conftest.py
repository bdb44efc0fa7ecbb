"""Shared fixtures: compose the real Hydra config tree for a run whose outputs go to a tmp dir."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Callable

import pytest
import torch
from hydra.core.global_hydra import GlobalHydra
from omegaconf import DictConfig

from runtime.compose import REPO, compose_config

__all__ = ["REPO", "compose_config"]

os.environ.setdefault("WANDB_MODE", "offline")
os.environ.setdefault("WANDB_SILENT", "true")
torch.set_num_threads(min(2, os.cpu_count() or 1))


@pytest.fixture
def run_config(tmp_path: Path) -> Callable[..., DictConfig]:
    """``run_config(*overrides, subdir="run")`` → a composed config writing into ``tmp_path/subdir``."""

    def make(*overrides: str, subdir: str = "run") -> DictConfig:
        return compose_config(list(overrides), tmp_path / subdir)

    yield make
    GlobalHydra.instance().clear()
