"""The evaluation-window options: one key set for 2-D images and 3-D volumes.

A segmentation datamodule's ``sliding_window:`` block and :class:`models.inferer.WindowInferer`
take the same keys (``patch_size`` comes from the datamodule's training patch unless the block sets it):

- ``overlap``: share of the window that neighbouring windows overlap, in [0, 1);
- ``blend``: ``gaussian`` (centre-weighted, nnU-Net's importance map) or ``constant`` (plain mean);
- ``sigma_scale``: the Gaussian's sigma as a share of the window, > 0;
- ``batch_size``: windows per image in one forward pass, >= 1;
- ``whole_input_max_pixels``: inputs of at most this many pixels (3-D: voxels) skip the windows and go
  through the net whole; 0 turns the whole-input pass off;
- ``pad_multiple``: whole inputs are zero-padded at the far end to a multiple of this per axis (the
  net's total down-sampling), then cropped back.

The 3-D names of the previous release still work for one release, with a ``FutureWarning`` naming
the new key: ``mode`` → ``blend``, ``sw_batch_size`` → ``batch_size``, ``whole_volume_max_voxels`` →
``whole_input_max_pixels``.
"""
from __future__ import annotations

import numbers
import warnings
from collections.abc import Mapping, Sequence
from typing import Any

BLEND_MODES = ("gaussian", "constant")
WINDOW_DEFAULTS: dict[str, Any] = {"overlap": 0.25, "blend": "gaussian", "sigma_scale": 0.125, "batch_size": 4,
                                   "whole_input_max_pixels": 0, "pad_multiple": 32}
RENAMED_WINDOW_KEYS = {"mode": "blend", "sw_batch_size": "batch_size",
                       "whole_volume_max_voxels": "whole_input_max_pixels"}


def window_options(owner: str, options: Mapping[str, Any], spatial_dims: int) -> dict[str, Any]:
    """``options`` checked and completed with :data:`WINDOW_DEFAULTS` (``patch_size`` kept when given).

    ``owner`` prefixes every message (``"FolderSegDataModule: sliding_window"``); a bad value is named
    by the key the caller wrote, a deprecated key is renamed with a ``FutureWarning``.

    Raises:
        ValueError: an unknown key, a key given under its old and new name, or a value out of range.
    """
    accepted = {"patch_size", *WINDOW_DEFAULTS}
    unknown = sorted(set(options) - accepted - set(RENAMED_WINDOW_KEYS))
    if unknown:
        raise ValueError(f"{owner}: unknown key(s) {unknown}; accepted: {sorted(accepted)}")
    out: dict[str, Any] = dict(WINDOW_DEFAULTS)
    for key, value in options.items():
        new = RENAMED_WINDOW_KEYS.get(key, key)
        if new != key:
            if new in options:
                raise ValueError(f"{owner}: {key!r} is the deprecated name of {new!r}; set only {new!r}")
            warnings.warn(f"{owner}: key {key!r} is deprecated and will be removed in the next release; use "
                          f"{new!r} (got {key}={value!r})", FutureWarning, stacklevel=3)
        out[new] = _checked(f"{owner}.{key}", new, value, spatial_dims)
    return out


def _checked(name: str, key: str, value: Any, spatial_dims: int) -> Any:
    def bad(expected: str) -> ValueError:
        return ValueError(f"{name} must be {expected}, got {value!r}")

    if key == "patch_size":
        ok = isinstance(value, Sequence) and not isinstance(value, str) and len(value) == spatial_dims and \
            all(isinstance(v, numbers.Integral) and not isinstance(v, bool) and v >= 1 for v in value)
        if not ok:
            raise bad(f"{spatial_dims} positive ints")
        return [int(v) for v in value]
    if key == "blend":
        if value not in BLEND_MODES:
            raise bad(f"one of {BLEND_MODES}")
        return value
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise bad("a number")
    if key == "overlap":
        if not 0.0 <= value < 1.0:
            raise bad("in [0, 1)")
        return float(value)
    if key == "sigma_scale":
        if not value > 0:
            raise bad("> 0")
        return float(value)
    low = 0 if key == "whole_input_max_pixels" else 1
    if int(value) != value or value < low:
        raise bad(f"an int >= {low}")
    return int(value)
