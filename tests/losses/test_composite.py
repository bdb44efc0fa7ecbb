"""Composite losses: weighted sums, per-term values, one shared softmax, class-count forwarding, MONAI parity."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from losses import build_loss
from losses.composite import CompositeLoss
from tests.losses.loss_inputs import IGNORE, grads, make_inputs


def assert_close(ours: torch.Tensor, ref: torch.Tensor) -> None:
    torch.testing.assert_close(ours, ref.to(ours.dtype), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("mode", ["binary", "multiclass", "multilabel"])
def test_weighted_sum_and_last_terms(mode):
    logits, target = make_inputs(mode, c=3, spatial=(5, 4), ignore_frac=0.2)
    terms = {"dice": {"weight": 1.0}, "focal": {"weight": 0.5, "gamma": 2.0},
             "fg_jaccard": {"loss": "jaccard", "weight": 0.25, "include_background": False}}
    loss = CompositeLoss(terms=terms, mode=mode, ignore_index=IGNORE)
    value, grad = grads(loss, logits, target)
    dice = build_loss("dice", mode=mode, ignore_index=IGNORE)
    focal = build_loss("focal", mode=mode, ignore_index=IGNORE, gamma=2.0)
    jac = build_loss("jaccard", mode=mode, ignore_index=IGNORE, include_background=False)
    separate = lambda x, t: dice(x, t) + 0.5 * focal(x, t) + 0.25 * jac(x, t)  # noqa: E731
    ref_value, ref_grad = grads(separate, logits, target)
    assert_close(value, ref_value)
    assert_close(grad, ref_grad)
    focal = focal(logits, target)
    assert set(loss.last_terms) == {"dice", "focal", "fg_jaccard"}
    assert_close(loss.last_terms["focal"], focal)
    assert not loss.last_terms["dice"].requires_grad


def test_softmax_and_log_softmax_are_computed_once(monkeypatch):
    """dice, tversky, ce and focal share one log-softmax node (its exp gives the probabilities)."""
    calls = {"softmax": 0, "log_softmax": 0}

    def counting(module, name):
        real = getattr(module, name)

        def wrapper(*args, **kwargs):
            calls[name] += 1
            return real(*args, **kwargs)

        monkeypatch.setattr(module, name, wrapper)

    counting(F, "softmax")
    counting(F, "log_softmax")
    logits, target = make_inputs("multiclass", c=4)
    loss = build_loss("composite", mode="multiclass", terms={"dice": {}, "ce": {}, "focal": {}, "tversky": {}})
    loss(logits, target)
    assert calls == {"softmax": 0, "log_softmax": 1}


@pytest.mark.parametrize("spatial", [(6, 7), (3, 4, 5)])
def test_dice_ce_matches_monai(spatial):
    from monai.losses import DiceCELoss as MonaiDiceCE

    logits, target = make_inputs("multiclass", c=4, spatial=spatial)
    ours = build_loss("dice_ce", mode="multiclass")
    ref = MonaiDiceCE(softmax=True, to_onehot_y=True)
    v, g = grads(ours, logits, target)
    rv, rg = grads(lambda x, t: ref(x, t.unsqueeze(1)), logits, target)
    assert_close(v, rv)
    assert_close(g, rg)


def test_dice_focal_matches_monai_in_multilabel_mode():
    """MONAI's DiceFocalLoss always uses the sigmoid focal term, so it is our multilabel mode."""
    from monai.losses import DiceFocalLoss as MonaiDiceFocal

    logits, target = make_inputs("multilabel", c=3, spatial=(6, 6))
    ours = build_loss("dice_focal", mode="multilabel")
    ref = MonaiDiceFocal(sigmoid=True, gamma=2.0)
    v, g = grads(ours, logits, target)
    rv, rg = grads(ref, logits, target)
    assert_close(v, rv)
    assert_close(g, rg)


def test_dice_focal_defaults():
    loss = build_loss("dice_focal", mode="multiclass")
    assert loss.term_weights == {"dice": 1.0, "focal": 1.0}
    assert loss.terms["focal"].gamma == 2.0


def test_class_counts_are_forwarded_to_terms():
    loss = build_loss("dice_ce", mode="multiclass", class_weights="auto", weight_scheme="inverse_sqrt")
    assert loss.requires_class_counts
    counts = torch.tensor([900.0, 90.0, 10.0], dtype=torch.float64)
    loss.set_class_counts(counts)
    assert not loss.requires_class_counts
    expected = counts.rsqrt() / counts.rsqrt().mean()
    torch.testing.assert_close(loss.class_weights, expected.float())
    torch.testing.assert_close(loss.terms["ce"].class_weights, expected.float())
    torch.testing.assert_close(loss.terms["dice"].class_weights, expected.float())


def test_bad_terms_are_rejected():
    with pytest.raises(ValueError, match="unknown loss 'dcie'"):
        CompositeLoss(terms={"dcie": {}}, mode="multiclass")
    with pytest.raises(ValueError, match="weight must be >= 0"):
        CompositeLoss(terms={"dice": {"weight": -1}}, mode="multiclass")
    with pytest.raises(ValueError, match="reduction"):
        CompositeLoss(terms={"dice": {}}, mode="multiclass", reduction="none")
