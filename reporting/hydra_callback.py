"""Hydra callback: run the comparison over the sweep dir when a multirun ends."""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig

log = logging.getLogger("lossbench.compare")


class CompareOnMultirunEnd(Callback):
    """After the last job of a multirun, write the leaderboard, plots and report.html into the sweep dir.

    A comparison that cannot be made (e.g. every job failed) is logged as a warning and never fails
    the sweep: the runs are on disk and ``python compare.py <sweep dir>`` can be rerun at any time.
    """

    def __init__(self, enabled: bool = True, baseline: str | None = None, test: str = "t", plots: bool = True) -> None:
        self.enabled = enabled
        self.options = {"baseline": baseline, "test": test, "plots": plots}

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        if not self.enabled:
            return
        from reporting.pipeline import compare

        sweep_dir = Path(str(config.hydra.sweep.dir))
        try:
            result = compare([sweep_dir], **self.options)
        except ValueError as error:
            log.warning("comparison of %s skipped: %s", sweep_dir, error)
            return
        lb = result.leaderboard.table
        for skipped in result.extras.skipped:
            log.warning("comparison skipped %s: %s", skipped.path, skipped.reason)
        for difference in result.extras.fairness:
            log.warning("rows differ besides the loss in %s · %s: %s", difference["datamodule"], difference["model"],
                        difference["key"])
        log.info("compared %d runs (%d failed): %s", int(lb["n_runs"].sum() + lb["n_failed"].sum()),
                 int(lb["n_failed"].sum()), result.out_dir / "report.html")
