"""Turning the Hydra config into Lightning objects, with the checks that must happen before training."""
from __future__ import annotations

import logging

import hydra
from omegaconf import DictConfig, open_dict
from pytorch_lightning import Callback
from pytorch_lightning.callbacks import LearningRateMonitor
from pytorch_lightning.loggers import Logger

from losses import available, loss_task
from models.sliding_window import SlidingWindowInferer

log = logging.getLogger(__name__)


def config_choice(cfg: DictConfig, group: str) -> str:
    """The option chosen for a config group (``loss`` → ``dice_focal``), as Hydra recorded it.

    Falls back to the class name of the group's ``_target_`` when the config was not built by Hydra's
    main (e.g. composed in a test without its ``hydra`` node).
    """
    choices = cfg.get("hydra", {}).get("runtime", {}).get("choices", {}) if "hydra" in cfg else {}
    if not choices:
        from hydra.core.hydra_config import HydraConfig

        if HydraConfig.initialized():
            choices = HydraConfig.get().runtime.choices
    if choices and group in choices and choices[group] is not None:
        return str(choices[group])
    node = cfg.get(group)
    target = node.get("_target_", "") if isinstance(node, DictConfig) else ""
    return target.rsplit(".", 1)[-1] or "unknown"


def check_loss_fits_task(loss_name: str, task: str) -> None:
    """Stop at start-up when a segmentation loss meets the detection task or the reverse."""
    try:
        loss_for = loss_task(loss_name)
    except ValueError:
        return  # a user mix configured in YAML under a new name: its class decides at construction
    if loss_for != task:
        raise ValueError(
            f"loss={loss_name} is a {loss_for} loss but task={task}. "
            f"Segmentation losses: {', '.join(available('segmentation'))}. "
            f"Detection losses: {', '.join(available('detection'))}."
        )


def fill_from_datamodule(cfg: DictConfig, datamodule: object) -> None:
    """Datamodule keys left null in the config (e.g. ``in_channels: null`` = follow the images) are
    filled from the constructed datamodule, so the model config's interpolations see real values."""
    with open_dict(cfg):
        for key in ("in_channels", "num_classes"):
            if key in cfg.datamodule and cfg.datamodule[key] is None and getattr(datamodule, key, None) is not None:
                cfg.datamodule[key] = getattr(datamodule, key)


def build_eval_inferer(datamodule: object) -> SlidingWindowInferer | None:
    """The model's evaluation inferer from the datamodule's ``eval_window`` wish (patch size, overlap,
    blend, …), or None when the datamodule evaluates whole inputs in one forward pass."""
    window = getattr(datamodule, "eval_window", None)
    return SlidingWindowInferer(**window) if window is not None else None


def instantiate_loggers(cfg: DictConfig | None) -> list[Logger]:
    """One Lightning logger per node of ``cfg.logger`` that has a ``_target_``."""
    if not cfg:
        return []
    return [hydra.utils.instantiate(node) for node in cfg.values() if isinstance(node, DictConfig) and "_target_" in node]


def instantiate_callbacks(cfg: DictConfig | None, has_logger: bool) -> list[Callback]:
    """One Lightning callback per node of ``cfg.callbacks``; the LR monitor needs a logger, so it is
    left out (with a log line) when the run has none."""
    callbacks: list[Callback] = []
    for name, node in (cfg or {}).items():
        if not (isinstance(node, DictConfig) and "_target_" in node):
            continue
        callback = hydra.utils.instantiate(node)
        if isinstance(callback, LearningRateMonitor) and not has_logger:
            log.info("callbacks.%s (learning-rate monitor) skipped: logger=none", name)
            continue
        callbacks.append(callback)
    return callbacks
