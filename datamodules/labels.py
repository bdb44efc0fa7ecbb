"""The labels of a segmentation datamodule, validated in one place: :class:`LabelSpec`.

Every segmentation datamodule (synthetic 2-D and 3-D, the file-based engine and its public adapters,
the volume folders) takes the same flat config keys ``num_classes``, ``mode``, ``class_names`` and
``ignore_index`` (``datamodule.num_classes=3`` on the command line), builds one :class:`LabelSpec` from
them and hands it to :class:`SegDataModule`, which sets the members of
:class:`datamodules.contract.LossbenchData` from it. The keys stay flat on purpose: they are the
public config keys, and the models' configs read ``${datamodule.num_classes}``.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from common.names import DATA_MODES
from datamodules.base import BaseDataModule, check_int, invalid

__all__ = ["MASK_VALUE_MAX", "LabelSpec", "SegDataModule", "default_class_names"]

MASK_VALUE_MAX = 65535  # masks are decoded to at most 16 bits, so an ignore label must fit in them


def default_class_names(num_classes: int) -> list[str]:
    """``background, class_1, …, class_{num_classes-1}``."""
    return ["background"] + [f"class_{k}" for k in range(1, num_classes)]


@dataclass(frozen=True)
class LabelSpec:
    """What the labels of a segmentation dataset are; checked on construction, errors name the argument.

    - ``num_classes``: classes including background, an int >= 2;
    - ``mode``: ``multiclass`` or ``binary`` (binary: ``num_classes`` is 2, background + object, and the
      model has one output channel);
    - ``class_names``: ``num_classes`` names (``None``: ``background, class_1, …``); stored as a tuple;
    - ``ignore_index``: the label of pixels/voxels that count in no loss term and no metric: ``None``
      or an int outside ``[0, num_classes)``; with ``ignore_required`` (the file-based data, which pad
      patches and mark roi-outside pixels with it) an int in ``[num_classes, 65535]``;
    - ``owner``: how errors name the datamodule (not part of the labels' equality).
    """

    num_classes: int
    mode: str = "multiclass"
    class_names: tuple[str, ...] | None = None
    ignore_index: int | None = None
    ignore_required: bool = False
    owner: str = field(default="labels", compare=False)

    def __post_init__(self) -> None:
        owner = self.owner
        num_classes = check_int(owner, "num_classes", self.num_classes, 2)
        if self.mode not in DATA_MODES:
            invalid(owner, "mode", self.mode, f"one of {list(DATA_MODES)}")
        if self.mode == "binary" and num_classes != 2:
            invalid(owner, "num_classes", num_classes, "2 when mode='binary' (background + object)")
        ignore = self.ignore_index
        not_an_int = isinstance(ignore, bool) or not isinstance(ignore, int)
        if self.ignore_required and (not_an_int or not num_classes <= ignore <= MASK_VALUE_MAX):
            invalid(owner, "ignore_index", ignore,
                    f"an int in [num_classes, {MASK_VALUE_MAX}] (it marks padding and roi-outside pixels)")
        if ignore is not None and (not_an_int or 0 <= ignore < num_classes):
            invalid(owner, "ignore_index", ignore, f"None or an int outside [0, num_classes={num_classes})")
        names = default_class_names(num_classes) if self.class_names is None else self.class_names
        if isinstance(names, str) or len(names) != num_classes:
            invalid(owner, "class_names", names if isinstance(names, str) else list(names),
                    f"a list of num_classes={num_classes} names")
        # Normalised once here (ints from YAML, a tuple of str), so the spec stays hashable and equal by value.
        object.__setattr__(self, "num_classes", num_classes)
        object.__setattr__(self, "class_names", tuple(str(name) for name in names))

    @property
    def binary(self) -> bool:
        """One foreground class predicted by one output channel (``mode='binary'``)."""
        return self.mode == "binary"


class SegDataModule(BaseDataModule):
    """A :class:`~datamodules.base.BaseDataModule` whose label members come from one :class:`LabelSpec`.

    Sets ``labels`` and, from it, ``num_classes``, ``mode``, ``ignore_index`` and ``class_names``
    (a list); the shared loader options go to :class:`~datamodules.base.BaseDataModule`.
    """

    def __init__(self, labels: LabelSpec, **options: Any) -> None:
        super().__init__(**options)
        self.labels = labels
        self.num_classes, self.mode, self.ignore_index = labels.num_classes, labels.mode, labels.ignore_index
        self.class_names: list[str] = list(labels.class_names)

