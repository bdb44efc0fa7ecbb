"""The registry and the loss surface: documented classes, declared keywords, a planned SegInput."""
from __future__ import annotations

import pytest
import torch

from losses import available, build_loss, get_loss_class
from losses.inputs import SegInput
from tests.losses.loss_inputs import IGNORE, make_inputs


@pytest.mark.parametrize("name", available())
def test_every_public_loss_documents_args_raises_and_an_example(name):
    doc = get_loss_class(name).__doc__ or ""
    for section in ("Args:", "Raises:", "Example::"):
        assert section in doc, f"{name}: docstring lacks {section}"


@pytest.mark.parametrize("name", available())
def test_keyword_defaults_build_the_default_loss(name):
    cls = get_loss_class(name)
    defaults = cls.keyword_defaults()
    assert all(cls.accepts(k) if hasattr(cls, "accepts") else True for k in defaults)
    if "mode" in defaults:
        defaults["mode"] = "binary" if name == "bce" else "multiclass"
    assert type(cls(**defaults)) is cls


def test_unknown_loss_name_lists_the_registry():
    with pytest.raises(ValueError, match="unknown loss 'dicee'; available losses: .*dice_focal"):
        build_loss("dicee")


@pytest.mark.parametrize("order", [("probs", "log_prob_of_target"), ("log_prob_of_target", "probs")])
def test_seginput_values_do_not_depend_on_the_order_of_access(order):
    """The plan, fixed at construction, decides how each quantity is computed (issue 12)."""
    logits, target = make_inputs("multiclass", c=4, spatial=(5, 5), ignore_frac=0.2)
    plan = frozenset({"probs", "log_prob_of_target", "class_stats"})
    reference = SegInput(logits, target, "multiclass", True, IGNORE, plan=plan)
    expected = {name: getattr(reference, name) for name in ("probs", "log_prob_of_target")}
    inp = SegInput(logits, target, "multiclass", True, IGNORE, plan=plan)
    for name in order:
        assert not inp.cached(name) and inp.planned(name)
        assert torch.equal(getattr(inp, name), expected[name])
        assert inp.cached(name)
    assert torch.equal(inp.class_stats()[0], reference.class_stats()[0])


def test_composite_term_order_does_not_change_the_value():
    logits, target = make_inputs("multiclass", c=3, spatial=(8, 8), ignore_frac=0.1)
    kw = dict(mode="multiclass", ignore_index=IGNORE)
    a = build_loss("composite", terms={"cldice": {}, "ce": {}, "dice": {}}, **kw)(logits, target)
    b = build_loss("composite", terms={"dice": {}, "ce": {}, "cldice": {}}, **kw)(logits, target)
    torch.testing.assert_close(a, b, rtol=1e-6, atol=0)


def test_unknown_plan_entry_is_rejected():
    logits, target = make_inputs("binary")
    with pytest.raises(ValueError, match="plan: unknown quantities"):
        SegInput(logits, target, "binary", True, None, plan=frozenset({"softmax"}))
