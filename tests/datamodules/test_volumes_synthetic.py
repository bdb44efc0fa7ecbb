"""synthetic_3d: determinism, shapes and imbalance of the generator; 3-D patches, sampler, augmentation, loaders."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy import ndimage

from datamodules.volumes.augment3d import Augment3D
from datamodules.volumes.base import pad_collate_3d
from datamodules.volumes.patches import VolumeForegroundIndex, VolumePatchSampler, crop3d
from datamodules.volumes.synthetic_3d import Synthetic3DDataModule

TINY = dict(volume_size=(24, 24, 16), patch_size=(16, 16, 8), train_size=3, val_size=1, test_size=2,
            patches_per_epoch=8, batch_size=2, eval_batch_size=2)


def test_volumes_are_deterministic_per_seed_split_and_index():
    a, b, c = Synthetic3DDataModule(seed=3, **TINY), Synthetic3DDataModule(seed=3, **TINY), Synthetic3DDataModule(seed=4, **TINY)
    va, vb, vc = a.volume("train", 1), b.volume("train", 1), c.volume("train", 1)
    assert np.array_equal(va.image, vb.image) and np.array_equal(va.labels, vb.labels)
    assert not np.array_equal(va.labels, vc.labels)
    assert not np.array_equal(va.labels, a.volume("val", 1).labels)


def test_default_volume_has_every_family_at_its_size():
    dm = Synthetic3DDataModule(seed=1)
    volume = dm.volume("train", 0)
    assert volume.image.shape == (1, 48, 48, 48) and volume.image.dtype == np.float32
    assert abs(float(volume.image.mean())) < 1e-4 and abs(float(volume.image.std()) - 1) < 1e-3
    lesions, n = ndimage.label(volume.labels == 3, structure=np.ones((3, 3, 3)))
    sizes = np.bincount(lesions.ravel())[1:]
    assert 2 <= n <= 5 and sizes.min() >= 7 and sizes.max() <= 33  # radius 1-2 voxels
    counts = np.bincount(volume.labels.ravel(), minlength=4)
    assert counts[1] > 5 * counts[3]  # blobs dominate the small lesions
    # a tube is thin: eroding twice leaves almost nothing of it
    tube = volume.labels == 2
    assert ndimage.binary_erosion(tube, iterations=2).sum() < 0.05 * tube.sum()


def test_object_counts_of_zero_remove_a_class():
    dm = Synthetic3DDataModule(seed=1, object_counts=[[1, 1], [0, 0], [3, 3]], **{k: v for k, v in TINY.items()
                                                                                  if k != "volume_size"})
    counts = dm.class_pixel_counts()
    assert counts[2] == 0 and counts[1] > 0 and counts[3] > 0


def test_binary_mode_merges_classes():
    dm = Synthetic3DDataModule(seed=1, mode="binary", shape_families=["blob"], object_counts=[[1, 2]],
                               radius_ranges=[[3, 5]], intensities=[1.0], class_names=["background", "blob"], **TINY)
    assert set(np.unique(dm.volume("train", 0).labels)) <= {0, 1} and dm.num_classes == 2


@pytest.mark.parametrize("bad,match", [
    (dict(shape_families=["blob", "cube"]), "shape_families"),
    (dict(object_counts=[[1, 2]]), "object_counts"),
    (dict(radius_ranges=[[1, 2], [0, 1], [1, 2]]), "radius_ranges"),
    (dict(patch_size=[16, 16]), "patch_size"),
    (dict(sliding_window={"mode": "median"}), "sliding_window.mode"),
    (dict(augment={"flip": 2.0}), "augment.flip"),
])
def test_bad_arguments_name_the_argument(bad, match):
    with pytest.raises(ValueError, match=match):
        Synthetic3DDataModule(**{**TINY, **bad})


def test_crop3d_pads_outside_the_volume():
    array = np.arange(4 * 4 * 4).reshape(4, 4, 4)
    out = crop3d(array, (-1, 2, 0), (3, 3, 4), fill=-7)
    assert out.shape == (3, 3, 4)
    assert (out[0] == -7).all() and (out[:, 2:] == -7).all()
    assert np.array_equal(out[1:, :2], array[:2, 2:4])


def test_sampler_foreground_share_is_exact_and_windows_hold_foreground():
    labels = np.zeros((20, 20, 20), dtype=np.uint8)
    labels[3, 4, 5] = 1
    labels[15:17, 15:17, 15:17] = 2
    index = VolumeForegroundIndex([1, 2], seed=0)
    index.add(labels)
    sampler = VolumePatchSampler(index, (8, 8, 8), num_patches=40, foreground_share=0.5, seed=0)
    windows = list(sampler)
    assert len(windows) == 40
    holding = [crop3d(labels, w[1:], (8, 8, 8), 0).any() for w in windows]
    assert sum(holding) >= 20
    for w in windows:
        assert all(0 <= s <= 12 for s in w[1:])  # inside the volume (volume >= patch)
    one_voxel = sum(crop3d(labels == 1, w[1:], (8, 8, 8), False).any() for w in windows)
    assert one_voxel >= 5  # the single-voxel class is drawn as often as the big one (~10 of 20)


def test_augmentation_moves_image_and_labels_together():
    torch.manual_seed(0)
    labels = torch.randint(0, 3, (8, 8, 4))
    image = labels[None].float()
    augment = Augment3D(flip=1.0, rotate90=1.0, intensity_p=0.0, noise_p=0.0)
    out_image, out_labels = augment(image, labels)
    assert torch.equal(out_image[0].long(), out_labels)
    assert not torch.equal(out_labels, labels)
    assert sorted(out_labels.flatten().tolist()) == sorted(labels.flatten().tolist())


def test_loaders_give_patches_and_whole_volumes_with_spacing():
    dm = Synthetic3DDataModule(seed=1, spacing=(0.8, 0.8, 2.0), **TINY)
    batch = next(iter(dm.train_dataloader()))
    assert batch["image"].shape == (2, 1, 16, 16, 8) and batch["mask"].shape == (2, 16, 16, 8)
    assert len(dm.train_dataloader()) == 4
    batch = next(iter(dm.test_dataloader()))
    assert batch["image"].shape == (2, 1, 24, 24, 16) and batch["mask"].dtype == torch.int64
    assert batch["spacing"].tolist() == [[0.8, 0.8, 2.0]] * 2
    assert dm.eval_window["patch_size"] == [16, 16, 8] and dm.eval_window["blend"] == "gaussian"


def test_pad_collate_pads_labels_with_ignore_and_refuses_without_one():
    items = [{"image": torch.ones(1, 4, 4, 2), "mask": torch.ones(4, 4, 2, dtype=torch.long), "spacing": torch.ones(3)},
             {"image": torch.ones(1, 3, 4, 3), "mask": torch.ones(3, 4, 3, dtype=torch.long), "spacing": torch.ones(3)}]
    batch = pad_collate_3d(255)(items)
    assert batch["mask"].shape == (2, 4, 4, 3)
    assert (batch["mask"][1, 3] == 255).all() and (batch["mask"][0, :, :, 2] == 255).all()
    assert (batch["image"][1, 0, 3] == 0).all()
    with pytest.raises(ValueError, match="ignore_index"):
        pad_collate_3d(None)(items)
