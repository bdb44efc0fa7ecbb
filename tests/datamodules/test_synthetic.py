"""The embedded synthetic segmentation data: validation, determinism, exact class counts, the
presets' imbalance and object-size claims, and the batch format of the datamodule contract."""

import numpy as np
import pytest
import torch
from scipy import ndimage

from datamodules.synthetic import SyntheticSegDataModule

SMALL = {"train_size": 24, "val_size": 8, "test_size": 8}


def sample(dm: SyntheticSegDataModule, split: str, index: int) -> tuple[np.ndarray, np.ndarray]:
    item = dm.datasets[split][index]
    return item["image"].numpy(), item["mask"].numpy()


@pytest.mark.parametrize(
    ("overrides", "argument"),
    [
        ({"num_classes": 1, "class_names": ["background"]}, "num_classes"),
        ({"radius_range": [2.0, 40.0]}, "radius_range"),
        ({"radius_range": [0.1, 3.0]}, "radius_range"),
        ({"class_frequencies": [1.0, 0.0, 1.0, 0.1, 0.1]}, "class_frequencies"),
        ({"class_frequencies": [1.0, -2.0, 1.0, 0.1, 0.1]}, "class_frequencies"),
        ({"class_frequencies": [1.0, 1.0]}, "class_frequencies"),
        ({"shape_families": ["blob", "star", "curve", "blob", "blob"]}, "shape_families"),
        ({"textures": ["flat", "flat", "flat", "flat", "plaid"]}, "textures"),
        ({"class_colors": [[1.2, 0, 0], [0, 1, 0], [0, 0, 1], [1, 1, 0], [1, 0, 1]]}, "class_colors"),
        ({"class_names": ["background", "a"]}, "class_names"),
        ({"train_size": 0}, "train_size"),
        ({"val_size": -3}, "val_size"),
        ({"test_size": 0}, "test_size"),
        ({"image_size": 4}, "image_size"),
        ({"image_size": [64, 64, 3]}, "image_size"),
        ({"objects_per_image": [3, 1]}, "objects_per_image"),
        ({"contrast_range": [0.0, 0.5]}, "contrast_range"),
        ({"noise_std": -0.1}, "noise_std"),
        ({"blur_sigma": float("nan")}, "blur_sigma"),
        ({"curve_width": 0.0}, "curve_width"),
        ({"mode": "multilabel"}, "mode"),
        ({"mode": "binary"}, "num_classes"),
        ({"in_channels": 2}, "in_channels"),
        ({"ignore_index": 3}, "ignore_index"),
        ({"batch_size": 0}, "batch_size"),
        ({"cache_max_gb": -1.0}, "cache_max_gb"),
    ],
)
def test_invalid_parameters_name_the_argument(overrides: dict, argument: str) -> None:
    with pytest.raises(ValueError, match=rf"\b{argument}=") as info:
        SyntheticSegDataModule(**overrides)
    assert "expected" in str(info.value)


def test_samples_are_deterministic_per_seed_split_and_index(preset) -> None:
    first, second = preset("synthetic_imbalanced", seed=7, **SMALL), preset("synthetic_imbalanced", seed=7, **SMALL)
    # A different access order must not matter: each sample depends only on (seed, split, index).
    later = [sample(second, "val", i) for i in (5, 2, 3)]
    for got, index in zip(later, (5, 2, 3)):
        image, mask = sample(first, "val", index)
        np.testing.assert_array_equal(got[0], image)
        np.testing.assert_array_equal(got[1], mask)


def test_different_seed_and_split_give_different_data(preset) -> None:
    dm1, dm2 = preset("synthetic_imbalanced", seed=1, **SMALL), preset("synthetic_imbalanced", seed=2, **SMALL)
    for index in range(4):
        assert not np.array_equal(sample(dm1, "train", index)[0], sample(dm2, "train", index)[0])
    masks = {split: np.stack([sample(dm1, split, i)[1] for i in range(8)]) for split in ("train", "val", "test")}
    assert not np.array_equal(masks["train"], masks["val"])
    assert not np.array_equal(masks["val"], masks["test"])
    assert not np.array_equal(masks["train"], masks["test"])


def test_class_pixel_counts_equal_a_brute_force_count_and_are_cached(preset) -> None:
    dm = preset("synthetic_imbalanced", **SMALL)
    masks = torch.stack([dm.datasets["train"][i]["mask"] for i in range(SMALL["train_size"])])
    expected = torch.bincount(masks.flatten(), minlength=dm.num_classes).double()
    counts = dm.class_pixel_counts()
    assert counts.dtype == torch.float64 and counts.shape == (dm.num_classes,)
    torch.testing.assert_close(counts, expected, rtol=0, atol=0)
    counts[0] = -1.0  # a caller mutating its copy must not change the cache
    torch.testing.assert_close(dm.class_pixel_counts(), expected, rtol=0, atol=0)


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_imbalanced_preset_has_sparse_foreground_and_a_long_tail(preset, seed: int) -> None:
    dm = preset("synthetic_imbalanced", seed=seed)
    counts = dm.class_pixel_counts().numpy()
    foreground_share = counts[1:].sum() / counts.sum()
    assert 0.01 <= foreground_share <= 0.05, foreground_share
    fg = np.sort(counts[1:])[::-1]
    common, rare = fg[:2], fg[-2:]
    assert rare.min() > 0, counts
    assert common.min() / rare.max() >= 20.0, counts


def test_ignore_index_labels_only_a_ring_around_objects(preset) -> None:
    plain = preset("synthetic_imbalanced", **SMALL)
    ringed = preset("synthetic_imbalanced", ignore_index=255, **SMALL)
    for index in range(6):
        mask, ring_mask = sample(plain, "train", index)[1], sample(ringed, "train", index)[1]
        ring = ring_mask == 255
        np.testing.assert_array_equal(ring_mask[~ring], mask[~ring])
        assert (mask[ring] == 0).all()
        # Every ring pixel touches an object pixel (8-neighbourhood): the ring is 1 px wide.
        assert not (ring & ~ndimage.binary_dilation(mask > 0, structure=np.ones((3, 3)))).any()
    counts, ringed_counts = plain.class_pixel_counts(), ringed.class_pixel_counts()
    torch.testing.assert_close(ringed_counts[1:], counts[1:], rtol=0, atol=0)
    assert ringed_counts[0] < counts[0]


def test_small_preset_objects_are_tiny(preset) -> None:
    dm = preset("synthetic_small", train_size=200)
    r_max = dm.spec.radius_range[1]
    areas, extents = [], []
    for index in range(200):
        mask = dm.datasets["train"].mask(index)
        for label in range(1, dm.num_classes):
            components, n = ndimage.label(mask == label, structure=np.ones((3, 3)))
            for box in ndimage.find_objects(components):
                extents.append(max(box[0].stop - box[0].start, box[1].stop - box[1].start))
            areas.extend(np.bincount(components.ravel())[1:].tolist())
    areas, extents = np.asarray(areas), np.asarray(extents)
    assert len(areas) >= 300
    # Each object lies in the disc of its radius (<= r_max) and objects never touch, so every
    # connected component is one object: extent <= floor(2 r_max) + 1 px, area <= that square.
    assert extents.max() <= np.floor(2 * r_max) + 1
    assert areas.max() <= (np.floor(2 * r_max) + 1) ** 2
    assert np.median(areas) <= 16
    assert (areas <= 4).mean() >= 0.1


def test_batches_follow_the_datamodule_contract(preset) -> None:
    dm = preset("synthetic_imbalanced", batch_size=8, **SMALL)
    assert (dm.num_classes, dm.mode, dm.in_channels, dm.ignore_index) == (6, "multiclass", 3, None)
    assert len(dm.class_names) == dm.num_classes
    batch = next(iter(dm.train_dataloader()))
    assert set(batch) == {"image", "mask", "case"} and all(c.startswith("train_") for c in batch["case"])
    assert batch["image"].dtype == torch.float32 and batch["image"].shape == (8, 3, 64, 64)
    assert batch["mask"].dtype == torch.int64 and batch["mask"].shape == (8, 64, 64)
    assert 0 <= batch["mask"].min() and batch["mask"].max() < dm.num_classes
    assert abs(batch["image"].mean().item()) < 0.3
    assert 0.2 < batch["image"].std().item() < 2.0
    assert [len(b["mask"]) for b in dm.val_dataloader()] == [8]
    grey = preset("synthetic_imbalanced", in_channels=1, **SMALL).datasets["test"][0]["image"]
    assert grey.shape == (1, 64, 64)


def test_train_shuffle_is_seeded(preset) -> None:
    def first_masks(seed: int) -> torch.Tensor:
        dm = preset("synthetic_imbalanced", seed=seed, batch_size=24, **SMALL)
        return next(iter(dm.train_dataloader()))["mask"]

    in_order = torch.stack([preset("synthetic_imbalanced", seed=3, **SMALL).datasets["train"][i]["mask"] for i in range(24)])
    shuffled = first_masks(3)
    torch.testing.assert_close(shuffled, first_masks(3), rtol=0, atol=0)
    assert not torch.equal(shuffled, in_order)
    # Same samples, other order: each shuffled mask is one of the split's masks.
    assert sorted(m.sum().item() for m in shuffled) == sorted(m.sum().item() for m in in_order)


def test_binary_preset_masks_are_zero_or_one(preset) -> None:
    dm = preset("synthetic_binary", **SMALL)
    assert (dm.num_classes, dm.mode, len(dm.class_names)) == (2, "binary", 2)
    masks = np.stack([dm.datasets["train"].mask(i) for i in range(SMALL["train_size"])])
    assert set(np.unique(masks).tolist()) == {0, 1}
    counts = dm.class_pixel_counts()
    assert counts[1] == (masks == 1).sum() and counts.sum() == masks.size


def test_worker_processes_generate_the_same_batches(preset) -> None:
    in_process = preset("synthetic_imbalanced", batch_size=4, **SMALL)
    workers = preset("synthetic_imbalanced", batch_size=4, num_workers=2, persistent_workers=True, **SMALL)
    for expected, got in zip(in_process.val_dataloader(), workers.val_dataloader(), strict=True):
        torch.testing.assert_close(got["image"], expected["image"], rtol=0, atol=0)
        torch.testing.assert_close(got["mask"], expected["mask"], rtol=0, atol=0)


def test_cache_returns_the_generated_samples_without_regenerating(preset, monkeypatch) -> None:
    cached = preset("synthetic_imbalanced", **SMALL)
    fresh = preset("synthetic_imbalanced", cache=False, **SMALL)
    assert cached.cache and not fresh.cache
    calls = []
    dataset = cached.datasets["train"]
    generate = dataset._generate
    monkeypatch.setattr(dataset, "_generate", lambda index: calls.append(index) or generate(index))
    for _ in range(2):  # two "epochs"
        for index in range(4):
            got, want = dataset[index], fresh.datasets["train"][index]
            assert torch.equal(got["image"], want["image"]) and torch.equal(got["mask"], want["mask"])
    assert calls == [0, 1, 2, 3]  # generated once each, then served from memory
    # A split set that does not fit in cache_max_gb is generated on every access instead.
    assert not preset("synthetic_imbalanced", cache_max_gb=cached.cache_bytes() / 2**30 / 2, **SMALL).cache
