"""What the 2-D public segmentation adapters share (camvid, crackforest, deepcrack, drive, isbi2012).

Each is :class:`~datamodules.file_seg.FileSegDataModule` over its publisher's layout: ``root``,
``download`` / ``archive_sha256`` (:func:`~datamodules.public.download.ensure_dataset`), the published
classes and stored mask values as defaults, and ``source`` naming the dataset and its root in errors.
An adapter sets the class attributes below and implements ``present`` (does a folder hold the layout)
and ``list_samples`` (which files form each split).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping, Sequence

from datamodules.file_seg import FileSegDataModule
from datamodules.public.download import Source, ensure_dataset


class PublishedSegDataModule(FileSegDataModule):
    """A public 2-D segmentation dataset read in its published layout (module docstring).

    Args:
        root: the folder the publisher's files are in (``~`` expanded).
        download: fetch (or, for registration-only data, say where to get) the dataset when ``root``
            lacks the layout; ``archive_sha256`` pins the archive's digest where the publisher has none.
        num_classes, mode, class_names, mask_values: ``None`` takes the dataset's (``len(classes)``,
            ``default_mode``, ``classes``, :meth:`default_mask_values`).
        Others: :class:`~datamodules.file_seg.FileSegDataModule`'s.
    """

    dataset: str  # the name in errors and of the committed split file
    download_source: Source
    classes: tuple[str, ...]  # class 0 first
    default_mode = "binary"
    stored_values: Mapping[int, int] = {}  # stored mask value -> class id

    def __init__(self, root: str | Path, download: bool = False, archive_sha256: str | None = None,
                 num_classes: int | None = None, mode: str | None = None, class_names: Sequence[str] | None = None,
                 ignore_index: int = 255, mask_values: Mapping[int, int] | None = None, **kwargs: Any) -> None:
        self.root = Path(root).expanduser()
        if download:
            ensure_dataset(self.download_source, self.root, present=self.present, sha256=archive_sha256)
        super().__init__(num_classes=len(self.classes) if num_classes is None else num_classes,
                         mode=self.default_mode if mode is None else mode,
                         class_names=self.classes if class_names is None else class_names, ignore_index=ignore_index,
                         mask_values=self.default_mask_values(ignore_index) if mask_values is None else mask_values,
                         **kwargs)

    @staticmethod
    def present(path: Path) -> bool:
        """Whether ``path`` holds the published layout (so ``download`` has nothing to do)."""
        raise NotImplementedError

    def default_mask_values(self, ignore_index: int) -> dict[int, int]:
        """``mask_values`` when the config gives none: :attr:`stored_values`."""
        return dict(self.stored_values)

    @property
    def source(self) -> str:
        return f"{self.dataset} at {self.root}"
