"""lovasz / cldice / unified_focal: parity with smp, MONAI and the authors' reference code."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from losses import build_loss
from losses.cldice import soft_skeleton
from tests.losses.loss_inputs import IGNORE, grads, make_inputs, one_hot


def assert_close(ours: torch.Tensor, ref: torch.Tensor) -> None:
    torch.testing.assert_close(ours, ref.to(ours.dtype).reshape(ours.shape), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("mode", ["binary", "multiclass"])
@pytest.mark.parametrize("per_image", [False, True])
@pytest.mark.parametrize("ignore_frac", [0.0, 0.3])
def test_lovasz_matches_smp(mode, per_image, ignore_frac):
    from segmentation_models_pytorch.losses import LovaszLoss as SmpLovasz

    logits, target = make_inputs(mode, c=4, spatial=(6, 7), ignore_frac=ignore_frac)
    ours = build_loss("lovasz", mode=mode, per_image=per_image, ignore_index=IGNORE)
    smp_target = target.squeeze(1) if mode == "binary" else target
    ref = SmpLovasz(mode, per_image=per_image, ignore_index=IGNORE)
    v, g = grads(ours, logits, target)
    rv, rg = grads(lambda x, _: ref(x, smp_target), logits, target)
    assert_close(v, rv)
    assert_close(g, rg)


def test_lovasz_multilabel_averages_channels_of_binary_hinges():
    logits, target = make_inputs("multilabel", c=3, spatial=(5, 5))
    value = build_loss("lovasz", mode="multilabel")(logits, target)
    per_channel = [build_loss("lovasz", mode="binary")(logits[:, c:c + 1], target[:, c:c + 1]) for c in range(3)]
    assert_close(value, torch.stack(per_channel).mean())


def test_lovasz_perfect_prediction_is_zero_and_3d_works():
    _, target = make_inputs("multiclass", c=3, spatial=(3, 4, 5))
    probs = one_hot(target, 3)
    assert build_loss("lovasz", mode="multiclass", from_logits=False)(probs, target).item() == 0.0


@pytest.mark.parametrize("spatial", [(12, 13), (6, 7, 5)])
def test_cldice_term_matches_monai(spatial):
    from monai.losses import SoftclDiceLoss

    logits, target = make_inputs("multiclass", c=2, spatial=spatial)
    ours = build_loss("cldice", mode="multiclass", alpha=1.0, reduction="none")
    ref = SoftclDiceLoss(iter_=3, smooth=1e-12, include_background=False, softmax=True, reduction="none")
    v, g = grads(ours, logits, target)
    rv, rg = grads(lambda x, t: ref(x, one_hot(t, 2)), logits, target)
    assert_close(v, rv)
    assert_close(g, rg)


@pytest.mark.parametrize("spatial", [(17, 19), (9, 8, 10)])
@pytest.mark.parametrize("iterations", [0, 1, 3, 6])
def test_soft_skeleton_equals_monais_value_and_gradient(spatial, iterations):
    """Ours carries each step's erosion into the next step (one erosion fewer per step); the
    skeleton and its gradient must still equal MONAI's soft_skel, which recomputes it."""
    from monai.losses.cldice import soft_skel

    g = torch.Generator().manual_seed(len(spatial) * 10 + iterations)
    x = torch.rand(2, 3, *spatial, generator=g, dtype=torch.float64)
    weights = torch.randn(2, 3, *spatial, generator=g, dtype=torch.float64)
    ours_x, ref_x = x.clone().requires_grad_(), x.clone().requires_grad_()
    ours, ref = soft_skeleton(ours_x, iterations), soft_skel(ref_x, iterations)
    (ours * weights).sum().backward()
    (ref * weights).sum().backward()
    torch.testing.assert_close(ours, ref, rtol=0, atol=0)
    torch.testing.assert_close(ours_x.grad, ref_x.grad, rtol=1e-12, atol=1e-12)
    assert ours.abs().sum() > 0 and ours_x.grad.abs().sum() > 0


def test_cldice_alpha_zero_is_dice_with_same_smooth():
    logits, target = make_inputs("multiclass", c=3, spatial=(8, 8))
    cl = build_loss("cldice", mode="multiclass", alpha=0.0, smooth=1.0)(logits, target)
    dice = build_loss("dice", mode="multiclass", smooth=1.0, include_background=False)(logits, target)
    assert_close(cl, dice)


def test_soft_skeleton_of_a_bar_is_its_centre_line():
    bar = torch.zeros(1, 1, 9, 9)
    bar[..., 3:6, 1:8] = 1.0  # 3 pixels thick
    skeleton = soft_skeleton(bar, iterations=3)
    assert skeleton[0, 0, 4, 2:7].tolist() == [1.0] * 5
    assert skeleton[0, 0, 3].sum() == 0 and skeleton[0, 0, 5].sum() == 0


def test_cldice_prefers_connected_prediction():
    """A prediction that breaks a thin vessel costs more clDice than one that thickens it."""
    target = torch.zeros(1, 16, 16, dtype=torch.long)
    target[0, 7:9, 1:15] = 1
    broken = one_hot(target, 2)
    broken[0, 1, 7:9, 7:9], broken[0, 0, 7:9, 7:9] = 0.0, 1.0
    thick = one_hot(target, 2)
    thick[0, 1, 6, 1:15], thick[0, 0, 6, 1:15] = 1.0, 0.0
    loss = build_loss("cldice", mode="multiclass", from_logits=False, alpha=1.0)
    assert loss(broken, target) > loss(thick, target) + 0.05


def _yeung_reference(probs: torch.Tensor, one_hot_target: torch.Tensor, weight=0.5, delta=0.6, gamma=0.5,
                     eps=1e-7) -> torch.Tensor:
    """Transcription of Yeung et al.'s Keras ``asym_unified_focal_loss`` (2 channels, channels last)."""
    p = probs.clamp(eps, 1 - eps)
    ce = -one_hot_target * torch.log(p)
    back = (1 - delta) * torch.pow(1 - p[..., 0], gamma) * ce[..., 0]
    fore = delta * ce[..., 1]
    focal = torch.stack([back, fore], -1).sum(-1).mean()
    axes = tuple(range(1, p.dim() - 1))
    tp = (one_hot_target * p).sum(axes)
    fn = (one_hot_target * (1 - p)).sum(axes)
    fp = ((1 - one_hot_target) * p).sum(axes)
    ti = (tp + eps) / (tp + delta * fn + (1 - delta) * fp + eps)
    tversky = torch.stack([1 - ti[:, 0], (1 - ti[:, 1]) * torch.pow(1 - ti[:, 1], -gamma)], -1).mean()
    return weight * tversky + (1 - weight) * focal


@pytest.mark.parametrize("spatial", [(8, 9), (4, 5, 6)])
def test_unified_focal_matches_reference_multiclass_and_binary(spatial):
    logits, target = make_inputs("multiclass", c=2, spatial=spatial)
    ref = lambda x, t: _yeung_reference(x.softmax(1).movedim(1, -1), F.one_hot(t, 2).float())
    v, g = grads(build_loss("unified_focal", mode="multiclass", smooth=1e-7), logits, target)
    rv, rg = grads(ref, logits, target)
    assert_close(v, rv)
    assert_close(g, rg)
    # binary logit = difference of the two class logits; same loss
    binary = build_loss("unified_focal", mode="binary", smooth=1e-7)(logits[:, 1:] - logits[:, :1], target.unsqueeze(1))
    assert_close(binary, rv)


def test_unified_focal_exposes_terms_and_mixes_them():
    logits, target = make_inputs("multiclass", c=4, spatial=(6, 6), ignore_frac=0.2)
    loss = build_loss("unified_focal", mode="multiclass", ignore_index=IGNORE, weight=0.3)
    value = loss(logits, target)
    terms = loss.last_terms
    assert set(terms) == {"focal_tversky", "focal"}
    assert_close(value, 0.3 * terms["focal_tversky"] + 0.7 * terms["focal"])
