"""Hydra callback: give each job the platform's multiprocessing start method back.

Hydra's joblib launcher runs jobs in loky worker processes, which set multiprocessing's default
start method to ``loky``. A ``DataLoader`` with ``num_workers > 0`` then starts its workers through
loky's Popen with plain ``multiprocessing.Process`` objects and fails
(``AttributeError: 'Process' object has no attribute 'env'``). Restoring the platform default
(``fork`` on Linux, ``spawn`` on macOS) at job start makes DataLoader workers work under joblib.
"""
from __future__ import annotations

import multiprocessing
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig


class RestoreStartMethod(Callback):
    """``on_job_start``: replace a ``loky`` default start method with the platform's default."""

    def on_job_start(self, config: DictConfig, **kwargs: Any) -> None:
        if multiprocessing.get_start_method(allow_none=True) == "loky":
            multiprocessing.set_start_method(multiprocessing.get_all_start_methods()[0], force=True)
