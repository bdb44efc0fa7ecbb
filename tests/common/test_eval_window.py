"""One key set for the evaluation window of 2-D and 3-D datamodules; the 3-D names of the last release still work."""
from __future__ import annotations

import warnings

import pytest

from common.eval_window import RENAMED_WINDOW_KEYS, WINDOW_DEFAULTS, window_options
from datamodules.volumes.synthetic_3d import Synthetic3DDataModule
from runtime.builders import build_eval_inferer

TINY = dict(volume_size=(24, 24, 16), patch_size=(16, 16, 8), train_size=3, val_size=1, test_size=2,
            patches_per_epoch=8, batch_size=2, eval_batch_size=2)


def test_options_are_completed_with_the_defaults_and_keep_a_patch_size():
    out = window_options("X: sliding_window", {"overlap": 0.5, "patch_size": [64, 32]}, 2)
    assert out == {**WINDOW_DEFAULTS, "overlap": 0.5, "patch_size": [64, 32]}
    assert window_options("X: sliding_window", {}, 3) == WINDOW_DEFAULTS


def test_old_3d_names_warn_naming_old_and_new_and_map_to_the_new_keys():
    old = {"mode": "constant", "sw_batch_size": 3, "whole_volume_max_voxels": 1000}
    with pytest.warns(FutureWarning) as caught:
        out = window_options("X: sliding_window", old, 3)
    messages = [str(w.message) for w in caught]
    for key, new in RENAMED_WINDOW_KEYS.items():
        assert any(f"key {key!r} is deprecated" in m and f"use {new!r}" in m for m in messages), (key, messages)
    assert (out["blend"], out["batch_size"], out["whole_input_max_pixels"]) == ("constant", 3, 1000)


def test_new_names_do_not_warn():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        window_options("X: sliding_window", {"blend": "constant", "batch_size": 3, "whole_input_max_pixels": 10}, 3)


@pytest.mark.parametrize(("options", "match"), [
    ({"sw_batch_size": 2, "batch_size": 2}, r"X: sliding_window: 'sw_batch_size' is the deprecated name of "
                                            r"'batch_size'; set only 'batch_size'"),
    ({"stride": 4}, r"X: sliding_window: unknown key\(s\) \['stride'\]; accepted: \['batch_size', 'blend', "),
    ({"mode": "median"}, r"X: sliding_window\.mode must be one of \('gaussian', 'constant'\), got 'median'"),
    ({"overlap": -0.1}, r"X: sliding_window\.overlap must be in \[0, 1\), got -0.1"),
    ({"sigma_scale": 0}, r"X: sliding_window\.sigma_scale must be > 0, got 0"),
    ({"pad_multiple": 2.5}, r"X: sliding_window\.pad_multiple must be an int >= 1, got 2.5"),
    ({"batch_size": True}, r"X: sliding_window\.batch_size must be a number, got True"),
    ({"patch_size": [32, 32]}, r"X: sliding_window\.patch_size must be 3 positive ints, got \[32, 32\]"),
])
def test_bad_options_name_the_key_as_written(options, match):
    with pytest.raises(ValueError, match=match), warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        window_options("X: sliding_window", options, 3)


def test_a_3d_datamodule_with_last_releases_keys_builds_the_same_inferer():
    old = {"overlap": 0.5, "mode": "constant", "sigma_scale": 0.2, "sw_batch_size": 3, "whole_volume_max_voxels": 99}
    new = {"overlap": 0.5, "blend": "constant", "sigma_scale": 0.2, "batch_size": 3, "whole_input_max_pixels": 99}
    with pytest.warns(FutureWarning) as caught:
        from_old = Synthetic3DDataModule(sliding_window=old, **TINY).eval_window
    assert sorted(str(w.message).split("'")[1] for w in caught) == ["mode", "sw_batch_size", "whole_volume_max_voxels"]
    assert str(caught[0].message).startswith("Synthetic3DDataModule: sliding_window: key ")
    from_new = Synthetic3DDataModule(sliding_window=new, **TINY).eval_window
    assert from_old == from_new == {"patch_size": [16, 16, 8], **new, "pad_multiple": 8}
    inferer = build_eval_inferer(Synthetic3DDataModule(sliding_window=new, **TINY))
    assert (inferer.patch_size, inferer.blend, inferer.batch_size, inferer.whole_input_max_pixels,
            inferer.pad_multiple) == ((16, 16, 8), "constant", 3, 99, 8)


def test_a_3d_window_may_set_its_own_patch_size():
    window = Synthetic3DDataModule(sliding_window={"patch_size": [24, 24, 16]}, **TINY).eval_window
    assert window["patch_size"] == [24, 24, 16]
