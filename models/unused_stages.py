"""Drop the parts of a network its forward pass never uses.

smp builds an encoder's full backbone and then reads only ``encoder_depth`` of its stages: the default
U-Net (resnet18, depth 4) carries resnet18's ``layer4`` — 8.4 M of its 12.0 M parameters — that no
forward pass touches. Such parameters never get a gradient, which DDP refuses ("Expected to have finished
reduction in the prior iteration…") unless every run pays for ``find_unused_parameters``; they also fill
checkpoints and the optimiser's bookkeeping. :func:`drop_unused_modules` replaces each such module with
``nn.Identity`` after the network is built: the other weights keep the values (and the random draws) they
had, so a run's numbers do not change.
"""
from __future__ import annotations

import torch
from torch import nn


def drop_unused_modules(net: nn.Module, probe: torch.Tensor) -> list[str]:
    """Replace every module that a forward/backward pass of ``probe`` neither calls nor differentiates
    (no parameter gets a gradient) with ``nn.Identity``; returns the replaced modules' names. The probe
    runs in eval mode (BatchNorm statistics stay as they are, dropout draws nothing) and leaves no
    gradients behind."""
    called: set[int] = set()
    hooks = [module.register_forward_pre_hook(lambda m, _args: called.add(id(m))) for module in net.modules()]
    was_training = net.training
    try:
        net.eval()
        with torch.enable_grad():
            output = net(probe)
            outputs = output if isinstance(output, (tuple, list)) else [output]
            sum(o.float().sum() for o in outputs).backward()
    finally:
        for hook in hooks:
            hook.remove()
        net.train(was_training)
    unused_parameters = {id(p) for p in net.parameters() if p.grad is None}
    for p in net.parameters():
        p.grad = None
    dropped: list[str] = []
    for name, module in list(net.named_modules()):
        parameters = list(module.parameters())
        if (not name or id(module) in called or not parameters
                or any(id(p) not in unused_parameters for p in parameters)
                or any(name.startswith(prefix + ".") for prefix in dropped)):
            continue
        parent_name, _, child = name.rpartition(".")
        setattr(net.get_submodule(parent_name) if parent_name else net, child, nn.Identity())
        dropped.append(name)
    return dropped
