"""Batching for detection: images and targets stay lists (each image has its own box count)."""
from __future__ import annotations

from typing import Sequence

from torch import Tensor


def collate_detection(
    samples: Sequence[tuple[Tensor, dict[str, Tensor]]],
) -> tuple[list[Tensor], list[dict[str, Tensor]]]:
    """``[(image, target), ...]`` → ``([image, ...], [target, ...])`` (docs/architecture.md)."""
    return [image for image, _ in samples], [target for _, target in samples]
