"""dice / jaccard / tversky / focal_tversky / generalized_dice / mcc: parity with MONAI and smp, pinned numbers."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from losses import build_loss
from tests.losses.loss_inputs import IGNORE, grads, make_inputs, one_hot
from tests.losses.references import dense
from tests.losses.references import mcc as reference_mcc
from tests.losses.references import tversky as reference_tversky

RTOL, ATOL = 1e-5, 1e-6


def assert_close(ours: torch.Tensor, ref: torch.Tensor) -> None:
    torch.testing.assert_close(ours, ref.to(ours.dtype).reshape(ours.shape), rtol=RTOL, atol=ATOL)


def monai_region(name: str, mode: str, **kw):
    """A MONAI loss configured for our mode; returns f(logits, target) on our target layout."""
    import monai.losses as M

    act = dict(softmax=True, to_onehot_y=True) if mode == "multiclass" else dict(sigmoid=True)
    loss = getattr(M, name)(**act, **kw)
    if mode == "multiclass":
        return lambda x, t: loss(x, t.unsqueeze(1))
    return lambda x, t: loss(x, t.float())


@pytest.mark.parametrize("mode", ["binary", "multiclass", "multilabel"])
@pytest.mark.parametrize("spatial", [(9,), (5, 6), (3, 4, 5)])
@pytest.mark.parametrize("batch", [False, True])
def test_dice_matches_monai(mode, spatial, batch):
    logits, target = make_inputs(mode, c=4, spatial=spatial)
    ours = build_loss("dice", mode=mode, batch=batch, reduction="none")
    ref = monai_region("DiceLoss", mode, batch=batch, reduction="none")
    v, g = grads(ours, logits, target)
    rv, rg = grads(ref, logits, target)
    assert_close(v, rv)
    assert_close(g, rg)


@pytest.mark.parametrize("option", [dict(squared=True), dict(include_background=False),
                                    dict(smooth=1.0), dict(class_weights=[1.0, 2.0, 3.0, 0.5])])
def test_dice_options_match_monai(option):
    logits, target = make_inputs("multiclass", c=4, spatial=(6, 6))
    monai_kw = dict(option)
    if "squared" in monai_kw:
        monai_kw["squared_pred"] = monai_kw.pop("squared")
    if "smooth" in monai_kw:
        monai_kw["smooth_nr"] = monai_kw["smooth_dr"] = monai_kw.pop("smooth")
    if "class_weights" in monai_kw:
        monai_kw["weight"] = monai_kw.pop("class_weights")
    v, g = grads(build_loss("dice", mode="multiclass", reduction="sum", **option), logits, target)
    rv, rg = grads(monai_region("DiceLoss", "multiclass", reduction="sum", **monai_kw), logits, target)
    assert_close(v, rv)
    assert_close(g, rg)


def test_dice_class_weights_mean_is_weighted_mean():
    """MONAI's mean is mean(w_c L_c); ours is sum(w_c L_c) / sum(w_c) (documented)."""
    logits, target = make_inputs("multiclass", c=3)
    w = torch.tensor([1.0, 2.0, 5.0])
    per = build_loss("dice", mode="multiclass", reduction="none")(logits, target)
    value = build_loss("dice", mode="multiclass", class_weights=w.tolist())(logits, target)
    assert_close(value, (per * w).sum(1).mean() / w.sum())


def test_dice_ignore_index_matches_monai_and_masked_crop():
    logits, target = make_inputs("multiclass", c=3, spatial=(6, 6), ignore_frac=0.3)
    v, g = grads(build_loss("dice", mode="multiclass", ignore_index=IGNORE), logits, target)
    rv, rg = grads(monai_region("DiceLoss", "multiclass", ignore_index=IGNORE), logits, target)
    assert_close(v, rv)
    assert_close(g, rg)
    # ignored pixels get exactly zero gradient
    assert torch.count_nonzero(g.movedim(1, -1)[target == IGNORE]) == 0


def test_dice_matches_smp_when_every_class_is_present_and_zeroes_differ_otherwise():
    from segmentation_models_pytorch.losses import DiceLoss as SmpDice

    logits, target = make_inputs("multiclass", c=3, spatial=(6, 6))
    ours = build_loss("dice", mode="multiclass", smooth=0.0, batch=True)  # smp pools the batch
    assert_close(ours(logits, target), SmpDice("multiclass")(logits, target))
    # class 2 absent from the target: smp zeroes its loss, ours charges the predicted mass
    absent = target.clamp_max(1)
    p2 = F.softmax(logits, 1)[:, 2]
    ours_none = build_loss("dice", mode="multiclass", smooth=0.0, batch=True, reduction="none")(logits, absent)
    assert_close(ours_none[2], torch.tensor(1.0))
    assert p2.sum() > 0
    smp_value = SmpDice("multiclass")(logits, absent)
    assert_close(smp_value, ours_none[:2].sum() / 3)


def test_dice_empty_class_costs_zero_without_smooth():
    probs = torch.zeros(1, 2, 4, 4)
    probs[:, 0] = 1.0
    target = torch.zeros(1, 4, 4, dtype=torch.long)
    per = build_loss("dice", mode="multiclass", from_logits=False, smooth=0.0, reduction="none")(probs, target)
    assert per.tolist() == [[0.0, 0.0]]


def test_dice_log_loss():
    logits, target = make_inputs("multiclass", c=3)
    per = build_loss("dice", mode="multiclass", reduction="none")(logits, target)
    log_per = build_loss("dice", mode="multiclass", reduction="none", log_loss=True)(logits, target)
    assert_close(log_per, -torch.log(1 - per))


@pytest.mark.parametrize("mode", ["binary", "multiclass", "multilabel"])
def test_jaccard_matches_smp_and_monai(mode):
    from segmentation_models_pytorch.losses import JaccardLoss as SmpJaccard

    logits, target = make_inputs(mode, c=3, spatial=(7, 7))
    ours = build_loss("jaccard", mode=mode, smooth=0.0, batch=True)
    v, g = grads(ours, logits, target)
    smp_target = target.squeeze(1) if mode == "binary" else target
    rv, rg = grads(lambda x, t: SmpJaccard(mode, smooth=0.0)(x, smp_target), logits, target)
    assert_close(v, rv)
    assert_close(g, rg)
    mv = monai_region("DiceLoss", mode, jaccard=True, reduction="none")(logits, target)
    assert_close(build_loss("jaccard", mode=mode, reduction="none")(logits, target), mv)


@pytest.mark.parametrize("alpha,beta", [(0.3, 0.7), (0.7, 0.3), (0.5, 0.5)])
def test_tversky_matches_monai(alpha, beta):
    from monai.losses import TverskyLoss as MonaiTversky

    logits, target = make_inputs("multiclass", c=4, spatial=(5, 5, 2), ignore_frac=0.1)
    # without ignored pixels: MONAI's own softmax + one-hot path
    clean = target.masked_fill(target == IGNORE, 0)
    kw = dict(mode="multiclass", alpha=alpha, beta=beta, reduction="none")
    v, g = grads(build_loss("tversky", **kw), logits, clean)
    ref = MonaiTversky(softmax=True, to_onehot_y=True, alpha=alpha, beta=beta, reduction="none")
    rv, rg = grads(lambda x, t: ref(x, t.unsqueeze(1)), logits, clean)
    assert_close(v, rv)
    assert_close(g, rg)
    # with ignored pixels: MONAI has no ignore_index; drop them by zeroing probability and target
    ours = build_loss("tversky", ignore_index=IGNORE, **kw)
    v, g = grads(ours, logits, target)
    valid = (target != IGNORE).unsqueeze(1).float()

    def monai_masked(x, t):
        p = F.softmax(x, 1) * valid
        oh = one_hot(t.masked_fill(t == IGNORE, 0), 4) * valid
        return MonaiTversky(alpha=alpha, beta=beta, reduction="none")(p, oh)

    rv, rg = grads(monai_masked, logits, target)
    assert_close(v, rv)
    assert_close(g, rg)


def test_tversky_half_half_equals_dice_and_one_one_equals_jaccard_of_monai():
    from monai.losses import DiceLoss as MonaiDice

    logits, target = make_inputs("multilabel", c=3, spatial=(4, 4, 4))
    for squared in (False, True):
        kw = dict(mode="multilabel", reduction="none", squared=squared)
        monai_kw = dict(sigmoid=True, reduction="none", squared_pred=squared)
        assert_close(build_loss("tversky", alpha=0.5, beta=0.5, **kw)(logits, target),
                     MonaiDice(**monai_kw)(logits, target))
        assert_close(build_loss("tversky", alpha=1.0, beta=1.0, **kw)(logits, target),
                     MonaiDice(jaccard=True, **monai_kw)(logits, target))


def test_tversky_beta_penalises_false_negatives():
    target = torch.tensor([[1, 1, 1, 1, 0, 0, 0, 0]])
    under = torch.tensor([[[0.9, 0.9, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1]]])  # misses half the foreground
    over = torch.tensor([[[0.9, 0.9, 0.9, 0.9, 0.9, 0.9, 0.1, 0.1]]])   # same number of wrong pixels, FP
    loss = build_loss("tversky", mode="binary", from_logits=False, alpha=0.3, beta=0.7)
    assert loss(under, target) > loss(over, target) + 0.1


@pytest.mark.parametrize("gamma", [0.75, 2.0])
def test_focal_tversky_matches_smp_for_one_class_and_is_per_class_otherwise(gamma):
    """smp raises the class-mean to gamma; the paper (and we) raise each class's 1 - TI."""
    from segmentation_models_pytorch.losses import TverskyLoss as SmpTversky

    logits, target = make_inputs("binary", spatial=(8, 8))
    ours = build_loss("focal_tversky", mode="binary", alpha=0.3, beta=0.7, gamma=gamma, smooth=0.0, batch=True)
    v, g = grads(ours, logits, target)
    rv, rg = grads(lambda x, t: SmpTversky("binary", alpha=0.3, beta=0.7, gamma=gamma)(x, t), logits, target)
    assert_close(v, rv)
    assert_close(g, rg)
    logits, target = make_inputs("multiclass", c=3, spatial=(8, 8), ignore_frac=0.2)
    focal = build_loss("focal_tversky", mode="multiclass", gamma=gamma, ignore_index=IGNORE)
    v, g = grads(focal, logits, target)
    rv, rg = grads(lambda x, t: (reference_tversky(*dense(x, t, "multiclass"), 0.3, 0.7) ** gamma).mean(),
                   logits, target)
    assert_close(v, rv)
    assert_close(g, rg)


@pytest.mark.parametrize("weight_type", ["square", "simple", "uniform"])
@pytest.mark.parametrize("batch", [False, True])
def test_generalized_dice_matches_monai(weight_type, batch):
    logits, target = make_inputs("multiclass", c=4, spatial=(6, 5))
    target[0] = target[0].clamp_max(2)  # class 3 absent in sample 0: exercises the infinite-weight rule
    ours = build_loss("generalized_dice", mode="multiclass", weight_type=weight_type, batch=batch,
                      reduction="sum")
    v, g = grads(ours, logits, target)
    rv, rg = grads(monai_region("GeneralizedDiceLoss", "multiclass", w_type=weight_type, batch=batch,
                                reduction="sum"), logits, target)
    assert_close(v, rv)
    assert_close(g, rg)
    assert build_loss("generalized_dice", mode="multiclass", reduction="none")(logits, target).shape == (2,)


def test_mcc_matches_smp_binary():
    from segmentation_models_pytorch.losses import MCCLoss as SmpMCC

    logits, target = make_inputs("binary", spatial=(8, 8))
    ours = build_loss("mcc", mode="binary", smooth=1e-5)
    v, g = grads(ours, logits, target)
    rv, rg = grads(lambda x, t: SmpMCC()(torch.sigmoid(x), t.float()), logits, target)
    assert_close(v, rv)
    assert_close(g, rg)


@pytest.mark.parametrize("mode", ["binary", "multilabel"])
def test_mcc_default_smooth_matches_smp_and_reference(mode):
    """Our default (smooth=0) against smp (smooth=1e-5) and the dense reference, where MCC is defined."""
    from segmentation_models_pytorch.losses import MCCLoss as SmpMCC

    logits, target = make_inputs(mode, c=3, spatial=(8, 8), ignore_frac=0.0, seed=2)
    ours = build_loss("mcc", mode=mode, reduction="none")
    v, g = grads(ours, logits, target)
    rv, rg = grads(lambda x, t: reference_mcc(*dense(x, t, mode)), logits, target)
    assert_close(v, rv)
    assert_close(g, rg)
    if mode == "binary":
        smp = SmpMCC()(torch.sigmoid(logits), target.float())
        torch.testing.assert_close(v.mean(), smp, rtol=1e-4, atol=1e-5)


def test_mcc_undefined_cases_versus_smp():
    """Where MCC is undefined smp's smoothing gives about 1 too; we are never below 1 there."""
    from segmentation_models_pytorch.losses import MCCLoss as SmpMCC

    cases = [(torch.full((1, 1, 8, 8), 5.0), torch.zeros(1, 1, 8, 8)),        # empty target, FP
             (torch.full((1, 1, 8, 8), -105.0), (torch.arange(64) < 18).float().view(1, 1, 8, 8)),
             (torch.full((1, 1, 8, 8), -2.0), torch.ones(1, 1, 8, 8))]          # full target, misses
    for logits, target in cases:
        ours = build_loss("mcc", mode="binary")(logits, target)
        smp = SmpMCC()(torch.sigmoid(logits), target)
        assert 1.0 <= ours.item() <= 1.1
        assert abs(ours.item() - smp.item()) < 0.11


def test_mcc_perfect_is_zero_and_inverted_is_two():
    target = torch.tensor([[[1.0, 0.0, 1.0, 0.0]]])
    loss = build_loss("mcc", mode="binary", from_logits=False)
    assert loss(target, target).item() == pytest.approx(0.0, abs=1e-6)
    assert loss(1 - target, target).item() == pytest.approx(2.0, abs=1e-6)


@pytest.mark.parametrize("name", ["dice", "jaccard", "tversky", "focal_tversky", "mcc"])
def test_region_reduction_shapes(name):
    logits, target = make_inputs("multiclass", n=3, c=4, spatial=(4, 4))
    per_sample = build_loss(name, mode="multiclass", reduction="none", batch=False)(logits, target)
    pooled = build_loss(name, mode="multiclass", reduction="none", batch=True)(logits, target)
    assert per_sample.shape == (3, 4) and pooled.shape == (4,)
    no_bg = build_loss(name, mode="multiclass", reduction="none", include_background=False, batch=False)
    assert_close(no_bg(logits, target), per_sample[:, 1:])
    mean = build_loss(name, mode="multiclass", batch=False)(logits, target)
    total = build_loss(name, mode="multiclass", batch=False, reduction="sum")(logits, target)
    assert_close(mean, per_sample.mean())
    assert_close(total, per_sample.sum())


@pytest.mark.parametrize("name", ["dice", "generalized_dice", "dice_ce", "dice_focal"])
@pytest.mark.parametrize("ignore", [False, True])
def test_softmax_stats_node_donates_p_only_when_the_graph_is_dropped(name, ignore):
    """The Dice family's softmax node writes its gradient into the saved probabilities unless
    retain_graph keeps the graph or create_graph builds one: every path gives the same gradient
    (float64, 1e-12), with and without ignored positions; a second backward with retain_graph
    adds the same gradient again; only the plain backward returns the saved p itself."""
    logits, target = make_inputs("multiclass", c=5, spatial=(6, 7), ignore_frac=0.3 if ignore else 0.0,
                                 dtype=torch.float64, scale=4.0)
    loss = build_loss(name, mode="multiclass", ignore_index=IGNORE)

    def backward(retain: bool, create: bool = False) -> tuple[torch.Tensor, bool]:
        """(gradient, whether the gradient tensor is one of the saved tensors)."""
        leaf = logits.detach().clone().requires_grad_()
        scores = leaf * 1.0  # a non-leaf, so a hook sees the node's gradient tensor itself
        grad_ptrs: list[int] = []
        scores.register_hook(lambda grad: grad_ptrs.append(grad.data_ptr()))
        saved: list[torch.Tensor] = []
        with torch.autograd.graph.saved_tensors_hooks(lambda t: saved.append(t) or t, lambda t: t):
            value = loss(scores, target)
        (first,) = torch.autograd.grad(value, leaf, retain_graph=retain, create_graph=create)
        if retain and not create:
            (second,) = torch.autograd.grad(value, leaf)
            torch.testing.assert_close(second, first, rtol=1e-12, atol=1e-15)
        return first.detach(), grad_ptrs[0] in {t.data_ptr() for t in saved if t.numel() == logits.numel()}

    donated, donated_is_saved = backward(retain=False)
    for retain, create in [(True, False), (False, True)]:
        kept, kept_is_saved = backward(retain, create)
        torch.testing.assert_close(donated, kept, rtol=1e-12, atol=1e-15)
        assert not kept_is_saved
    # with ignored positions a masked_fill's backward stands between the node and the input
    assert donated_is_saved is not ignore
    assert torch.isfinite(donated).all() and donated.abs().sum() > 0
