"""What the run's builder needs from a datamodule: one typed ``Protocol`` (docs/contracts.md, "Datamodules").

:class:`LossbenchData` is structural: a datamodule conforms by having these members, whatever its
base class (``datamodules.base.BaseDataModule`` provides the defaults). ``runtime.builders`` checks
a constructed datamodule against it once and then uses the members directly — the wiring
data → loss (class pixel counts) and data → model (``num_classes``, ``in_channels``, the evaluation
window) goes through nothing else.
"""
from __future__ import annotations

from typing import Any, Iterator, Mapping, Protocol, runtime_checkable

import numpy as np
import torch


@runtime_checkable
class LossbenchData(Protocol):
    """The members every lossbench datamodule has.

    - ``num_classes``: segmentation: classes including background (binary: 2); detection: foreground
      classes (labels ``1..num_classes``).
    - ``class_names``: ``num_classes`` names, for reports.
    - ``in_channels``: image channels the model gets (1 or 3).
    - ``eval_window``: ``None`` (evaluate whole inputs in one forward pass) or the sliding-window
      settings the model should evaluate with: ``patch_size`` plus the options of
      :mod:`common.eval_window` (``overlap``, ``blend``, ``sigma_scale``, ``batch_size``,
      ``whole_input_max_pixels``, ``pad_multiple``; the same keys in 2-D and 3-D). The builder
      constructs the inferer (:class:`models.inferer.WindowInferer`); data never imports a model.
    - ``class_pixel_counts()``: float64 ``(num_classes,)`` pixels per class over the training split
      (ignored pixels excluded), or ``None`` where the task has no pixel classes (detection).
    """

    num_classes: int
    class_names: list[str]
    in_channels: int | None
    eval_window: Mapping[str, Any] | None

    def class_pixel_counts(self) -> torch.Tensor | None: ...


@runtime_checkable
class MaskSource(Protocol):
    """A segmentation datamodule that hands out its stored masks directly (whole images, no augmentation)."""

    def split_masks(self, split: str) -> Iterator[np.ndarray]: ...


@runtime_checkable
class SplitSource(Protocol):
    """A datamodule whose splits come from a committed split file (the public datasets): ``split_record()``
    is the ``split`` field of ``metrics.json`` (``{name, hash, counts, missing, unlisted}``), or ``None``."""

    def split_record(self) -> dict[str, Any] | None: ...


def missing_members(datamodule: object, protocol: type = LossbenchData) -> list[str]:
    """The members of ``protocol`` that ``datamodule`` lacks (for an error that names them)."""
    names = [*protocol.__annotations__, *(n for n in vars(protocol) if not n.startswith("_") and callable(vars(protocol)[n]))]
    return sorted({name for name in names if not hasattr(datamodule, name)})
