"""volume_folder: both layouts, dataset.json, splits, real-file quirks, preprocessing, and one error for all bad cases."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).parent))
from mri_like import write_mri_like_folder  # noqa: E402

from datamodules.volumes.nifti_io import write_nifti  # noqa: E402
from datamodules.volumes.preprocess import normalize_intensity, resample  # noqa: E402
from datamodules.volumes.volume_folder import VolumeFolderDataModule, VolumeProblems  # noqa: E402

SMALL = dict(patch_size=(8, 8, 4), patches_per_epoch=4, batch_size=2, eval_batch_size=2)
SHAPE = (12, 10, 6)


@pytest.fixture
def decathlon(tmp_path: Path) -> Path:
    return write_mri_like_folder(tmp_path / "Task99", cases=8, seed=0, shape=SHAPE)


def test_decathlon_folder_reads_classes_channels_spacing_and_float_labels(decathlon):
    dm = VolumeFolderDataModule(decathlon, **SMALL)
    assert dm.num_classes == 3 and dm.in_channels == 1 and dm.class_names == ["background", "body", "tail"]
    stores = dm.volumes()
    assert [len(stores[s]) for s in ("train", "val", "test")] == [6, 1, 1]
    volume = stores["train"][0]
    assert volume.image.shape == (1, *SHAPE) and volume.image.dtype == np.float32
    assert abs(float(volume.image.mean())) < 1e-5 and abs(float(volume.image.std()) - 1) < 1e-4  # z-score per volume
    assert volume.labels.dtype == np.uint8 and set(np.unique(volume.labels)) <= {0, 1, 2}
    assert volume.spacing[2] == pytest.approx(3.0) and 0.9 < volume.spacing[0] < 1.1
    batch = next(iter(dm.val_dataloader()))
    assert batch["spacing"][0, 2].item() == pytest.approx(3.0)


def test_images_masks_layout_and_split_files(tmp_path):
    root = tmp_path / "data"
    rng = np.random.default_rng(0)
    for name in ("a", "b", "c", "d"):
        labels = (rng.random(SHAPE) > 0.8).astype(np.uint8)
        write_nifti(root / "images" / f"{name}.nii", rng.random(SHAPE).astype(np.float32), (1.0, 1.0, 2.0))
        write_nifti(root / "masks" / f"{name}.nii.gz", labels, (1.0, 1.0, 2.0))
    (root / "splits").mkdir()
    (root / "splits" / "train.txt").write_text("a\nb  # comment\n\n")
    (root / "splits" / "val.txt").write_text("c\n")
    dm = VolumeFolderDataModule(root, num_classes=2, **SMALL)
    assert dm.splits == {"train": ["a", "b"], "val": ["c"], "test": ["c"]}
    (root / "splits" / "val.txt").write_text("c\nzz\n")
    with pytest.raises(ValueError, match="zz"):
        VolumeFolderDataModule(root, num_classes=2, **SMALL)


def test_one_error_lists_every_bad_case(decathlon):
    spacing = (1.0, 1.0, 3.0)
    write_nifti(decathlon / "labelsTr" / "mri_001.nii.gz", np.zeros((5, 5, 5)), spacing)            # shape
    shifted = np.diag([*spacing, 1.0])
    shifted[0, 3] = 7.0
    write_nifti(decathlon / "imagesTr" / "mri_002.nii.gz", np.ones(SHAPE, np.float32), spacing)
    write_nifti(decathlon / "labelsTr" / "mri_002.nii.gz", np.zeros(SHAPE), spacing, shifted)      # affine
    write_nifti(decathlon / "imagesTr" / "mri_003.nii.gz", np.ones(SHAPE, np.float32), spacing)
    write_nifti(decathlon / "labelsTr" / "mri_003.nii.gz", np.full(SHAPE, 0.5), spacing)           # non-integer
    write_nifti(decathlon / "imagesTr" / "mri_004.nii.gz", np.ones(SHAPE, np.float32), spacing)
    write_nifti(decathlon / "labelsTr" / "mri_004.nii.gz", np.full(SHAPE, 7.0), spacing)           # class id
    (decathlon / "imagesTr" / "mri_005.nii.gz").write_bytes(b"not a nifti")                         # unreadable
    dm = VolumeFolderDataModule(decathlon, **SMALL)
    with pytest.raises(VolumeProblems) as info:
        dm.setup()
    message = str(info.value)
    assert "5 problem(s)" in message
    for fragment in ("mri_001: image", "shape [12, 10, 6] != label", "affines differ by up to 7",
                     "non-integer values [0.5]", "values [7] are not class ids", "mri_005.nii.gz: not a readable"):
        assert fragment in message


def test_unpaired_files_are_named(decathlon):
    (decathlon / "labelsTr" / "mri_003.nii.gz").unlink()
    with pytest.raises(ValueError, match="image\\(s\\) without a label .*mri_003"):
        VolumeFolderDataModule(decathlon, **SMALL)


def test_multimodal_4d_images_and_nnunet_channel_files(tmp_path):
    rng = np.random.default_rng(1)
    spacing = (1.0, 1.0, 1.0)
    for layout in ("4d", "channels"):
        root = tmp_path / layout
        for k in range(4):
            labels = (rng.random(SHAPE) > 0.7).astype(np.float32)
            modalities = [rng.random(SHAPE).astype(np.float32) * 10 ** m for m in range(2)]
            if layout == "4d":
                write_nifti(root / "imagesTr" / f"c{k}.nii.gz", np.stack(modalities, -1), spacing)
            else:
                for m, array in enumerate(modalities):
                    write_nifti(root / "imagesTr" / f"c{k}_{m:04d}.nii.gz", array, spacing)
            write_nifti(root / "labelsTr" / f"c{k}.nii.gz", labels, spacing)
        (root / "dataset.json").write_text(json.dumps({"modality": {"0": "FLAIR", "1": "T1w"},
                                                       "labels": {"0": "background", "1": "tumour"}}))
        dm = VolumeFolderDataModule(root, split_fractions=(0.5, 0.25, 0.25), **SMALL)
        volume = dm.volumes()["train"][0]
        assert dm.in_channels == 2 and volume.image.shape == (2, *SHAPE)
        assert np.allclose(volume.image.reshape(2, -1).std(1), 1.0, atol=1e-4)  # each modality z-scored
        batch = next(iter(dm.train_dataloader()))
        assert batch["image"].shape == (2, 2, 8, 8, 4)


def test_channel_count_differing_from_in_channels_is_reported(decathlon):
    with pytest.raises(VolumeProblems, match="expected in_channels=2"):
        VolumeFolderDataModule(decathlon, in_channels=2, **SMALL).setup()


def test_ct_window_and_resampling(decathlon):
    image = np.array([-1000.0, -160.0, 40.0, 240.0, 3000.0]).reshape(1, 5, 1, 1)
    assert normalize_intensity(image, "ct", [-160, 240]).ravel().tolist() == pytest.approx([-1, -1, 0, 1, 1])
    labels = np.zeros((10, 10, 4), dtype=np.uint8)
    labels[2:6, 2:6, 1:3] = 2
    out_image, out_labels, spacing = resample(np.ones((1, 10, 10, 4), np.float32), labels, (1.0, 1.0, 3.0), (2.0, 2.0, 1.5))
    assert out_labels.shape == (5, 5, 8) and out_image.shape == (1, 5, 5, 8)
    assert spacing == pytest.approx((2.0, 2.0, 1.5)) and set(np.unique(out_labels)) == {0, 2}
    dm = VolumeFolderDataModule(decathlon, target_spacing=(2.0, 2.0, 3.0), **SMALL)
    volume = dm.volumes()["train"][0]
    assert volume.spacing[0] == pytest.approx(2.0, rel=0.1) and volume.labels.shape[0] == 6


def test_unknown_normalization_and_missing_num_classes(decathlon, tmp_path):
    with pytest.raises(ValueError, match="normalize must be one of"):
        VolumeFolderDataModule(decathlon, normalize="minmax", **SMALL)
    (decathlon / "dataset.json").unlink()
    with pytest.raises(ValueError, match="num_classes is null"):
        VolumeFolderDataModule(decathlon, **SMALL)


@pytest.mark.parametrize("shapes, spacing, budget, expected", [
    ([(36, 50, 35), (34, 48, 37), (40, 52, 33)], (1.0, 1.0, 1.0), 65_536, (40, 40, 40)),  # hippocampus-like
    ([(36, 50, 35)], (1.0, 1.0, 1.0), 100_000, (40, 56, 40)),  # a whole case when it fits
    ([(64, 64, 40)] * 3, (1.0, 1.0, 3.0), 65_536, (64, 64, 16)),  # anisotropic: z is longest in mm, cut first
    ([(512, 512, 120)], (0.8, 0.8, 2.5), 65_536, (64, 64, 16)),  # large CT: 51 x 51 x 40 mm
    ([(5, 3, 2)], (1.0, 1.0, 1.0), 10, (8, 8, 8)),  # never below the multiple
])
def test_auto_patch_size_follows_the_median_case_and_the_voxel_budget(shapes, spacing, budget, expected):
    from datamodules.volumes.base import auto_patch_size

    patch = auto_patch_size(shapes, [spacing] * len(shapes), budget, 8)
    assert patch == expected
    assert all(p % 8 == 0 for p in patch)


def test_patch_size_auto_is_resolved_from_the_training_volumes(decathlon):
    dm = VolumeFolderDataModule(decathlon, **{**SMALL, "patch_size": "auto", "patch_max_voxels": 256, "patch_multiple": 4})
    assert dm.patch_size is None
    window = dm.eval_window  # reading it loads the volumes
    # median case 12 x 10 x 6 at ~1 x 1 x 3 mm -> 12 x 12 x 8 (1152 voxels) -> cut z (24 mm) then x, y
    assert tuple(window["patch_size"]) == dm.patch_size and dm.patch_size == (8, 8, 4)
    batch = next(iter(dm.train_dataloader()))
    assert batch["image"].shape[2:] == (8, 8, 4)
    with pytest.raises(ValueError, match="patch_size must be three positive ints .* or 'auto', got 'big'"):
        VolumeFolderDataModule(decathlon, **{**SMALL, "patch_size": "big"})


def test_macos_metadata_files_of_the_decathlon_archives_are_skipped_with_a_warning(decathlon, caplog):
    for folder in ("imagesTr", "labelsTr"):  # what the Decathlon tarballs hold next to every case
        for path in list((decathlon / folder).iterdir())[:3]:
            (decathlon / folder / f"._{path.name}").write_bytes(b"\x00\x05\x16\x07 AppleDouble")
    with caplog.at_level("WARNING"):
        dm = VolumeFolderDataModule(decathlon, **SMALL)
    assert len(dm.cases) == 8 and not any(c.name.startswith(".") for c in dm.cases)
    assert "skipped 3 hidden file(s)" in caplog.text and "._mri_000.nii.gz" in caplog.text
    assert sum(len(v) for v in dm.volumes().values()) == 8


def test_nnunet_v2_dataset_json_labels_are_read_the_other_way_round(decathlon):
    meta = json.loads((decathlon / "dataset.json").read_text())
    meta["labels"] = {"background": 0, "body": 1, "tail": 2}  # nnU-Net v2: name -> id
    meta["channel_names"] = meta.pop("modality")
    (decathlon / "dataset.json").write_text(json.dumps(meta))
    dm = VolumeFolderDataModule(decathlon, **SMALL)
    assert dm.num_classes == 3 and dm.class_names == ["background", "body", "tail"] and dm.in_channels == 1
