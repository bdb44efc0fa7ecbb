"""datamodules.base: the shared options, argument errors and seeded loaders of every datamodule."""
from __future__ import annotations

import pytest
import torch

from datamodules.base import check_int, invalid, renamed_option
from datamodules.synthetic import SyntheticSegDataModule
from datamodules.synthetic_det import SyntheticDetDataModule

SMALL = {"train_size": 8, "val_size": 2, "test_size": 2, "batch_size": 4}


def test_argument_errors_have_one_shape():
    with pytest.raises(ValueError, match=r"^folder: batch_size=0 is invalid; expected an int >= 1$"):
        check_int("folder", "batch_size", 0, 1)
    with pytest.raises(ValueError, match=r"^x: num_workers=True is invalid; expected an int >= 0$"):
        check_int("x", "num_workers", True, 0)
    with pytest.raises(ValueError, match=r"^coco: mode='a' is invalid; expected b$"):
        invalid("coco", "mode", "a", "b")
    for module in (SyntheticSegDataModule, SyntheticDetDataModule):
        with pytest.raises(ValueError, match=r": num_workers=-1 is invalid; expected an int >= 0"):
            module(**{**SMALL, "num_workers": -1})


def test_pin_memory_follows_cuda_unless_switched_off():
    cuda = torch.cuda.is_available()
    for value, expected in ((None, cuda), (True, cuda), (False, False)):
        assert SyntheticSegDataModule(**SMALL, pin_memory=value).pin_memory is expected


def test_training_order_is_seeded_and_eval_order_fixed():
    def first_masks(seed: int, split: str) -> torch.Tensor:
        datamodule = SyntheticSegDataModule(**SMALL, seed=1)
        datamodule.seed = seed  # same data, other batch order
        loader = getattr(datamodule, f"{split}_dataloader")()
        return next(iter(loader))["mask"]

    assert torch.equal(first_masks(3, "train"), first_masks(3, "train"))
    assert not torch.equal(first_masks(3, "train"), first_masks(4, "train"))
    assert torch.equal(first_masks(3, "val"), first_masks(4, "val"))


def test_a_renamed_option_keeps_working_with_a_warning():
    assert renamed_option("folder", "cache_images", None, "cache", True) is True
    with pytest.warns(FutureWarning, match="'cache_images' is deprecated .* use 'cache'"):
        assert renamed_option("folder", "cache_images", False, "cache", True) is False
