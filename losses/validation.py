"""Shape and value checks of a segmentation loss's ``(prediction, target)`` pair.

:class:`~losses.inputs.SegInput` calls these before it computes anything: binary shapes brought to
``(N, 1, *S)``, multiclass class indices and sigmoid targets checked (one ``aminmax`` pass and one
host sync, which also proves that nothing is ignored when ``ignore_index`` lies outside the values
seen), ignored positions split off into a ``valid`` mask, and ``from_logits=False`` predictions
checked to hold probabilities. Every error names the argument, the value seen and what is accepted.
"""
from __future__ import annotations

import torch
from torch import Tensor


def binary_shapes(prediction: Tensor, target: Tensor) -> tuple[Tensor, Tensor]:
    """Bring binary inputs to ``(N, 1, *S)`` each.

    Accepted predictions: ``(N, 1, *S)`` with 1-3 spatial dims, or channel-free ``(N, L)`` and
    ``(N, H, W)``. A 4-D or 5-D prediction must have one channel: ``(N, C>1, H, W)`` is several
    channels, not a volume (a channel-free volume would be indistinguishable from it).
    """
    shape = tuple(prediction.shape)
    if prediction.dim() < 2:
        raise ValueError(f"prediction: binary mode expects (N, 1, *S) or (N, *S), got shape {shape}")
    if prediction.dim() >= 3 and shape[1] == 1:
        if target.shape == prediction.shape:
            return prediction, target
        if tuple(target.shape) == shape[:1] + shape[2:]:
            return prediction, target.unsqueeze(1)
    elif prediction.dim() > 3:
        raise ValueError(f"prediction: binary mode expects one channel, (N, 1, *S), got shape {shape} "
                         f"with {shape[1]} channels; use mode='multilabel' for several independent "
                         f"channels or mode='multiclass' for one class per position (a 3-D volume "
                         f"needs its channel dim: (N, 1, D, H, W))")
    elif target.shape == prediction.shape:
        return prediction.unsqueeze(1), target.unsqueeze(1)
    elif tuple(target.shape) == shape[:1] + (1,) + shape[1:]:
        return prediction.unsqueeze(1), target
    raise ValueError(f"target: binary mode expects the spatial shape of prediction {shape} (with or "
                     f"without the channel dim), got {tuple(target.shape)}")


def check_probabilities(scores: Tensor, masked: bool) -> None:
    """``from_logits=False``: the prediction must hold probabilities (one host sync)."""
    if not scores.numel():
        return
    low, high = (float(v) for v in torch.aminmax(scores.detach()))
    if not (0.0 <= low and high <= 1.0):
        where = " at non-ignored positions" if masked else ""
        raise ValueError(f"prediction: from_logits=False expects probabilities in [0, 1], got values "
                         f"in [{low}, {high}]{where}; pass logits with from_logits=True")


def multiclass_target(target: Tensor, shape: torch.Size, ignore_index: int | None, check: bool
                      ) -> tuple[Tensor, Tensor | None]:
    """``(N, P)`` int64 class indices (ignored positions at 0) and the valid mask (``None``: all
    valid) for a prediction of ``shape`` ``(N, C, *S)``; ``check``: check the value range."""
    n, c = shape[:2]
    expected = (n, *shape[2:])
    if tuple(target.shape) != expected:
        hint = " (multilabel targets have a channel dim; use mode='multilabel')" \
            if tuple(target.shape) == tuple(shape) else ""
        raise ValueError(f"target: multiclass mode expects shape {expected} for prediction "
                         f"{tuple(shape)}, got {tuple(target.shape)}{hint}")
    if target.is_floating_point() or target.dtype == torch.bool:
        raise ValueError(f"target: multiclass mode expects integer class indices, got {target.dtype}")
    target = target.reshape(n, -1).long()
    target, valid, checked = _split_ignored(target, ignore_index, check, 0, c - 1)
    if check and not checked:
        _check_range_of(target, 0, c - 1, ignore_index)
    return target, valid


def sigmoid_target(target: Tensor, shape: torch.Size, ignore_index: int | None, mode: str, check: bool
                   ) -> tuple[Tensor, Tensor | None]:
    """Binary/multilabel: ``(N, C, P)`` float32 targets (ignored positions at 0) and the valid mask
    (``None``: all valid) for a prediction of ``shape``; ``check``: check the values lie in [0, 1]."""
    if tuple(target.shape) != tuple(shape):
        raise ValueError(f"target: {mode} mode expects the prediction's shape {tuple(shape)}, "
                         f"got {tuple(target.shape)}")
    target = target.reshape(shape[0], shape[1], -1).float()
    target, valid, checked = _split_ignored(target, ignore_index, check, 0.0, 1.0, mode)
    if check and not checked:
        _check_range_of(target, 0.0, 1.0, ignore_index, mode)
    return target, valid


def _split_ignored(target: Tensor, ignore_index: int | None, check: bool, low_ok: float, high_ok: float,
                   mode: str = "multiclass") -> tuple[Tensor, Tensor | None, bool]:
    """``(target with ignored positions at 0, valid mask or None, whether the range was checked)``.

    With ``check``, one ``aminmax`` pass both checks the value range and, when ``ignore_index``
    lies outside the values seen, proves that nothing is ignored: no ``== ignore_index`` pass and
    one host sync instead of two.
    """
    if check and not target.numel():
        return target, None, True
    if check:
        low, high = (v.item() for v in torch.aminmax(target))
        if ignore_index is None or not low <= ignore_index <= high:
            _raise_out_of_range(low, high, low_ok, high_ok, ignore_index, mode)
            return target, None, True
    if ignore_index is None:
        return target, None, False
    ignored = target == ignore_index
    if not bool(ignored.any()):
        return target, None, False
    return target.masked_fill(ignored, 0), ~ignored, False


def _check_range_of(target: Tensor, low_ok: float, high_ok: float, ignore_index: int | None,
                    mode: str = "multiclass") -> None:
    low, high = (v.item() for v in torch.aminmax(target))
    _raise_out_of_range(low, high, low_ok, high_ok, ignore_index, mode)


def _raise_out_of_range(low: float, high: float, low_ok: float, high_ok: float, ignore_index: int | None,
                        mode: str) -> None:
    if low_ok <= low and high <= high_ok:  # NaN fails too
        return
    if mode == "multiclass":
        raise ValueError(f"target: class indices must lie in [0, {int(high_ok) + 1}) or equal ignore_index="
                         f"{ignore_index}, got values in [{int(low)}, {int(high)}]")
    raise ValueError(f"target: {mode} mode expects values in [0, 1] (or ignore_index="
                     f"{ignore_index}), got values in [{float(low)}, {float(high)}]")
