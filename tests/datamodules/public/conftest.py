"""Fixtures of the public-dataset tests: a one-epoch training run on a dataset's tiny fake copy."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Callable

import pytest
from omegaconf import DictConfig

from train import train


@pytest.fixture
def tiny_run(run_config: Callable[..., DictConfig]) -> Callable[..., dict[str, Any]]:
    """``tiny_run(name, root, *overrides, eval_patch=(h, w))``: ``debug=fast`` for one epoch of 8 patches of
    32x32 on ``datamodule=<name>`` at ``root``, evaluated in ``eval_patch`` windows; returns the run's
    ``metrics.json`` as written."""

    def run(name: str, root: Path, *overrides: str, eval_patch: tuple[int, int] = (32, 48)) -> dict[str, Any]:
        cfg = run_config("debug=fast", f"datamodule={name}", f"datamodule.root={root}", "datamodule.patch_size=[32,32]",
                         "datamodule.patches_per_epoch=8", "datamodule.sliding_window.patch_size=[{},{}]".format(*eval_patch),
                         "trainer.max_epochs=1", *overrides)
        train(cfg)
        return json.loads((Path(cfg.paths.output_dir) / "metrics.json").read_text())

    return run
