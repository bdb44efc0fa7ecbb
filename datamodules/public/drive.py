"""``datamodule=drive``: DRIVE retinal vessels (Staal et al. 2004), in the layout its publisher distributes.

Layout under ``root`` (the folder holding ``training/`` and ``test/``, as extracted from the DRIVE zips)::

    root/training/images/21_training.tif       RGB fundus photographs, 565x584, ids 21-40
    root/training/1st_manual/21_manual1.gif    vessel annotation, 0 / 255
    root/training/mask/21_training_mask.gif    field of view, 0 / 255
    root/test/images/01_test.tif               ids 01-20
    root/test/1st_manual/01_manual1.gif        the full release's test annotations (the first observer)
    root/test/mask/01_test_mask.gif
    root/test/2nd_manual/01_manual2.gif        second observer: not used

Classes: background, vessel (stored 255). The field-of-view mask is the roi: pixels outside it are
``ignore_index`` in the loss and the metrics (the DRIVE convention: scores are computed inside the FOV).
Case ids are the publisher's image numbers (``21`` … ``40`` train, ``01`` … ``20`` test).

Split (committed ``splits/drive.json``): the publisher's training/test, with 4 of the 20 training images
carved into val (``scripts/splits/drive.py``). Images of a folder without their annotation or FOV mask,
and annotations without an image, are all reported together.

Download: DRIVE needs a registration (https://drive.grand-challenge.org/); ``download: true`` explains
where to get it.
"""
from __future__ import annotations

import re
from pathlib import Path

from common.names import SPLITS
from datamodules.file_seg import SampleFiles
from datamodules.public.download import Source
from datamodules.public.layout import require_paths
from datamodules.public.seg_adapter import PublishedSegDataModule
from datamodules.public.splits import SplitSpec, resolve_split
from datamodules.seg_samples import DataProblems

DATASET = "drive"
LAYOUT = ("root/{training,test}/images/<NN>_{training,test}.tif + root/{training,test}/1st_manual/<NN>_manual1.gif "
          "+ root/{training,test}/mask/<NN>_{training,test}_mask.gif")
FOLDERS = {"training": "train", "test": "test"}
SOURCE = Source(
    dataset=DATASET,
    homepage="https://drive.grand-challenge.org/",
    manual=("DRIVE needs a registration at https://drive.grand-challenge.org/ (Download). Extract training.zip and "
            "test.zip so that root holds training/{images,1st_manual,mask}/ and test/{images,1st_manual,mask}/ "
            "(test/1st_manual/ is in the full release; copies without it cannot be evaluated)."),
)
_NAMES = {"images": re.compile(r"^(\d{2})_(training|test)\.tiff?$", re.I),
          "1st_manual": re.compile(r"^(\d{2})_manual1\.gif$", re.I),
          "mask": re.compile(r"^(\d{2})_(training|test)_mask\.gif$", re.I)}


def folder_files(folder: Path, kind: str) -> tuple[dict[str, Path], list[Path]]:
    """Files of ``folder`` by case id (``21``) for ``kind`` (images, 1st_manual, mask), and the unexpected ones
    (hidden files such as ``Thumbs.db`` are skipped)."""
    found, odd = {}, []
    for path in sorted(folder.iterdir()):
        if path.name.startswith(".") or path.name.lower() == "thumbs.db":
            continue
        match = _NAMES[kind].match(path.name)
        if match:
            found[match[1]] = path
        else:
            odd.append(path)
    return found, odd


class DRIVEDataModule(PublishedSegDataModule):
    """DRIVE vessel segmentation (binary: background, vessel; outside the FOV ignored), module docstring.

    ``download``: DRIVE needs a registration, so ``true`` only says where to get it. Other arguments:
    :class:`~datamodules.public.seg_adapter.PublishedSegDataModule`'s."""

    dataset = DATASET
    download_source = SOURCE
    classes = ("background", "vessel")
    stored_values = {0: 0, 255: 1}

    @staticmethod
    def present(path: Path) -> bool:
        return (path / "training" / "images").is_dir()

    def list_samples(self) -> dict[str, list[SampleFiles]]:
        require_paths(DATASET, self.root, LAYOUT, [f"{folder}/{kind}" for folder in FOLDERS for kind in _NAMES],
                      hint=SOURCE.manual)
        samples: dict[str, SampleFiles] = {}
        publisher: dict[str, str] = {}
        problems: list[str] = []
        for folder, split in FOLDERS.items():
            files = {}
            for kind in _NAMES:
                files[kind], odd = folder_files(self.root / folder / kind, kind)
                problems += [f"{path}: not a DRIVE {kind} file name (expected like {self._example(folder, kind)})"
                             for path in odd]
            for case in sorted(set().union(*files.values())):
                lacking = [kind for kind in _NAMES if case not in files[kind]]
                if lacking:
                    have = next(files[kind][case] for kind in _NAMES if case in files[kind])
                    problems.append(f"{have}: case {case} has no {' / '.join(lacking)} file in {self.root / folder}")
                elif case in samples:
                    problems.append(f"{files['images'][case]}: id {case} is in training/ and test/")
                else:
                    samples[case] = SampleFiles(case, files["images"][case], files["1st_manual"][case],
                                                roi=files["mask"][case])
                    publisher[case] = split
        if problems:
            raise DataProblems(self.source, problems)
        ids, self.split_info = resolve_split(SplitSpec.load(DATASET), sorted(samples), self.source, publisher)
        return {split: [samples[case] for case in ids[split]] for split in SPLITS}

    @staticmethod
    def _example(folder: str, kind: str) -> str:
        number = "21" if folder == "training" else "01"
        return {"images": f"{number}_{folder}.tif", "1st_manual": f"{number}_manual1.gif",
                "mask": f"{number}_{folder}_mask.gif"}[kind]
