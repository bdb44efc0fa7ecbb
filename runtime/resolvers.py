"""OmegaConf resolvers the config tree uses; registered by ``train.py`` and by :mod:`runtime.compose`."""
from __future__ import annotations

import os
import uuid

from hydra.core.hydra_config import HydraConfig
from omegaconf import OmegaConf


def run_id() -> str:
    """A per-invocation id in the run/sweep dir name: two runs started in the same second get different
    dirs, while a sweep's worker processes (which inherit the environment) agree on the sweep dir."""
    return os.environ.setdefault("LOSSBENCH_RUN_ID", uuid.uuid4().hex[:6])


def launch_dir() -> str:
    """The directory ``train.py`` was started from: Hydra's ``runtime.cwd`` once Hydra has set its
    config, else the working directory. ``${hydra:runtime.cwd}`` alone fails with "HydraConfig was not
    set" where Hydra resolves the sweep dir of a config that sets ``hydra.mode: MULTIRUN`` itself (the
    ``experiment=`` presets)."""
    if HydraConfig.initialized():
        return HydraConfig.get().runtime.cwd
    return os.getcwd()


def register_resolvers() -> None:
    """``${lossbench_run_id:}`` and ``${lossbench_launch_dir:}``; safe to call more than once."""
    OmegaConf.register_new_resolver("lossbench_run_id", run_id, replace=True)
    OmegaConf.register_new_resolver("lossbench_launch_dir", launch_dir, replace=True)
