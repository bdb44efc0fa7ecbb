"""Lightning callbacks for the comparison report and W&B: example predictions on fixed images.

Both act on segmentation batches only (dicts with ``image`` and ``mask``, a module with
``predict_logits`` and ``logits_to_labels``); on anything else they do nothing, so the same
callback list serves every task.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytorch_lightning as pl
import torch
from pytorch_lightning.utilities import rank_zero_only

from common.palette import colorize, to_display

PREDICTIONS_FILE = "test_predictions.npz"


def _is_segmentation(pl_module: pl.LightningModule, batch: Any) -> bool:
    return (isinstance(batch, dict) and "image" in batch and "mask" in batch
            and hasattr(pl_module, "predict_logits") and hasattr(pl_module, "logits_to_labels"))


class _FirstImages:
    """Collects image, mask and predicted labels of the first ``num_images`` images of an epoch."""

    def __init__(self, num_images: int):
        if num_images < 1:
            raise ValueError(f"num_images must be >= 1, got {num_images!r}")
        self.num_images = num_images
        self.parts: dict[str, list[np.ndarray]] = {"image": [], "mask": [], "prediction": []}

    def reset(self) -> None:
        for values in self.parts.values():
            values.clear()

    @property
    def count(self) -> int:
        return sum(len(x) for x in self.parts["image"])

    def add(self, pl_module: pl.LightningModule, batch: dict[str, torch.Tensor]) -> None:
        take = self.num_images - self.count
        if take <= 0:
            return
        images = batch["image"][:take]
        # The eval step does not return its predictions; recomputing a few images is cheap.
        with torch.no_grad():
            labels = pl_module.logits_to_labels(pl_module.predict_logits(images))
        self.parts["image"].append(images.detach().float().cpu().numpy())
        self.parts["mask"].append(batch["mask"][:take].detach().cpu().numpy())
        self.parts["prediction"].append(labels.detach().cpu().numpy())

    def arrays(self) -> dict[str, np.ndarray]:
        return {k: np.concatenate(v) for k, v in self.parts.items()}


def _class_names(trainer: pl.Trainer) -> list[str]:
    names = getattr(trainer.datamodule, "class_names", None) if trainer.datamodule is not None else None
    return [str(n) for n in names] if names else []


class SaveTestPredictions(pl.Callback):
    """Saves the first ``num_images`` test images, masks and predictions to ``dirpath/test_predictions.npz``.

    Keys: ``image`` (N, C, H, W) float32 network input, ``mask`` (N, H, W) int, ``prediction``
    (N, H, W) int, ``class_names`` (K,) str. ``compare.py`` draws them as a grid per loss; the test
    split of the synthetic data is the same for every seed of a datamodule, so the images match.
    """

    def __init__(self, dirpath: str, num_images: int = 4) -> None:
        self.dirpath = Path(dirpath)
        self._first = _FirstImages(num_images)

    def on_test_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._first.reset()

    def on_test_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs: Any, batch: Any,
                          batch_idx: int, dataloader_idx: int = 0) -> None:
        if _is_segmentation(pl_module, batch):
            self._first.add(pl_module, batch)

    @rank_zero_only
    def on_test_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self._first.count == 0:
            return
        self.dirpath.mkdir(parents=True, exist_ok=True)
        np.savez_compressed(self.dirpath / PREDICTIONS_FILE, **self._first.arrays(),
                            class_names=np.array(_class_names(trainer), dtype=str))


class LogValPredictions(pl.Callback):
    """Logs image | ground truth | prediction panels of the first ``num_images`` validation images to
    every W&B logger of the trainer at the end of each validation epoch (key ``val/predictions``).
    Without a W&B logger it does nothing."""

    def __init__(self, num_images: int = 4) -> None:
        self._first = _FirstImages(num_images)

    @staticmethod
    def _wandb_loggers(trainer: pl.Trainer) -> list:
        from pytorch_lightning.loggers import WandbLogger

        return [lg for lg in trainer.loggers if isinstance(lg, WandbLogger)]

    def on_validation_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._first.reset()

    def on_validation_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs: Any, batch: Any,
                                batch_idx: int, dataloader_idx: int = 0) -> None:
        if not trainer.sanity_checking and _is_segmentation(pl_module, batch) and self._wandb_loggers(trainer):
            self._first.add(pl_module, batch)

    @rank_zero_only
    def on_validation_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        loggers = self._wandb_loggers(trainer)
        if not loggers or self._first.count == 0:
            return
        panels = prediction_panels(**self._first.arrays(), num_classes=_num_classes(trainer, pl_module))
        captions = [f"epoch {trainer.current_epoch}: image | ground truth | prediction"] * len(panels)
        for logger in loggers:
            logger.log_image("val/predictions", list(panels), step=trainer.global_step, caption=captions)


def prediction_panels(image: np.ndarray, mask: np.ndarray, prediction: np.ndarray, num_classes: int) -> np.ndarray:
    """(N, H, 3W, 3) uint8: each image (min-max scaled), its colourised mask and prediction side by side."""
    out = []
    for img, m, p in zip(image, mask, prediction):
        shown = to_display(img)
        rgb = np.repeat(shown[..., None], 3, axis=-1) if shown.ndim == 2 else shown
        out.append(np.concatenate([(rgb * 255).astype(np.uint8), colorize(m, num_classes), colorize(p, num_classes)],
                                  axis=1))
    return np.stack(out)


def _num_classes(trainer: pl.Trainer, pl_module: pl.LightningModule) -> int:
    names = _class_names(trainer)
    if names:
        return len(names)
    return int(getattr(pl_module.hparams, "num_classes", 2))
