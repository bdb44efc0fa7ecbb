"""OmegaConf resolvers the config tree uses; registered by ``train.py`` and by :mod:`runtime.compose`."""
from __future__ import annotations

import os
import uuid

from omegaconf import OmegaConf


def run_id() -> str:
    """A per-invocation id in the run/sweep dir name: two runs started in the same second get different
    dirs, while a sweep's worker processes (which inherit the environment) agree on the sweep dir."""
    return os.environ.setdefault("LOSSBENCH_RUN_ID", uuid.uuid4().hex[:6])


def register_resolvers() -> None:
    """``${lossbench_run_id:}``; safe to call more than once."""
    OmegaConf.register_new_resolver("lossbench_run_id", run_id, replace=True)
