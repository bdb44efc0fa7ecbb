"""The error for a dataset root that does not match the layout its publisher distributes."""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

_SHOWN = 8


class LayoutError(ValueError):
    """``root`` does not hold ``dataset`` in its published layout.

    The message names the dataset, the expected layout, and the first paths that are missing or
    unexpected, plus what to do (fix the root, or ``download: true`` where the dataset allows it).
    """

    def __init__(self, dataset: str, root: Path | str, layout: str, missing: Sequence[str | Path] = (),
                 unexpected: Sequence[str | Path] = (), hint: str = "") -> None:
        lines = [f"{dataset}: root={str(root)!r} does not match the published layout:", f"  expected {layout}"]
        for label, paths in (("missing", missing), ("unexpected", unexpected)):
            if paths:
                shown = ", ".join(str(p) for p in list(paths)[:_SHOWN])
                more = f" … and {len(paths) - _SHOWN} more" if len(paths) > _SHOWN else ""
                lines.append(f"  {label} ({len(paths)}): {shown}{more}")
        if hint:
            lines.append(f"  {hint}")
        super().__init__("\n".join(lines))
        self.missing = [str(p) for p in missing]
        self.unexpected = [str(p) for p in unexpected]


def require_paths(dataset: str, root: Path, layout: str, required: Sequence[str], hint: str = "") -> None:
    """Raise :class:`LayoutError` naming every path of ``required`` (relative to ``root``) that is absent."""
    if not root.is_dir():
        raise LayoutError(dataset, root, layout, missing=[str(root)], hint=hint)
    missing = [name for name in required if not (root / name).exists()]
    if missing:
        raise LayoutError(dataset, root, layout, missing=missing, hint=hint)
