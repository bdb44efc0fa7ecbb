"""Names shared across layers."""
from __future__ import annotations

SPLITS = ("train", "val", "test")
REDUCTIONS = ("mean", "sum", "none")
