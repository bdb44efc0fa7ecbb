"""Is synthetic data generation ever the bottleneck? Samples/s of generating the default data
(``Dataset.__getitem__``, nothing cached; and through the DataLoader with collation) against samples/s
of the default model's training step (forward + loss + backward + optimizer step), same batch size
and image size, same process and threads. Goal: generation >= 10x training.

Both are measured in alternating rounds and the ratio is taken per round, so load from other
processes on a shared machine hits both sides alike; absolute samples/s are noise, the ratio is the
result.

    python benchmarks/data_speed.py [--rounds 3] [--steps 10] [--samples 256] [--threads N]

Multi-threaded training steps slow down far more than single-threaded generation when other
processes compete for the cores, which inflates the ratio on a busy machine; ``--threads 1`` gives
a ratio that is much less sensitive to that (and conservative: one core trains, the same core generates).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import hydra
import torch
from omegaconf import DictConfig

ROOT = Path(__file__).resolve().parents[1]
CONFIG_DIR = ROOT / "configs"
sys.path.insert(0, str(ROOT))  # run as a script from anywhere: the project packages resolve by path

from runtime.builders import instantiate_model  # noqa: E402


def compose_default() -> DictConfig:
    """The default run's config (``python train.py`` without overrides)."""
    with hydra.initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        return hydra.compose(config_name="train")


def generation_rate(dataset: torch.utils.data.Dataset, samples: int, start: int) -> float:
    begin = time.perf_counter()
    for index in range(start, start + samples):
        dataset[index % len(dataset)]
    return samples / (time.perf_counter() - begin)


def loader_rate(loader: torch.utils.data.DataLoader, samples: int) -> float:
    seen, begin = 0, time.perf_counter()
    for batch in loader:
        seen += len(batch["mask"])
        if seen >= samples:
            break
    return seen / (time.perf_counter() - begin)


def training_rate(net, loss, optimizer, batch: dict[str, torch.Tensor], steps: int) -> float:
    begin = time.perf_counter()
    for _ in range(steps):
        value = loss(net(batch["image"]), batch["mask"])
        optimizer.zero_grad(set_to_none=True)
        value.backward()
        optimizer.step()
    return steps * len(batch["mask"]) / (time.perf_counter() - begin)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--steps", type=int, default=10, help="training steps per round")
    parser.add_argument("--samples", type=int, default=256, help="generated samples per round")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    args = parser.parse_args()
    if args.threads is not None:
        torch.set_num_threads(args.threads)

    cfg = compose_default()
    # Raw generation: the in-memory sample cache is off, so every access draws the sample.
    datamodule = hydra.utils.instantiate(cfg.datamodule, cache=False)
    model = instantiate_model(cfg, loss=hydra.utils.instantiate(cfg.loss))
    optimizer = hydra.utils.instantiate(cfg.model.optimizer)(model.parameters())
    model.train()
    dataset, loader = datamodule.datasets["train"], datamodule.train_dataloader()
    batch = next(iter(loader))
    training_rate(model.net, model.loss, optimizer, batch, steps=2)  # warm-up: allocator, first-call paths

    rows = []
    for round_index in range(args.rounds):
        generated = generation_rate(dataset, args.samples, start=round_index * args.samples)
        loaded = loader_rate(loader, args.samples)
        trained = training_rate(model.net, model.loss, optimizer, batch, args.steps)
        rows.append((generated, loaded, trained))

    height, width = datamodule.spec.image_size
    print(f"data_speed: default datamodule ({cfg.datamodule._target_.rsplit('.', 1)[-1]}, {height}x{width}, "
          f"batch {datamodule.batch_size}) vs default model ({cfg.model.net.arch}/{cfg.model.net.encoder_name}, "
          f"loss {cfg.loss._target_.rsplit('.', 1)[-1]}), torch threads {torch.get_num_threads()}, "
          f"{args.rounds} alternating rounds")
    print(f"{'round':>5} | {'generate (Dataset) /s':>21} | {'generate (DataLoader) /s':>24} | "
          f"{'train step /s':>13} | {'Dataset/train':>13} | {'DataLoader/train':>16}")
    for i, (generated, loaded, trained) in enumerate(rows):
        print(f"{i:>5} | {generated:>21.1f} | {loaded:>24.1f} | {trained:>13.1f} | "
              f"{generated / trained:>12.1f}x | {loaded / trained:>15.1f}x")
    ratio = statistics.median(loaded / trained for _, loaded, trained in rows)
    verdict = "met" if ratio >= 10 else "NOT met"
    print(f"median DataLoader/train ratio, raw generation: {ratio:.1f}x (goal >= 10x: {verdict}); "
          "absolute rates are machine noise")

    # The default config caches samples (cache: true): epoch 1 generates, later epochs read memory.
    cached = hydra.utils.instantiate(cfg.datamodule)
    samples = len(cached.datasets["train"])
    first, later = loader_rate(cached.train_dataloader(), samples), loader_rate(cached.train_dataloader(), samples)
    epochs = cfg.trainer.max_epochs
    amortized = epochs / (1 / first + (epochs - 1) / later)
    trained = statistics.median(row[2] for row in rows)
    verdict = "met" if amortized / trained >= 10 else "NOT met"
    print(f"default config (cache: true): epoch 1 {first:.1f}/s, later epochs {later:.1f}/s; over the default "
          f"{epochs} epochs {amortized:.1f}/s = {amortized / trained:.1f}x the train step (goal >= 10x: {verdict})")


if __name__ == "__main__":
    main()
