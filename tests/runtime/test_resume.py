"""Resuming an interrupted run from its last.ckpt (runtime/checkpointing.py), in-process: the resumed run
ends with the uninterrupted run's numbers; corrupt, foreign and unstamped checkpoints; the atomic writer."""
from __future__ import annotations

import json
import logging
import os
import shutil
from pathlib import Path

import pytest
import torch

from runtime import checkpointing
from runtime.checkpointing import AtomicCheckpointIO, config_differences, stamped_config
from runtime.history import History
from train import train

# debug=fast on 8/4/4 images (2 training batches per epoch), a 3-stage U-Net, 2 epochs: seconds per run.
TINY = ("debug=fast", "logger=csv", "datamodule.train_size=8", "datamodule.val_size=4", "datamodule.test_size=4",
        "model.net.encoder_depth=3", "model.net.decoder_channels=[16,16,8]", "callbacks.progress_bar=null",
        "trainer.max_epochs=2")


class Interrupted(Exception):
    """Stands in for a kill: raised at the start of an epoch, after the previous epoch's last.ckpt."""


def _record(run_dir: Path) -> dict:
    return json.loads((run_dir / "metrics.json").read_text())


def _interrupt_at_epoch(monkeypatch, epoch: int) -> None:
    def on_train_epoch_start(self, trainer, pl_module):
        if trainer.current_epoch == epoch:
            raise Interrupted(f"interrupted at the start of epoch {epoch}")

    monkeypatch.setattr(History, "on_train_epoch_start", on_train_epoch_start, raising=False)


def assert_same_run(resumed: dict, clean: dict) -> None:
    assert resumed["status"] == "completed" and resumed["epochs"] == clean["epochs"]
    assert resumed["best_epoch"] == clean["best_epoch"]
    assert resumed["metrics"].keys() == clean["metrics"].keys()
    for key, value in clean["metrics"].items():
        assert resumed["metrics"][key] == pytest.approx(value, abs=1e-6, nan_ok=True), key
    assert resumed["history"].keys() == clean["history"].keys()
    for key, curve in clean["history"].items():
        assert resumed["history"][key] == pytest.approx(curve, abs=1e-6, nan_ok=True), key


@pytest.fixture(scope="module")
def clean_run(tmp_path_factory) -> dict:
    """The uninterrupted run every resumed one must equal."""
    from runtime.compose import compose_config

    cfg = compose_config(list(TINY), tmp_path_factory.mktemp("clean") / "run")
    train(cfg)
    return _record(Path(cfg.paths.output_dir))


@pytest.fixture(scope="module")
def interrupted_dir(tmp_path_factory) -> Path:
    """A run interrupted at the start of epoch 1 (epoch 0 done, its last.ckpt on disk), kept as a template."""
    from runtime.compose import compose_config

    run_dir = tmp_path_factory.mktemp("interrupted") / "run"
    with pytest.MonkeyPatch.context() as patch:
        _interrupt_at_epoch(patch, 1)
        with pytest.raises(Interrupted):
            train(compose_config(list(TINY), run_dir))
    return run_dir


def _copy(template: Path, tmp_path: Path) -> Path:
    run_dir = tmp_path / "run"
    shutil.copytree(template, run_dir)
    return run_dir


def test_interrupted_run_records_the_failure_and_keeps_last_ckpt(interrupted_dir):
    record = _record(interrupted_dir)
    assert record["status"] == "failed"
    assert record["error"].startswith("Interrupted: interrupted at the start of epoch 1")
    assert record["epochs"] == 1 and len(record["history"]["val/miou"]) == 1
    checkpoint = torch.load(interrupted_dir / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)
    assert checkpoint["epoch"] == 0 and checkpoint["global_step"] == 2
    assert len(checkpoint["callbacks"]["History"]["rows"]) == 1  # the curves travel in the checkpoint
    assert checkpoint["lossbench"]["config"]["loss._target_"] == "losses.distribution.CrossEntropyLoss"


def test_resume_true_continues_from_last_ckpt_to_the_uninterrupted_numbers(interrupted_dir, clean_run, run_config,
                                                                           tmp_path):
    run_dir = _copy(interrupted_dir, tmp_path)
    train(run_config(*TINY, "resume=true"))
    resumed = _record(run_dir)
    assert_same_run(resumed, clean_run)
    [entry] = resumed["resumes"]
    assert (entry["from_epoch"], entry["from_step"]) == (1, 2)
    assert entry["reason"].startswith("resume=true; previous attempt: Interrupted")
    assert entry["at"].endswith("+00:00")


@pytest.mark.slow
def test_without_resume_the_run_starts_from_scratch(interrupted_dir, run_config, tmp_path):
    run_dir = _copy(interrupted_dir, tmp_path)
    train(run_config(*TINY))
    assert "resumes" not in _record(run_dir)


def test_requeued_slurm_job_resumes_and_warns_about_other_versions(interrupted_dir, run_config, tmp_path,
                                                                  monkeypatch, caplog):
    run_dir = _copy(interrupted_dir, tmp_path)
    monkeypatch.setenv("SLURM_RESTART_COUNT", "1")  # SLURM requeued the job: no resume=true needed
    real = checkpointing.versions()
    monkeypatch.setattr(checkpointing, "versions", lambda: {**real, "lossbench": "9.9.9"})
    with caplog.at_level(logging.WARNING, logger="lossbench"):
        train(run_config(*TINY, "test=false"))
    assert f"lossbench {real['lossbench']} → now 9.9.9" in caplog.text
    record = _record(run_dir)
    assert record["status"] == "completed" and record["epochs"] == 2
    [entry] = record["resumes"]
    assert entry["from_epoch"] == 1 and entry["reason"].startswith("SLURM requeue 1; previous attempt: Interrupted")


def test_a_changed_schedule_is_another_config(interrupted_dir, run_config, tmp_path):
    _copy(interrupted_dir, tmp_path)
    with pytest.raises(ValueError, match=r"model\.scheduler\.T_max: checkpoint 2, now 4"):
        train(run_config(*TINY, "trainer.max_epochs=4", "resume=true"))  # T_max follows max_epochs


def test_corrupt_last_ckpt_restarts_from_scratch_with_a_warning(interrupted_dir, clean_run, run_config, tmp_path,
                                                                caplog):
    run_dir = _copy(interrupted_dir, tmp_path)
    last = run_dir / "checkpoints" / "last.ckpt"
    last.write_bytes(last.read_bytes()[: last.stat().st_size // 2])  # a half-written file (non-atomic writer)
    with caplog.at_level(logging.WARNING, logger="lossbench"):
        train(run_config(*TINY, "resume=true"))
    record = _record(run_dir)
    assert_same_run(record, clean_run)  # from scratch: the same numbers again
    [entry] = record["resumes"]
    assert entry["from_epoch"] == 0 and "last.ckpt unusable (cannot be read" in entry["reason"]
    assert "restarted from scratch" in caplog.text
    [aside] = run_dir.glob("checkpoints.corrupt-*")
    assert (aside / "last.ckpt").stat().st_size < last.stat().st_size  # the bad file is kept for a look


@pytest.mark.slow
def test_checkpoint_without_stamp_is_not_trusted(interrupted_dir, run_config, tmp_path):
    run_dir = _copy(interrupted_dir, tmp_path)
    last = run_dir / "checkpoints" / "last.ckpt"
    checkpoint = torch.load(last, map_location="cpu", weights_only=False)
    del checkpoint["lossbench"]
    torch.save(checkpoint, last)
    train(run_config(*TINY, "resume=true"))
    [entry] = _record(run_dir)["resumes"]
    assert entry["from_epoch"] == 0 and "lacks lossbench" in entry["reason"]


def test_checkpoint_of_another_loss_is_refused_naming_the_keys(interrupted_dir, run_config, tmp_path):
    run_dir = _copy(interrupted_dir, tmp_path)
    before = (run_dir / "checkpoints" / "last.ckpt").read_bytes()
    with pytest.raises(ValueError) as info:
        train(run_config(*TINY, "loss=dice", "resume=true"))
    message = str(info.value)
    assert "refusing to resume" in message
    assert "loss._target_: checkpoint 'losses.distribution.CrossEntropyLoss'" in message
    assert "Delete" in message and str(run_dir / "checkpoints") in message
    assert (run_dir / "checkpoints" / "last.ckpt").read_bytes() == before  # never touched


def test_cosmetic_keys_do_not_count_as_another_config(run_config):
    a = stamped_config(run_config(*TINY))
    b = stamped_config(run_config(*TINY, "logger=none", "datamodule.num_workers=2", "callbacks.progress_bar=null",
                                  "resume=true", "test=false", subdir="other"))
    assert config_differences(a, b) == []
    c = stamped_config(run_config(*TINY, "model.optimizer.lr=0.01", subdir="third"))
    assert config_differences(a, c) == ["model.optimizer.lr: checkpoint 0.003, now 0.01"]


def test_atomic_writer_keeps_the_previous_file_when_a_write_fails(tmp_path, monkeypatch):
    io = AtomicCheckpointIO(lambda: {"config": {}})
    path = tmp_path / "checkpoints" / "last.ckpt"
    io.save_checkpoint({"epoch": 0}, path)
    assert torch.load(path, weights_only=True) == {"epoch": 0, "lossbench": {"config": {}}}

    def broken_save(obj, handle):
        handle.write(b"half a checkpoint")
        raise OSError("disk full")

    monkeypatch.setattr(checkpointing.torch, "save", broken_save)
    with pytest.raises(OSError, match="disk full"):
        io.save_checkpoint({"epoch": 1}, path)
    monkeypatch.undo()
    assert torch.load(path, weights_only=True)["epoch"] == 0
    assert sorted(os.listdir(path.parent)) == ["last.ckpt"]  # no temp file left behind


def test_a_signal_during_a_checkpoint_write_waits_until_the_file_is_in_place(tmp_path, monkeypatch):
    import signal

    delivered: list[bool] = []
    path = tmp_path / "last.ckpt"
    previous = signal.signal(signal.SIGUSR1, lambda signum, frame: delivered.append(path.is_file()))
    real_save = torch.save

    def save_with_a_signal(obj, handle):
        os.kill(os.getpid(), signal.SIGUSR1)  # as the scheduler's warning would arrive
        real_save(obj, handle)
        assert delivered == []  # held back while the file is written

    monkeypatch.setattr(checkpointing.torch, "save", save_with_a_signal)
    try:
        AtomicCheckpointIO(lambda: {}).save_checkpoint({"epoch": 0}, path)
    finally:
        signal.signal(signal.SIGUSR1, previous)
    assert delivered == [True]  # delivered once the checkpoint was complete and renamed into place
