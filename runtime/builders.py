"""Config → the run's parts: the one place that wires data → loss and data → model.

:func:`build_run` builds, in this order (the order fixes the random draws, so keep it): seed,
datamodule, loss, model, loggers, callbacks, trainer. The datamodule is checked against
:class:`datamodules.contract.LossbenchData` once; after that its members are used directly:

- data → loss: the training split's ``class_pixel_counts()`` go to a loss that needs them
  (``class_weights: auto``) and into the record;
- data → model: ``num_classes`` / ``in_channels`` left null in the datamodule config are filled from
  the datamodule, so the model config's ``${datamodule.…}`` interpolations see real values; the
  datamodule's ``eval_window`` becomes the model's inferer (:class:`models.inferer.WindowInferer`, 2-D and 3-D);
- data → detector: ``anchor_sizes: auto`` is fitted to the training boxes and ``trainer.min_steps``
  raises ``max_epochs`` for small data sets (:mod:`runtime.detection_wiring`).

``model.compile=true`` compiles the network and ``model.channels_last=true`` stores its 2-D convolutions
NHWC (:mod:`runtime.compile`); the :class:`History` callback
collects the per-epoch curves of the record's budget fields.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

import hydra
import pytorch_lightning as pl
import torch
from omegaconf import DictConfig, OmegaConf, open_dict
from pytorch_lightning import Callback
from pytorch_lightning.callbacks import LearningRateMonitor
from pytorch_lightning.loggers import Logger

from datamodules.contract import LossbenchData, SplitSource, missing_members
from losses import available, loss_task
from models.inferer import WindowInferer
from runtime.compile import maybe_compile, use_channels_last
from runtime.detection_wiring import wire_detection
from runtime.history import History
from runtime.run_record import RunRecord

log = logging.getLogger(__name__)


@runtime_checkable
class ClassCountsLoss(Protocol):
    """A loss whose class weights come from the data (``class_weights: auto``): it needs the training
    split's pixel counts before its first forward call."""

    requires_class_counts: bool

    def set_class_counts(self, counts: torch.Tensor) -> None: ...


@runtime_checkable
class WeightedLoss(Protocol):
    """A loss with per-class weights (given, or derived from the counts): they go into the record."""

    class_weights: torch.Tensor | None


@dataclass
class Run:
    """The parts :func:`build_run` wires together."""

    datamodule: LossbenchData
    model: pl.LightningModule
    trainer: pl.Trainer
    history: History


def build_run(cfg: DictConfig, record: RunRecord) -> Run:
    """Every part of the run described by ``cfg``; records the class counts and weights in ``record``."""
    pl.seed_everything(cfg.seed, workers=True)
    check_loss_fits_task(record["loss"], cfg.task)
    datamodule = build_datamodule(cfg)
    if isinstance(datamodule, SplitSource) and (split := datamodule.split_record()) is not None:
        record["split"] = split  # compare.py pools only runs made on the same split
    record.update(wire_detection(cfg, datamodule))  # anchors fitted to the data, step budget
    loss = build_loss(cfg, datamodule, record)
    model = build_model(cfg, datamodule, loss)
    loggers = instantiate_loggers(cfg.get("logger"))
    callbacks = instantiate_callbacks(cfg.get("callbacks"), has_logger=bool(loggers))
    history = History()
    trainer: pl.Trainer = hydra.utils.instantiate(cfg.trainer, callbacks=[*callbacks, history], logger=loggers or False)
    for logger in loggers:
        logger.log_hyperparams(OmegaConf.to_container(cfg, resolve=True))
    return Run(datamodule, model, trainer, history)


def build_datamodule(cfg: DictConfig) -> LossbenchData:
    """The datamodule of ``cfg.datamodule``, checked against the contract; ``in_channels: null`` and
    ``num_classes: null`` in its config are replaced by what the datamodule found in the data."""
    datamodule = hydra.utils.instantiate(cfg.datamodule, _convert_="all")
    if not isinstance(datamodule, LossbenchData):
        raise TypeError(f"datamodule {type(datamodule).__name__} lacks {missing_members(datamodule)} of "
                        "datamodules.contract.LossbenchData (docs/architecture.md: how to add a datamodule)")
    with open_dict(cfg):
        for key, value in (("in_channels", datamodule.in_channels), ("num_classes", datamodule.num_classes)):
            if key in cfg.datamodule and cfg.datamodule[key] is None and value is not None:
                cfg.datamodule[key] = value
    return datamodule


def build_loss(cfg: DictConfig, datamodule: LossbenchData, record: RunRecord) -> torch.nn.Module:
    """The loss of ``cfg.loss``, given the training split's class pixel counts when it needs them."""
    loss = hydra.utils.instantiate(cfg.loss, _convert_="all")
    counts = datamodule.class_pixel_counts()
    if counts is not None:
        record["class_pixel_counts"] = [float(c) for c in counts]  # lets compare.py name the rare classes
    if isinstance(loss, ClassCountsLoss) and loss.requires_class_counts:
        loss.set_class_counts(counts)
    if isinstance(loss, WeightedLoss) and loss.class_weights is not None:
        record["class_weights"] = [float(w) for w in loss.class_weights]
    return loss


SPEED_SWITCHES = ("compile", "channels_last")  # model-config keys of runtime.compile


def build_model(cfg: DictConfig, datamodule: LossbenchData, loss: torch.nn.Module) -> pl.LightningModule:
    """The LightningModule of ``cfg.model`` with ``loss``; a model config with an ``inferer: null`` key
    gets the inferer the datamodule's ``eval_window`` asks for."""
    extra: dict[str, Any] = {"loss": loss}
    inferer = build_eval_inferer(datamodule)
    if inferer is not None and "inferer" in cfg.model and cfg.model.inferer is None:
        extra["inferer"] = inferer
    return instantiate_model(cfg, **extra)


def instantiate_model(cfg: DictConfig, speed_switches: bool = True, **extra: Any) -> pl.LightningModule:
    """``cfg.model`` instantiated with the module arguments ``extra``.

    ``compile`` and ``channels_last`` in the model config are speed switches of
    :mod:`runtime.compile`, not module arguments: they are left out of the instantiation (and
    stay in ``cfg``, which records them) and, with ``speed_switches``, applied to the module's
    ``net`` (a benchmark comparing the switches itself passes False).
    """
    switches = {key: cfg.model[key] for key in SPEED_SWITCHES if key in cfg.model}
    with open_dict(cfg.model):
        for key in switches:
            cfg.model.pop(key)
        try:
            # Plain containers (_convert_="all"): checkpoints then hold no omegaconf objects, which
            # torch.load(weights_only=True) would refuse.
            model = hydra.utils.instantiate(cfg.model, _convert_="all", **extra)
        finally:
            cfg.model.update(switches)
    use_channels_last(model.net, speed_switches and bool(switches.get("channels_last", False)))
    maybe_compile(model.net, speed_switches and bool(switches.get("compile", False)))
    return model


def build_eval_inferer(datamodule: LossbenchData) -> WindowInferer | None:
    """The evaluation inferer the datamodule's ``eval_window`` asks for (whole-input pass or sliding
    window, 2-D or 3-D by the length of ``patch_size``); None when the datamodule evaluates whole
    inputs in one forward pass."""
    window = datamodule.eval_window
    return None if window is None else WindowInferer(**window)


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
