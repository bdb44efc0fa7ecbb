"""Opt-in speed switches for a model's network: ``model.compile`` (torch.compile) and channels_last.

Both act on the module's ``net`` (the LightningModule's loss, metrics and logging stay eager), and both
leave the parameters and the state_dict keys unchanged, so checkpoints load either way.

- ``torch.compile`` traces the net once per new input shape and fuses its kernels. It pays off on
  GPUs with many steps of one patch size; whole-image evaluation of differing sizes recompiles per
  size (``dynamic=None`` lets torch mark sizes dynamic after the first recompile). On CPU it is
  usually a net loss for short runs: benchmarks/results/compile_cpu.txt.
- ``channels_last`` stores 4-D conv weights NHWC, which Tensor Cores (bf16/fp16) prefer; it is a
  no-op for 3-D (volumetric) nets and for nets without convolutions.
"""
from __future__ import annotations

import torch
from torch import nn


def maybe_compile(net: nn.Module, enabled: bool, mode: str | None = None) -> nn.Module:
    """``torch.compile(net)`` when ``enabled``, else ``net`` unchanged.

    Args:
        net: the network to compile (its parameters are shared with the returned module).
        enabled: the config switch ``model.compile``.
        mode: ``torch.compile`` mode (None: default; ``"max-autotune"`` tunes kernels for long GPU runs).
    Returns:
        ``net`` itself, compiled in place (``nn.Module.compile``) when ``enabled``: unlike
        ``torch.compile(net)``, which wraps it, the state_dict keys stay the same (no ``_orig_mod.``
        prefix), so checkpoints of compiled and eager runs are interchangeable.
    """
    if enabled:
        net.compile(mode=mode)
    return net


def use_channels_last(net: nn.Module, enabled: bool) -> nn.Module:
    """Convert ``net`` to channels_last memory format in place when ``enabled`` and it has 2-D convolutions."""
    if enabled and any(isinstance(m, nn.Conv2d) for m in net.modules()):
        net.to(memory_format=torch.channels_last)
    return net
