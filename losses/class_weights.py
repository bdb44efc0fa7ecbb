"""Per-class loss weights derived from the training split's class pixel counts (``class_weights: auto``).

With ``n_c`` the pixel count of class ``c`` and ``f_c = n_c / sum_k n_k`` its frequency:

- ``inverse``: ``w_c ∝ 1 / n_c``
- ``inverse_sqrt``: ``w_c ∝ 1 / sqrt(n_c)``
- ``median_frequency`` (Eigen & Fergus, ICCV 2015): ``w_c = median_k(f_k) / f_c``; the paper's
  ``f_c`` counts only images where ``c`` occurs — we use the split-wide frequency, which needs only
  the cached per-class counts.
- ``effective_number`` (Cui et al., CVPR 2019): ``w_c ∝ (1 - beta) / (1 - beta**n_c)``.

Weights are normalised to mean 1 over the classes, so ``reduction="sum"`` keeps its scale.
A class with zero pixels gets the largest weight of the present classes (as MONAI's generalized
Dice does for infinite weights): predicting a class never seen in training stays penalised.
"""
from __future__ import annotations

import torch
from torch import Tensor

SCHEMES = ("inverse", "inverse_sqrt", "median_frequency", "effective_number")


def weights_from_counts(counts: Tensor, scheme: str = "inverse", class_weight_beta: float = 0.9999) -> Tensor:
    """Float32 ``(C,)`` class weights from float ``(C,)`` pixel ``counts`` (see module doc)."""
    if scheme not in SCHEMES:
        raise ValueError(f"weight_scheme must be one of {SCHEMES}, got {scheme!r}")
    if not 0.0 < class_weight_beta < 1.0:
        raise ValueError(f"class_weight_beta must lie in (0, 1), got {class_weight_beta!r}")
    counts = torch.as_tensor(counts, dtype=torch.float64).flatten()
    if counts.numel() == 0 or not bool(torch.isfinite(counts).all()) or bool((counts < 0).any()):
        raise ValueError(f"counts must be a non-empty 1-D tensor of finite, non-negative pixel "
                         f"counts, got {counts.tolist()}")
    present = counts > 0
    if not bool(present.any()):
        raise ValueError(f"counts: every class has zero pixels ({counts.tolist()}); cannot derive weights")
    n = counts[present]
    if scheme == "inverse":
        w = 1.0 / n
    elif scheme == "inverse_sqrt":
        w = n.rsqrt()
    elif scheme == "median_frequency":
        freq = n / counts.sum()
        w = freq.median() / freq
    else:
        # 1 - beta**n computed as -expm1(n log beta): exact for the large counts of segmentation
        w = (1.0 - class_weight_beta) / -torch.expm1(n * torch.log(torch.tensor(class_weight_beta, dtype=torch.float64)))
    weights = torch.full_like(counts, float(w.max()))
    weights[present] = w
    return (weights / weights.mean()).float()
