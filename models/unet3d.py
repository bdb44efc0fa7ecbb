"""``model=unet3d``: MONAI's DynUNet (the nnU-Net architecture) as a 3-D segmentation net."""
from __future__ import annotations

from typing import Sequence

from monai.networks.nets import DynUNet
from torch import nn

from common.names import DATA_MODES


def build_unet3d(
    in_channels: int,
    num_classes: int,
    mode: str,
    filters: Sequence[int] = (8, 16, 32, 64),
    norm_name: str = "instance",
    res_block: bool = False,
    dropout: float | None = None,
) -> nn.Module:
    """A DynUNet with ``len(filters)`` levels: 3³ kernels, the first level at full resolution and each
    further level halving every axis (so window sides should be multiples of ``2**(len(filters)-1)``),
    transposed-convolution upsampling, no deep supervision. One output channel in binary mode,
    ``num_classes`` otherwise."""
    if mode not in DATA_MODES:
        raise ValueError(f"build_unet3d: mode must be one of {DATA_MODES}, got {mode!r}")
    levels = len(filters)
    if levels < 3:
        raise ValueError(f"build_unet3d: filters needs at least three levels (DynUNet), got {list(filters)}")
    return DynUNet(
        spatial_dims=3, in_channels=in_channels, out_channels=1 if mode == "binary" else num_classes,
        kernel_size=[3] * levels, strides=[1] + [2] * (levels - 1), upsample_kernel_size=[2] * (levels - 1),
        filters=list(filters), norm_name=norm_name, res_block=res_block, dropout=dropout,
    )
