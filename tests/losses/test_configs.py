"""configs/loss/<name>.yaml: one per registered loss, composed by Hydra (with the shared base files),
building the registered class with exactly the constructor's own defaults."""
from __future__ import annotations

import warnings
from pathlib import Path

import pytest
import torch
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.errors import InstantiationException
from hydra.utils import instantiate
from omegaconf import OmegaConf

from losses import available, build_loss, get_loss_class
from losses.box import BoxLoss

CONFIGS = Path(__file__).resolve().parents[2] / "configs" / "loss"
NAMES = available("segmentation")
BOX_NAMES = available("detection")


def load(name: str, mode: str = "multiclass", ignore_index: int | None = 255, overrides: tuple[str, ...] = ()):
    """The loss node as ``python train.py loss=<name>`` composes it (base files included)."""
    GlobalHydra.instance().clear()
    try:
        with initialize_config_dir(config_dir=str(CONFIGS), version_base="1.3"):
            cfg = compose(config_name=name, overrides=list(overrides))
    finally:
        GlobalHydra.instance().clear()
    datamodule = {"datamodule": {"mode": mode, "ignore_index": ignore_index}}
    return OmegaConf.merge(datamodule, {"loss": cfg}).loss


def resolved(cfg) -> dict:
    return OmegaConf.to_container(cfg, resolve=True)


@pytest.mark.parametrize("name", NAMES)
def test_yaml_shows_exactly_the_constructor_defaults(name):
    mode = "binary" if name == "bce" else "multiclass"
    values = resolved(load(name, mode))
    assert values.pop("_target_") == f"{get_loss_class(name).__module__}.{get_loss_class(name).__qualname__}"
    assert values.pop("mode") == mode and values.pop("ignore_index") == 255
    values.pop("terms", None)
    expected = get_loss_class(name).keyword_defaults()
    expected.pop("mode"), expected.pop("ignore_index"), expected.pop("terms", None)
    assert values == expected  # every key, every default, exact equality


@pytest.mark.parametrize("name", NAMES)
def test_yaml_and_build_loss_construct_the_same_loss(name):
    mode = "binary" if name == "bce" else "multiclass"
    loss = instantiate(load(name, mode))
    assert type(loss) is get_loss_class(name)
    built = build_loss(name, mode=mode, ignore_index=255)
    x = torch.randn(2, 1 if mode == "binary" else 3, 5, 5)
    t = torch.randint(0, 2 if mode == "binary" else 3, (2, 5, 5))
    if loss.requires_class_counts:
        counts = torch.tensor([5.0, 3.0, 2.0])
        loss.set_class_counts(counts)
        built.set_class_counts(counts)
    assert torch.equal(loss(x, t), built(x, t))


@pytest.mark.parametrize("name", BOX_NAMES)
def test_box_yaml_defaults_equal_constructor_defaults(name):
    cfg = resolved(load(name))
    cls = get_loss_class(name)
    assert cfg.pop("_target_") == f"{cls.__module__}.{cls.__qualname__}"
    assert cfg == cls.keyword_defaults()  # exact: smooth_l1's beta is 1/9 to the last digit
    loss = instantiate(load(name))
    assert isinstance(loss, BoxLoss) and type(loss) is cls
    pred = torch.tensor([[0.0, 0.0, 4.0, 3.0], [2.0, 2.0, 9.0, 5.0]])
    target = torch.tensor([[1.0, 0.5, 4.0, 4.0], [2.0, 1.0, 8.0, 6.0]])
    assert torch.equal(loss(pred, target), build_loss(name)(pred, target))


@pytest.mark.parametrize("name", ["dice_ce", "dice_focal", "composite"])
def test_composite_yaml_terms_override_from_the_command_line(name):
    cfg = load(name, overrides=("terms.dice.weight=0.25",))
    loss = instantiate(cfg)
    assert loss.term_weights["dice"] == 0.25
    assert set(loss.terms) == set(cfg.terms)


def test_null_ignore_index_and_auto_weights_from_yaml():
    loss = instantiate(load("weighted_ce", ignore_index=None))
    assert loss.ignore_index is None and loss.requires_class_counts
    loss.set_class_counts(torch.tensor([90.0, 10.0], dtype=torch.float64))
    torch.testing.assert_close(loss.class_weights, torch.tensor([0.2, 1.8]))


def test_shared_keys_live_in_the_base_files_only():
    """The 17 segmentation YAMLs do not repeat the shared keys; the base files hold them once."""
    shared = {"mode", "ignore_index", "from_logits", "reduction", "class_weights", "weight_scheme",
              "class_weight_beta"}
    for name in NAMES:
        raw = OmegaConf.load(CONFIGS / f"{name}.yaml")
        repeated = shared & set(raw) - ({"class_weights"} if name == "weighted_ce" else set())
        assert not repeated, f"{name}.yaml repeats {sorted(repeated)}"
        assert raw.defaults[0] == "base/segmentation@_here_"


def test_yaml_typo_names_the_loss_and_the_accepted_keywords():
    cfg = load("dice", overrides=("+smoth=1.0",))
    with pytest.raises(InstantiationException, match=r"loss 'dice' .*unsupported keyword\(s\) 'smoth'; it accepts: .*smooth"):
        instantiate(cfg)


def test_old_class_weight_beta_key_in_a_saved_config_still_works():
    cfg = load("weighted_ce", overrides=("~class_weight_beta", "+beta=0.99", "weight_scheme=effective_number"))
    with pytest.warns(DeprecationWarning, match="'beta' is deprecated.*'class_weight_beta'"):
        loss = instantiate(cfg)
    assert loss.class_weight_beta == 0.99
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert instantiate(load("tversky", overrides=("beta=0.9",))).beta == 0.9  # Tversky's own beta
