"""Is the folder data pipeline fast enough to keep the default model busy?

    python benchmarks/folder_speed.py [--images 16] [--batches 40] [--steps 6]

Writes the worked-example folder (``scripts/make_example_folder.py``: large RGB images with thin
vessels, small nuclei and a roi) into a temp dir, composes ``datamodule=folder`` and the default
``model=unet`` from the real config tree, and measures in one run:

- data: training patches/s out of ``train_dataloader()`` as configured (workers, augmentation,
  foreground oversampling, normalisation), and with ``num_workers=0`` (one core, decoding cached),
- model: patches/s of the default model's training step (forward, cross-entropy, backward,
  AdamW step) on batches of the same size,

and prints the ratio data/model (goal >= 3: the model, not the data, sets the pace). Also the
one-off setup pass (decode + checks + stats of every file). Absolute times are noise on a shared
machine; the ratios are what matter.
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import hydra
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "scripts"))

from make_example_folder import sample  # noqa: E402
from PIL import Image  # noqa: E402

from runtime.compose import compose_config  # noqa: E402
from runtime.builders import build_datamodule, instantiate_model  # noqa: E402


def write_example(root: Path, images: int) -> None:
    for name in ("images", "masks", "roi"):
        (root / name).mkdir(parents=True, exist_ok=True)
    for index in range(images):
        image, mask, roi = sample(index, seed=0)
        Image.fromarray(image).save(root / "images" / f"eye{index:03d}.png")
        Image.fromarray(mask).save(root / "masks" / f"eye{index:03d}.png")
        Image.fromarray(roi).save(root / "roi" / f"eye{index:03d}.png")


def data_rate(datamodule, batches: int) -> float:
    loader = iter(datamodule.train_dataloader())
    next(loader)  # worker start-up is a one-off, not throughput
    started = time.perf_counter()
    patches = 0
    for _ in range(batches):
        patches += next(loader)["image"].shape[0]
    return patches / (time.perf_counter() - started)


def model_rate(model, batch: dict[str, torch.Tensor], steps: int) -> float:
    optimizer = model.configure_optimizers()
    optimizer = optimizer["optimizer"] if isinstance(optimizer, dict) else optimizer
    model.train()

    def step() -> None:
        optimizer.zero_grad(set_to_none=True)
        loss = model.loss(model.net(batch["image"]), batch["mask"])
        loss.backward()
        optimizer.step()

    step()  # warm-up (allocator, cudnn/oneDNN kernels)
    started = time.perf_counter()
    for _ in range(steps):
        step()
    return steps * batch["image"].shape[0] / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=16)
    parser.add_argument("--batches", type=int, default=40)
    parser.add_argument("--steps", type=int, default=6)
    args = parser.parse_args()
    torch.set_num_threads(2)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "example"
        write_example(root, args.images)
        overrides = ["datamodule=folder", f"datamodule.root={root}", "datamodule.num_classes=3",
                     f"datamodule.patches_per_epoch={(args.batches + 2) * 8}"]
        cfg = compose_config(overrides, Path(tmp) / "run")
        started = time.perf_counter()
        datamodule = build_datamodule(cfg)  # as in train.py: in_channels: null follows the images
        datamodule.setup("fit")
        setup_s = time.perf_counter() - started
        workers = datamodule.num_workers
        configured = data_rate(datamodule, args.batches)
        datamodule.num_workers = 0
        torch.set_num_threads(1)  # one core, as one worker has
        single = data_rate(datamodule, args.batches)
        torch.set_num_threads(2)
        batch = next(iter(datamodule.train_dataloader()))
        loss = hydra.utils.instantiate(cfg.loss, _convert_="all")
        model = instantiate_model(cfg, loss=loss)
        trained = model_rate(model, batch, args.steps)
    pixels = sum(mask.size for split in ("train", "val", "test") for mask in datamodule.split_masks(split))
    patch = "x".join(str(v) for v in datamodule.patch_size)
    print(f"folder_speed: {args.images} example images ({pixels / 1e6:.1f} Mpx), patches {patch}, "
          f"batch {batch['image'].shape[0]}, model step with {torch.get_num_threads()} torch threads")
    print(f"setup pass (decode + checks + stats, all splits): {setup_s:.2f} s; "
          f"machine load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores (contention inflates the ratio)")
    print()
    print(f"| pipeline | patches/s | ratio vs model step |")
    print(f"|---|---|---|")
    print(f"| folder datamodule, num_workers={workers} (as configured) | {configured:.1f} | {configured / trained:.1f}x |")
    print(f"| folder datamodule, num_workers=0 (one core) | {single:.1f} | {single / trained:.1f}x |")
    print(f"| default model (unet resnet18) training step | {trained:.1f} | 1.0x |")
    print()
    print(f"goal: data/model >= 3 -> {'met' if configured / trained >= 3 else 'NOT met'} ({configured / trained:.1f}x)")


if __name__ == "__main__":
    main()
