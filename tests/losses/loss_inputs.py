"""Input factories shared by the segmentation-loss tests (small tensors only: 2 shared CPU cores)."""
from __future__ import annotations

import torch

IGNORE = 255


def make_inputs(mode: str, n: int = 2, c: int = 3, spatial: tuple[int, ...] = (6, 5),
                ignore_frac: float = 0.0, seed: int = 0, dtype: torch.dtype = torch.float32,
                scale: float = 2.0) -> tuple[torch.Tensor, torch.Tensor]:
    """Random ``(logits, target)`` for ``mode``; a share ``ignore_frac`` of target positions is IGNORE.

    Binary: logits ``(N, 1, *S)`` and a long target ``(N, 1, *S)``; multiclass ``(N, C, *S)`` /
    ``(N, *S)``; multilabel ``(N, C, *S)`` / float ``(N, C, *S)``.
    """
    g = torch.Generator().manual_seed(seed)
    channels = 1 if mode == "binary" else c
    logits = (torch.randn(n, channels, *spatial, generator=g) * scale).to(dtype)
    if mode == "multiclass":
        target = torch.randint(0, c, (n, *spatial), generator=g)
    elif mode == "binary":
        target = torch.randint(0, 2, (n, 1, *spatial), generator=g)
    else:
        target = torch.randint(0, 2, (n, c, *spatial), generator=g).float()
    if ignore_frac:
        mask = torch.rand(target.shape, generator=g) < ignore_frac
        target = target.masked_fill(mask, IGNORE)
    return logits.requires_grad_(), target


def one_hot(target: torch.Tensor, c: int) -> torch.Tensor:
    """(N, *S) long -> (N, C, *S) float."""
    return torch.nn.functional.one_hot(target, c).movedim(-1, 1).float()


def grads(loss_fn, logits: torch.Tensor, target: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(value, d value / d logits) of ``loss_fn(logits, target)`` on a fresh leaf."""
    x = logits.detach().clone().requires_grad_()
    value = loss_fn(x, target)
    (grad,) = torch.autograd.grad(value.sum(), x)
    return value.detach(), grad
