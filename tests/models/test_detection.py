"""DetectionModule and the box-loss heads: parity with torchvision's heads, every box loss in both
detectors, metrics keys, argument checks."""
from __future__ import annotations

import copy
import math
from functools import partial

import pytest
import torch
from torch import nn
from torchvision.models.detection.fcos import FCOSHead
from torchvision.models.detection.retinanet import RetinaNetHead

from losses import available, build_loss
from models.det_heads import build_detector, set_box_loss
from models.detection import DetectionModule

SIZE = 64
ANCHORS = {"retinanet": [[4, 6], [8, 12], [16, 24], [32, 48]], "fcos": [[4], [8], [16], [32]]}


def _detector(arch: str, **kwargs) -> nn.Module:
    torch.manual_seed(0)
    # ImageNet statistics, the builder's default before issue 15: with them the initial FCOS boxes
    # are close enough to the targets that nwd (1 - exp(-W2/C)) still has a gradient at step one.
    kwargs = {"image_mean": (0.485, 0.456, 0.406), "image_std": (0.229, 0.224, 0.225), **kwargs}
    return build_detector(arch, num_classes=3, image_size=SIZE, anchor_sizes=ANCHORS[arch], fpn_channels=32, **kwargs)


def _batch(n: int = 2) -> tuple[list[torch.Tensor], list[dict[str, torch.Tensor]]]:
    g = torch.Generator().manual_seed(1)
    images = [torch.rand(3, SIZE, SIZE, generator=g) for _ in range(n)]
    targets = [
        {"boxes": torch.tensor([[4.0, 6.0, 12.0, 13.0], [30.0, 20.0, 54.0, 50.0]]), "labels": torch.tensor([1, 3])},
        {"boxes": torch.tensor([[10.0, 40.0, 16.0, 44.0]]), "labels": torch.tensor([2])},
    ]
    return images, targets[:n]


@pytest.fixture(scope="module", params=["retinanet", "fcos"])
def detector(request) -> nn.Module:
    return _detector(request.param)


def _torchvision_twin(detector: nn.Module, loss_type: str | None) -> nn.Module:
    """The same detector with torchvision's own head (same weights)."""
    ours = detector.head
    if isinstance(ours, RetinaNetHead):
        head = RetinaNetHead(32, ours.classification_head.num_anchors, ours.classification_head.num_classes,
                             norm_layer=partial(nn.GroupNorm, 32))
        head.regression_head._loss_type = loss_type
    else:
        head = FCOSHead(32, 1, ours.classification_head.num_classes)
    state = {k: v for k, v in ours.state_dict().items() if not k.startswith("box_loss.")}
    head.load_state_dict(state)
    twin = copy.deepcopy(detector)
    twin.head = head
    return twin


@pytest.mark.parametrize(
    ("arch", "ours", "theirs"),
    [
        ("retinanet", "giou", "giou"),   # decoded boxes
        ("retinanet", "ciou", "ciou"),
        ("retinanet", "l1", "l1"),       # encoded deltas
        ("fcos", "giou", None),          # FCOS's built-in regression loss is GIoU
    ],
)
def test_loss_terms_equal_torchvision_heads(arch: str, ours: str, theirs: str | None) -> None:
    """Same weights, same batch: our heads with the loss torchvision hard-codes give its numbers.

    One image for RetinaNet, whose torchvision head normalises per image (ours: per batch)."""
    detector = _detector(arch)
    loss = build_loss(ours) if ours != "smooth_l1" else build_loss(ours, beta=1.0)
    set_box_loss(detector, loss)
    twin = _torchvision_twin(detector, theirs)
    images, targets = _batch(1 if arch == "retinanet" else 2)
    detector.train()
    twin.train()
    got, expected = detector(images, targets), twin(images, targets)
    assert set(got) == set(expected)
    for name in expected:
        torch.testing.assert_close(got[name], expected[name], rtol=1e-5, atol=1e-6, msg=name)


def test_configured_loss_receives_boxes_or_deltas() -> None:
    seen: dict[str, torch.Tensor] = {}

    class Spy(nn.Module):
        def __init__(self, space: str) -> None:
            super().__init__()
            self.box_space = space

        def forward(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
            seen[self.box_space] = target.detach()
            return (pred - target).abs().sum(dim=1).mean()

    images, targets = _batch()
    for arch in ("retinanet", "fcos"):
        seen.clear()
        detector = _detector(arch)
        detector.train()
        for space in ("boxes", "deltas"):
            set_box_loss(detector, Spy(space))
            detector(images, targets)
        gt = torch.cat([t["boxes"] for t in targets])
        # boxes: every foreground target row is one of the ground-truth boxes
        assert all(any(torch.equal(row, g) for g in gt) for row in seen["boxes"])
        # deltas: encoded targets are small numbers, not pixel coordinates
        assert seen["deltas"].shape == seen["boxes"].shape
        assert seen["deltas"].abs().max() < 10 and not torch.equal(seen["deltas"], seen["boxes"])


@pytest.mark.parametrize("name", ["ciou", "diou", "eiou", "giou", "iou", "l1", "l2", "nwd", "siou", "smooth_l1"])
def test_every_box_loss_trains_both_detectors(detector: nn.Module, name: str) -> None:
    """One optimiser step per (detector, loss): finite terms, finite gradients, weights move."""
    assert name in available("detection")
    module = DetectionModule(detector, build_loss(name), partial(torch.optim.SGD, lr=0.01), num_classes=3)
    module.train()
    optimizer = module.configure_optimizers()
    images, targets = _batch()
    before = module.detector.head.regression_head.bbox_reg.weight.detach().clone()
    terms = module.detector(images, targets)
    loss = sum(terms.values())
    assert torch.isfinite(loss) and terms["bbox_regression"] > 0
    optimizer.zero_grad()
    loss.backward()
    grads = [p.grad for p in module.parameters() if p.grad is not None]
    assert grads and all(torch.isfinite(g).all() for g in grads)
    optimizer.step()
    assert not torch.equal(before, module.detector.head.regression_head.bbox_reg.weight)


def test_images_without_objects_train_with_zero_box_loss(detector: nn.Module) -> None:
    detector.train()
    set_box_loss(detector, build_loss("ciou"))
    images = [torch.rand(3, SIZE, SIZE)]
    terms = detector(images, [{"boxes": torch.zeros(0, 4), "labels": torch.zeros(0, dtype=torch.int64)}])
    assert terms["bbox_regression"].item() == 0.0
    assert math.isfinite(terms["classification"].item()) and terms["classification"].item() > 0
    sum(terms.values()).backward()


def test_validation_logs_contract_keys() -> None:
    module = DetectionModule(_detector("fcos"), build_loss("giou"), partial(torch.optim.SGD, lr=0.01), num_classes=3)
    module.eval()
    images, targets = _batch()
    with torch.no_grad():
        detections = module(images)
    assert all((d["labels"] >= 1).all() and (d["labels"] <= 3).all() for d in detections)
    # the ground truth itself, with full confidence, scores AP 1 on every class present
    perfect = [{"boxes": t["boxes"], "labels": t["labels"], "scores": torch.ones(len(t["labels"]))} for t in targets]
    module.val_metrics.update(perfect, targets)
    values = module.val_metrics.compute()
    expected = {"map", "map_50", "map_75", "map_small", "map_medium", "map_large", "mar_100", "ap/0", "ap/1", "ap/2",
                "ap50/0", "ap50/1", "ap50/2"}
    assert set(values) == expected
    assert values["map"].item() == pytest.approx(1.0) and values["ap/2"].item() == pytest.approx(1.0)
    assert values["ap50/2"].item() == pytest.approx(1.0)
    assert math.isnan(values["map_large"].item())  # no object above 96² px²: NaN, not COCO's -1


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"arch": "yolo"}, "arch must be one of"),
        ({"backbone": "vgg"}, "backbone must be one of"),
        ({"returned_layers": [0, 5]}, "returned_layers must be"),
        ({"fpn_channels": 48}, "multiple of 32"),
        ({"anchor_sizes": [[4], [8]]}, "one entry per pyramid level"),
        ({"focal_gamma": -1.0}, "focal_gamma must be >= 0"),
    ],
)
def test_bad_detector_arguments(kwargs: dict, match: str) -> None:
    arch = kwargs.pop("arch", "retinanet")
    args = {"num_classes": 3, "image_size": SIZE, "anchor_sizes": ANCHORS.get(arch, ANCHORS["retinanet"])}
    args.update(kwargs)
    with pytest.raises(ValueError, match=match):
        build_detector(arch, **args)


def test_segmentation_loss_is_refused_as_box_loss() -> None:
    with pytest.raises(ValueError, match="box_space=None"):
        DetectionModule(_detector("fcos"), nn.CrossEntropyLoss(), partial(torch.optim.SGD, lr=0.01), num_classes=3)
