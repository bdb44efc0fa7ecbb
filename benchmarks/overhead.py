"""Framework overhead: the default model + loss trained through train.py's Lightning stack vs a plain
PyTorch loop over the same data, batches and steps. Prints throughput (samples/s) side by side and
the ratio lightning/plain (goal ≥ 0.95). Absolute numbers on shared machines are noise; the ratio
is measured in one process with interleaved repeats.

    python benchmarks/overhead.py [--steps 40] [--repeats 3]
"""
from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import hydra
import pytorch_lightning as pl
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from runtime.builders import instantiate_callbacks, instantiate_loggers, instantiate_model  # noqa: E402
from runtime.compose import compose_config  # noqa: E402


class _TrainTimer(pl.Callback):
    """Wall time of the training loop alone (setup, validation and teardown excluded)."""

    def on_train_epoch_start(self, trainer, module):
        self.start = time.perf_counter()

    def on_train_epoch_end(self, trainer, module):
        self.seconds = time.perf_counter() - self.start


def lightning_run(steps: int, out: Path) -> float:
    # No validation pass (its metrics do not exist, so early stopping has nothing to watch): training steps alone.
    cfg = compose_config(["trainer.max_epochs=1", f"trainer.limit_train_batches={steps}", "trainer.limit_val_batches=0",
                          "~callbacks.early_stopping"], out)
    pl.seed_everything(cfg.seed, workers=True)
    datamodule = hydra.utils.instantiate(cfg.datamodule)
    model = instantiate_model(cfg, loss=hydra.utils.instantiate(cfg.loss))
    loggers = instantiate_loggers(cfg.logger)
    timer = _TrainTimer()
    callbacks = instantiate_callbacks(cfg.callbacks, has_logger=True) + [timer]
    trainer = hydra.utils.instantiate(cfg.trainer, callbacks=callbacks, logger=loggers)
    trainer.fit(model, datamodule=datamodule)
    return steps * cfg.datamodule.batch_size / timer.seconds


def plain_run(steps: int, out: Path) -> float:
    cfg = compose_config([], out)
    pl.seed_everything(cfg.seed, workers=True)
    datamodule = hydra.utils.instantiate(cfg.datamodule)
    datamodule.setup("fit")
    module = instantiate_model(cfg, loss=hydra.utils.instantiate(cfg.loss))
    net, loss_fn = module.net, module.loss
    optimizer = module.optimizer_factory(params=net.parameters())
    net.train()
    start = time.perf_counter()
    for step, batch in enumerate(datamodule.train_dataloader()):
        if step == steps:
            break
        optimizer.zero_grad(set_to_none=True)
        loss = loss_fn(net(batch["image"]), batch["mask"])
        loss.backward()
        optimizer.step()
    return steps * cfg.datamodule.batch_size / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    torch.set_num_threads(torch.get_num_threads())
    plain, lightning = [], []
    with tempfile.TemporaryDirectory() as tmp:
        for repeat in range(args.repeats):
            plain.append(plain_run(args.steps, Path(tmp) / f"plain{repeat}"))
            lightning.append(lightning_run(args.steps, Path(tmp) / f"pl{repeat}"))
    p, q = statistics.median(plain), statistics.median(lightning)
    print(f"default model (configs/model/unet.yaml) + loss=ce, {args.steps} training steps, median of {args.repeats}, "
          f"{torch.get_num_threads()} threads")
    print(f"{'loop':<28}{'samples/s':>12}")
    print(f"{'plain PyTorch':<28}{p:>12.1f}")
    print(f"{'train.py (Lightning stack)':<28}{q:>12.1f}")
    print(f"throughput ratio lightning/plain: {q / p:.3f}  (goal >= 0.95)")


if __name__ == "__main__":
    main()
