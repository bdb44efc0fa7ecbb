"""``python scripts/make_splits.py``: the committed split files are what their documented rules make."""
from __future__ import annotations

import pytest

from datamodules.public.splits import SPLIT_DIR
from scripts.make_splits import MAKERS, main
from tests.real_data import DEEPCRACK, DSB2018, HIPPOCAMPUS, real_data

DATA_FREE = sorted(name for name, (_, needs_root) in MAKERS.items() if not needs_root)


@pytest.mark.parametrize("dataset", DATA_FREE)
def test_data_free_splits_are_remade_byte_for_byte(dataset, tmp_path):
    main([dataset, "--out", str(tmp_path)])
    assert (tmp_path / f"{dataset}.json").read_bytes() == (SPLIT_DIR / f"{dataset}.json").read_bytes()


def test_content_stratified_splits_need_the_data():
    with pytest.raises(SystemExit):
        main(["dsb2018"])


@pytest.mark.slow
@pytest.mark.parametrize("dataset, root", [
    pytest.param("dsb2018", DSB2018, marks=real_data(DSB2018)),
    pytest.param("deepcrack", DEEPCRACK, marks=real_data(DEEPCRACK)),
    pytest.param("msd_task04_hippocampus", HIPPOCAMPUS, marks=real_data(HIPPOCAMPUS)),
])
def test_content_stratified_splits_are_remade_from_the_development_data(dataset, root, tmp_path):
    main([dataset, "--root", str(root), "--out", str(tmp_path)])
    for made in tmp_path.glob("*.json"):
        assert made.read_bytes() == (SPLIT_DIR / made.name).read_bytes(), made.name
