"""runtime.builders: the datamodule contract check and the data → loss / data → model wiring."""
from __future__ import annotations

import pytest
import torch
from omegaconf import OmegaConf, open_dict

from datamodules.contract import LossbenchData
from datamodules.synthetic import SyntheticSegDataModule
from datamodules.synthetic_det import SyntheticDetDataModule
from models.inferer import WindowInferer
from runtime.builders import build_datamodule, build_eval_inferer, build_loss, build_model, instantiate_model
from runtime.run_record import new_record

SMALL = {"train_size": 4, "val_size": 2, "test_size": 2}


def _record(cfg):
    return new_record(task=cfg.task, loss="x", datamodule="x", model="x", seed=cfg.seed, optimized_metric="val/miou")


def test_shipped_datamodules_meet_the_contract():
    seg, det = SyntheticSegDataModule(**SMALL), SyntheticDetDataModule(**SMALL)
    assert isinstance(seg, LossbenchData) and isinstance(det, LossbenchData)
    assert seg.eval_window is None and seg.class_pixel_counts().shape == (6,)
    assert det.eval_window is None and det.class_pixel_counts() is None and det.in_channels == 3


def test_a_datamodule_without_the_contract_is_refused_naming_what_it_lacks(run_config):
    cfg = run_config("debug=fast")
    with open_dict(cfg):
        cfg.datamodule = OmegaConf.create({"_target_": "pytorch_lightning.LightningDataModule"})
    with pytest.raises(TypeError, match=r"LightningDataModule lacks \['class_names', 'class_pixel_counts', "
                                        r"'eval_window', 'in_channels', 'num_classes'\]"):
        build_datamodule(cfg)


def test_class_counts_go_to_an_auto_weighted_loss_and_into_the_record(run_config):
    cfg = run_config("debug=fast", "loss=weighted_ce")
    datamodule = build_datamodule(cfg)
    record = _record(cfg)
    loss = build_loss(cfg, datamodule, record)
    counts = datamodule.class_pixel_counts()
    assert record["class_pixel_counts"] == counts.tolist()
    assert record["class_weights"] == pytest.approx(loss.class_weights.tolist())
    # inverse-frequency weights: the rarest class weighs most, the background least
    weights = torch.tensor(record["class_weights"])
    assert int(weights.argmax()) == int(counts.argmin()) and int(weights.argmin()) == int(counts.argmax())


def test_a_loss_without_class_weights_records_only_the_counts(run_config):
    cfg = run_config("debug=fast", "loss=dice")
    datamodule = build_datamodule(cfg)
    record = _record(cfg)
    build_loss(cfg, datamodule, record)
    assert "class_pixel_counts" in record and "class_weights" not in record


class _WindowedData:
    num_classes, class_names, in_channels = 2, ["background", "object"], 3

    def __init__(self, window):
        self.eval_window = window

    def class_pixel_counts(self):
        return torch.tensor([3.0, 1.0], dtype=torch.float64)


def test_the_eval_window_becomes_the_models_inferer(run_config):
    data = _WindowedData({"patch_size": (32, 32), "overlap": 0.5, "blend": "constant"})
    assert isinstance(data, LossbenchData)
    inferer = build_eval_inferer(data)
    assert isinstance(inferer, WindowInferer)
    assert (inferer.patch_size, inferer.overlap, inferer.blend) == ((32, 32), 0.5, "constant")
    assert build_eval_inferer(_WindowedData(None)) is None

    cfg = run_config("debug=fast")
    loss = torch.nn.CrossEntropyLoss()
    assert build_model(cfg, data, loss).inferer.overlap == 0.5
    assert build_model(cfg, _WindowedData(None), loss).inferer is None


@pytest.mark.parametrize("switch, expected", [(None, torch.contiguous_format), ("true", torch.channels_last),
                                              ("false", torch.contiguous_format)])
def test_model_channels_last_switch_converts_the_nets_2d_convolutions(run_config, switch, expected):
    """Off by default, on with model.channels_last=true (no '+': every model config declares it);
    a switch, not a module argument, and it stays in the config, which the run records."""
    overrides = ["debug=fast"] + ([f"model.channels_last={switch}"] if switch else [])
    cfg = run_config(*overrides)
    model = build_model(cfg, _WindowedData(None), torch.nn.CrossEntropyLoss())
    convs = [m for m in model.net.modules() if isinstance(m, torch.nn.Conv2d) and m.kernel_size != (1, 1)]
    assert convs and all(c.weight.is_contiguous(memory_format=expected) for c in convs)
    assert cfg.model.channels_last is (expected == torch.channels_last) and cfg.model.compile is False
    # logits keep their values: the memory format does not change the maths
    x = torch.randn(2, 3, 32, 32)
    assert model.net(x).shape == (2, 6, 32, 32)


@pytest.mark.parametrize("overrides", [("model=unet",), ("model=unetplusplus",), ("model=fpn",),
                                       ("model=deeplabv3plus",), ("model=segformer",), ("datamodule=synthetic_3d",),
                                       ("task=detection", "model=retinanet"), ("task=detection", "model=fcos")])
def test_every_model_config_declares_the_speed_switches_off(run_config, overrides):
    """model.compile / model.channels_last exist in every model config, so one override syntax
    (without '+') works for all; both are off by default (results that do not depend on the
    machine's thread count)."""
    cfg = run_config("debug=fast", *overrides)
    assert cfg.model.compile is False and cfg.model.channels_last is False


def test_speed_switches_apply_to_a_detector_and_can_be_left_to_the_caller(run_config):
    cfg = run_config("debug=fast", "task=detection", "model=retinanet", "model.channels_last=true")
    datamodule = build_datamodule(cfg)
    loss = build_loss(cfg, datamodule, _record(cfg))
    convs = lambda m: [c for c in m.detector.modules() if isinstance(c, torch.nn.Conv2d) and c.kernel_size != (1, 1)]
    switched = instantiate_model(cfg, loss=loss)
    assert convs(switched) and all(c.weight.is_contiguous(memory_format=torch.channels_last) for c in convs(switched))
    plain = instantiate_model(cfg, speed_switches=False, loss=loss)
    assert not any(c.weight.is_contiguous(memory_format=torch.channels_last) for c in convs(plain))
    assert cfg.model.channels_last is True  # left in the config for the record
