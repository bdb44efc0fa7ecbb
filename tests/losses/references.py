"""Small independent reference implementations for the loss tests: dense one-hot tensors, no code shared
with ``losses/``, written from the papers' formulas."""
from __future__ import annotations

import torch
import torch.nn.functional as F

from tests.losses.loss_inputs import IGNORE


def dense(logits: torch.Tensor, target: torch.Tensor, mode: str, from_logits: bool = True
          ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(p, t, valid)`` as float64 ``(N, C, P)`` tensors; ignored positions have ``valid = 0``."""
    n = logits.shape[0]
    x = logits.double().reshape(n, logits.shape[1] if logits.dim() > 2 else 1, -1)
    if mode == "multiclass":
        p = x.softmax(1) if from_logits else x
        flat = target.reshape(n, -1)
        valid = (flat != IGNORE).unsqueeze(1).double().expand_as(p)
        t = F.one_hot(flat.masked_fill(flat == IGNORE, 0), p.shape[1]).movedim(-1, 1).double()
    else:
        p = x.sigmoid() if from_logits else x
        flat = target.reshape(n, p.shape[1], -1).double()
        valid = (flat != IGNORE).double()
        t = flat.masked_fill(flat == IGNORE, 0.0)
    return torch.where(valid > 0, p, 0.0), t * valid, valid


def tversky(p: torch.Tensor, t: torch.Tensor, valid: torch.Tensor, alpha: float, beta: float,
            smooth: float = 1e-5, squared: bool = False, batch: bool = False) -> torch.Tensor:
    """Per-sample (or pooled), per-class ``1 - TI`` (Salehi et al. 2017); squared: FP and FN are the
    squared over- and under-predictions ``relu(p - t)^2``, ``relu(t - p)^2``."""
    if squared:
        tp = (p * t * valid).sum(-1)
        fp = (torch.clamp(p - t, min=0) ** 2 * valid).sum(-1)
        fn = (torch.clamp(t - p, min=0) ** 2 * valid).sum(-1)
    else:
        tp = (p * t * valid).sum(-1)
        fp = (p * (1 - t) * valid).sum(-1)
        fn = ((1 - p) * t * valid).sum(-1)
    if batch:
        tp, fp, fn = tp.sum(0), fp.sum(0), fn.sum(0)
    return 1 - (tp + smooth) / (tp + alpha * fp + beta * fn + smooth)


def mcc(p: torch.Tensor, t: torch.Tensor, valid: torch.Tensor, batch: bool = True) -> torch.Tensor:
    """``1 - MCC`` per class from the soft confusion matrix; only for defined cases."""
    tp = (p * t * valid).sum(-1)
    fp = (p * (1 - t) * valid).sum(-1)
    fn = ((1 - p) * t * valid).sum(-1)
    tn = ((1 - p) * (1 - t) * valid).sum(-1)
    if batch:
        tp, fp, fn, tn = tp.sum(0), fp.sum(0), fn.sum(0), tn.sum(0)
    return 1 - (tp * tn - fp * fn) / torch.sqrt((tp + fp) * (tp + fn) * (tn + fp) * (tn + fn))
