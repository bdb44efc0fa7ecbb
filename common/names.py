"""Names shared across layers."""
from __future__ import annotations

SPLITS = ("train", "val", "test")
REDUCTIONS = ("mean", "sum", "none")
# The modes of segmentation data and models (losses also take multilabel).
DATA_MODES = ("multiclass", "binary")
