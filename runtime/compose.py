"""Compose the real config tree outside ``python train.py`` (tests, benchmarks, tools)."""
from __future__ import annotations

from pathlib import Path

from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, open_dict

from runtime.resolvers import register_resolvers

REPO = Path(__file__).resolve().parents[1]
CONFIG_DIR = REPO / "configs"


def compose_config(overrides: list[str], output_dir: str | Path | None = None) -> DictConfig:
    """The config ``python train.py <overrides>`` would see, with the run's outputs under ``output_dir``.

    Hydra's ``hydra`` node is kept and registered as the current Hydra config, so ``${hydra:...}``
    interpolations and the recorded config-group choices work as in a real run.
    """
    register_resolvers()
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        cfg = compose(config_name="train", overrides=list(overrides), return_hydra_config=True)
    if output_dir is not None:
        with open_dict(cfg):
            cfg.hydra.runtime.output_dir = str(output_dir)
            cfg.hydra.runtime.cwd = str(REPO)
            cfg.hydra.job.num = 0
    HydraConfig.instance().set_config(cfg)
    return cfg
