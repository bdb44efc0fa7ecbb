"""Where the real development datasets lie, and the skip for machines that lack them.

Developers of lossbench have copies of public datasets in the ``shared/data`` folder beside the
checkout (DSB-2018 nuclei, MSD hippocampus, DeepCrack, BCCD). Users and most CI machines do not:
tests that need them are ``slow`` and skip, saying why, when the folder is absent.
``LOSSBENCH_REAL_DATA`` points elsewhere.
"""
from __future__ import annotations

import os
from pathlib import Path

import pytest

REAL_DATA = Path(os.environ.get("LOSSBENCH_REAL_DATA", Path(__file__).resolve().parents[1].parent / "shared" / "data"))

DSB2018 = REAL_DATA / "dsb2018_stage1_train_dev" / "stage1_train"
HIPPOCAMPUS = REAL_DATA / "Task04_Hippocampus_dev"
DEEPCRACK = REAL_DATA / "DeepCrack_train" / "DeepCrack"
BCCD = REAL_DATA / "BCCD" / "BCCD"


def real_data(path: Path) -> pytest.MarkDecorator:
    """Skip unless ``path`` (a dataset folder under the real-data folder) exists."""
    return pytest.mark.skipif(not path.exists(), reason=f"real development data not found at {path} (only "
                              "lossbench developers have it; set LOSSBENCH_REAL_DATA to another copy)")
