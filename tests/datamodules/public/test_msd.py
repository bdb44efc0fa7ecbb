"""datamodule=msd: a Decathlon task folder written at test time in the published layout (dataset.json, 4-D
multi-modal images, float labels, macOS ``._`` files, unlabelled imagesTs/), the committed split, errors,
a tiny train.py run, the download path against a local server, and (slow) the development copy."""
from __future__ import annotations

import hashlib
import json
import logging
import tarfile
from pathlib import Path

import numpy as np
import pytest

from datamodules.public import msd
from datamodules.public.download import DownloadError
from datamodules.public.layout import LayoutError
from datamodules.public.msd import MSDDataModule
from datamodules.public.splits import SplitSpec, hash_rule
from datamodules.volumes.nifti_io import write_nifti
from datamodules.volumes.volume_folder import VolumeProblems
from tests.datamodules.public.serve import serving
from tests.real_data import HIPPOCAMPUS, real_data
from train import train

SHAPE = (12, 10, 8)
HIPPO_SPLIT = SplitSpec.load("msd_task04_hippocampus")


def write_task(root: Path, cases: list[str], modalities: int = 2, listed: list[str] | None = None,
               label_dtype=np.float32) -> Path:
    """A Decathlon task folder: ``modalities`` > 1 gives 4-D (X, Y, Z, M) images; labels 0/1/2 stored as
    ``label_dtype``; a ``._`` resource fork beside every file; one unlabelled test image."""
    rng = np.random.default_rng(0)
    for case in cases:
        labels = np.zeros(SHAPE, dtype=np.uint8)
        labels[3:7, 3:6, 2:5] = 1
        labels[7:10, 4:8, 3:6] = 2
        image = rng.normal(100, 10, SHAPE + ((modalities,) if modalities > 1 else ())).astype(np.int16)
        image[labels > 0] += 60
        write_nifti(root / "imagesTr" / f"{case}.nii.gz", image, (1.0, 1.0, 1.0))
        write_nifti(root / "labelsTr" / f"{case}.nii.gz", labels.astype(label_dtype), (1.0, 1.0, 1.0))
        for folder in ("imagesTr", "labelsTr"):
            (root / folder / f"._{case}.nii.gz").write_bytes(b"\x00\x05\x16\x07 resource fork")
    write_nifti(root / "imagesTs" / "unlabelled_001.nii.gz", np.zeros(SHAPE, np.int16), (1.0, 1.0, 1.0))
    names = {"0": "FLAIR", "1": "T1w"} if modalities == 2 else {"0": "MRI"}
    meta = {"name": "Toy", "labels": {"0": "background", "1": "Anterior", "2": "Posterior"},
            "modality": {str(k): names.get(str(k), f"m{k}") for k in range(modalities)},
            "numTraining": len(listed if listed is not None else cases), "numTest": 1,
            "training": [{"image": f"./imagesTr/{c}.nii.gz", "label": f"./labelsTr/{c}.nii.gz"}
                         for c in (listed if listed is not None else cases)],
            "test": ["./imagesTs/unlabelled_001.nii.gz"]}
    (root / "dataset.json").write_text(json.dumps(meta))
    return root


def hippo_cases(count_per_split: int = 2) -> list[str]:
    return [case for split in ("train", "val", "test") for case in HIPPO_SPLIT.splits[split][:count_per_split]]


def by_hash_rule(name: str, prefix: str, per_split: int = 2) -> list[str]:
    """Case ids ``<prefix>NN`` that the hash rule of split ``name`` sends ``per_split`` to each split."""
    chosen: dict[str, list[str]] = {"train": [], "val": [], "test": []}
    for k in range(100):
        case = f"{prefix}{k:02d}"
        split = hash_rule(name, case, (0.7, 0.15, 0.15))
        if len(chosen[split]) < per_split:
            chosen[split].append(case)
    return sorted(sum(chosen.values(), []))


def test_dataset_json_gives_classes_channels_and_cases_and_quirks_are_ignored(tmp_path):
    cases = by_hash_rule("msd_task05_prostate", "prostate_")
    root = write_task(tmp_path / "Task05_Prostate", cases, modalities=2)
    dm = MSDDataModule(root, patch_size=[8, 8, 8])
    assert dm.task == "Task05_Prostate" and dm.num_classes == 3 and dm.in_channels == 2
    assert dm.class_names == ["background", "Anterior", "Posterior"]
    assert sorted(c.name for c in dm.cases) == cases  # no ._ files, no imagesTs
    dm.setup("fit")
    volume = dm.volumes()["train"][0]
    assert volume.image.shape == (2,) + SHAPE and volume.labels.dtype == np.uint8  # float32 labels read as ids
    assert np.bincount(volume.labels.ravel(), minlength=3).tolist() == [960 - 36 - 36, 36, 36]
    # no committed file for Task05: the hash rule over every case, recorded as such
    assert dm.split_info.name == "msd_task05_prostate@v1" and dm.split_info.unlisted == 6


def test_committed_split_is_applied_intersected_and_hashed(tmp_path, caplog):
    cases = hippo_cases(2)
    with caplog.at_level(logging.WARNING):
        dm = MSDDataModule(write_task(tmp_path / "Task04_Hippocampus", cases, modalities=1), patch_size=[8, 8, 8])
    assert {split: sorted(dm.splits[split]) for split in ("train", "val", "test")} == \
        {split: sorted(HIPPO_SPLIT.splits[split][:2]) for split in ("train", "val", "test")}
    listed = sum(len(v) for v in HIPPO_SPLIT.splits.values())
    assert dm.split_info.missing == listed - 6 and dm.split_info.counts == {"train": 2, "val": 2, "test": 2}
    assert f"{listed - 6} of {listed} cases listed in split msd_task04_hippocampus@v1 are not under the root" in caplog.text
    fewer = MSDDataModule(write_task(tmp_path / "fewer" / "Task04_Hippocampus", cases[:1] + cases[2:], modalities=1),
                          patch_size=[8, 8, 8])
    assert fewer.split_info.hash != dm.split_info.hash and fewer.split_info.counts["train"] == 1


def test_wrong_root_names_the_missing_paths(tmp_path):
    (tmp_path / "Task04_Hippocampus" / "imagesTr").mkdir(parents=True)
    with pytest.raises(LayoutError) as caught:
        MSDDataModule(tmp_path / "Task04_Hippocampus")
    message = str(caught.value)
    assert "msd:" in message and "missing (2): dataset.json, labelsTr" in message and "download=true" in message


def test_dataset_json_without_labels_and_a_half_present_case_are_errors(tmp_path, caplog):
    cases = by_hash_rule("msd_task09_spleen", "spleen_", 1)
    root = write_task(tmp_path / "Task09_Spleen", cases, modalities=1, listed=cases + ["spleen_gone"])
    with caplog.at_level(logging.WARNING):
        dm = MSDDataModule(root, patch_size=[8, 8, 8])
    assert len(dm.cases) == 3 and "lists 1 case(s) whose image and label are both absent" in caplog.text
    (root / "labelsTr" / f"{cases[1]}.nii.gz").unlink()
    with pytest.raises(LayoutError, match=rf"{cases[1]}: .*labelsTr/{cases[1]}.nii.gz is missing"):
        MSDDataModule(root)
    meta = json.loads((root / "dataset.json").read_text())
    del meta["modality"]
    (root / "dataset.json").write_text(json.dumps(meta))
    with pytest.raises(ValueError, match=r"dataset.json needs .* missing: \['modality'\]"):
        MSDDataModule(root)


def test_every_bad_case_is_named_before_training(tmp_path):
    cases = by_hash_rule("msd_task02_heart", "la_")
    root = write_task(tmp_path / "Task02_Heart", cases, modalities=1)
    write_nifti(root / "labelsTr" / f"{cases[1]}.nii.gz", np.zeros((5, 5, 5), np.uint8), (1.0, 1.0, 1.0))
    write_nifti(root / "labelsTr" / f"{cases[4]}.nii.gz", np.full(SHAPE, 0.5, np.float32), (1.0, 1.0, 1.0))
    dm = MSDDataModule(root, patch_size=[8, 8, 8])
    with pytest.raises(VolumeProblems) as caught:
        dm.setup("fit")
    assert len(caught.value.problems) == 2
    first, second = cases[1], cases[4]
    assert f"{first}: image {first}.nii.gz shape [12, 10, 8] != label {first}.nii.gz shape [5, 5, 5]" in str(caught.value)
    assert f"{second}: label {second}.nii.gz holds non-integer values [0.5]" in str(caught.value)


def test_tiny_train_run_records_the_split(run_config, tmp_path):
    root = write_task(tmp_path / "Task04_Hippocampus", hippo_cases(1), modalities=1)
    cfg = run_config("debug=fast", "datamodule=msd", f"datamodule.root={root}", "model=unet3d",
                     "model.net.filters=[4,8,16]", "datamodule.patch_size=[8,8,8]", "datamodule.patches_per_epoch=4",
                     "callbacks.progress_bar=null")
    record = train(cfg)
    assert record["status"] == "completed" and cfg.model.net._target_ == "models.unet3d.build_unet3d"
    on_disk = json.loads((Path(cfg.paths.output_dir) / "metrics.json").read_text())
    assert on_disk["split"]["name"] == "msd_task04_hippocampus@v1"
    assert on_disk["split"]["counts"] == {"train": 1, "val": 1, "test": 1}
    assert 0.0 <= record["metrics"]["test/dice_fg"] <= 1.0


def _task_tar(tmp_path: Path) -> tuple[Path, str]:
    folder = write_task(tmp_path / "src" / "Task04_Hippocampus", hippo_cases(1), modalities=1)
    served = tmp_path / "served"
    served.mkdir()
    with tarfile.open(served / "Task04_Hippocampus.tar", "w") as archive:
        archive.add(folder, arcname="Task04_Hippocampus")
    return served, hashlib.sha256((served / "Task04_Hippocampus.tar").read_bytes()).hexdigest()


def test_download_fetches_verifies_and_extracts_the_task(tmp_path, monkeypatch):
    served, sha256 = _task_tar(tmp_path)
    with serving(served) as url:
        monkeypatch.setattr(msd, "MIRROR", url)
        dm = MSDDataModule(tmp_path / "data" / "Task04_Hippocampus", download=True, archive_sha256=sha256,
                           patch_size=[8, 8, 8])
    assert dm.split_info.counts == {"train": 1, "val": 1, "test": 1}
    assert (tmp_path / "data" / "Task04_Hippocampus" / "dataset.json").is_file()


def test_download_with_the_wrong_checksum_leaves_no_root(tmp_path, monkeypatch):
    served, _ = _task_tar(tmp_path)
    root = tmp_path / "data" / "Task04_Hippocampus"
    with serving(served) as url:
        monkeypatch.setattr(msd, "MIRROR", url)
        with pytest.raises(DownloadError, match=r"md5 of Task04_Hippocampus.tar is [0-9a-f]{32}, expected "
                                                r"9d24dba78a72977dbd1d2e110310f31b"):
            MSDDataModule(root, download=True)
    assert not root.exists()
    with pytest.raises(ValueError, match="download=true needs the task"):
        MSDDataModule(tmp_path / "data" / "my_copy", download=True)


@pytest.mark.slow
@real_data(HIPPOCAMPUS)
def test_development_copy_reads_151_cases_and_the_committed_split():
    dm = MSDDataModule(HIPPOCAMPUS, patch_size=[40, 40, 40])
    assert dm.task == "Task04_Hippocampus" and dm.num_classes == 3 and dm.in_channels == 1
    assert len(dm.cases) == 151 and dm.split_info.counts == {"train": 105, "val": 24, "test": 22}
    assert (dm.split_info.missing, dm.split_info.unlisted) == (0, 0)
    dm.setup("fit")  # every case read and checked, the two float32 label files included
    assert all(set(np.unique(v.labels)) <= {0, 1, 2} for v in dm.volumes()["train"].cached)


@pytest.mark.slow
@real_data(HIPPOCAMPUS)
def test_the_committed_split_file_is_remade_identically(tmp_path):
    from scripts.splits.msd import make_msd_task04_hippocampus, size_tertiles

    made = make_msd_task04_hippocampus(HIPPOCAMPUS, tmp_path)
    assert made.read_text() == (Path(msd.SPLIT_DIR) / "msd_task04_hippocampus.json").read_text()
    spec = SplitSpec.load("msd_task04_hippocampus")
    strata = size_tertiles(HIPPOCAMPUS)
    for split, share in (("train", 0.7), ("val", 0.15), ("test", 0.15)):  # every tertile in proportion
        per_tertile = np.bincount([strata[c] for c in spec.splits[split]], minlength=3)
        assert np.abs(per_tertile - share * np.bincount(list(strata.values()))).max() <= 1
