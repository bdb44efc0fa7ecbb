"""Detector side of issue 15: native-resolution transform, pretrained backbone weights (fake cache,
never a download), the scheduler following the run length, and the data → model wiring."""
from __future__ import annotations

import json
import urllib.error
from functools import partial
from pathlib import Path

import pytest
import torch
from omegaconf import OmegaConf
from torchvision.models import resnet18

from models.det_heads import (
    BackboneWeightsUnavailable, build_detector, normalisation, small_object_backbone, weights_cache_file,
)
from models.det_transform import NativeResolutionTransform
from models.detection import follow_run_length

SIZES = [[8.0], [16.0], [32.0], [64.0]]


def test_small_images_keep_native_size_large_ones_are_capped_and_mapped_back() -> None:
    transform = NativeResolutionTransform(128, (0.5,) * 3, (0.25,) * 3).eval()
    small, large = torch.rand(3, 50, 70), torch.rand(3, 256, 192)
    batch, _ = transform([small, large])
    assert batch.image_sizes == [(50, 70), (128, 96)]  # no upscaling; longer side capped at 128
    assert batch.tensors.shape[-2:] == (128, 96)  # padded to a multiple of 32
    detections = [{"boxes": torch.tensor([[10.0, 10.0, 20.0, 20.0]])} for _ in range(2)]
    back = transform.postprocess(detections, batch.image_sizes, [(50, 70), (256, 192)])
    torch.testing.assert_close(back[0]["boxes"], torch.tensor([[10.0, 10.0, 20.0, 20.0]]))
    torch.testing.assert_close(back[1]["boxes"], torch.tensor([[20.0, 20.0, 40.0, 40.0]]))  # original pixels


def test_build_detector_uses_the_native_transform() -> None:
    detector = build_detector("retinanet", 1, 96, [[8.0, 12.0], [16.0, 24.0], [32.0, 48.0], [64.0, 96.0]])
    assert isinstance(detector.transform, NativeResolutionTransform)
    assert detector.transform.image_mean == [0.5] * 3 and detector.transform.image_std == [0.25] * 3


def test_auto_anchor_sizes_must_be_resolved_before_building() -> None:
    with pytest.raises(ValueError, match="runtime/detection_wiring.py"):
        build_detector("retinanet", 1, 96, "auto")


def test_normalisation_follows_the_weights() -> None:
    assert normalisation("resnet18", None) == ((0.5,) * 3, (0.25,) * 3)
    mean, std = normalisation("resnet18", "IMAGENET1K_V1")
    assert mean == pytest.approx((0.485, 0.456, 0.406)) and std == pytest.approx((0.229, 0.224, 0.225))


def test_unknown_weights_name_lists_the_accepted_ones() -> None:
    with pytest.raises(ValueError, match="IMAGENET1K_V1"):
        small_object_backbone("resnet18", weights="IMAGENET_BEST")


@pytest.fixture
def no_network(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))

    def refuse(url: str, *args, **kwargs) -> None:
        raise urllib.error.URLError(f"no network in tests ({url})")

    monkeypatch.setattr(torch.hub, "download_url_to_file", refuse)
    return tmp_path / "torch"


def test_cached_weights_load_without_download(no_network: Path) -> None:
    cached = weights_cache_file("resnet18", "IMAGENET1K_V1")
    assert cached.parent == no_network / "hub" / "checkpoints"
    cached.parent.mkdir(parents=True)
    reference = resnet18(weights=None)
    torch.nn.init.constant_(reference.layer1[0].conv1.weight, 0.125)
    torch.save(reference.state_dict(), cached)
    detector = build_detector("fcos", 1, 96, SIZES, backbone_weights="IMAGENET1K_V1")
    loaded = detector.backbone.body.layer1[0].conv1.weight
    assert torch.equal(loaded, torch.full_like(loaded, 0.125))
    assert detector.transform.image_mean == pytest.approx([0.485, 0.456, 0.406])


def test_missing_weights_without_network_name_weights_and_cache(no_network: Path) -> None:
    with pytest.raises(BackboneWeightsUnavailable) as caught:
        build_detector("retinanet", 1, 96, SIZES, backbone_weights="IMAGENET1K_V1")
    message = str(caught.value)
    assert "IMAGENET1K_V1" in message and str(weights_cache_file("resnet18", "IMAGENET1K_V1")) in message
    assert "resnet18-" in message and "backbone_weights=null" in message


def test_null_scheduler_length_follows_the_run() -> None:
    factory = partial(torch.optim.lr_scheduler.CosineAnnealingLR, T_max=None)
    filled = follow_run_length(factory, 640)
    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    assert filled(optimizer=optimizer).T_max == 640
    fixed = partial(torch.optim.lr_scheduler.CosineAnnealingLR, T_max=7)
    assert follow_run_length(fixed, 640) is fixed
    with pytest.raises(ValueError, match="max_steps"):
        follow_run_length(factory, -1)
