"""runtime.compile: compiling in place keeps the state_dict keys and the outputs; channels_last only for 2-D convs."""
from __future__ import annotations

import torch
from torch import nn

from runtime.compile import maybe_compile, use_channels_last


def test_maybe_compile_is_in_place_and_keeps_checkpoint_keys():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(4, 3), nn.ReLU(), nn.Linear(3, 2))
    keys, x = list(net.state_dict()), torch.randn(5, 4)
    expected = net(x)
    assert maybe_compile(net, enabled=False) is net and net._compiled_call_impl is None
    compiled = maybe_compile(net, enabled=True)
    assert compiled is net and net._compiled_call_impl is not None
    assert list(compiled.state_dict()) == keys  # no "_orig_mod." prefix: checkpoints load either way
    assert torch.allclose(compiled(x), expected, atol=1e-6)


def test_channels_last_only_for_2d_convolutions():
    conv = use_channels_last(nn.Sequential(nn.Conv2d(3, 4, 3)), enabled=True)
    assert conv[0].weight.is_contiguous(memory_format=torch.channels_last)
    assert not use_channels_last(nn.Sequential(nn.Conv2d(3, 4, 3)), enabled=False)[0].weight.is_contiguous(
        memory_format=torch.channels_last)
    conv3d = use_channels_last(nn.Sequential(nn.Conv3d(2, 4, 3)), enabled=True)
    assert conv3d[0].weight.is_contiguous()  # volumes untouched
