"""Malformed input and parameters -> ValueError naming the argument, the value seen, what is accepted."""
from __future__ import annotations

import pytest
import torch

from losses import build_loss
from tests.losses.loss_inputs import IGNORE

SEGMENTATION = ["ce", "focal", "dice", "jaccard", "tversky", "focal_tversky", "generalized_dice", "mcc",
                "lovasz", "cldice", "unified_focal", "topk_ce", "dice_ce", "dice_focal"]


@pytest.mark.parametrize("name", SEGMENTATION)
def test_input_errors(name):
    loss = build_loss(name, mode="multiclass", ignore_index=IGNORE)
    logits = torch.randn(2, 3, 4, 4)
    with pytest.raises(ValueError, match=r"target: multiclass mode expects shape \(2, 4, 4\).*got \(2, 4, 5\)"):
        loss(logits, torch.zeros(2, 4, 5, dtype=torch.long))
    with pytest.raises(ValueError, match=r"target: class indices must lie in \[0, 3\).*ignore_index=255, got values in \[3, 3\]"):
        loss(logits, torch.full((2, 4, 4), 3))
    with pytest.raises(ValueError, match="use mode='multilabel'"):
        loss(logits, torch.zeros(2, 3, 4, 4, dtype=torch.long))
    with pytest.raises(ValueError, match="integer class indices"):
        loss(logits, torch.zeros(2, 4, 4))


def test_mode_inconsistent_with_shapes():
    with pytest.raises(ValueError, match=r"target: binary mode expects the spatial shape"):
        build_loss("dice", mode="binary")(torch.randn(2, 1, 4, 4), torch.zeros(2, 4, 5))
    with pytest.raises(ValueError, match=r"target: multilabel mode expects the prediction's shape"):
        build_loss("focal", mode="multilabel")(torch.randn(2, 3, 4, 4), torch.zeros(2, 4, 4))
    with pytest.raises(ValueError, match=r"values in \[0, 1\].*got values in \[2.0, 2.0\]"):
        build_loss("bce", mode="binary")(torch.randn(2, 4, 4), torch.full((2, 4, 4), 2))
    with pytest.raises(ValueError, match=r"values in \[0, 1\].*got values in \[nan, nan\]"):
        build_loss("dice", mode="multilabel")(torch.randn(1, 2, 3), torch.full((1, 2, 3), float("nan")))
    with pytest.raises(ValueError, match="at most 3 spatial dims"):
        build_loss("ce", mode="multiclass")(torch.randn(1, 2, 2, 2, 2, 2), torch.zeros(1, 2, 2, 2, 2, dtype=torch.long))
    with pytest.raises(ValueError, match="prediction must be a floating-point tensor"):
        build_loss("ce", mode="multiclass")(torch.zeros(1, 2, 3, dtype=torch.long), torch.zeros(1, 3, dtype=torch.long))


@pytest.mark.parametrize("name", ["ce", "weighted_ce", "focal", "dice", "tversky", "mcc", "lovasz", "cldice", "topk_ce"])
def test_wrong_length_class_weights(name):
    loss = build_loss(name, mode="multiclass", class_weights=[1.0, 2.0])
    with pytest.raises(ValueError, match=r"class_weights: expected 3 weights for multiclass mode.*got 2"):
        loss(torch.randn(1, 3, 4, 4), torch.zeros(1, 4, 4, dtype=torch.long))


@pytest.mark.parametrize("name,kwargs,match", [
    ("tversky", dict(alpha=1.5), r"alpha must lie in \[0.0, 1.0\], got 1.5"),
    ("tversky", dict(beta=-0.1), r"beta must lie in \[0.0, 1.0\], got -0.1"),
    ("focal_tversky", dict(gamma=0.0), r"gamma must lie in \(0.0, inf\]"),
    ("focal", dict(alpha=2.0), r"alpha must lie in \[0.0, 1.0\], got 2.0"),
    ("focal", dict(gamma=-1.0), "gamma must lie in"),
    ("generalized_dice", dict(weight_type="log"), r"weight_type must be one of \('square', 'simple', 'uniform'\), got 'log'"),
    ("dice", dict(mode="multi"), r"mode must be one of \('binary', 'multiclass', 'multilabel'\), got 'multi'"),
    ("dice", dict(reduction="avg"), "reduction must be one of"),
    ("dice", dict(smooth=-1.0), "smooth must lie in"),
    ("ce", dict(label_smoothing=1.0), r"label_smoothing must lie in \[0.0, 1.0\)"),
    ("ce", dict(class_weights=[1.0, -1.0]), "class_weights must be a non-empty list of finite, non-negative"),
    ("ce", dict(class_weights="inverse"), "class_weights must be None, 'auto' or a list"),
    ("weighted_ce", dict(weight_scheme="log"), "weight_scheme must be one of"),
    ("topk_ce", dict(k=0.0), r"k must lie in \(0.0, 100.0\]"),
    ("bce", dict(mode="multiclass"), "bce supports 'binary' and 'multilabel', got 'multiclass'"),
    ("bce", dict(mode="binary", pos_weight=0.0), "pos_weight must be a positive number"),
    ("cldice", dict(iterations=-1), "iterations must be a non-negative int, got -1"),
    ("unified_focal", dict(delta=1.2), "delta must lie in"),
    ("unified_focal", dict(gamma=1.0), r"gamma must lie in \[0.0, 1.0\), got 1.0"),
    ("unified_focal", dict(gamma=1.5), r"gamma must lie in \[0.0, 1.0\), got 1.5"),
    ("dice", dict(class_weight_beta=1.0), r"class_weight_beta must lie in \(0.0, 1.0\)"),
    ("unified_focal", dict(reduction="sum"), "unified_focal supports only 'mean'"),
    ("dice", dict(ignore_index=1.5), "ignore_index must be an int or None, got 1.5"),
])
def test_parameter_errors(name, kwargs, match):
    kwargs = {"mode": "multiclass", **kwargs}
    with pytest.raises(ValueError, match=match):
        build_loss(name, **kwargs)


def test_focal_alpha_list_length_checked_at_forward():
    loss = build_loss("focal", mode="multiclass", alpha=[0.2, 0.8])
    with pytest.raises(ValueError, match=r"alpha: expected one value per class \(3\), got 2"):
        loss(torch.randn(1, 3, 4), torch.zeros(1, 4, dtype=torch.long))


def test_unknown_loss_lists_available_in_bad_input():
    with pytest.raises(ValueError, match="unknown loss 'dicee'; available losses: .*dice_focal"):
        build_loss("dicee")


@pytest.mark.parametrize("name", ["ce", "dice"])
def test_target_range_check_runs_on_the_first_passing_calls_then_torch_bounds_checks(name, monkeypatch):
    """The range check costs a pass and a host sync: it runs until ``target_checks`` calls have
    passed it; afterwards an out-of-range class index still fails, in torch's indexing kernels."""
    import losses.validation as validation

    calls = []
    real = validation._raise_out_of_range
    monkeypatch.setattr(validation, "_raise_out_of_range", lambda *a: (calls.append(1), real(*a)))
    loss = build_loss(name, mode="multiclass")
    logits, good, bad = torch.randn(2, 3, 4, 4), torch.randint(0, 3, (2, 4, 4)), torch.full((2, 4, 4), 3)
    with pytest.raises(ValueError, match=r"class indices must lie in \[0, 3\)"):
        loss(logits, bad)  # a failing call does not use up a check
    for _ in range(4):
        loss(logits, good)
    assert len(calls) == 1 + loss.target_checks == 3
    with pytest.raises((IndexError, RuntimeError)):
        loss(logits, bad)


def test_ce_does_not_ignore_torchs_default_ignore_index():
    """torch's cross_entropy ignores -100 by default; ours ignores nothing unless asked, so a -100
    label in a batch past the range checks still fails instead of silently dropping out."""
    loss = build_loss("ce", mode="multiclass")
    logits, target = torch.randn(2, 3, 4, 4), torch.randint(0, 3, (2, 4, 4))
    for _ in range(loss.target_checks):
        loss(logits, target)
    target[0, 0, 0] = -100
    with pytest.raises((IndexError, RuntimeError)):
        loss(logits, target)
