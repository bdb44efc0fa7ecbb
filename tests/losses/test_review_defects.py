"""The loss defects of the outside review (issue 9), one repro each plus cases beyond the repro: every
test here fails on the code before the fix."""
from __future__ import annotations

import itertools
import math

import pytest
import torch
import torch.nn.functional as F

from losses import available, build_loss
from tests.losses.loss_inputs import IGNORE, grads, make_inputs
from tests.losses.references import dense, tversky

SEGMENTATION = available("segmentation")


def sigmoid_modes_only(name: str) -> bool:
    return name == "bce"


# --- 1. mcc: an undefined MCC counts as 0, never as perfect, with a usable gradient -------------------


@pytest.mark.parametrize("batch", [True, False])
def test_mcc_empty_target_with_false_positives_is_about_one_with_gradient(batch):
    logits = torch.full((2, 1, 8, 8), 5.0)
    target = torch.zeros(2, 8, 8, dtype=torch.long)
    value, grad = grads(build_loss("mcc", mode="binary", batch=batch), logits, target)
    assert 1.0 <= value.item() <= 1.1
    assert (grad > 0).all()  # lowering the foreground logits lowers the loss
    lower, _ = grads(build_loss("mcc", mode="binary", batch=batch), logits - 3.0, target)
    assert lower < value


def test_mcc_saturated_prediction_is_not_perfect():
    target = torch.zeros(1, 8, 8, dtype=torch.long)
    target.view(-1)[:18] = 1
    value = build_loss("mcc", mode="binary")(torch.full((1, 1, 8, 8), -105.0), target)
    assert 1.0 <= value.item() <= 1.1


def test_mcc_full_target_counts_misses():
    logits = torch.full((1, 1, 6, 6), -2.0)
    target = torch.ones(1, 6, 6, dtype=torch.long)
    value, grad = grads(build_loss("mcc", mode="binary"), logits, target)
    assert 1.0 <= value.item() <= 1.1 and (grad < 0).all()


def test_mcc_multiclass_absent_class_predicted_everywhere():
    logits = torch.zeros(2, 3, 5, 5)
    logits[:, 2] = 4.0  # class 2 predicted everywhere, absent from the target
    target = torch.randint(0, 2, (2, 5, 5), generator=torch.Generator().manual_seed(0))
    loss = build_loss("mcc", mode="multiclass", reduction="none")
    per_class = loss(logits, target)
    assert 1.0 <= per_class[2].item() <= 1.1
    _, grad = grads(lambda x, t: loss(x, t)[2], logits, target)
    assert (grad[:, 2] > 0).all()


@pytest.mark.parametrize("mode", ["binary", "multiclass", "multilabel"])
def test_mcc_never_scores_an_undefined_class_as_perfect(mode):
    """Every undefined configuration (empty, full, saturated) costs at least 1 per class."""
    _, target = make_inputs(mode, c=3, spatial=(5, 5), seed=1)
    for fill, logit in itertools.product((0, 1), (-200.0, 200.0, 3.0, -3.0)):
        t = torch.full_like(target, fill)
        logits = torch.full((2, 1 if mode == "binary" else 3, 5, 5), logit)
        per_class = build_loss("mcc", mode=mode, reduction="none")(logits, t)
        assert torch.isfinite(per_class).all()
        if mode != "multiclass":
            assert (per_class >= 1.0).all(), (fill, logit, per_class)
        else:
            # class `fill` fills the target: one-vs-rest has no negatives; the others are absent
            assert (per_class >= 1.0).all(), (fill, logit, per_class)


# --- 2. tversky / focal_tversky squared: >= 0 for every alpha, beta; minimal at p = t --------------


@pytest.mark.parametrize("name", ["tversky", "focal_tversky"])
def test_squared_tversky_repro_is_not_negative(name):
    target = torch.ones(1, 1, 4)
    p = torch.full((1, 1, 4), 0.5)
    for alpha, beta in [(0.7, 0.3), (1.0, 0.0), (0.9, 0.1)]:
        loss = build_loss(name, mode="binary", from_logits=False, squared=True, alpha=alpha, beta=beta)
        assert loss(p, target).item() >= 0.0


@pytest.mark.parametrize("mode", ["binary", "multiclass", "multilabel"])
@pytest.mark.parametrize("alpha,beta", [(0.0, 1.0), (1.0, 0.0), (0.7, 0.3), (0.2, 0.9), (0.5, 0.5)])
def test_squared_tversky_matches_reference_and_is_minimal_at_the_target(mode, alpha, beta):
    logits, target = make_inputs(mode, c=3, spatial=(5, 6), ignore_frac=0.2, seed=4)
    kw = dict(mode=mode, ignore_index=IGNORE, squared=True, alpha=alpha, beta=beta, reduction="none")
    v, g = grads(build_loss("tversky", **kw), logits, target)
    rv, rg = grads(lambda x, t: tversky(*dense(x, t, mode), alpha, beta, squared=True), logits, target)
    torch.testing.assert_close(v, rv.float(), rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(g, rg.float(), rtol=1e-5, atol=1e-6)
    assert (v >= 0).all()
    # soft targets too (multilabel): p = t is the minimum 0, every other p costs more
    soft = torch.rand(2, 3, 5, 6, generator=torch.Generator().manual_seed(1))
    loss = build_loss("tversky", mode="multilabel", from_logits=False, squared=True, alpha=alpha, beta=beta)
    assert loss(soft, soft).item() == pytest.approx(0.0, abs=1e-6)
    both_ways = torch.where(torch.arange(soft.numel()).view_as(soft) % 2 == 0, soft + 0.1, soft - 0.1)
    assert loss(both_ways.clamp(0, 1), soft) > 1e-4


# --- 3. cldice: ignored positions have zero gradient and cannot change the loss ---------------------


@pytest.mark.parametrize("mode", ["binary", "multiclass", "multilabel"])
@pytest.mark.parametrize("batch", [False, True])
def test_cldice_ignored_positions_are_inert(mode, batch):
    logits, target = make_inputs(mode, c=3, spatial=(12, 12), ignore_frac=0.3, seed=2)
    loss = build_loss("cldice", mode=mode, ignore_index=IGNORE, batch=batch, include_background=True)
    value, grad = grads(loss, logits, target)
    ignored = target == IGNORE
    mask = ignored.unsqueeze(1).expand_as(grad) if mode == "multiclass" else ignored.expand_as(grad)
    assert torch.count_nonzero(grad[mask]) == 0
    other = torch.where(mask, torch.randn_like(logits) * 50, logits.detach())
    assert torch.equal(loss(other, target), value)


# --- 4/5/6. box losses: bounded gradients for degenerate boxes, siou theta, float32 --------------------

BOX = available("detection")


def degenerate_pairs() -> tuple[torch.Tensor, torch.Tensor]:
    """Distinct degenerate pairs: points, zero-width and zero-height boxes, on a 0.25 px grid."""
    g = torch.Generator().manual_seed(3)
    xy = torch.randint(0, 40, (256, 2), generator=g).double() / 4
    wh = torch.randint(0, 12, (256, 2), generator=g).double() / 4
    kind = torch.arange(256) % 4
    wh[kind == 0] = 0.0           # point boxes
    wh[kind == 1, 0] = 0.0        # zero width
    wh[kind == 2, 1] = 0.0        # zero height
    boxes = torch.cat([xy, xy + wh], 1)
    return boxes[:128], boxes[128:]


@pytest.mark.parametrize("name", BOX)
def test_degenerate_boxes_have_bounded_gradients(name):
    pred, target = degenerate_pairs()
    for a, b in ((pred, target), (target, pred), (pred, pred.flip(0))):
        a = a.float().clone().requires_grad_()
        build_loss(name, reduction="none")(a, b.float()).sum().backward()
        assert torch.isfinite(a.grad).all()
        assert a.grad.abs().max() < 1e3, (name, a.grad.abs().max())


def test_ciou_point_box_repro():
    point = torch.tensor([[5.0, 5.0, 5.0, 5.0]], requires_grad=True)
    build_loss("ciou")(point, torch.tensor([[2.0, 3.0, 9.0, 6.0]])).backward()
    assert point.grad.abs().max() < 1e3


@pytest.mark.parametrize("theta", [1.0, 1.5, 4.0])
def test_siou_equal_sizes_have_finite_gradient(theta):
    pred = torch.tensor([[0.0, 0.0, 4.0, 4.0], [1.0, 2.0, 5.0, 3.0]], requires_grad=True)
    target = torch.tensor([[1.0, 1.0, 5.0, 5.0], [3.0, 2.0, 7.0, 9.0]])  # equal widths; equal heights
    build_loss("siou", theta=theta)(pred, target).backward()
    assert torch.isfinite(pred.grad).all()


def large_boxes() -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(5)
    xy = torch.rand(64, 2, generator=g, dtype=torch.float64) * 300
    pred = torch.cat([xy, xy + 20 + torch.rand(64, 2, generator=g, dtype=torch.float64) * 300], 1)
    target = pred + torch.randn(64, 4, generator=g, dtype=torch.float64) * 15
    target[:, 2:] = torch.maximum(target[:, 2:], target[:, :2] + 1)
    return pred, target


@pytest.mark.parametrize("name", BOX)
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
@pytest.mark.parametrize("autocast", [False, True])
def test_box_losses_compute_in_float32_for_half_inputs(name, dtype, autocast):
    pred, target = large_boxes()
    p, t = pred.to(dtype), target.to(dtype)
    x = p.clone().requires_grad_()
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
        value = build_loss(name, reduction="none")(x, t)
    assert value.dtype == torch.float32
    value.sum().backward()
    assert torch.isfinite(value).all() and torch.isfinite(x.grad.float()).all()
    # the reference sees the same rounded boxes, in float64: only the computation may differ
    reference = build_loss(name, reduction="none")(p.double(), t.double())
    torch.testing.assert_close(value.double(), reference, rtol=1e-4, atol=1e-5)


# --- 7. binary mode rejects several channels ----------------------------------------------------------


@pytest.mark.parametrize("name", [n for n in SEGMENTATION])
@pytest.mark.parametrize("shape", [(2, 3, 4, 4), (2, 2, 3, 4, 4)])
def test_binary_mode_rejects_several_channels(name, shape):
    loss = build_loss(name, mode="binary")
    with pytest.raises(ValueError, match=r"binary mode expects one channel.*mode='multilabel'"):
        loss(torch.randn(shape), torch.randint(0, 2, shape))


# --- 8. non-finite logits at ignored positions --------------------------------------------------------


@pytest.mark.parametrize("name", SEGMENTATION)
@pytest.mark.parametrize("bad", [float("nan"), float("-inf"), float("inf")])
def test_non_finite_logits_at_ignored_positions_change_nothing(name, bad):
    modes = ["binary", "multilabel"] if sigmoid_modes_only(name) else ["binary", "multiclass", "multilabel"]
    for mode in modes:
        logits, target = make_inputs(mode, c=3, spatial=(6, 6), ignore_frac=0.3, seed=6)
        ignored = target == IGNORE
        mask = ignored.unsqueeze(1).expand_as(logits) if mode == "multiclass" else ignored.expand_as(logits)
        loss = build_loss(name, mode=mode, ignore_index=IGNORE)
        if loss.requires_class_counts:
            loss.set_class_counts(torch.tensor([3.0, 2.0, 1.0] if mode != "binary" else [3.0, 1.0]))
        clean, clean_grad = grads(loss, logits, target)
        value, grad = grads(loss, logits.detach().masked_fill(mask, bad), target)
        assert torch.isfinite(value), (name, mode)
        torch.testing.assert_close(value, clean, rtol=0, atol=0)
        assert torch.equal(grad, clean_grad), (name, mode)
        assert torch.count_nonzero(grad[mask]) == 0


@pytest.mark.parametrize("bad", [float("nan"), float("-inf")])
def test_ce_with_non_finite_ignored_logits_equals_torch(bad):
    logits, target = make_inputs("multiclass", c=4, spatial=(5, 7), ignore_frac=0.3, seed=8)
    x = logits.detach().masked_fill((target == IGNORE).unsqueeze(1), bad)
    reference = F.cross_entropy(x, target, ignore_index=IGNORE)
    for name in ("ce", "focal", "topk_ce"):
        kw = {"gamma": 0.0} if name == "focal" else {"k": 100.0} if name == "topk_ce" else {}
        value = build_loss(name, mode="multiclass", ignore_index=IGNORE, **kw)(x, target)
        torch.testing.assert_close(value, reference, rtol=1e-6, atol=1e-6)
    dice_ce = build_loss("dice_ce", mode="multiclass", ignore_index=IGNORE)
    dice_ce(x, target)
    torch.testing.assert_close(dice_ce.last_terms["ce"], reference, rtol=1e-6, atol=1e-6)


# --- 9. generalized_dice on background-only images ----------------------------------------------------


def test_generalized_dice_binary_empty_target_charges_false_positives():
    target = torch.zeros(2, 1, 8, 8, dtype=torch.long)
    loss = build_loss("generalized_dice", mode="binary")
    value, grad = grads(loss, torch.full((2, 1, 8, 8), 3.0), target)
    assert value.item() > 0.5 and (grad > 0).all()
    assert loss(torch.full((2, 1, 8, 8), 0.0), target) > loss(torch.full((2, 1, 8, 8), -3.0), target)
    assert loss(torch.full((2, 1, 8, 8), -30.0), target).item() < 1e-3  # right: nearly free


@pytest.mark.parametrize("weight_type", ["square", "simple"])
def test_generalized_dice_multiclass_without_foreground(weight_type):
    logits = torch.randn(2, 3, 6, 6, generator=torch.Generator().manual_seed(1))
    target = torch.zeros(2, 6, 6, dtype=torch.long)
    target[1, :2] = 2  # sample 1 has foreground; sample 0 is background only
    loss = build_loss("generalized_dice", mode="multiclass", include_background=False,
                      weight_type=weight_type, reduction="none")
    per_sample, _ = grads(loss, logits, target)
    _, grad = grads(lambda x, t: loss(x, t)[0], logits, target)
    assert per_sample[0] > 0.5
    assert torch.count_nonzero(grad[0, 1:]) == grad[0, 1:].numel()


# --- 10. probabilities outside [0, 1] ------------------------------------------------------------------


@pytest.mark.parametrize("name", SEGMENTATION)
def test_probabilities_outside_unit_interval_are_rejected(name):
    mode = "binary"
    loss = build_loss(name, mode=mode, from_logits=False)
    target = torch.randint(0, 2, (2, 1, 4, 4))
    for bad in (3.0, -0.5, float("nan")):
        p = torch.rand(2, 1, 4, 4)
        p[0, 0, 0, 0] = bad
        fresh = build_loss(name, mode=mode, from_logits=False)
        if fresh.requires_class_counts:
            fresh.set_class_counts(torch.tensor([3.0, 1.0]))
        with pytest.raises(ValueError, match=r"from_logits=False expects probabilities in \[0, 1\]"):
            fresh(p, target)
    if loss.requires_class_counts:
        loss.set_class_counts(torch.tensor([3.0, 1.0]))
    assert torch.isfinite(loss(torch.rand(2, 1, 4, 4), target))


def test_probability_check_runs_on_the_first_calls_only(monkeypatch):
    """The check costs a host sync: it runs on the first ``probability_checks`` calls, then never."""
    import losses.validation as validation

    calls = []
    real = validation.check_probabilities
    monkeypatch.setattr(validation, "check_probabilities", lambda *a: (calls.append(1), real(*a)))
    loss = build_loss("dice", mode="binary", from_logits=False)
    target = torch.randint(0, 2, (2, 1, 4, 4))
    for _ in range(5):
        loss(torch.rand(2, 1, 4, 4), target)
    assert len(calls) == loss.probability_checks == 2
    build_loss("dice", mode="binary")(torch.randn(2, 1, 4, 4), target)  # logits: never checked
    assert len(calls) == 2


# --- 11. unsupported keywords ---------------------------------------------------------------------------


@pytest.mark.parametrize("name,keyword", [("ce", "include_background"), ("generalized_dice", "class_weights"),
                                          ("dice", "smoth"), ("unified_focal", "class_weights"),
                                          ("bce", "class_weights"), ("giou", "log_loss"), ("l1", "eps"),
                                          ("dice_ce", "include_background"), ("mcc", "squared")])
def test_unsupported_keyword_names_the_loss_and_what_it_accepts(name, keyword):
    with pytest.raises(ValueError, match=rf"loss '{name}' \(losses\..*\): unsupported keyword\(s\) '{keyword}'; "
                                         rf"it accepts: .*reduction"):
        build_loss(name, **{keyword: 1})


def test_unsupported_keyword_in_a_composite_term_names_the_term():
    with pytest.raises(ValueError, match=r"terms\.ce: loss 'ce' .*unsupported keyword\(s\) 'include_background'"):
        build_loss("composite", terms={"ce": {"include_background": False}})


# --- 13. lovasz per_image: all-ignored images leave the mean ------------------------------------------


@pytest.mark.parametrize("mode", ["binary", "multiclass"])
def test_lovasz_per_image_excludes_all_ignored_images(mode):
    logits, target = make_inputs(mode, n=3, c=3, spatial=(5, 6), ignore_frac=0.2, seed=9)
    target[1] = IGNORE
    loss = build_loss("lovasz", mode=mode, per_image=True, ignore_index=IGNORE)
    kept = [0, 2]
    expected = torch.stack([loss(logits[i:i + 1], target[i:i + 1]) for i in kept]).mean()
    torch.testing.assert_close(loss(logits, target), expected)
    from segmentation_models_pytorch.losses import LovaszLoss as SmpLovasz

    smp_target = target[kept].squeeze(1) if mode == "binary" else target[kept]
    torch.testing.assert_close(expected, SmpLovasz(mode, per_image=True, ignore_index=IGNORE)(logits[kept], smp_target))


# --- deprecated names (issue 12): one release with a warning -------------------------------------------


@pytest.mark.parametrize("name,old", [("dice", "beta"), ("ce", "beta"), ("weighted_ce", "beta"), ("mcc", "beta"),
                                      ("tversky", "weight_beta"), ("focal_tversky", "weight_beta"),
                                      ("dice_ce", "beta"), ("lovasz", "weight_beta")])
def test_old_class_weight_beta_names_warn_and_work(name, old):
    with pytest.warns(DeprecationWarning, match=rf"'{old}' is deprecated .*'class_weight_beta'"):
        loss = build_loss(name, mode="multiclass", class_weights="auto", weight_scheme="effective_number",
                          **{old: 0.99})
    assert loss.class_weight_beta == 0.99
    counts = torch.tensor([900.0, 90.0, 10.0])
    loss.set_class_counts(counts)
    new = build_loss(name, mode="multiclass", class_weights="auto", weight_scheme="effective_number",
                     class_weight_beta=0.99)
    new.set_class_counts(counts)
    torch.testing.assert_close(loss.class_weights, new.class_weights)
    with pytest.raises(ValueError, match=rf"got both '{old}' \(deprecated\) and 'class_weight_beta'"):
        build_loss(name, mode="multiclass", class_weight_beta=0.9, **{old: 0.99})
    # an old experiment/sweep config merged into today's YAML: the new key is at its default
    with pytest.warns(DeprecationWarning):
        merged = build_loss(name, mode="multiclass", class_weight_beta=0.9999, **{old: 0.99})
    assert merged.class_weight_beta == 0.99


def test_tversky_beta_is_the_false_negative_weight_without_warning(recwarn):
    loss = build_loss("tversky", mode="binary", beta=0.9)
    assert loss.beta == 0.9 and loss.class_weight_beta == 0.9999
    assert not [w for w in recwarn if issubclass(w.category, DeprecationWarning)]
    assert math.isclose(build_loss("smooth_l1", beta=0.5).beta, 0.5)
