"""metrics.json: the record schema, atomic write, NaN → null, completion status."""
import json
import math

import pytest

from runtime.run_record import is_completed, one_line_error, read_record, write_record


def test_write_is_atomic_and_json_safe(tmp_path):
    path = write_record(tmp_path / "run", {"status": "completed", "metrics": {"val/iou/3": math.nan, "val/miou": 0.5}})
    data = json.loads(path.read_text())
    assert data["metrics"] == {"val/iou/3": None, "val/miou": 0.5}
    assert sorted(p.name for p in path.parent.iterdir()) == ["metrics.json"]  # no temp file left behind
    assert is_completed(tmp_path / "run")


def test_failed_missing_and_corrupt_records_are_not_completed(tmp_path):
    write_record(tmp_path / "failed", {"status": "failed", "error": "x"})
    assert not is_completed(tmp_path / "failed")
    assert read_record(tmp_path / "missing") is None and not is_completed(tmp_path / "missing")
    (tmp_path / "corrupt").mkdir()
    (tmp_path / "corrupt" / "metrics.json").write_text('{"status": "compl')
    assert read_record(tmp_path / "corrupt") is None


def test_unserialisable_record_leaves_previous_file_intact(tmp_path):
    write_record(tmp_path, {"status": "completed"})
    with pytest.raises(TypeError):
        write_record(tmp_path, {"status": "failed", "bad": object()})
    assert read_record(tmp_path) == {"status": "completed"}
    assert [p.name for p in tmp_path.iterdir()] == ["metrics.json"]


def test_one_line_error():
    assert one_line_error(ValueError("first line\nsecond")) == "ValueError: first line"
    assert one_line_error(KeyboardInterrupt()) == "KeyboardInterrupt"


def test_a_new_record_has_every_required_field_in_order_and_starts_failed():
    from runtime.run_record import REQUIRED_FIELDS, RunRecord, new_record

    record = new_record(task="segmentation", loss="dice", datamodule="synthetic_small", model="unet", seed=3,
                        optimized_metric="val/miou")
    assert tuple(record) == REQUIRED_FIELDS
    assert set(REQUIRED_FIELDS) | {"best_checkpoint", "class_pixel_counts", "class_weights", "early_stopping",
                                   "converged", "box_statistics", "anchor_fit", "budget", "case_files", "split",
                                   "resumes"} == set(RunRecord.__annotations__)
    assert (record["history"], record["best_epoch"]) == ({}, None)
    assert (record["status"], record["error"], record["epochs"], record["metrics"]) == ("failed", None, 0, {})
    assert record["versions"]["torch"] and record["seed"] == 3
