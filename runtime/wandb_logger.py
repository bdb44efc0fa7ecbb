"""W&B logger for sweeps: one W&B run per job, grouped by sweep, offline unless an API key exists."""
from __future__ import annotations

import netrc
import os
from argparse import Namespace
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from pytorch_lightning.loggers import WandbLogger

from common.flatten import flatten

_CHOSEN_GROUPS = ("loss", "datamodule", "model", "trainer", "experiment")


def wandb_api_key_configured() -> bool:
    """True when W&B can authenticate: ``WANDB_API_KEY`` or a netrc entry for the W&B host."""
    if os.environ.get("WANDB_API_KEY"):
        return True
    host = urlparse(os.environ.get("WANDB_BASE_URL", "https://api.wandb.ai")).hostname or "api.wandb.ai"
    path = Path(os.environ.get("NETRC", Path.home() / ".netrc"))
    try:
        return path.is_file() and netrc.netrc(path).authenticators(host) is not None
    except (netrc.NetrcParseError, OSError):
        return False


def default_offline() -> bool:
    """Offline when no API key is configured, unless ``WANDB_MODE`` decides (W&B reads it itself)."""
    return "WANDB_MODE" not in os.environ and not wandb_api_key_configured()


def sweep_group() -> str | None:
    """The sweep dir's name in a Hydra multirun (the W&B group of its jobs); None for a single run."""
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    if not HydraConfig.initialized():
        return None
    hydra_cfg = HydraConfig.get()
    return Path(hydra_cfg.sweep.dir).name if hydra_cfg.mode == RunMode.MULTIRUN else None


class SweepWandbLogger(WandbLogger):
    """Lightning's ``WandbLogger`` with sweep-friendly defaults.

    - ``group=None`` → the sweep dir's name in a multirun (so a sweep's jobs are one W&B group).
    - ``offline=None`` → offline unless an API key is configured; ``WANDB_MODE`` in the environment
      (``online``/``offline``/``disabled``) always wins, as W&B itself reads it.
    - Hyperparameters are logged flattened (``loss.gamma``, ``trainer.max_epochs``) plus
      ``<group>_name`` for each chosen config group (``loss_name: dice_focal``), so W&B's run table
      can group and filter by loss, datamodule and model.
    """

    def __init__(self, project: str = "lossbench", group: str | None = None, offline: bool | None = None,
                 tags: list[str] | tuple[str, ...] = (), **kwargs: Any) -> None:
        if offline is None:
            offline = default_offline()
        super().__init__(project=project, group=group or sweep_group(), offline=offline,
                         tags=[str(t) for t in tags], **kwargs)

    def log_hyperparams(self, params: dict[str, Any] | Namespace) -> None:
        params = vars(params) if isinstance(params, Namespace) else dict(params)
        flat = {k: v for k, v in flatten(params).items() if not k.startswith("hydra.")}
        flat.update(_chosen_names())
        super().log_hyperparams(flat)


def _chosen_names() -> dict[str, str]:
    from hydra.core.hydra_config import HydraConfig

    if not HydraConfig.initialized():
        return {}
    choices = HydraConfig.get().runtime.choices
    return {f"{g}_name": str(choices[g]) for g in _CHOSEN_GROUPS if choices.get(g) is not None}
