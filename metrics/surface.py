"""Surface metrics of 3-D label maps in millimetres: HD95 and normalised surface Dice (MONAI metrics).

Per volume and foreground class ``k`` (prediction ``P``, ground truth ``G`` as binary masks, distances
in mm using the volume's voxel spacing):

- ``hd95/<k>`` — the 95th percentile of the symmetric surface distances between ``P`` and ``G``
  (``monai.metrics.compute_hausdorff_distance(percentile=95)``); lower is better.
- ``nsd/<k>`` — normalised surface Dice at tolerance ``tolerance_mm``: the share of both surfaces
  lying within ``tolerance_mm`` of the other surface (``monai.metrics.compute_surface_dice``), in
  [0, 1], higher is better (Nikolov et al. 2021).

Conventions for empty masks, per volume and class: ``P`` and ``G`` both empty → undefined, the volume
does not count for that class; exactly one empty → ``hd95`` = the volume's diagonal in mm (the largest
distance possible) and ``nsd`` = 0. Scores are averaged over the volumes where they are defined;
``hd95``/``nsd`` average the per-class values over the foreground classes that are defined. A class
never defined is NaN (``null`` in metrics.json). Voxels equal to ``ignore_index`` count as background
in both masks.

Per case (the per-case file, docs/contracts.md "Per-case files") the empty-reference policy of Metrics
Reloaded holds instead: ``P`` and ``G`` both empty → ``nsd`` = 1, ``hd95`` undefined; exactly one empty →
``nsd`` = 0, ``hd95`` undefined (never a stand-in distance).
"""
from __future__ import annotations

import warnings

import numpy as np
import torch
from torch import Tensor
from torchmetrics import Metric


class SurfaceMetrics(Metric):
    """``update(preds, target, spacing)`` with ``(N, X, Y, Z)`` integer label maps and ``(N, 3)`` mm;
    ``compute()`` → ``hd95``, ``hd95/<k>``, ``nsd``, ``nsd/<k>`` for ``k`` in 1..num_classes-1."""

    full_state_update = False

    def __init__(self, num_classes: int, tolerance_mm: float = 2.0, ignore_index: int | None = None) -> None:
        super().__init__()
        if num_classes < 2:
            raise ValueError(f"SurfaceMetrics: num_classes must be >= 2, got {num_classes}")
        if not tolerance_mm > 0:
            raise ValueError(f"SurfaceMetrics: tolerance_mm must be > 0 (mm), got {tolerance_mm}")
        self.num_classes = num_classes
        self.tolerance_mm = float(tolerance_mm)
        self.ignore_index = ignore_index
        for name in ("hd_sum", "hd_count", "nsd_sum", "nsd_count"):
            self.add_state(name, default=torch.zeros(num_classes - 1, dtype=torch.float64), dist_reduce_fx="sum")

    def update(self, preds: Tensor, target: Tensor, spacing: Tensor | None = None) -> None:
        """Adds the volumes to the totals. Their per-case ``(hd95, nsd)``, each ``(N, C-1)`` under the
        per-case policy (module docstring; NaN where HD95 is undefined), stay in ``batch_cases``
        until the next update (torchmetrics drops what ``update`` returns)."""
        if preds.shape != target.shape or preds.ndim != 4:
            raise ValueError(f"SurfaceMetrics: preds and target must both be (N, X, Y, Z), got "
                             f"{tuple(preds.shape)} and {tuple(target.shape)}")
        preds, target = preds.detach().cpu().long(), target.detach().cpu().long()
        if self.ignore_index is not None:
            ignored = target == self.ignore_index
            preds, target = preds.masked_fill(ignored, 0), target.masked_fill(ignored, 0)
        n = preds.shape[0]
        spacing_np = np.ones((n, 3)) if spacing is None else spacing.detach().cpu().double().numpy().reshape(n, 3)
        classes = torch.arange(1, self.num_classes).view(1, -1, 1, 1, 1)
        pred_1h = (preds.unsqueeze(1) == classes).float()
        target_1h = (target.unsqueeze(1) == classes).float()
        pred_any = pred_1h.flatten(2).any(-1).numpy()
        target_any = target_1h.flatten(2).any(-1).numpy()
        both = pred_any & target_any
        hd = np.full(both.shape, np.nan)
        nsd = np.full(both.shape, np.nan)
        diagonal = np.sqrt(((np.array(preds.shape[1:]) * spacing_np) ** 2).sum(1))
        one_empty = pred_any ^ target_any
        hd[one_empty] = np.broadcast_to(diagonal[:, None], hd.shape)[one_empty]
        nsd[one_empty] = 0.0
        # MONAI costs ~1.5 s of start-up (half of that under load more): imported by 3-D runs only, here.
        from monai.metrics import compute_hausdorff_distance, compute_surface_dice

        for b in np.flatnonzero(both.any(1)):
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # MONAI warns about the empty classes we override anyway
                spacing_b = spacing_np[b].tolist()
                hd_b = compute_hausdorff_distance(pred_1h[b:b + 1], target_1h[b:b + 1], include_background=True,
                                                  percentile=95, spacing=spacing_b)
                nsd_b = compute_surface_dice(pred_1h[b:b + 1], target_1h[b:b + 1],
                                             [self.tolerance_mm] * (self.num_classes - 1),
                                             include_background=True, spacing=spacing_b)
            hd[b, both[b]] = hd_b[0].double().numpy()[both[b]]
            nsd[b, both[b]] = nsd_b[0].double().numpy()[both[b]]
        for total, count, values in ((self.hd_sum, self.hd_count, hd), (self.nsd_sum, self.nsd_count, nsd)):
            defined = ~np.isnan(values)
            total += torch.from_numpy(np.where(defined, values, 0.0).sum(0)).to(total.device)
            count += torch.from_numpy(defined.sum(0).astype(np.float64)).to(count.device)
        self.batch_cases = np.where(both, hd, np.nan), np.where(pred_any | target_any, nsd, 1.0)

    def compute(self) -> dict[str, Tensor]:
        hd = self.hd_sum / self.hd_count
        nsd = self.nsd_sum / self.nsd_count
        out = {"hd95": hd.nanmean(), "nsd": nsd.nanmean()}
        for k in range(1, self.num_classes):
            out[f"hd95/{k}"] = hd[k - 1]
            out[f"nsd/{k}"] = nsd[k - 1]
        return out
