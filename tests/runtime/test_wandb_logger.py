"""The sweep W&B logger's defaults: offline without an API key, WANDB_MODE respected, flattened config."""
from __future__ import annotations

import pytest

from runtime.wandb_logger import SweepWandbLogger, default_offline, wandb_api_key_configured


@pytest.fixture
def clean_env(monkeypatch, tmp_path):
    for var in ("WANDB_API_KEY", "WANDB_MODE", "WANDB_BASE_URL"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("NETRC", str(tmp_path / "netrc"))
    return tmp_path


def test_no_key_means_offline(clean_env):
    assert not wandb_api_key_configured() and default_offline()


def test_api_key_in_env_or_netrc_means_online(clean_env, monkeypatch):
    monkeypatch.setenv("WANDB_API_KEY", "k" * 40)
    assert wandb_api_key_configured() and not default_offline()
    monkeypatch.delenv("WANDB_API_KEY")
    (clean_env / "netrc").write_text("machine api.wandb.ai\n  login user\n  password " + "p" * 40 + "\n")
    assert wandb_api_key_configured()
    monkeypatch.setenv("WANDB_BASE_URL", "https://wandb.example.org")
    assert not wandb_api_key_configured()  # the key is for another host


def test_wandb_mode_always_wins(clean_env, monkeypatch):
    monkeypatch.setenv("WANDB_MODE", "online")
    assert not default_offline()  # W&B itself applies WANDB_MODE; the logger does not force offline


def test_hyperparameters_are_flattened_without_the_hydra_node(clean_env, monkeypatch):
    logged = {}
    logger = SweepWandbLogger(project="p", save_dir=str(clean_env), tags=("ce", "synthetic", "segmentation"))
    monkeypatch.setattr("pytorch_lightning.loggers.WandbLogger.log_hyperparams",
                        lambda self, params: logged.update(params))
    logger.log_hyperparams({"seed": 2, "loss": {"gamma": 2.0, "terms": {"dice": {"weight": 0.5}}},
                            "hydra": {"run": {"dir": "x"}}})
    # (<group>_name keys join these when Hydra's config is set; see tests/test_sweeps.py)
    assert {k: v for k, v in logged.items() if not k.endswith("_name")} == {
        "seed": 2, "loss.gamma": 2.0, "loss.terms.dice.weight": 0.5}
