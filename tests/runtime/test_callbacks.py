"""Example-prediction callbacks on a fake segmentation module: which images are kept, what is saved."""
from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
import torch

from runtime.callbacks import LogValPredictions, SaveTestPredictions, prediction_panels
from common.palette import CLASS_COLORS


class FakeModule:
    """Predicts ``(mask + 1) % 3``: predictions are checkable against the batch."""

    def predict_logits(self, images: torch.Tensor) -> torch.Tensor:
        return images

    def logits_to_labels(self, logits: torch.Tensor) -> torch.Tensor:
        return (logits[:, 0].long() + 1) % 3


def batch(start: int, size: int = 2) -> dict[str, torch.Tensor]:
    masks = torch.stack([torch.full((4, 5), (start + i) % 3, dtype=torch.long) for i in range(size)])
    return {"image": masks[:, None].float().repeat(1, 3, 1, 1), "mask": masks}


def test_saves_the_first_images_across_batches(tmp_path):
    trainer = SimpleNamespace(datamodule=SimpleNamespace(class_names=["bg", "a", "b"]))
    cb = SaveTestPredictions(dirpath=str(tmp_path), num_images=3)
    cb.on_test_epoch_start(trainer, FakeModule())
    for i in range(3):
        cb.on_test_batch_end(trainer, FakeModule(), None, batch(2 * i), i)
    cb.on_test_epoch_end(trainer, FakeModule())
    with np.load(tmp_path / "test_predictions.npz") as data:
        assert data["image"].shape == (3, 3, 4, 5) and data["image"].dtype == np.float32
        assert [int(m[0, 0]) for m in data["mask"]] == [0, 1, 2]
        assert [int(p[0, 0]) for p in data["prediction"]] == [1, 2, 0]
        assert list(data["class_names"]) == ["bg", "a", "b"]


def test_detection_batches_are_ignored(tmp_path):
    cb = SaveTestPredictions(dirpath=str(tmp_path))
    trainer = SimpleNamespace(datamodule=None)
    cb.on_test_epoch_start(trainer, FakeModule())
    cb.on_test_batch_end(trainer, FakeModule(), None, ([torch.zeros(3, 8, 8)], [{"boxes": torch.zeros(0, 4)}]), 0)
    cb.on_test_epoch_end(trainer, FakeModule())
    assert not (tmp_path / "test_predictions.npz").exists()


def test_val_predictions_do_nothing_without_a_wandb_logger():
    trainer = SimpleNamespace(loggers=[], sanity_checking=False, datamodule=None)
    cb = LogValPredictions(num_images=2)
    cb.on_validation_epoch_start(trainer, FakeModule())
    cb.on_validation_batch_end(trainer, FakeModule(), None, batch(0), 0)
    cb.on_validation_epoch_end(trainer, FakeModule())
    assert cb._first.count == 0


def test_prediction_panels_put_image_truth_and_prediction_side_by_side():
    mask = np.array([[[0, 1], [2, 7]]])  # 7: outside the 3 classes (ignore_index) → grey
    panels = prediction_panels(np.zeros((1, 3, 2, 2), np.float32), mask, mask, num_classes=3)
    assert panels.shape == (1, 2, 6, 3) and panels.dtype == np.uint8
    red = tuple(int(CLASS_COLORS[1][i:i + 2], 16) for i in (1, 3, 5))
    assert tuple(panels[0, 0, 3]) == red and tuple(panels[0, 1, 5]) == (128, 128, 128)
    assert panels[0, :, :2].max() == 0  # a constant image is shown black


def test_num_images_must_be_positive(tmp_path):
    with pytest.raises(ValueError, match="num_images must be >= 1, got 0"):
        SaveTestPredictions(dirpath=str(tmp_path), num_images=0)
