"""torchvision RetinaNet and FCOS with a pluggable box-regression loss, sized for small objects.

Only the heads' ``compute_loss`` is replaced (subclasses of ``RetinaNetHead`` / ``FCOSHead``);
anchors, target matching (IoU matcher / FCOS centre sampling), box coding, inference and
post-processing stay torchvision's own code. The heads receive, per image, torchvision's
``matched_idxs`` (index of the matched ground truth per anchor, ``-1`` background, ``-2``
RetinaNet's ignored band) and build from it:

- classification: sigmoid focal loss (``focal_alpha``, ``focal_gamma``; ``focal_gamma=0`` and
  ``focal_alpha=-1`` is plain BCE), summed and divided by the number of foreground anchors — the
  torchvision default normalisation, per image for RetinaNet, per batch for FCOS;
- box regression: ``box_loss`` over the foreground anchors of the whole batch, fed according to
  ``box_loss.box_space``: ``"boxes"`` → the decoded predicted boxes and the matched ground-truth
  boxes (absolute xyxy); ``"deltas"`` → the raw regression output and the ground truth encoded by
  the detector's box coder (RetinaNet: ``(dx, dy, log dw, log dh)`` of ``BoxCoder``; FCOS: the
  left/top/right/bottom distances divided by the anchor size, ``BoxLinearCoder``). With the box
  losses' ``reduction="mean"`` that is the loss per foreground anchor; a batch without foreground
  gives 0 with a gradient;
- FCOS centre-ness: binary cross-entropy as in torchvision, per foreground anchor.

The backbone is a ResNet (random init by default: nothing is downloaded; ``backbone_weights`` names
torchvision ImageNet weights or a local file, see :func:`backbone_state_dict`) with trainable BatchNorm and an FPN on
``returned_layers`` (1 → stride 4, 2 → 8, 3 → 16, 4 → 32) plus one max-pooled level; with the
default ``(1, 2, 3)`` and anchors of 4–48 px the finest level sees 4-px objects. Images keep their
native resolution up to ``image_size`` (:mod:`models.det_transform`).
"""
from __future__ import annotations

from functools import partial
from pathlib import Path
from typing import Any, Callable, Sequence
from urllib.parse import urlparse

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torchvision.models import get_model_weights, resnet
from torchvision.models.detection import FCOS, RetinaNet
from torchvision.models.detection.anchor_utils import AnchorGenerator
from torchvision.models.detection.backbone_utils import BackboneWithFPN
from torchvision.models.detection.fcos import FCOSHead
from torchvision.models.detection.retinanet import RetinaNetHead
from torchvision.ops import sigmoid_focal_loss
from torchvision.ops.feature_pyramid_network import LastLevelMaxPool

from losses.box import BoxLoss, GIoULoss, L1BoxLoss
from models.det_transform import NativeResolutionTransform

ARCHS = ("retinanet", "fcos")
BACKBONES = ("resnet18", "resnet34", "resnet50")
BOX_SPACES = ("boxes", "deltas")
# (boxes or codes, anchors) -> codes or boxes: a box coder's encode / decode, anchors second.
Coder = Callable[[Tensor, Tensor], Tensor]


class _BoxLossMixin:
    """The configurable parts both heads share: the box loss and the focal-loss parameters."""

    box_loss: nn.Module
    focal_alpha: float
    focal_gamma: float

    def _setup_losses(self, box_loss: nn.Module, focal_alpha: float, focal_gamma: float) -> None:
        if not focal_gamma >= 0:
            raise ValueError(f"detection head: focal_gamma must be >= 0, got {focal_gamma!r}")
        if not (focal_alpha < 0 or 0 <= focal_alpha <= 1):
            raise ValueError(f"detection head: focal_alpha must be in [0, 1] or negative (off), got {focal_alpha!r}")
        self.set_box_loss(box_loss)
        self.focal_alpha, self.focal_gamma = float(focal_alpha), float(focal_gamma)

    def set_box_loss(self, box_loss: nn.Module) -> None:
        space = getattr(box_loss, "box_space", None)
        if space not in BOX_SPACES:
            raise ValueError(
                f"detection head: the box loss {type(box_loss).__name__} has box_space={space!r}; expected one of "
                f"{BOX_SPACES} (a box-regression loss from losses/box.py)"
            )
        self.box_loss = box_loss

    def _focal_sum(self, logits: Tensor, targets: Tensor) -> Tensor:
        return sigmoid_focal_loss(logits, targets, alpha=self.focal_alpha, gamma=self.focal_gamma, reduction="sum")

    def _regression(self, deltas: Tensor, anchors: Tensor, gt_boxes: Tensor, encode: Coder, decode: Coder) -> Tensor:
        """``box_loss`` on the foreground rows (``deltas``, ``anchors``, matched ``gt_boxes``)."""
        if self.box_loss.box_space == "boxes":
            return self.box_loss(decode(deltas, anchors), gt_boxes)
        return self.box_loss(deltas, encode(gt_boxes, anchors))


class BoxLossRetinaNetHead(_BoxLossMixin, RetinaNetHead):
    """RetinaNet's head (torchvision's layers) whose loss uses ``box_loss`` and focal parameters."""

    def __init__(
        self,
        in_channels: int,
        num_anchors: int,
        num_classes: int,
        box_loss: nn.Module | None = None,
        focal_alpha: float = 0.25,
        focal_gamma: float = 2.0,
        norm_layer: type[nn.Module] | None = None,
    ) -> None:
        super().__init__(in_channels, num_anchors, num_classes, norm_layer=norm_layer)
        self._setup_losses(box_loss if box_loss is not None else L1BoxLoss(), focal_alpha, focal_gamma)

    def compute_loss(
        self, targets: list[dict[str, Tensor]], head_outputs: dict[str, Tensor], anchors: list[Tensor],
        matched_idxs: list[Tensor],
    ) -> dict[str, Tensor]:
        cls_logits, regression = head_outputs["cls_logits"], head_outputs["bbox_regression"]
        coder = self.regression_head.box_coder
        classification = []
        deltas, fg_anchors, gt_boxes = [], [], []
        for i, (target, matched) in enumerate(zip(targets, matched_idxs)):
            foreground = torch.where(matched >= 0)[0]
            gt_index = matched[foreground]
            one_hot = torch.zeros_like(cls_logits[i])
            one_hot[foreground, target["labels"][gt_index]] = 1.0
            valid = matched != self.classification_head.BETWEEN_THRESHOLDS
            classification.append(self._focal_sum(cls_logits[i][valid], one_hot[valid]) / max(1, foreground.numel()))
            deltas.append(regression[i][foreground])
            fg_anchors.append(anchors[i][foreground])
            gt_boxes.append(target["boxes"][gt_index])
        box = self._regression(
            torch.cat(deltas), torch.cat(fg_anchors), torch.cat(gt_boxes),
            encode=coder.encode_single, decode=coder.decode_single,
        )
        return {"classification": torch.stack(classification).mean(), "bbox_regression": box}


class BoxLossFCOSHead(_BoxLossMixin, FCOSHead):
    """FCOS's head (torchvision's layers) whose loss uses ``box_loss`` and focal parameters."""

    def __init__(
        self,
        in_channels: int,
        num_anchors: int,
        num_classes: int,
        box_loss: nn.Module | None = None,
        focal_alpha: float = 0.25,
        focal_gamma: float = 2.0,
        num_convs: int = 4,
    ) -> None:
        super().__init__(in_channels, num_anchors, num_classes, num_convs=num_convs)
        self._setup_losses(box_loss if box_loss is not None else GIoULoss(), focal_alpha, focal_gamma)

    def compute_loss(
        self, targets: list[dict[str, Tensor]], head_outputs: dict[str, Tensor], anchors: list[Tensor],
        matched_idxs: list[Tensor],
    ) -> dict[str, Tensor]:
        cls_logits = head_outputs["cls_logits"]
        all_anchors = torch.stack(anchors)
        foreground = torch.stack(matched_idxs) >= 0  # (N, A)
        gt_boxes = torch.cat([t["boxes"][m[m >= 0]] for t, m in zip(targets, matched_idxs)])
        gt_labels = torch.cat([t["labels"][m[m >= 0]] for t, m in zip(targets, matched_idxs)])
        num_foreground = max(1, int(foreground.sum()))

        one_hot = torch.zeros_like(cls_logits)
        one_hot[foreground, gt_labels] = 1.0
        classification = self._focal_sum(cls_logits, one_hot) / num_foreground

        fg_anchors = all_anchors[foreground]
        box = self._regression(
            head_outputs["bbox_regression"][foreground], fg_anchors, gt_boxes,
            encode=lambda boxes, anchors: self.box_coder.encode(anchors, boxes), decode=self.box_coder.decode,
        )

        # Centre-ness target sqrt(min(l, r) / max(l, r) * min(t, b) / max(t, b)), FCOS eq. 3.
        ltrb = self.box_coder.encode(fg_anchors, gt_boxes)
        centerness = torch.sqrt(
            (ltrb[:, [0, 2]].min(dim=1).values / ltrb[:, [0, 2]].max(dim=1).values)
            * (ltrb[:, [1, 3]].min(dim=1).values / ltrb[:, [1, 3]].max(dim=1).values)
        )
        ctrness_logits = head_outputs["bbox_ctrness"].squeeze(dim=2)[foreground]
        ctrness = F.binary_cross_entropy_with_logits(ctrness_logits, centerness, reduction="sum") / num_foreground
        return {"classification": classification, "bbox_regression": box, "bbox_ctrness": ctrness}


RANDOM_INIT_MEAN, RANDOM_INIT_STD = (0.5, 0.5, 0.5), (0.25, 0.25, 0.25)


class BackboneWeightsUnavailable(RuntimeError):
    """Pretrained backbone weights are neither in torch's cache nor downloadable."""


IMAGENET = "imagenet"  # alias: the backbone's default ImageNet weights in torchvision (``DEFAULT``)
WEIGHT_FILE_SUFFIXES = (".pth", ".pt", ".bin", ".ckpt")


def is_weights_file(weights: str) -> bool:
    """A ``backbone_weights`` value naming a local file rather than torchvision weights."""
    return weights.lower().endswith(WEIGHT_FILE_SUFFIXES) or "/" in weights or "\\" in weights


def _weights_enum(backbone: str, weights: str) -> Any:
    options = get_model_weights(backbone)
    if weights == IMAGENET:
        return options.DEFAULT
    if weights not in options.__members__:
        raise ValueError(f"detector: backbone_weights={weights!r} is not a torchvision weight of {backbone}; "
                         f"accepted: {IMAGENET!r}, {list(options.__members__)}, a local file "
                         f"(*{', *'.join(WEIGHT_FILE_SUFFIXES)} or a path), or null (random init)")
    return options[weights]


def weights_cache_file(backbone: str, weights: str) -> Path:
    """Where torch caches ``weights`` of ``backbone``: ``$TORCH_HOME/hub/checkpoints/<file of the url>``."""
    return Path(torch.hub.get_dir()) / "checkpoints" / Path(urlparse(_weights_enum(backbone, weights).url).path).name


def backbone_state_dict(backbone: str, weights: str) -> dict[str, Tensor]:
    """The ResNet ``state_dict`` that ``weights`` names: ``imagenet`` (the backbone's default ImageNet
    weights) or a torchvision weight name (e.g. ``IMAGENET1K_V1``), from torch's cache or downloaded into
    it; or a local file (:func:`local_state_dict`). Without network and cache a
    :class:`BackboneWeightsUnavailable` names the weights, their url, the cache file to place and how to
    pass a local file instead."""
    if is_weights_file(weights):
        return local_state_dict(weights)
    enum, cached = _weights_enum(backbone, weights), weights_cache_file(backbone, weights)
    try:
        return enum.get_state_dict(progress=False)
    except OSError as error:  # URLError is an OSError: no network, no proxy, or no disk space
        raise BackboneWeightsUnavailable(
            f"detector: backbone_weights={weights!r} ({backbone}, {enum}) are not in torch's cache ({cached}) and "
            f"could not be downloaded from {enum.url} ({type(error).__name__}: {error}). Download that file on a "
            f"machine with network and either pass it directly (model.detector.backbone_weights=/path/to/"
            f"{cached.name}) or copy it to {cached} (the cache follows $TORCH_HOME); or set "
            f"model.detector.backbone_weights=null for random init."
        ) from error


def local_state_dict(path: str) -> dict[str, Tensor]:
    """A ResNet ``state_dict`` from a local file: a plain ``state_dict`` (torchvision's files), or one
    under a ``state_dict`` / ``model`` key (Lightning and many training scripts), ``module.`` prefixes of
    DataParallel/DDP removed. Read with ``weights_only=True`` (tensors only, no code runs)."""
    file = Path(path).expanduser()
    if not file.is_file():
        raise FileNotFoundError(f"detector: backbone_weights={path!r} looks like a file path, but {file} does not "
                                f"exist; give an existing weights file, a torchvision weight name or null")
    try:
        loaded = torch.load(file, map_location="cpu", weights_only=True)
    except Exception as error:
        raise ValueError(f"detector: backbone_weights file {file} could not be read as a torch state_dict "
                         f"({type(error).__name__}: {error})") from error
    for key in ("state_dict", "model"):
        if isinstance(loaded, dict) and isinstance(loaded.get(key), dict):
            loaded = loaded[key]
    if not isinstance(loaded, dict) or not all(isinstance(v, Tensor) for v in loaded.values()):
        raise ValueError(f"detector: backbone_weights file {file} holds a {type(loaded).__name__}, not a state_dict "
                         f"of tensors (a dict name -> tensor, optionally under 'state_dict' or 'model')")
    return {key.removeprefix("module."): value for key, value in loaded.items()}


def normalisation(backbone: str, weights: str | None) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """The input ``(mean, std)`` that goes with ``weights`` (their training statistics; for a local file
    torchvision's ImageNet statistics, the convention of ImageNet-trained ResNets), or centring constants
    for random init."""
    if weights is None:
        return RANDOM_INIT_MEAN, RANDOM_INIT_STD
    preset = _weights_enum(backbone, IMAGENET if is_weights_file(weights) else weights).transforms()
    return tuple(preset.mean), tuple(preset.std)


def small_object_backbone(
    name: str = "resnet18", returned_layers: Sequence[int] = (1, 2, 3), fpn_channels: int = 64,
    weights: str | None = None,
) -> BackboneWithFPN:
    """A ResNet + FPN with trainable BatchNorm (torchvision's detection default, frozen BatchNorm,
    would be an identity without pretrained statistics), randomly initialised unless ``weights``
    names torchvision weights of ``name`` (:func:`backbone_state_dict`)."""
    if name not in BACKBONES:
        raise ValueError(f"detector: backbone must be one of {BACKBONES}, got {name!r}")
    layers = sorted(set(int(k) for k in returned_layers))
    if not layers or not set(layers) <= {1, 2, 3, 4}:
        raise ValueError(f"detector: returned_layers must be a non-empty subset of [1, 2, 3, 4], got {list(returned_layers)}")
    if not fpn_channels >= 32 or fpn_channels % 32:
        raise ValueError(f"detector: fpn_channels must be a multiple of 32 (GroupNorm(32) in the heads), got {fpn_channels!r}")
    body = getattr(resnet, name)(weights=None, norm_layer=nn.BatchNorm2d)
    if weights is not None:
        state, expected = backbone_state_dict(name, weights), body.state_dict()
        missing = [key for key in expected if key not in state]
        unexpected = [key for key in state if key not in expected]
        unexpected += [key for key in expected if key in state and state[key].shape != expected[key].shape]
        if missing or unexpected:
            raise ValueError(
                f"detector: backbone_weights={weights!r} do not fit a {name}: {len(missing)} missing keys "
                f"(e.g. {missing[:3]}), {len(unexpected)} unexpected or of another shape (e.g. {unexpected[:3]}); give weights of "
                f"a torchvision {name} (its state_dict, as torchvision.models.{name}().state_dict() names it)")
        body.load_state_dict(state)
    stage_channels = body.inplanes // 8  # channels of layer1 (64 for resnet18/34, 256 for resnet50)
    in_channels = [stage_channels * 2 ** (k - 1) for k in layers]
    return BackboneWithFPN(
        body,
        return_layers={f"layer{k}": str(i) for i, k in enumerate(layers)},
        in_channels_list=in_channels,
        out_channels=int(fpn_channels),
        extra_blocks=LastLevelMaxPool(),
    )


def build_detector(
    arch: str,
    num_classes: int,
    image_size: int,
    anchor_sizes: Sequence[Sequence[float]],
    aspect_ratios: Sequence[float] = (0.5, 1.0, 2.0),
    backbone: str = "resnet18",
    returned_layers: Sequence[int] = (1, 2, 3),
    fpn_channels: int = 64,
    focal_alpha: float = 0.25,
    focal_gamma: float = 2.0,
    image_mean: Sequence[float] | None = None,
    image_std: Sequence[float] | None = None,
    score_thresh: float = 0.05,
    nms_thresh: float = 0.5,
    detections_per_img: int = 100,
    box_loss: nn.Module | None = None,
    backbone_weights: str | None = None,
    center_sampling_radius: float = 1.5,
    anchors_per_level: int = 2,
    image_norm: str = "fixed",
) -> nn.Module:
    """A torchvision ``RetinaNet`` or ``FCOS`` with a :func:`small_object_backbone` and our heads.

    ``anchor_sizes``: one tuple of sizes (px) per pyramid level, finest first — ``len(returned_layers)
    + 1`` levels (the last one max-pooled). RetinaNet uses every size × ``aspect_ratios`` per level;
    FCOS takes one size per level (the point's scale, conventionally the stride) and square anchors.
    ``anchor_sizes: auto`` is resolved from the data before the model is built
    (``runtime.detection_wiring``, :mod:`models.anchors`); here the sizes must be explicit.
    ``image_size``: the resolution cap — an image whose longer side exceeds it is downscaled to it,
    smaller ones keep their native size (:class:`models.det_transform.NativeResolutionTransform`);
    detections are mapped back to the input pixels. ``image_mean``/``image_std`` normalise [0, 1]
    inputs; null follows ``backbone_weights`` (their statistics; random init: 0.5 / 0.25).
    ``image_norm``: ``fixed`` (those constants) or ``per_image`` (each image standardised by its own
    mean and standard deviation; :class:`models.det_transform.NativeResolutionTransform`).
    ``center_sampling_radius``: FCOS's, in units of each level's anchor size.
    ``anchors_per_level``: how many sizes per level ``anchor_sizes: auto`` fits (RetinaNet; explicit
    sizes may have any count per level).
    ``box_loss`` defaults to torchvision's choice (RetinaNet: L1 on deltas, FCOS: GIoU);
    :class:`models.detection.DetectionModule` sets the configured one.
    """
    if arch not in ARCHS:
        raise ValueError(f"detector: arch must be one of {ARCHS}, got {arch!r}")
    if not num_classes >= 1:
        raise ValueError(f"detector: num_classes must be >= 1 (foreground classes), got {num_classes!r}")
    if isinstance(anchor_sizes, str):
        raise ValueError(
            f"detector: anchor_sizes={anchor_sizes!r} must be resolved to sizes before the model is built "
            f"(train.py does it from the training boxes: runtime/detection_wiring.py); build_detector needs a "
            f"list of sizes per level"
        )
    body = small_object_backbone(backbone, returned_layers, fpn_channels, backbone_weights)
    levels = len(set(returned_layers)) + 1
    default_mean, default_std = normalisation(backbone, backbone_weights)
    image_mean = default_mean if image_mean is None else image_mean
    image_std = default_std if image_std is None else image_std
    if len(anchor_sizes) != levels:
        raise ValueError(
            f"detector: anchor_sizes needs one entry per pyramid level ({levels}: returned_layers "
            f"{list(returned_layers)} + one pooled level), got {len(anchor_sizes)}: {anchor_sizes!r}"
        )
    sizes = tuple(tuple(float(s) for s in level) for level in anchor_sizes)
    common = dict(
        min_size=int(image_size), max_size=int(image_size), image_mean=list(image_mean), image_std=list(image_std),
        score_thresh=float(score_thresh), nms_thresh=float(nms_thresh), detections_per_img=int(detections_per_img),
    )
    # Labels are 1..num_classes; torchvision's heads index the logits by label, so one extra
    # (never-positive) column keeps index num_classes valid, as torchvision's own recipes do.
    logits = int(num_classes) + 1
    if arch == "retinanet":
        anchors = AnchorGenerator(sizes, (tuple(float(a) for a in aspect_ratios),) * levels)
        head = BoxLossRetinaNetHead(
            body.out_channels, anchors.num_anchors_per_location()[0], logits, box_loss,
            focal_alpha, focal_gamma, norm_layer=partial(nn.GroupNorm, 32),
        )
        return _native_resolution(RetinaNet(body, logits, anchor_generator=anchors, head=head, **common), image_norm)
    if any(len(level) != 1 for level in sizes):
        raise ValueError(f"detector: FCOS takes one anchor size per level, got {anchor_sizes!r}")
    anchors = AnchorGenerator(sizes, ((1.0,),) * levels)
    head = BoxLossFCOSHead(body.out_channels, 1, logits, box_loss, focal_alpha, focal_gamma)
    return _native_resolution(FCOS(body, logits, anchor_generator=anchors, head=head,
                                   center_sampling_radius=float(center_sampling_radius), **common), image_norm)


def _native_resolution(detector: nn.Module, image_norm: str = "fixed") -> nn.Module:
    transform = detector.transform
    detector.transform = NativeResolutionTransform(transform.max_size, transform.image_mean, transform.image_std,
                                                   image_norm)
    return detector


def set_box_loss(detector: nn.Module, box_loss: BoxLoss) -> None:
    """Make ``box_loss`` the regression loss of a detector built by :func:`build_detector`."""
    head = getattr(detector, "head", None)
    if not isinstance(head, _BoxLossMixin):
        raise ValueError(
            f"detector: expected a model from models.det_heads.build_detector (RetinaNet/FCOS with "
            f"BoxLossRetinaNetHead/BoxLossFCOSHead), got {type(detector).__name__} with head {type(head).__name__}"
        )
    head.set_box_loss(box_loss)
