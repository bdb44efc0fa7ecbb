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
from torchvision.models import resnet18, resnet50

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


def test_per_image_norm_standardises_each_image_and_keeps_colour() -> None:
    transform = NativeResolutionTransform(128, (0.5,) * 3, (0.25,) * 3, image_norm="per_image").eval()
    dark = torch.rand(3, 40, 40) * 0.1  # a dim fluorescence-like image
    bright = 0.7 + torch.rand(3, 40, 40) * 0.2
    bright[0] += 0.05  # a colour cast that must survive
    batch, _ = transform([dark, bright])
    for i, image in enumerate((dark, bright)):
        out = batch.tensors[i][:, :40, :40]
        assert float(out.mean()) == pytest.approx(0.0, abs=1e-5) and float(out.std()) == pytest.approx(1.0, abs=1e-4)
        torch.testing.assert_close(out, (image - image.mean()) / image.std())
    assert float(batch.tensors[1][0, :40, :40].mean() - batch.tensors[1][1, :40, :40].mean()) > 0.1
    flat = transform([torch.full((3, 8, 8), 0.3)])[0].tensors
    assert torch.isfinite(flat).all() and float(flat.abs().max()) == 0.0
    with pytest.raises(ValueError, match="image_norm must be one of"):
        NativeResolutionTransform(128, (0.5,) * 3, (0.25,) * 3, image_norm="percentile")
    detector = build_detector("fcos", 1, 96, SIZES, image_norm="per_image")
    assert detector.transform.image_norm == "per_image"


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


def test_imagenet_alias_loads_the_default_weights_from_the_cache(no_network: Path) -> None:
    cached = weights_cache_file("resnet18", "imagenet")
    assert cached == weights_cache_file("resnet18", "IMAGENET1K_V1")  # resnet18's DEFAULT
    cached.parent.mkdir(parents=True)
    reference = resnet18(weights=None)
    torch.nn.init.constant_(reference.layer2[0].conv1.weight, -0.25)
    torch.save(reference.state_dict(), cached)
    detector = build_detector("retinanet", 1, 96, SIZES, backbone_weights="imagenet")
    loaded = detector.backbone.body.layer2[0].conv1.weight
    assert torch.equal(loaded, torch.full_like(loaded, -0.25))
    assert detector.transform.image_std == pytest.approx([0.229, 0.224, 0.225])


@pytest.mark.parametrize("wrapping", ["plain", "state_dict", "model_ddp"])
def test_a_local_weights_file_is_loaded_without_network(no_network: Path, tmp_path: Path, wrapping: str) -> None:
    reference = resnet18(weights=None)
    torch.nn.init.constant_(reference.layer3[1].conv2.weight, 0.5)
    state = reference.state_dict()
    payload = {"plain": state, "state_dict": {"state_dict": state, "epoch": 3},
               "model_ddp": {"model": {f"module.{k}": v for k, v in state.items()}}}[wrapping]
    file = tmp_path / "my_resnet18.pth"
    torch.save(payload, file)
    detector = build_detector("fcos", 1, 96, SIZES, backbone_weights=str(file))
    loaded = detector.backbone.body.layer3[1].conv2.weight
    assert torch.equal(loaded, torch.full_like(loaded, 0.5))
    assert detector.transform.image_mean == pytest.approx([0.485, 0.456, 0.406])  # ImageNet convention


def test_a_wrong_or_missing_local_file_is_a_clear_error(no_network: Path, tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="does not exist"):
        build_detector("fcos", 1, 96, SIZES, backbone_weights=str(tmp_path / "absent.pth"))
    wrong = tmp_path / "resnet50.pth"
    torch.save(resnet50(weights=None).state_dict(), wrong)
    with pytest.raises(ValueError, match=r"do not fit a resnet18: \d+ missing keys"):
        build_detector("fcos", 1, 96, SIZES, backbone_weights=str(wrong))
    junk = tmp_path / "junk.pt"
    torch.save([1, 2, 3], junk)
    with pytest.raises(ValueError, match="not a state_dict"):
        build_detector("fcos", 1, 96, SIZES, backbone_weights=str(junk))


def test_offline_error_says_how_to_pass_a_local_file(no_network: Path) -> None:
    with pytest.raises(BackboneWeightsUnavailable) as caught:
        build_detector("retinanet", 1, 96, SIZES, backbone_weights="imagenet")
    message = str(caught.value)
    assert "backbone_weights=/path/to/resnet18-" in message and "no network in tests" in message


def test_null_scheduler_length_follows_the_run() -> None:
    factory = partial(torch.optim.lr_scheduler.CosineAnnealingLR, T_max=None)
    filled = follow_run_length(factory, 640)
    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    assert filled(optimizer=optimizer).T_max == 640
    fixed = partial(torch.optim.lr_scheduler.CosineAnnealingLR, T_max=7)
    assert follow_run_length(fixed, 640) is fixed
    with pytest.raises(ValueError, match="max_steps"):
        follow_run_length(factory, -1)
