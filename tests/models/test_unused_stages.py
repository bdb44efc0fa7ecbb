"""models.unused_stages: the encoder stages smp builds but never runs are dropped, nothing else changes."""
from __future__ import annotations

import segmentation_models_pytorch as smp
import torch
from torch import nn

from models.segmentation import build_smp
from models.unused_stages import drop_unused_modules

DEFAULT_UNET = dict(arch="unet", encoder_name="resnet18", encoder_weights=None, in_channels=3, classes=2,
                    encoder_depth=4, decoder_channels=[128, 64, 32, 16])


def test_the_default_unet_loses_resnet18_layer4_and_keeps_its_outputs():
    torch.manual_seed(0)
    full = smp.create_model(**DEFAULT_UNET)
    pruned = smp.create_model(**DEFAULT_UNET)
    pruned.load_state_dict(full.state_dict())
    stats_before = {k: v.clone() for k, v in pruned.state_dict().items() if "running" in k}
    assert drop_unused_modules(pruned, torch.zeros(1, 3, 64, 64)) == ["encoder.layer4"]
    assert isinstance(pruned.encoder.layer4, nn.Identity)
    count = lambda net: sum(p.numel() for p in net.parameters())  # noqa: E731
    assert (count(full), count(pruned)) == (11_968_034, 3_574_306)  # 8.4 M parameters no forward pass used
    assert all(p.grad is None for p in pruned.parameters()) and pruned.training  # the probe left nothing behind
    kept = pruned.state_dict()
    assert all(torch.equal(kept[k], v) for k, v in stats_before.items() if k in kept)  # BN statistics untouched
    x = torch.randn(2, 3, 96, 64)
    for mode in ("train", "eval"):
        getattr(full, mode)(), getattr(pruned, mode)()
        assert torch.equal(full(x), pruned(x)), mode
    full.train(), pruned.train()
    full(x).square().mean().backward(), pruned(x).square().mean().backward()
    grads = dict(full.named_parameters())
    for name, p in pruned.named_parameters():
        assert p.grad is not None, name  # every parameter left is trained: DDP needs no find_unused_parameters
        assert torch.equal(p.grad, grads[name].grad), name


def test_seeded_builds_draw_the_same_weights_as_before_pruning():
    # Pruning happens after construction: a run's initial weights (and so its numbers) do not change.
    torch.manual_seed(3)
    reference = smp.create_model(**DEFAULT_UNET).state_dict()
    torch.manual_seed(3)
    net = build_smp("unet", "resnet18", 3, 2, "multiclass", encoder_depth=4, decoder_channels=[128, 64, 32, 16])
    state = net.state_dict()
    assert set(state) == {k for k in reference if not k.startswith("encoder.layer4.")}
    assert all(torch.equal(state[k], reference[k]) for k in state)


def test_modules_that_run_are_kept_even_when_their_output_is_not_used():
    class Net(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.used, self.ran, self.idle = nn.Linear(4, 4), nn.Linear(4, 4), nn.Sequential(nn.Linear(4, 4))

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            self.ran(x)  # called, output thrown away: replacing it could change shapes downstream
            return self.used(x)

    net = Net()
    assert drop_unused_modules(net, torch.zeros(1, 4)) == ["idle"]
    assert isinstance(net.ran, nn.Linear) and isinstance(net.idle, nn.Identity)
